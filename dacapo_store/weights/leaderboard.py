"""Leaderboard rows: each run's best checkpoint by a criterion, and their order."""

from __future__ import annotations

import heapq

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


def rank_entries(
    bests: list[tuple[str, list]], higher_is_better: bool, top: int | None = None
) -> list[LeaderboardEntry]:
    """(run, [iteration, value, pinned]) as entries, best first by the criterion's direction; runs
    without a value last; ties by run name. With `top`, only the first `top` are built."""
    sign = -1.0 if higher_is_better else 1.0

    def key(item: tuple[str, list]) -> tuple[bool, float, str]:
        value = item[1][1]
        return (value is None, sign * value if value is not None else 0.0, item[0])

    chosen = sorted(bests, key=key) if top is None else heapq.nsmallest(top, bests, key=key)
    return [LeaderboardEntry(run, best[0], best[1], best[2]) for run, best in chosen]
