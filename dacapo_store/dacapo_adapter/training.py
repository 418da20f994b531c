"""DaCapo's training stats against what is stored: which rows are new, trained again, or conflicting.

DaCapo's `train` hands its stats store every iteration's stats so far, each time (every 100
iterations). Only the rows not stored yet are appended. A row stored with other values is a
conflict, refused as `WeightsStore.store_training_stats` refuses it, with one exception that
DaCapo's own resume makes: after a crash, DaCapo resumes from the run's latest checkpoint and
trains the iterations after it again, so their losses differ from the ones stored by the run
that crashed. Those rows (at or after the checkpoint DaCapo resumed from) keep the values
stored first (the journal is never rewritten) and are reported, not refused.
Nothing here imports DaCapo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ..errors import TrainingStatsConflictError
from ..weights.stats import same_stats

Row = tuple[float, float]


def plan_training_stats(
    run: str,
    stored: Mapping[int, Row],
    given: Iterable[tuple[object, object, object]],
    resumed_from: Callable[[], int],
) -> tuple[dict[int, Row], list[int]]:
    """(rows to append, iterations trained again since the resume point whose stored values stay).

    `given` holds (iteration, loss, time) as DaCapo has them; `resumed_from()` gives the iteration
    of the run's latest checkpoint (0 without one), where a resumed DaCapo run starts again; it is
    asked only when a row differs from the stored one.
    Raises TrainingStatsConflictError, before anything is written, for a row stored with other
    values before that, and ValueError/TypeError for a row that is not numbers.
    """
    new: dict[int, Row] = {}
    differing: list[int] = []
    for iteration, loss, time in given:
        if type(iteration) is not int or iteration < 0:
            raise ValueError(
                f"run {run}: training stats iteration must be a non-negative int, got {iteration!r}"
            )
        try:
            row = (float(loss), float(time))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise TypeError(
                f"run {run}: training stats of iteration {iteration} must be numbers, got loss {loss!r}, "
                f"time {time!r}"
            ) from None
        old = stored.get(iteration)
        if old is None:
            new[iteration] = row
        elif not same_stats(old, row):
            differing.append(iteration)
    if not differing:
        return new, []
    start = resumed_from()
    conflicts = [it for it in differing if it < start]
    if conflicts:
        first = conflicts[0]
        raise TrainingStatsConflictError(
            f"run {run} already has other training stats at {len(conflicts)} iteration(s) from {first} "
            f"(stored loss, time {stored[first]}), before its latest checkpoint {start}; "
            "nothing was stored"
        )
    return new, sorted(differing)


def subsampled_training(iterations: list[int]) -> list[int]:
    """The iterations DaCapo's MongoDB stats store keeps with `subsample=True`: about 1000 of them."""
    if not iterations:
        return []
    last = max(iterations)
    divisor = (last + 999) // 1000
    kept = [it for it in iterations if it % divisor == 0]
    return kept if kept and kept[-1] == last else [*kept, last]


def subsampled_validation(iterations: list[int], validation_interval: int | None) -> list[int]:
    """The validated iterations DaCapo's MongoDB stats store keeps with `subsample=True`."""
    if not iterations:
        return []
    if not validation_interval or validation_interval <= 0:
        raise ValueError("subsample=True needs the run's validation_interval (a positive int)")
    last = max(iterations)
    divisor = (last + 999) // 1000
    divisor -= divisor % validation_interval
    divisor = max(divisor, validation_interval)
    kept = [it for it in iterations if it % divisor == 0]
    return kept if kept and kept[-1] == last else [*kept, last]
