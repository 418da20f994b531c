"""The one best rule, and the one ranking across runs: pure functions over a run's index.

Every face asks these: `retrieve_best`, `best_choice` and `Start` (through the store), the scores
table's best mark, `weights list`'s "best for", the leaderboard of the API, the command line and
the dashboard, the run page's marks, `prune`. The index is ours laid over DaCapo's
(`WeightsStore.run_index`): scores (NaN kept), directions, pins run-wide and per dataset, our
checkpoints with their damage, and DaCapo's checkpoint files.

The rule, for a criterion and a dataset (None: the mean over the datasets validated at each
iteration):

1. a pin of that criterion and dataset wins if its checkpoint is loadable (with one dataset, a
   run-wide pin and a pin on that dataset are the same pin);
2. else the best score whose checkpoint is loadable (NaN is never best; ties go to the earlier
   iteration);
3. else, when no scored iteration has a loadable checkpoint, the best score all the same, marked
   not loadable: the run still shows (and ranks) with "no checkpoint", but nothing that loads
   weights (`retrieve_best`, `Start`) ever takes it.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Iterable, Iterator

import attrs

from ..criteria import known_direction
from .index import RunIndex

log = logging.getLogger(__name__)

#: (criterion, dataset or None for the mean over datasets)
BestKey = tuple[str, "str | None"]


@attrs.frozen
class Choice:
    """A run's best by a criterion: its iteration, score there, whether a pin chose it, and
    whether that iteration has a loadable checkpoint."""

    iteration: int
    #: the score at `iteration` (the mean over datasets for dataset None); None if it has none
    value: float | None
    pinned: bool
    loadable: bool = True


def pin_of(index: RunIndex, criterion: str, dataset: str | None) -> int | None:
    """The pinned iteration for (criterion, dataset), if any. With one dataset the run-wide pin
    and the dataset's pin stand for each other (the exact one first)."""
    pins = index.pins
    if not pins:
        return None
    exact = pins.get((dataset, criterion))
    if exact is not None:
        return exact
    datasets = index.scores.get(criterion)
    if datasets is not None and len(datasets) == 1:
        (only,) = datasets
        if dataset is None:
            return pins.get((only, criterion))
        if dataset == only:
            return pins.get((None, criterion))
    return None


def value_at(index: RunIndex, criterion: str, dataset: str | None, iteration: int) -> float | None:
    """The score at `iteration` (mean over datasets for None), None where there is none or NaN."""
    value = index.mean_score(criterion, dataset, iteration)
    return None if value != value else value


def choose(index: RunIndex, criterion: str, dataset: str | None = None) -> Choice | None:
    """The run's best by `criterion` on `dataset` (the rule above); None if it has no score and no
    pin for it. ValueError if it has scores but no known direction for the criterion."""
    pinned = pin_of(index, criterion, dataset)
    if pinned is not None and index.usable(pinned):
        return Choice(pinned, value_at(index, criterion, dataset, pinned), True, True)
    by_dataset = index.scores.get(criterion)
    if by_dataset and (dataset is None or dataset in by_dataset):
        ranking = index.ranking(criterion, dataset)
        for iteration in ranking:
            if index.usable(iteration):
                if pinned is not None:
                    log.debug(
                        "the pinned best %s iteration %d has no loadable weights; using the computed best",
                        criterion,
                        pinned,
                    )
                return Choice(iteration, value_at(index, criterion, dataset, iteration), False, True)
        if ranking:
            first = ranking[0]
            return Choice(first, value_at(index, criterion, dataset, first), False, False)
    if pinned is not None:
        return Choice(pinned, value_at(index, criterion, dataset, pinned), True, False)
    return None


def best_keys(index: RunIndex) -> Iterator[BestKey]:
    """Every (criterion, dataset or None) the run has a best for: each scored criterion over all
    its datasets and on each, and each pin."""
    seen: set[BestKey] = set()
    for criterion, by_dataset in index.scores.items():
        for key in ((criterion, None), *((criterion, d) for d in by_dataset)):
            seen.add(key)
            yield key
    for dataset, criterion in index.pins:
        if (criterion, dataset) not in seen:
            seen.add((criterion, dataset))
            yield criterion, dataset


def all_bests(index: RunIndex) -> dict[BestKey, Choice]:
    """The run's best for every key of `best_keys` (criteria with no known direction are left out)."""
    out: dict[BestKey, Choice] = {}
    for criterion, dataset in best_keys(index):
        try:
            found = choose(index, criterion, dataset)
        except ValueError:  # scores without a known direction: nothing to rank them by
            continue
        if found is not None:
            out[(criterion, dataset)] = found
    return out


def kept_by_bests(index: RunIndex) -> set[int]:
    """Iterations that a pin or some criterion's best names: what `prune` never removes."""
    kept = set(index.pins.values())
    kept.update(choice.iteration for choice in all_bests(index).values() if choice.loadable)
    return kept


# ---------------------------------------------------------------------------------- across runs


def direction(criterion: str, stored: Iterable[bool | None] = ()) -> bool:
    """Which way a criterion ranks runs: DaCapo's table, else the first direction a run stores
    (runs taken in name order by the caller), else higher is better."""
    known = known_direction(criterion)
    if known is not None:
        return known
    for higher in stored:
        if higher is not None:
            return higher
    return True


def ranked(
    bests: Iterable[tuple[str, Choice]], higher_is_better: bool, top: int | None = None
) -> list[tuple[str, Choice]]:
    """Runs by their best, best first in the criterion's direction; a best without a value (a pin
    on an unscored iteration) last; ties by run name. With `top`, only the first `top`."""
    sign = -1.0 if higher_is_better else 1.0

    def key(item: tuple[str, Choice]) -> tuple[bool, float, str]:
        value = item[1].value
        missing = value is None or math.isnan(value)
        return (missing, 0.0 if missing else sign * value, item[0])  # type: ignore[operator]

    items = list(bests)
    return sorted(items, key=key) if top is None else heapq.nsmallest(top, items, key=key)


__all__ = [
    "BestKey",
    "Choice",
    "all_bests",
    "best_keys",
    "choose",
    "direction",
    "kept_by_bests",
    "pin_of",
    "ranked",
    "value_at",
]
