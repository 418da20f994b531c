"""Read models shared by the command line and the dashboard, so both show the same numbers.

- `scores`: a run's validation scores as rows, the best of each criterion marked.
- `leaderboard`: each run's best checkpoint by a criterion, across runs.
- `lineage`: the chain of starts behind a run and the runs that start from it.
"""

from __future__ import annotations

from .leaderboard import LeaderboardEntry, leaderboard
from .lineage import Lineage, LineageStep, lineage
from .scores import ScoreRow, scores_table

__all__ = [
    "LeaderboardEntry",
    "Lineage",
    "LineageStep",
    "ScoreRow",
    "leaderboard",
    "lineage",
    "scores_table",
]
