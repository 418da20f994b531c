"""The per-run index: checkpoints, validation scores and pins, folded from a list of events.

Backends keep the index as they like (an append-only journal file, a few MongoDB collections) and
hand it over as events; `RunIndex.with_events` is the one place that interprets them. Events:

- ``{"op": "checkpoint", "iteration": i, "meta": {...}}``: a whole checkpoint is in place.
- ``{"op": "remove", "iteration": i}``: it is gone.
- ``{"op": "scores", "iteration": i, "dataset": d, "scores": {c: v}, "higher_is_better": {c: bool}}``
- ``{"op": "pin", "dataset": d or None, "criterion": c, "iteration": i}``
- ``{"op": "unpin", "dataset": d or None, "criterion": c}``: the pin is gone.
- ``{"op": "damaged", "iteration": i, "problem": text, "blobs": [name, ...]}``: a check found this
  checkpoint damaged or missing blobs; it is not offered as a best until a new checkpoint replaces
  it. With `blobs` (the names of the blobs checked) it applies only while the checkpoint still has
  exactly those blobs: a check that raced a re-store never marks the new checkpoint.
- ``{"op": "sound", "iteration": i, "blobs": [name, ...]}``: a check found the checkpoint with those
  blobs sound; a damage mark on it is dropped.

The first direction stored for a criterion is the run's: a later event's other direction (which
writers refuse, so only an old journal of racing writers has one) does not flip it.

What can't be read (a malformed event, a journal line that fails its checksum) is never silently
dropped: it is listed in `problems`, so checks report it and `gc` leaves the run's blobs alone.

DaCapo's own data of a run (its scores, best files and checkpoints, read by `legacy/`) is a RunIndex
too, whose `legacy` holds the iterations of DaCapo's checkpoint files; `over` lays ours on it.

A RunIndex is never changed once built: `with_events` returns a new one that shares what did not
change, so a reader can keep using the one it has while another thread folds in new events.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from ..criteria import known_direction

log = logging.getLogger(__name__)

PinKey = tuple[str | None, str]


def _is_iteration(value: object) -> bool:
    # an int subclass (bson.int64.Int64 from MongoDB for values >= 2**31), but never a bool
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def blob_names(meta: Mapping[str, Any] | None) -> list[str] | None:
    """The sorted names of a checkpoint entry's blobs (what identifies that very checkpoint)."""
    if not isinstance(meta, Mapping) or not isinstance(meta.get("blobs"), Mapping):
        return None
    return sorted(str(record.get("name")) for record in meta["blobs"].values() if isinstance(record, Mapping))


class RunIndex:
    """What a run has: checkpoint metadata by iteration, scores, criterion directions, pins."""

    __slots__ = (
        "_rankings",
        "checkpoints",
        "damaged",
        "directions",
        "legacy",
        "pins",
        "problems",
        "scores",
        "unchecked",
    )

    def __init__(self) -> None:
        self.checkpoints: dict[int, dict[str, Any]] = {}
        #: criterion -> dataset -> iteration -> score
        self.scores: dict[str, dict[str, dict[int, float]]] = {}
        self.directions: dict[str, bool] = {}
        self.pins: dict[PinKey, int] = {}
        #: iteration -> what a check found wrong with its checkpoint
        self.damaged: dict[int, str] = {}
        #: iterations with a DaCapo checkpoint file (`checkpoints/iterations/<n>`), loadable too
        self.legacy: frozenset[int] = frozenset()
        #: what of the stored index could not be read ("line 12: ..."): damage, never collected
        self.problems: tuple[str, ...] = ()
        #: how many journal lines carry no checksum (written before checksums existed)
        self.unchecked = 0
        self._rankings: dict[tuple[str, str | None], list[int]] = {}

    def with_events(
        self, events: Iterable[Mapping[str, Any]], lines: Sequence[int] | None = None
    ) -> RunIndex:
        """A new index with `events` applied; malformed events are logged, skipped and listed in
        `problems` (by their journal line: event i is on line `lines[i]`, when given)."""
        new = RunIndex()
        new.checkpoints = self.checkpoints
        new.scores = self.scores
        new.directions = self.directions
        new.pins = self.pins
        new.damaged = self.damaged
        new.legacy = self.legacy
        new.problems = self.problems
        new.unchecked = self.unchecked
        problems: list[str] = []
        copied: set[Any] = set()

        def fresh(key: Any, container: dict) -> dict:
            # copy a shared container once per batch, before its first change
            if key in copied:
                return container
            copied.add(key)
            return dict(container)

        touched: set[str] = set()
        # the scores containers this batch copied: criterion -> dataset -> its values (None: none yet)
        own_values: dict[str, dict[str, dict[int, float]]] | None = None
        applied: dict | None = None  # the directions of the last scores event, applied
        for position, event in enumerate(events):
            try:
                op = event["op"]
                if op in ("checkpoint", "remove"):
                    iteration = event["iteration"]
                    if not _is_iteration(iteration):
                        raise ValueError(f"bad iteration {iteration!r}")
                    iteration = int(iteration)
                    new.checkpoints = fresh("checkpoints", new.checkpoints)
                    if iteration in new.damaged:
                        new.damaged = fresh("damaged", new.damaged)
                        del new.damaged[iteration]
                    if op == "checkpoint":
                        meta = event["meta"]
                        if not isinstance(meta, dict) or not isinstance(meta.get("blobs"), dict):
                            raise ValueError("checkpoint without blob records")
                        new.checkpoints[iteration] = meta
                    else:
                        new.checkpoints.pop(iteration, None)
                elif op == "scores":  # most events: kept free of per-score calls
                    iteration, dataset = event["iteration"], event["dataset"]
                    scores, directions = event["scores"], event.get("higher_is_better") or {}
                    if type(iteration) is not int or iteration < 0:
                        if not _is_iteration(iteration):
                            raise ValueError(f"bad iteration {iteration!r}")
                        iteration = int(iteration)
                    if not isinstance(dataset, str):
                        raise ValueError(f"bad dataset {dataset!r}")
                    if not isinstance(scores, dict) or not isinstance(directions, dict):
                        raise ValueError("scores and higher_is_better must be mappings")
                    if own_values is None:
                        new.scores = dict(new.scores)
                        own_values = {}
                    for criterion, value in scores.items():
                        if type(value) is not float and (
                            isinstance(value, bool) or not isinstance(value, (int, float))
                        ):
                            log.warning("skipping score %r=%r: not a number", criterion, value)
                            continue
                        by_dataset_values = own_values.get(criterion)
                        if by_dataset_values is None:  # first change of this criterion in the batch
                            by_dataset_values = own_values[criterion] = {}
                            new.scores[criterion] = dict(new.scores.get(criterion, {}))
                            touched.add(criterion)
                        values = by_dataset_values.get(dataset)
                        if values is None:
                            by_dataset = new.scores[criterion]
                            values = by_dataset_values[dataset] = by_dataset[dataset] = dict(
                                by_dataset.get(dataset, {})
                            )
                        values[iteration] = float(value)
                    if directions == applied:
                        continue  # as the last event's (every event of a run repeats them)
                    for criterion, higher in directions.items():
                        if isinstance(higher, bool) and criterion not in new.directions:
                            new.directions = fresh("directions", new.directions)
                            new.directions[criterion] = higher
                            touched.add(criterion)
                    applied = directions
                elif op == "pin":
                    dataset, criterion, iteration = event["dataset"], event["criterion"], event["iteration"]
                    if not (dataset is None or isinstance(dataset, str)) or not isinstance(criterion, str):
                        raise ValueError(f"bad dataset {dataset!r} or criterion {criterion!r}")
                    if not _is_iteration(iteration):
                        raise ValueError(f"bad iteration {iteration!r}")
                    new.pins = fresh("pins", new.pins)
                    new.pins[(dataset, criterion)] = int(iteration)
                elif op == "unpin":
                    dataset, criterion = event["dataset"], event["criterion"]
                    new.pins = fresh("pins", new.pins)
                    new.pins.pop((dataset, criterion), None)
                elif op in ("damaged", "sound"):
                    iteration = event["iteration"]
                    if not _is_iteration(iteration):
                        raise ValueError(f"bad iteration {iteration!r}")
                    iteration = int(iteration)
                    checked = event.get("blobs")
                    if checked is not None and checked != blob_names(new.checkpoints.get(iteration)):
                        continue  # about a checkpoint that was replaced or removed since
                    if op == "damaged":
                        new.damaged = fresh("damaged", new.damaged)
                        new.damaged[iteration] = str(event["problem"])
                    elif iteration in new.damaged:
                        new.damaged = fresh("damaged", new.damaged)
                        del new.damaged[iteration]
                else:
                    raise ValueError(f"unknown op {op!r}")
            except (KeyError, TypeError, ValueError) as exc:
                where = f"line {lines[position]}" if lines is not None else f"event {event!r:.80}"
                log.warning("skipping malformed index event (%s) %.200r: %s", where, event, exc)
                problems.append(f"{where}: can't be read ({exc})")
        if problems:
            new.problems = (*new.problems, *problems)
        new._rankings = {k: v for k, v in self._rankings.items() if k[0] not in touched}
        return new

    def with_legacy(self, iterations: Iterable[int]) -> RunIndex:
        """A new index sharing this one's data, with `legacy` set to these DaCapo checkpoint iterations."""
        new = self._copy()
        new.legacy = frozenset(iterations)
        return new

    def with_problems(self, problems: Iterable[str], unchecked: int = 0) -> RunIndex:
        """This index with more `problems` and `unchecked` lines (what a reader found unreadable)."""
        problems = tuple(problems)
        if not problems and not unchecked:
            return self
        new = self._copy()
        new.problems = (*self.problems, *problems)
        new.unchecked = self.unchecked + unchecked
        return new

    def _copy(self) -> RunIndex:
        new = RunIndex()
        for slot in self.__slots__:
            setattr(new, slot, getattr(self, slot))
        return new

    def usable(self, iteration: int) -> bool:
        """Whether `iteration` has a loadable checkpoint: ours, unless a check found it damaged, else
        DaCapo's (ours wins where both have one: a damaged one of ours is not loadable)."""
        if iteration in self.checkpoints:
            return iteration not in self.damaged
        return iteration in self.legacy

    def iterations(self) -> list[int]:
        """Iterations with a checkpoint, ours or DaCapo's, damaged ones included, ascending."""
        return sorted(self.legacy.union(self.checkpoints)) if self.legacy else sorted(self.checkpoints)

    def mean_score(self, criterion: str, dataset: str | None, iteration: int) -> float:
        """The score of `iteration` on `dataset`, else its mean over the datasets scoring it; NaN if none."""
        by_dataset = self.scores.get(criterion, {})
        if dataset is not None:
            return by_dataset.get(dataset, {}).get(iteration, math.nan)
        values = [v[iteration] for v in by_dataset.values() if v.get(iteration, math.nan) == v.get(iteration)]
        return sum(values) / len(values) if values else math.nan

    def ranking(self, criterion: str, dataset: str | None) -> list[int]:
        """Scored iterations from best to worst for `criterion` on `dataset` (None: mean over datasets).

        Cached on the index, which never changes, so repeated queries cost a dict lookup.
        """
        key = (criterion, dataset)
        cached = self._rankings.get(key)
        if cached is None:
            higher = self.directions.get(criterion, known_direction(criterion))
            if higher is None:
                raise ValueError(f"no direction (higher or lower is better) is stored for {criterion!r}")
            by_dataset = self.scores[criterion]
            if dataset is None and len(by_dataset) == 1:  # the mean over one dataset: its own ranking
                cached = self.ranking(criterion, next(iter(by_dataset)))
            else:
                cached = rank(by_dataset, higher, None if dataset is None else [dataset])
            self._rankings[key] = cached
        return cached

    def score(self, criterion: str, dataset: str, iteration: int) -> float:
        """One stored score, NaN if there is none."""
        return self.scores.get(criterion, {}).get(dataset, {}).get(iteration, math.nan)

    def over(self, base: RunIndex) -> RunIndex:
        """This index laid over `base` (DaCapo's scores, bests and checkpoints): where both have a
        value, ours wins. Checkpoint entries are this index's; `base` adds scores, directions,
        pins and its `legacy` checkpoint iterations.
        """
        if not (base.scores or base.pins or base.legacy):
            return self
        new = RunIndex()
        new.checkpoints = self.checkpoints
        new.damaged = self.damaged
        new.legacy = base.legacy
        new.problems = self.problems
        new.unchecked = self.unchecked
        new.scores = {c: {d: dict(v) for d, v in by_d.items()} for c, by_d in base.scores.items()}
        for criterion, by_dataset in self.scores.items():
            merged = new.scores.setdefault(criterion, {})
            for dataset, values in by_dataset.items():
                merged[dataset] = {**merged.get(dataset, {}), **values}
        new.directions = {**base.directions, **self.directions}
        new.pins = {**base.pins, **self.pins}
        return new


def rank(
    values_by_dataset: Mapping[str, Mapping[int, float]],
    higher_is_better: bool,
    datasets: Collection[str] | None = None,
) -> list[int]:
    """Iterations from best to worst by their score (mean over the given datasets validated there).

    NaN scores count as missing. Ties go to the earlier iteration.
    """
    chosen = values_by_dataset if datasets is None else {d: values_by_dataset[d] for d in datasets}
    if len(chosen) == 1:
        (values,) = chosen.values()
        means = {it: v for it, v in values.items() if v == v}  # v != v: NaN
    else:
        sums: dict[int, float] = {}
        counts: dict[int, int] = {}
        for values in chosen.values():
            for it, v in values.items():
                if v != v:
                    continue
                if it in sums:
                    sums[it] += v
                    counts[it] += 1
                else:
                    sums[it] = v
                    counts[it] = 1
        means = {it: s / counts[it] for it, s in sums.items()}
    keys = {it: -m for it, m in means.items()} if higher_is_better else means
    order = sorted(keys)  # by iteration, then a stable sort by score: ties keep the earlier one first
    order.sort(key=keys.__getitem__)
    return order
