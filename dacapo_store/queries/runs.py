"""Runs as the dashboard shows them: summaries with a derived status, one run in detail, a compare.

Everything here reads; nothing writes. The numbers are the ones the command line prints:

- `best_per_run`: `WeightsStore.best_choice` (as `weights best` and the leaderboard)
- `training_stats`: `WeightsStore.retrieve_training_stats` (ours and DaCapo's)
- `run_lineage`: `queries.lineage` (as `dacapo-store lineage`) with the iteration each start takes
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ..config_store.documents import META_KEY, RUN_PARTS, DocumentMetadata, config_part
from ..errors import CriterionNotFoundError, DacapoStoreError, WeightsNotFoundError
from ..weights.base import WeightsStore
from ..weights.index import RunIndex
from .lineage import lineage
from .uses import NESTED_KINDS, nested_configs

log = logging.getLogger(__name__)

#: Run statuses, derived from what is stored (nothing new is written).
STATUSES = ("new", "training", "stalled", "finished")
#: A run updated within this long is "training"; older and unfinished is "stalled".
DEFAULT_STALE_AFTER = timedelta(minutes=30)


@attrs.frozen
class Best:
    """The checkpoint a StartConfig would load by a criterion: iteration, its value, pinned by hand?"""

    iteration: int
    value: float | None
    pinned: bool


@attrs.frozen
class TrainingPoint:
    iteration: int
    loss: float
    time: float | None


def _pairs(value: Iterable[Iterable[str]]) -> tuple[tuple[str, str], ...]:
    """(kind, name) pairs as tuples, whatever sequences they come in (a snapshot read back)."""
    return tuple((str(kind), str(name)) for kind, name in value)


@attrs.frozen
class RunSummary:
    """One row of the runs table: the run's parts, progress and timestamps (bests kept apart)."""

    name: str
    task: str | None
    architecture: str | None
    trainer: str | None
    datasplit: str | None
    repetition: int | None
    num_iterations: int | None
    start_run: str | None
    start_criterion: str | None
    created_by: str | None
    created_at: datetime | None
    iterations_trained: int
    latest_checkpoint: int | None
    checkpoints: int
    has_stats: bool
    updated_at: datetime | None
    criteria: tuple[str, ...]
    datasets: tuple[str, ...]
    #: (kind, name) of the dataset and array configs its document holds (see `uses.py`)
    uses: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)

    def status(self, now: datetime | None = None, stale_after: timedelta = DEFAULT_STALE_AFTER) -> str:
        """new (nothing stored), finished (reached num_iterations), else training or stalled by age."""
        if self.num_iterations is not None and self.iterations_trained >= self.num_iterations > 0:
            return "finished"
        if not self.has_stats and self.latest_checkpoint is None and not self.criteria:
            return "new"
        now = now or datetime.now(timezone.utc)
        if self.updated_at is not None and now - self.updated_at <= stale_after:
            return "training"
        return "stalled"

    def as_json(self, now: datetime | None = None, stale_after: timedelta = DEFAULT_STALE_AFTER) -> dict:
        out = attrs.asdict(self, recurse=False)
        out["criteria"] = list(self.criteria)
        out["datasets"] = list(self.datasets)
        out["uses"] = {kind: [n for k, n in self.uses if k == kind] for kind in NESTED_KINDS}
        out["created_at"] = _iso(self.created_at)
        out["updated_at"] = _iso(self.updated_at)
        out["status"] = self.status(now, stale_after)
        return out


class Prefetched(WeightsStore):
    """A read-only view of a weights store answering from indexes already read (no I/O per call)."""

    def __init__(
        self,
        store: WeightsStore,
        indexes: Mapping[str, RunIndex],
        *,
        without_dacapo: Collection[str] = (),
    ) -> None:
        """`without_dacapo`: runs known (by a stat of their files) to have no DaCapo checkpoints,
        scores or bests: those aren't looked for."""
        self._store = store
        self._indexes = indexes  # a run not in it has no index: read_index gives an empty one
        self._without_dacapo = without_dacapo
        self._legacy: dict[str, list[int]] = {}
        self.where = store.where
        self.dacapo = store.dacapo  # DaCapo's scores and bests, laid under ours as in the store
        self._overlaid: dict[str, RunIndex] = {}

    def read_index(self, run: str) -> RunIndex:
        return self._indexes.get(run) or RunIndex()

    def run_index(self, run: str) -> RunIndex:
        """Ours over DaCapo's, built once per run for this view (every best asks for it)."""
        found = self._overlaid.get(run)
        if found is None:
            found = self.read_index(run) if run in self._without_dacapo else super().run_index(run)
            self._overlaid[run] = found
        return found

    def read_training_stats(self, run: str) -> dict[int, tuple[float, float]]:
        return self._store.read_training_stats(run)

    def training_stats_written(self, run: str) -> float | None:
        return self._store.training_stats_written(run)

    def training_stats_last(self, run: str) -> tuple[int, float | None] | None:
        return self._store.training_stats_last(run)

    def close(self) -> None:
        """Nothing: the view owns nothing (the store it reads is the caller's)."""

    def legacy_iterations(self, run: str) -> list[int]:
        found = self._legacy.get(run)
        if found is None:
            found = [] if run in self._without_dacapo else self._store.legacy_iterations(run)
            self._legacy[run] = found
        return found

    def _read_only(self, *args: Any) -> Any:
        raise TypeError("the dashboard's view of the weights store is read-only")

    put_blob = get_blob = delete_blob = list_blobs = append_index = _read_only  # type: ignore[assignment]
    append_training_stats = drop_training_stats = _read_only  # type: ignore[assignment]
    list_runs = blob_stats = partial_leftovers = remove_leftover = _read_only  # type: ignore[assignment]


# ---------------------------------------------------------------------------------- adapters


def best_per_run(
    weights: WeightsStore, runs: Iterable[str], criterion: str, dataset: str | None = None
) -> dict[str, Best]:
    """The best checkpoint by `criterion` of each run that has one (runs without are left out).

    `WeightsStore.best_choice`: what `weights best` prints, a `StartConfig` loads and the
    leaderboard ranks (pins win, damaged checkpoints are skipped, DaCapo's scores count).
    """
    out: dict[str, Best] = {}
    for run in runs:
        try:
            choice = weights.best_choice(run, criterion, dataset)
        except (CriterionNotFoundError, WeightsNotFoundError, ValueError):
            continue
        value = None if choice.value != choice.value else choice.value  # NaN: a pin without a score
        out[run] = Best(choice.iteration, value, choice.pinned)
    return out


def training_stats(weights: WeightsStore, run: str) -> list[TrainingPoint]:
    """The run's training loss by iteration, ours and DaCapo's; [] where there are none."""
    try:
        stats = weights.retrieve_training_stats(run)
    except (DacapoStoreError, OSError) as exc:
        log.warning("training stats of run %s are unreadable: %s", run, exc)
        return []
    return [TrainingPoint(s.iteration, s.loss, s.time) for s in stats]


def stats_extent(weights: WeightsStore, run: str) -> tuple[int | None, datetime | None]:
    """(last iteration, when last written) of the run's training stats, ours and DaCapo's; (None,
    None) if it has none or they can't be read. `WeightsStore.training_stats_extent`."""
    try:
        return weights.training_stats_extent(run)
    except (DacapoStoreError, OSError, ValueError) as exc:
        log.warning("run %s: its training stats are unreadable: %s", run, exc)
        return None, None


def run_lineage(
    configs: Any,
    weights: WeightsStore,
    run: str,
    *,
    stored: Collection[str] | None = None,
    starts_from: Callable[[str], list[tuple[str, str]]] | None = None,
    start_of: Callable[[str], tuple[str, str] | None] | None = None,
) -> dict[str, Any]:
    """`queries.lineage` (what `dacapo-store lineage` prints) with the iteration each start takes."""
    found = lineage(configs, run, stored=stored, starts_from=starts_from, start_of=start_of)
    last = len(found.ancestors) - 1
    up = [
        {
            "run": step.run,
            "criterion": step.criterion,
            "iteration": _start_iteration(weights, step.run, str(step.criterion)),
            "stored": step.in_store,
            "cycle": found.cycle and i == last,
        }
        for i, step in enumerate(found.ancestors)
    ]
    down = [
        {"run": step.run, "from": step.parent, "criterion": step.criterion, "depth": step.depth}
        for step in found.descendants
    ]
    return {"up": up, "down": down}


def _start_iteration(weights: WeightsStore, run: str, criterion: str) -> int | None:
    try:
        if criterion == "latest":
            return weights.latest_iteration(run)
        if criterion.isascii() and criterion.isdigit():
            return int(criterion)
        return weights.retrieve_best(run, criterion)
    except (DacapoStoreError, ValueError, TypeError):
        return None


# ---------------------------------------------------------------------------------- summaries


def config_fields(name: str, doc: Mapping[str, Any] | None, metadata: DocumentMetadata | None) -> dict:
    """The summary fields taken from a stored run document (any shape: never raises)."""
    doc = doc if isinstance(doc, Mapping) else {}

    def part(field: str) -> str | None:
        value = doc.get(field)
        value = value.get("name") if isinstance(value, Mapping) else None
        return value if isinstance(value, str) else None

    start = doc.get("start_config")
    start = start if isinstance(start, Mapping) else {}
    reps, iters = doc.get("repetition"), doc.get("num_iterations")
    return {
        "name": name,
        "task": part("task_config"),
        "architecture": part("architecture_config"),
        "trainer": part("trainer_config"),
        "datasplit": part("datasplit_config"),
        "repetition": reps if type(reps) is int else None,
        "num_iterations": iters if type(iters) is int else None,
        "start_run": start.get("run") if isinstance(start.get("run"), str) else None,
        "start_criterion": None if start.get("criterion") is None else str(start.get("criterion")),
        "created_by": metadata.created_by if metadata else None,
        "created_at": _aware(metadata.created_at) if metadata else None,
        "uses": nested_configs(doc),
    }


def weights_fields(
    index: RunIndex,
    legacy: Sequence[int] = (),
    *,
    trained_until: int | None = None,
    updated_at: datetime | None = None,
) -> dict:
    """The summary fields taken from a run's weights index and training stats.

    `trained_until`: the last iteration of its training stats (None: it has none); `updated_at`:
    when they were last written (`stats_extent`), if known.
    """
    checkpoints = sorted(set(index.checkpoints).union(legacy))
    scored = [it for by_d in index.scores.values() for values in by_d.values() for it in values]
    trained = max([*checkpoints, *scored, trained_until or 0])
    # checkpoints and `updated_at` (when its training stats were written) date a run; DaCapo's
    # stats `time` is seconds per iteration, not a date
    stamps = [_parse_time(m.get("created_at")) for m in index.checkpoints.values()]
    stamps = [s for s in stamps if s is not None]
    if updated_at is not None:
        stamps.append(updated_at)
    return {
        "iterations_trained": trained,
        "latest_checkpoint": checkpoints[-1] if checkpoints else None,
        "checkpoints": len(checkpoints),
        "has_stats": trained_until is not None,
        "updated_at": max(stamps) if stamps else None,
        "criteria": tuple(sorted(index.scores)),
        "datasets": tuple(sorted({d for by_d in index.scores.values() for d in by_d})),
    }


def run_metadata(configs: Any, name: str, raw: Mapping[str, Any] | None) -> DocumentMetadata | None:
    """Who stored the run and when: from the document if it carries it, else from the store."""
    if isinstance(raw, Mapping) and META_KEY in raw:
        return DocumentMetadata.of(raw)
    try:
        return configs.metadata("runs", name)
    except (DacapoStoreError, ValueError, TypeError):
        return None


# ---------------------------------------------------------------------------------- one run


def checkpoint_rows(weights: WeightsStore, run: str, index: RunIndex) -> list[dict[str, Any]]:
    """Checkpoints, newest first: size, created, scores, and which bests and pins point at them."""
    legacy = set(weights.legacy_iterations(run))
    marks: dict[int, list[str]] = {}
    pins: dict[int, list[str]] = {}
    for (dataset, criterion), iteration in index.pins.items():
        pins.setdefault(iteration, []).append(f"{criterion}/{dataset or 'all'}")
    for criterion, by_dataset in index.scores.items():
        for dataset in [None, *sorted(by_dataset)]:
            best = best_per_run(weights, [run], criterion, dataset).get(run)
            if best is not None:
                marks.setdefault(best.iteration, []).append(f"{criterion}/{dataset or 'all'}")
    rows = []
    for iteration in sorted(set(index.checkpoints) | legacy, reverse=True):
        meta = index.checkpoints.get(iteration)
        scores = {
            f"{criterion}/{dataset}": values[iteration]
            for criterion, by_dataset in sorted(index.scores.items())
            for dataset, values in sorted(by_dataset.items())
            if iteration in values
        }
        rows.append(
            {
                "iteration": iteration,
                "legacy": meta is None,
                "size": sum(int(b.get("size", 0)) for b in meta["blobs"].values()) if meta else None,
                "created_at": meta.get("created_at") if meta else None,
                "created_by": meta.get("created_by") if meta else None,
                "scores": {k: _finite(v) for k, v in scores.items()},
                "best_for": sorted(marks.get(iteration, [])),
                "pinned_for": sorted(pins.get(iteration, [])),
            }
        )
    return rows


def curves(weights: WeightsStore, run: str, index: RunIndex) -> list[dict[str, Any]]:
    """One series per criterion and dataset: iterations, values, direction and the best iteration."""
    out = []
    for criterion, by_dataset in sorted(index.scores.items()):
        for dataset, values in sorted(by_dataset.items()):
            iterations = sorted(values)
            best = best_per_run(weights, [run], criterion, dataset).get(run)
            out.append(
                {
                    "criterion": criterion,
                    "dataset": dataset,
                    "higher_is_better": index.directions.get(criterion),
                    "iterations": iterations,
                    "values": [_finite(values[i]) for i in iterations],
                    "best": attrs.asdict(best) if best else None,
                }
            )
    return out


def run_detail(
    configs: Any, weights: WeightsStore, name: str, summary: RunSummary | None, **lineage: Any
) -> dict:
    """Everything the run page shows: document, metadata, checkpoints, curves, loss, lineage.

    `lineage` is passed on to `run_lineage` (stored=, starts_from=).
    """
    doc = configs.get_document("runs", name)
    view = Prefetched(
        weights, {name: weights.read_index(name)}
    )  # bests of every criterion from this one read
    index = view.run_index(name)  # ours over DaCapo's scores
    stats = training_stats(weights, name)
    parts = {field: kind for field, kind in RUN_PARTS.items()}
    return {
        "name": name,
        "summary": summary,
        "config": doc,
        "parts": {
            field: {"kind": kind, "name": (doc.get(field) or {}).get("name")}
            for field, kind in parts.items()
            if isinstance(doc.get(field), Mapping)
        },
        "checkpoints": checkpoint_rows(view, name, index),
        "curves": curves(view, name, index),
        "training": {
            "iterations": [p.iteration for p in stats],
            "loss": [_finite(p.loss) for p in stats],
        },
        "lineage": run_lineage(configs, weights, name, **lineage),
    }


# ---------------------------------------------------------------------------------- compare


def flatten(doc: Any, path: str = "") -> dict[str, Any]:
    """Leaves of a document by dotted path (lists by index)."""
    if isinstance(doc, Mapping):
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if not path and key in (META_KEY, "_id"):
                continue
            out.update(flatten(value, f"{path}.{key}" if path else str(key)))
        return out or ({path: {}} if path else {})
    if isinstance(doc, list):
        out = {}
        for i, value in enumerate(doc):
            out.update(flatten(value, f"{path}[{i}]"))
        return out or {path: []}
    return {path: doc}


def differing_fields(docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Fields (dotted paths) whose values are not the same in every document, with each one's value."""
    flat = [flatten(config_part(d)) for d in docs]
    paths: dict[str, None] = {}
    for f in flat:
        paths.update(dict.fromkeys(f))
    rows = []
    for path in paths:
        values = [f.get(path, _ABSENT) for f in flat]
        first = values[0]
        if all(v == first and type(v) is type(first) for v in values[1:]):
            continue
        if all(v is None or v is _ABSENT for v in values):
            continue  # e.g. `start_config: null` beside a start's own fields
        rows.append({"field": path, "values": [None if v is _ABSENT else v for v in values]})
    return rows


def compare_runs(configs: Any, weights: WeightsStore, names: Sequence[str]) -> dict[str, Any]:
    """The config fields that differ between runs, and each criterion's curves of every run."""
    docs = configs.get_documents("runs", names)
    view = Prefetched(weights, weights.read_indexes(names))
    by_criterion: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        index = view.run_index(name)  # ours over DaCapo's scores
        for criterion, by_dataset in sorted(index.scores.items()):
            for dataset, values in sorted(by_dataset.items()):
                iterations = sorted(values)
                by_criterion.setdefault(criterion, []).append(
                    {
                        "run": name,
                        "dataset": dataset,
                        "higher_is_better": index.directions.get(criterion),
                        "iterations": iterations,
                        "values": [_finite(values[i]) for i in iterations],
                    }
                )
    return {
        "runs": list(names),
        "differences": differing_fields(docs),
        "curves": [{"criterion": c, "series": s} for c, s in sorted(by_criterion.items())],
    }


# ---------------------------------------------------------------------------------- helpers


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: they become null (a missing point on a curve)."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, str):
        try:
            return _aware(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def check_run_names(names: Collection[str]) -> None:
    """Compare takes 2 to 20 distinct runs."""
    if len(names) != len(set(names)):
        raise ValueError("compare: a run is named twice")
    if not 2 <= len(names) <= 20:
        raise ValueError(f"compare takes 2 to 20 runs, got {len(names)}")
