"""Runs as the dashboard shows them: summaries with a derived status, one run in detail, a compare.

Everything here reads; nothing writes. The numbers are the ones the command line prints:

- every best: `weights.best` (`best.choose` over the run's index, ours over DaCapo's), the rule
  of `weights best`, `Start`, `scores` and the leaderboard
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
from ..criteria import start_rule
from ..errors import ConfigNotFoundError, DacapoStoreError, StoreConnectionError
from ..weights.base import WeightsStore
from ..weights.best import Choice, all_bests, choose
from ..weights.digest import RunDigest, shared
from ..weights.index import RunIndex
from .lineage import lineage
from .uses import NESTED_KINDS, nested_configs

log = logging.getLogger(__name__)

#: Run statuses, derived from what is stored (nothing new is written); "damaged": its data can't
#: be read (the summary's `damage` says what is wrong).
STATUSES = ("new", "training", "stalled", "finished", "damaged")
#: A run updated within this long is "training"; older and unfinished is "stalled".
DEFAULT_STALE_AFTER = timedelta(minutes=30)


#: A run's best by a criterion (`best.choose`): the checkpoint a StartConfig would load where one
#: is loadable (`loadable`), else the best score of a run whose checkpoints are gone. The one
#: type every face carries a best in.
Best = Choice


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
    #: what is wrong when the run's data can't be read (its status is then "damaged")
    damage: str | None = None

    def status(self, now: datetime | None = None, stale_after: timedelta = DEFAULT_STALE_AFTER) -> str:
        """damaged (unreadable), new (nothing stored), finished (reached num_iterations), else
        training or stalled by age."""
        if self.damage is not None:
            return "damaged"
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


# ---------------------------------------------------------------------------------- adapters


def training_stats(weights: WeightsStore, run: str) -> list[TrainingPoint]:
    """The run's training loss by iteration, ours and DaCapo's; [] where there are none."""
    try:
        stats = weights.retrieve_training_stats(run)
    except (DacapoStoreError, OSError) as exc:
        log.warning("training stats of run %s are unreadable: %s", run, exc)
        return []
    return [TrainingPoint(s.iteration, s.loss, s.time) for s in stats]


def run_lineage(
    configs: Any,
    weights: WeightsStore,
    run: str,
    *,
    stored: Collection[str] | None = None,
    starts_from: Callable[[str], list[tuple[str, str]]] | None = None,
    start_of: Callable[[str], tuple[str, str] | None] | None = None,
    best_of: Callable[..., Best | None] | None = None,
) -> dict[str, Any]:
    """`queries.lineage` (what `dacapo-store lineage` prints) with the iteration each start takes.

    `best_of(run, criterion, dataset=None)`: the run's best (the catalog's); default: the store's
    `retrieve_best`.
    """
    found = lineage(configs, run, stored=stored, starts_from=starts_from, start_of=start_of)
    last = len(found.ancestors) - 1
    up = [
        {
            "run": step.run,
            "criterion": step.criterion,
            "iteration": _start_iteration(weights, step.run, str(step.criterion), best_of),
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


def _start_iteration(
    weights: WeightsStore, run: str, criterion: str, best_of: Callable[..., Best | None] | None
) -> int | None:
    """The iteration `Start` takes for this criterion (`criteria.start_rule`), None if none. A
    DaCapo start written as `dataset/criterion` takes the best by the criterion on that dataset."""
    dataset, slash, named = criterion.rpartition("/")
    if slash and dataset:
        try:
            if best_of is not None:
                best = best_of(run, start_rule(named)[1], dataset)  # type: ignore[call-arg,arg-type]
                return best.iteration if best is not None and best.loadable else None
            return weights.retrieve_best(run, named, dataset)
        except (DacapoStoreError, ValueError, TypeError, IndexError):
            return None
    try:
        kind, value = start_rule(criterion)
        if kind == "latest":
            return weights.latest_iteration(run)
        if kind == "iteration":
            return value  # type: ignore[return-value]
        if best_of is not None:
            best = best_of(run, value)  # type: ignore[arg-type]
            return best.iteration if best is not None and best.loadable else None
        return weights.retrieve_best(run, value)  # type: ignore[arg-type]
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
        "uses": shared_uses(nested_configs(doc)),
    }


def shared_uses(uses: tuple) -> tuple:
    """One tuple for every run that uses the same configs (about 0.8 KB a run otherwise)."""
    return shared(("uses", uses), lambda: uses)


def weights_fields(digest: RunDigest) -> dict:
    """The summary fields taken from a run's digest (its index and training stats, `digest.py`)."""
    trained = max(digest.latest_checkpoint or 0, digest.scored_until or 0, digest.trained_until or 0)
    # checkpoints and when its training stats were written date a run; DaCapo's stats `time` is
    # seconds per iteration, not a date
    stamps = [s for s in (_parse_time(digest.checkpoint_time),) if s is not None]
    if digest.stats_written is not None:
        stamps.append(datetime.fromtimestamp(digest.stats_written, timezone.utc))
    return {
        "iterations_trained": trained,
        "latest_checkpoint": digest.latest_checkpoint,
        "checkpoints": digest.checkpoints,
        "has_stats": digest.trained_until is not None,
        "updated_at": max(stamps) if stamps else None,
        "criteria": digest.criteria,
        "datasets": digest.datasets,
        "damage": "; ".join(p for p in (digest.problem, index_damage(digest.journal_damage)) if p) or None,
    }


def index_damage(problems: Iterable[str]) -> str | None:
    """What a reader of the run's index skipped ("index line 5: fails its checksum; ..."), or None."""
    return "; ".join(f"index {p}" for p in problems) or None


def run_metadata(configs: Any, name: str, raw: Mapping[str, Any] | None) -> DocumentMetadata | None:
    """Who stored the run and when: from the document if it carries it, else from the store."""
    if isinstance(raw, Mapping) and META_KEY in raw:
        return DocumentMetadata.of(raw)
    try:
        return configs.metadata("runs", name)
    except (DacapoStoreError, ValueError, TypeError):
        return None


# ---------------------------------------------------------------------------------- one run


def checkpoint_rows(index: RunIndex) -> list[dict[str, Any]]:
    """Checkpoints, newest first: size, created, scores, and which bests and pins point at them."""
    marks: dict[int, list[str]] = {}
    pins: dict[int, list[str]] = {}
    for (dataset, criterion), iteration in index.pins.items():
        pins.setdefault(iteration, []).append(f"{criterion}/{dataset or 'all'}")
    for (criterion, dataset), choice in all_bests(index).items():
        if choice.loadable:
            marks.setdefault(choice.iteration, []).append(f"{criterion}/{dataset or 'all'}")
    rows = []
    for iteration in reversed(index.iterations()):
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
                "damaged": index.damaged.get(iteration),
                "scores": {k: _finite(v) for k, v in scores.items()},
                "best_for": sorted(marks.get(iteration, [])),
                "pinned_for": sorted(pins.get(iteration, [])),
            }
        )
    return rows


def pinned_bests(
    index: RunIndex, dacapo_files: Iterable[Mapping[str, Any]] = ()
) -> dict[str, dict[str, Any]]:
    """For each best a pin chose ("criterion/dataset", `all` for the mean): who pinned it
    ("dacapo": one of DaCapo's automatic best files, `store_best`; "pin": a pin of ours) and the
    best the scores give without any pin (`best.choose` on the index without its pins: the one
    rule, asked without them), to show beside it."""
    chosen = {k: c for k, c in all_bests(index).items() if c.pinned}
    if not chosen:
        return {}
    bare = RunIndex().with_events(())
    bare.checkpoints, bare.scores, bare.directions = index.checkpoints, index.scores, index.directions
    bare.damaged, bare.legacy = index.damaged, index.legacy
    theirs: dict[str, set[tuple[str | None, int]]] = {}
    for f in dacapo_files:
        theirs.setdefault(str(f.get("criterion")), set()).add((f.get("dataset"), f.get("iteration")))
    out = {}
    for (criterion, dataset), choice in chosen.items():
        files = theirs.get(criterion, set())
        by_dacapo = any(it == choice.iteration and (dataset is None or d == dataset) for d, it in files)
        try:
            computed = choose(bare, criterion, dataset)
        except ValueError:
            computed = None
        out[f"{criterion}/{dataset or 'all'}"] = {
            "source": "dacapo" if by_dacapo else "pin",
            "computed": attrs.asdict(computed) if computed else None,
        }
    return out


def curves(index: RunIndex) -> list[dict[str, Any]]:
    """One series per criterion and dataset: iterations, values, direction and the best iteration."""
    bests = all_bests(index)
    out = []
    for criterion, by_dataset in sorted(index.scores.items()):
        for dataset, values in sorted(by_dataset.items()):
            iterations = sorted(values)
            best = bests.get((criterion, dataset))
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

    `lineage` is passed on to `run_lineage` (stored=, starts_from=, start_of=, best_of=). A run
    whose weights data can't be read shows its config and what is wrong (`damage`).
    """
    try:
        doc = configs.get_document("runs", name) if configs is not None else {}
    except ConfigNotFoundError:
        if summary is None:
            raise
        doc = {}  # a run known by its weights data alone (no config document)
    damage = None
    try:
        index = weights.run_index(name)  # ours over DaCapo's: every best of the page from this one read
    except StoreConnectionError:
        raise
    except (DacapoStoreError, OSError) as exc:
        damage, index = weights.describe_problem(exc), RunIndex()
    if index.problems:  # damaged lines are skipped: the page shows the rest, and says so
        damage = index_damage(index.problems)
    stats = training_stats(weights, name)
    parts = {field: kind for field, kind in RUN_PARTS.items()}
    return {
        "name": name,
        "summary": summary,
        "damage": damage,
        "config": doc,
        "parts": {
            field: {"kind": kind, "name": (doc.get(field) or {}).get("name")}
            for field, kind in parts.items()
            if isinstance(doc.get(field), Mapping)
        },
        "checkpoints": checkpoint_rows(index),
        "curves": curves(index),
        "pinned": pinned_bests(index, _dacapo_best_files(weights, name)),
        "training": {
            "iterations": [p.iteration for p in stats],
            "loss": [_finite(p.loss) for p in stats],
        },
        "lineage": run_lineage(configs, weights, name, **lineage)
        if configs is not None
        else {"up": [], "down": []},
    }


def _dacapo_best_files(weights: WeightsStore, run: str) -> list[dict[str, Any]]:
    """DaCapo's best files of the run (`store.dacapo.bests`: dataset, criterion, iteration)."""
    dacapo = getattr(weights, "dacapo", None)
    if dacapo is None:
        return []
    try:
        return list(dacapo.bests(run))
    except (DacapoStoreError, OSError):
        return []


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
    by_criterion: dict[str, list[dict[str, Any]]] = {}
    indexes = weights.run_indexes(names)  # ours over DaCapo's scores, read together
    for name in names:
        index = indexes[name]
        if isinstance(index, Exception):
            continue  # damaged: listed as such by its summary; no curves
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
