"""Leaderboard rows: each run's best checkpoint by a criterion, and their order."""

from __future__ import annotations

import attrs


@attrs.frozen
class LeaderboardEntry:
    """One run on a leaderboard: its best iteration, that iteration's score, and whether it is a pin."""

    run: str
    iteration: int
    #: the score at `iteration` (the mean over datasets when no dataset was asked for); None if a
    #: pinned iteration has no score
    value: float | None
    pinned: bool


def sort_entries(entries: list[LeaderboardEntry], higher_is_better: bool) -> list[LeaderboardEntry]:
    """Best first by the criterion's direction; runs without a value last; ties by run name."""
    sign = -1.0 if higher_is_better else 1.0
    return sorted(
        entries, key=lambda e: (e.value is None, sign * e.value if e.value is not None else 0.0, e.run)
    )
