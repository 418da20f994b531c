"""A run's validation scores as rows: iteration x dataset x criterion, the best ones marked."""

from __future__ import annotations

import attrs

from ..criteria import check_criterion
from ..names import check_name
from ..weights.base import WeightsStore, run_name
from ..weights.best import all_bests


@attrs.frozen
class ScoreRow:
    """One score (NaN where an iteration was validated without a value). `best`: this iteration is
    the run's best by the criterion on this dataset (`best.choose`: a pin counts); `has_weights`:
    a loadable checkpoint of the iteration exists (ours, or DaCapo's)."""

    iteration: int
    dataset: str
    criterion: str
    value: float
    best: bool
    has_weights: bool


def scores_table(
    weights: WeightsStore, run: str, dataset: str | None = None, criterion: str | None = None
) -> list[ScoreRow]:
    """Every score of `run` (only `dataset`'s, only `criterion`'s), by iteration, dataset, criterion."""
    name = run_name(run)
    if dataset is not None:
        check_name(dataset, "dataset name", slash_ok=True)
    if criterion is not None:
        check_criterion(criterion)
    index = weights.run_index(name)
    bests = all_bests(index)
    rows = []
    for crit, by_dataset in index.scores.items():
        if criterion is not None and crit != criterion:
            continue
        for ds, values in by_dataset.items():
            if dataset is not None and ds != dataset:
                continue
            best = bests.get((crit, ds))
            for iteration, value in values.items():
                rows.append(
                    ScoreRow(
                        iteration,
                        ds,
                        crit,
                        value,
                        best is not None and best.iteration == iteration,
                        index.usable(iteration),
                    )
                )
    rows.sort(key=lambda r: (r.iteration, r.dataset, r.criterion))
    return rows
