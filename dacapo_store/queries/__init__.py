"""Read models shared by the command line and the dashboard, so both show the same numbers.

- `scores`: a run's validation scores as rows, the best of each criterion marked.
- `leaderboard`: each run's best checkpoint by a criterion, across runs.
- `lineage`: the chain of starts behind a run and the runs that start from it.
- `catalog`: the run catalog, one read model of every run (config summary, weights digest, status,
  damage) under every face; `runs`: a run's detail and comparisons.
"""

from __future__ import annotations

from .catalog import SORT_KEYS, CatalogSnapshot, RunCatalog, RunQuery
from .leaderboard import LeaderboardEntry, leaderboard
from .lineage import Lineage, LineageStep, lineage
from .runs import (
    STATUSES,
    Best,
    RunSummary,
    compare_runs,
    run_detail,
    run_lineage,
    training_stats,
)
from .scores import ScoreRow, scores_table

__all__ = [
    "SORT_KEYS",
    "STATUSES",
    "Best",
    "CatalogSnapshot",
    "LeaderboardEntry",
    "Lineage",
    "LineageStep",
    "RunCatalog",
    "RunQuery",
    "RunSummary",
    "ScoreRow",
    "compare_runs",
    "leaderboard",
    "lineage",
    "run_detail",
    "run_lineage",
    "scores_table",
    "training_stats",
]
