"""Leaderboard rows: each run's best by a criterion, in the order `best.ranked` gives."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from .best import Choice, ranked


@attrs.frozen
class LeaderboardEntry:
    """One run on a leaderboard: its best iteration, that iteration's score, whether it is a pin,
    and whether it has a loadable checkpoint (False: the run has scores but no checkpoint left)."""

    run: str
    iteration: int
    #: the score at `iteration` (the mean over datasets when no dataset was asked for); None if a
    #: pinned iteration has no score
    value: float | None
    pinned: bool
    loadable: bool = True


def leaderboard_entries(
    bests: Iterable[tuple[str, Choice]], higher_is_better: bool, top: int | None = None
) -> list[LeaderboardEntry]:
    """(run, best) pairs as entries, ranked by `best.ranked` (the one ranking across runs)."""
    return [
        LeaderboardEntry(run, c.iteration, c.value, c.pinned, c.loadable)
        for run, c in ranked(bests, higher_is_better, top)
    ]
