"""WeightsStore: the typed weights API, written once over a few blob-backend primitives.

A checkpoint is one or two blobs (model as safetensors, optimizer as weights-only torch data) plus
an index entry with each blob's size, sha256 (its content identity) and xxh3-128 (the checksum a
load verifies, as it keeps up with the disk; entries without one are verified by their sha256).
Blobs get fresh names and are written first; the index entry is added last, so a checkpoint
appears whole or not at all; replacing one swaps the index entry, then deletes the old blobs.
Scores, criterion directions and pins live in the same per-run index. Backends
(`LocalWeightsStore`, `GridFSWeightsStore`) implement only the primitives.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import attrs
import xxhash

from ..configs.runs import RunConfig
from ..errors import (
    CorruptWeightsError,
    CriterionNotFoundError,
    DacapoStoreError,
    InvalidNameError,
    PickleCheckpointError,
    TrainingStatsConflictError,
    WeightsNotFoundError,
)
from ..fsutil import cause_of, naming
from ..names import check_name, run_name_problem
from ..provenance import current_user, utc_now
from .index import RunIndex, blob_names
from .leaderboard import LeaderboardEntry, rank_entries
from .scores import check_criterion, check_score, direction_conflict, known_direction
from .stats import TrainingIterationStats, TrainingStatsInput, same_stats, training_rows

if TYPE_CHECKING:
    from ..legacy.registry import DacapoRegistry

# torch (via .serialization) is imported on first use, so scores, bests and listings stay light.

log = logging.getLogger(__name__)

RunLike = Union[str, RunConfig]  # noqa: UP007 -- a runtime alias, py3.10-safe
FORMAT = "dacapo_store.weights/1"


class BlobNotFoundError(DacapoStoreError, LookupError):
    """A backend has no blob of that name (internal: the typed API turns it into a better error)."""


@attrs.frozen
class Leftover:
    """Something a killed writer left behind, found by `WeightsStore.gc`."""

    #: "unreferenced blob" (complete, named by no index entry), "orphan chunks" (GridFS chunks
    #: without a file document), or "temporary file" (a files-backend `.tmp-*`)
    kind: str
    run: str | None
    name: str
    size: int
    #: when it was written (seconds since the epoch)
    created: float
    #: how the backend finds it again to remove it
    key: Any = attrs.field(default=None, repr=False, eq=False)


class Collected(list):
    """The leftovers `gc` removed (or would), and the runs it left alone: `skipped` maps a run to
    why (part of its index can't be read, so none of its blobs is known to be unreferenced)."""

    def __init__(self, items: Iterable[Leftover] = ()) -> None:
        super().__init__(items)
        self.skipped: dict[str, str] = {}


@attrs.frozen
class Weights:
    """One checkpoint: model and optimizer state dicts on the CPU, and its metadata."""

    model: dict[str, Any]
    optimizer: dict[str, Any] | None
    run: str
    iteration: int
    #: created_at, created_by and the blob records; None for a legacy DaCapo checkpoint.
    metadata: dict[str, Any] | None = None


@attrs.frozen
class BestChoice:
    """The checkpoint `retrieve_best` picks, its score (NaN if a pin has none) and whether it is a pin."""

    iteration: int
    value: float
    pinned: bool


@attrs.frozen
class WeightsProblem:
    """One thing `verify` found wrong with a run's checkpoints."""

    run: str
    #: None for what is not about one checkpoint (a damaged line of the run's index or stats)
    iteration: int | None
    problem: str


def run_name(run: RunLike) -> str:
    """The checked name of a run given by name or RunConfig."""
    if isinstance(run, RunConfig):
        run = run.name
    name = check_name(run, "run name", slash_ok=True)
    problem = run_name_problem(name, frozenset())  # '/' (on every backend); files: see _writable
    if problem is not None:
        raise InvalidNameError(f"invalid run name {name!r}: {problem}")
    return name


def check_iteration(iteration: object) -> int:
    """`iteration` as an int if it is a non-negative int (bson Int64 included, bool not)."""
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        raise ValueError(f"iteration must be a non-negative int, got {iteration!r}")
    return int(iteration)


class WeightsStore(ABC):
    """Checkpoints, validation scores and best-iteration choices of runs (CONTRACT.md "Weights store")."""

    #: How to find this store, for messages (no passwords).
    where: str = "?"

    def close(self) -> None:
        """Release what the store holds (a MongoDB client it connected, DaCapo's registry's)."""
        if self.dacapo is not None:
            self.dacapo.close()

    def __enter__(self) -> WeightsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ backend primitives

    @abstractmethod
    def put_blob(self, run: str, name: str, chunks: Iterable[bytes | memoryview]) -> None:
        """Store the concatenated `chunks` under `name`, atomically: whole or not at all."""

    @abstractmethod
    def get_blob(self, run: str, name: str) -> Any:
        """The blob's bytes as a buffer, writable if possible; BlobNotFoundError if absent."""

    @abstractmethod
    def delete_blob(self, run: str, name: str) -> None:
        """Remove a blob; absent is fine."""

    @abstractmethod
    def list_blobs(self, run: str) -> list[str]:
        """Names of the run's complete blobs, referenced or not."""

    @abstractmethod
    def read_index(self, run: str) -> RunIndex:
        """The run's index as it is now (empty for an unknown run)."""

    @abstractmethod
    def append_index(self, run: str, events: list[dict[str, Any]]) -> None:
        """Add index events (see `index.py`) durably; each event is applied whole or not at all."""

    def fresh_reads(self) -> contextlib.AbstractContextManager[None]:
        """Within it, reads of indexes and training stats look at what is stored now, whole,
        bypassing what a backend keeps parsed in this process (a cache extended by appends would
        not see a line damaged in place): what checks and `gc` read through."""
        return contextlib.nullcontext()

    def read_indexes(self, runs: Iterable[str] | None = None) -> dict[str, RunIndex]:
        """Indexes of many runs (None: every run with an index here); backends may batch the reads."""
        if runs is None:
            raise NotImplementedError(f"{type(self).__name__} can't list its runs")
        return {run: self.read_index(run) for run in runs}

    def changes_since(self, token: Any, runs: Collection[str]) -> tuple[Any, set[str] | None]:
        """(new token, runs whose index may have changed since `token` was handed out).

        A cheap check for caches over many runs (the dashboard): None instead of a set means
        "any run may have changed". `token` None asks for a first token. The default knows nothing.
        """
        return None, None

    def read_checkpoint(self, run: str, iteration: int) -> dict[str, Any] | None:
        """The index entry of one checkpoint; backends may answer without reading the whole index."""
        return self.read_index(run).checkpoints.get(iteration)

    # -- leftovers of killed writers (for gc) --

    @abstractmethod
    def list_runs(self) -> list[str]:
        """Names of the runs that have blobs."""

    @abstractmethod
    def blob_stats(self, run: str) -> list[tuple[str, int, float]]:
        """(name, size in bytes, written at in seconds since the epoch) of the run's complete blobs."""

    @abstractmethod
    def partial_leftovers(self) -> list[Leftover]:
        """What interrupted writes left that is not a complete blob (temporary files, orphan chunks)."""

    @abstractmethod
    def remove_leftover(self, leftover: Leftover) -> None:
        """Delete one leftover found by `partial_leftovers` or `gc` (absent is fine)."""

    @abstractmethod
    def read_training_stats(self, run: str) -> dict[int, tuple[float, float]]:
        """Our training stats of the run: iteration -> (loss, time)."""

    @abstractmethod
    def append_training_stats(self, run: str, rows: Mapping[int, tuple[float, float]]) -> None:
        """Add stats of iterations not stored yet, durably, never rewriting what is there: all of
        them or (on an error) none.

        An iteration stored meanwhile with other values raises TrainingStatsConflictError.
        """

    @abstractmethod
    def drop_training_stats(self, run: str) -> None:
        """Remove our training stats of the run; absent is fine."""

    @abstractmethod
    def training_stats_written(self, run: str) -> float | None:
        """When our training stats of the run were last written (seconds since the epoch); None if none.

        From what is stored anyway (a file's mtime, a document's ObjectId), nothing written for it.
        """

    def training_stats_last(self, run: str) -> tuple[int, float | None] | None:
        """(highest iteration, `training_stats_written`) of our training stats; None if none.

        Backends that can answer without reading every row (one indexed query) do.
        """
        stats = self.read_training_stats(run)
        return (max(stats), self.training_stats_written(run)) if stats else None

    # ------------------------------------------------------------------ DaCapo's own data

    #: DaCapo's registry beside ours (its checkpoints, scores, bests, training stats), read only.
    dacapo: DacapoRegistry | None = None

    def legacy_iterations(self, run: str) -> list[int]:
        """Iterations with a DaCapo checkpoint (a pickle under `checkpoints/iterations/`)."""
        return [] if self.dacapo is None else self.dacapo.checkpoint_iterations(run)

    def legacy_path(self, run: str, iteration: int) -> Path | None:
        """DaCapo's checkpoint file of this iteration, if there is one."""
        return None if self.dacapo is None else self.dacapo.checkpoint_path(run, iteration)

    def run_index(self, run: str) -> RunIndex:
        """Our index laid over DaCapo's scores and bests of the run (ours win where both have one)."""
        ours = self.read_index(run)
        if self.dacapo is None:
            return ours
        return ours.over(self.dacapo.index(run))

    # ------------------------------------------------------------------ checkpoints

    def store_weights(self, run: RunLike, iteration: int, model: Any, optimizer: Any = None) -> None:
        """Store a checkpoint of `model` (and `optimizer`), replacing any at this iteration."""
        from .serialization import as_state_dict, optimizer_chunks, safetensors_chunks

        name = run_name(run)
        iteration = check_iteration(iteration)
        model_state = as_state_dict(model, "model")
        optimizer_state = None if optimizer is None else as_state_dict(optimizer, "optimizer")
        token = secrets.token_hex(8)
        blobs: dict[str, dict[str, Any]] = {}
        parts: list[tuple[str, str, Any]] = [("model", "safetensors", safetensors_chunks(model_state))]
        if optimizer_state is not None:
            parts.append(("optimizer", "safetensors", optimizer_chunks(optimizer_state)))
        written: list[str] = []
        what = f"the checkpoint of run {name} at iteration {iteration}"
        try:
            for part, ext, chunks in parts:
                blob = f"{iteration}-{token}.{part}.{ext}"
                digest, fast = hashlib.sha256(), xxhash.xxh3_128()
                counter = [0]
                self.put_blob(name, blob, _hashing(chunks, (digest, fast), counter))
                written.append(blob)
                blobs[part] = {
                    "name": blob,
                    "sha256": digest.hexdigest(),
                    "xxh3_128": fast.hexdigest(),
                    "size": counter[0],
                }
            old = self.read_checkpoint(name, iteration)
        except BaseException as exc:
            # before the commit point: the previous checkpoint is untouched, ours goes
            for blob in written:
                self._delete_quietly(name, blob)
            raise naming(exc, f"writing {what}", self.where) from cause_of(exc)
        meta = {
            "format": FORMAT,
            "iteration": iteration,
            "created_at": utc_now(),
            "created_by": current_user(),
            "blobs": blobs,
        }
        try:
            # the commit point: once the entry is written, nothing deletes the blobs it names. If
            # this fails, the entry may or may not be in place (and durable): every blob stays,
            # and whichever no entry names is a leftover for gc.
            self.append_index(name, [{"op": "checkpoint", "iteration": iteration, "meta": meta}])
        except BaseException as exc:
            raise naming(exc, f"recording {what}", self.where) from cause_of(exc)
        # the new entry is durable: the replaced checkpoint's blobs are leftovers now
        if old is not None:
            for record in old["blobs"].values():
                if record.get("name") not in written:
                    self._delete_quietly(name, record.get("name"))
        log.debug("stored weights of run %s at iteration %d in %s", name, iteration, self.where)

    def retrieve_weights(self, run: RunLike, iteration: int, *, allow_pickle: bool = False) -> Weights:
        """The checkpoint at `iteration`, checksums verified, tensors on the CPU."""
        name = run_name(run)
        iteration = check_iteration(iteration)
        for _ in range(5):
            meta = self.read_checkpoint(name, iteration)
            if meta is None:
                return self._retrieve_legacy(name, iteration, allow_pickle)
            try:
                return self._load(name, iteration, meta)
            except BlobNotFoundError:
                # replaced or removed while we read it: look again at the index
                continue
        raise CorruptWeightsError(
            f"weights of run {name} at iteration {iteration} in {self.where} list blobs that are missing"
        )

    def _load(self, run: str, iteration: int, meta: Mapping[str, Any]) -> Weights:
        from .serialization import FormatError, load_optimizer, load_safetensors

        records = meta["blobs"]
        buffers = {part: self._verified(run, iteration, record) for part, record in records.items()}
        try:
            model = load_safetensors(buffers["model"])
            optimizer = load_optimizer(buffers["optimizer"]) if "optimizer" in buffers else None
        except (FormatError, KeyError) as exc:
            raise CorruptWeightsError(
                f"weights of run {run} at iteration {iteration} in {self.where} can't be read: {exc}"
            ) from None
        public = {k: v for k, v in meta.items() if k != "blobs"}
        public["blobs"] = {part: dict(record) for part, record in records.items()}
        return Weights(model=model, optimizer=optimizer, run=run, iteration=iteration, metadata=public)

    def verified_blob(self, run: str, iteration: int, record: Mapping[str, Any]) -> Any:
        """A blob's bytes after checking its size and checksum against `record` (CorruptWeightsError)."""
        return self._verified(run, iteration, record)

    def _verified(self, run: str, iteration: int, record: Mapping[str, Any]) -> Any:
        buffer = self.get_blob(run, record["name"])
        size = memoryview(buffer).nbytes
        if size != record["size"]:
            raise CorruptWeightsError(
                f"weights of run {run} at iteration {iteration} in {self.where}: blob {record['name']} has "
                f"{size} bytes, expected {record['size']}; the checkpoint is damaged, store it again or "
                "remove it"
            )
        # xxh3-128 keeps up with the disk; entries written before it existed carry only a sha256
        if "xxh3_128" in record:
            algorithm, matches = (
                "xxh3-128 checksum",
                xxhash.xxh3_128(buffer).hexdigest() == record["xxh3_128"],
            )
        else:
            algorithm, matches = "sha256", hashlib.sha256(buffer).hexdigest() == record["sha256"]
        if not matches:
            raise CorruptWeightsError(
                f"weights of run {run} at iteration {iteration} in {self.where}: blob {record['name']} "
                f"does not match its {algorithm}; the checkpoint is damaged, store it again or remove it"
            )
        return buffer

    def _retrieve_legacy(self, run: str, iteration: int, allow_pickle: bool) -> Weights:
        path = self.legacy_path(run, iteration)
        if path is None:
            raise WeightsNotFoundError(
                f"no weights for run {run} at iteration {iteration} in {self.where}; "
                f"stored iterations: {_summary(self.iterations(run))}"
            )
        from ..legacy.unpickler import load_checkpoint

        try:
            model, optimizer = load_checkpoint(path)
        except PickleCheckpointError as exc:
            if not allow_pickle:
                raise
            log.warning("%s; unpickling it anyway (allow_pickle=True)", exc)
        else:
            return Weights(model=model, optimizer=optimizer, run=run, iteration=iteration, metadata=None)
        import torch

        log.warning("unpickling legacy DaCapo checkpoint %s (allow_pickle=True)", path)
        data = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(data, Mapping) and "model" in data:
            model, optimizer = dict(data["model"]), data.get("optimizer")
        elif isinstance(data, Mapping):
            model, optimizer = dict(data), None
        else:
            raise CorruptWeightsError(f"legacy checkpoint {path} holds a {type(data).__name__}, not a dict")
        return Weights(model=model, optimizer=optimizer, run=run, iteration=iteration, metadata=None)

    def iterations(self, run: RunLike) -> list[int]:
        """Iterations with weights, ascending (legacy DaCapo checkpoints included)."""
        name = run_name(run)
        return sorted(set(self.read_index(name).checkpoints).union(self.legacy_iterations(name)))

    def latest_iteration(self, run: RunLike) -> int | None:
        """The highest iteration with weights, or None."""
        found = self.iterations(run)
        return found[-1] if found else None

    def metadata(self, run: RunLike, iteration: int) -> dict[str, Any]:
        """created_at, created_by and blob records of a stored checkpoint."""
        name = run_name(run)
        meta = self.read_checkpoint(name, check_iteration(iteration))
        if meta is None:
            raise WeightsNotFoundError(f"no weights for run {name} at iteration {iteration} in {self.where}")
        return dict(meta)

    def remove(self, run: RunLike, iteration: int) -> None:
        """Delete the checkpoint at `iteration`: first from the index, then its blobs."""
        name = run_name(run)
        iteration = check_iteration(iteration)
        meta = self.read_checkpoint(name, iteration)
        if meta is None:
            legacy = self.legacy_path(name, iteration)
            hint = f"; {legacy} is a legacy DaCapo file, delete it by hand" if legacy else ""
            raise WeightsNotFoundError(f"no weights for run {name} at iteration {iteration}{hint}")
        self.append_index(name, [{"op": "remove", "iteration": iteration}])
        for record in meta["blobs"].values():
            self._delete_quietly(name, record["name"])

    def forget_run(self, run: str) -> None:
        """Drop the run's index (scores, pins, checkpoint entries); its blobs are deleted first."""
        raise NotImplementedError

    def delete_run(self, run: RunLike) -> list[int]:
        """Delete every checkpoint, score and pin of the run; DaCapo's own files stay. Returns the
        iterations whose checkpoints were deleted."""
        name = run_name(run)
        removed = sorted(self.read_index(name).checkpoints)
        for iteration in removed:
            self.remove(name, iteration)
        for blob in self.list_blobs(name):
            self._delete_quietly(name, blob)
        self.delete_training_stats(name)
        self.forget_run(name)
        log.info("deleted the weights and scores of run %s from %s", name, self.where)
        return removed

    def _delete_quietly(self, run: str, blob: str) -> None:
        try:
            self.delete_blob(run, blob)
        except Exception as exc:  # the index no longer points at it: a leftover, not an error
            log.warning("could not delete blob %s of run %s: %s", blob, run, exc)

    # ------------------------------------------------------------------ scores and the best

    def store_validation_scores(
        self,
        run: RunLike,
        iteration: int,
        scores: Mapping[str, float],
        dataset: str = "validate",
        higher_is_better: Mapping[str, bool] | None = None,
    ) -> None:
        """Record validation `scores` (criterion -> value) of `iteration` on `dataset`."""
        name = run_name(run)
        iteration = check_iteration(iteration)
        check_name(dataset, "dataset name", slash_ok=True)
        if not isinstance(scores, Mapping) or not scores:
            raise ValueError(f"scores must be a non-empty mapping of criterion to number, got {scores!r}")
        given = dict(higher_is_better or {})
        values = {check_criterion(c): check_score(c, v) for c, v in scores.items()}
        stored = self.run_index(name).directions
        directions: dict[str, bool] = {}
        unknown = []
        for criterion in values:
            higher = given.get(criterion, stored.get(criterion, known_direction(criterion)))
            if higher is None:
                unknown.append(criterion)
                continue
            if type(higher) is not bool:
                raise TypeError(f"higher_is_better[{criterion!r}] must be a bool, got {higher!r}")
            directions[criterion] = higher
        if unknown:
            raise ValueError(
                f"unknown direction for criteria {sorted(unknown)} of run {name}: pass "
                "higher_is_better={criterion: True/False} (nothing was stored)"
            )
        event = {
            "op": "scores",
            "iteration": iteration,
            "dataset": dataset,
            "scores": values,
            "higher_is_better": directions,
        }
        conflict = direction_conflict(name, stored, [event])
        if conflict is not None:
            raise conflict
        # the backend checks the directions again as it writes (under the run's lock, or in the
        # same update): a racing first direction is refused there
        try:
            self.append_index(name, [event])
        except OSError as exc:
            doing = f"recording scores of run {name} at iteration {iteration}"
            raise naming(exc, doing, self.where) from exc

    def criteria(self, run: RunLike) -> list[str]:
        """The criteria the run has scores for."""
        return sorted(self.run_index(run_name(run)).scores)

    def retrieve_validation_scores(self, run: RunLike) -> dict[str, dict[str, dict[int, float]]]:
        """All scores of a run: criterion -> dataset -> iteration -> value."""
        scores = self.run_index(run_name(run)).scores
        return {c: {d: dict(v) for d, v in by_d.items()} for c, by_d in scores.items()}

    def retrieve_best(self, run: RunLike, criterion: str, dataset: str | None = None) -> int:
        """The iteration with weights that is best by `criterion` (a pin, if there is one, wins).

        With `dataset=None`, the mean over the datasets validated at each iteration.
        """
        return self.best_choice(run, criterion, dataset).iteration

    def best_choice(self, run: RunLike, criterion: str, dataset: str | None = None) -> BestChoice:
        """What `retrieve_best` picks, with its score and whether it is a pin (one read of the index)."""
        name = run_name(run)
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name", slash_ok=True)
        index = self.run_index(name)
        by_dataset = index.scores.get(criterion)
        pinned = self._pin(index, criterion, dataset)
        if not by_dataset and pinned is None:
            if dataset is not None and dataset in index.scores and criterion not in index.scores:
                raise CriterionNotFoundError(
                    f"run {name} has no scores for criterion {criterion!r}, but has criterion {dataset!r}: "
                    "retrieve_best takes (run, criterion, dataset), DaCapo's (run, dataset, criterion); "
                    f"call retrieve_best({name!r}, {dataset!r}, {criterion!r})"
                )
            raise CriterionNotFoundError(
                f"run {name} has no validation scores for criterion {criterion!r}; "
                f"it has: {', '.join(sorted(index.scores)) or 'none'}"
            )
        if by_dataset and dataset is not None and dataset not in by_dataset and pinned is None:
            raise CriterionNotFoundError(
                f"run {name} has no {criterion!r} scores on dataset {dataset!r}; "
                f"it has them on: {', '.join(sorted(by_dataset))}"
            )
        chosen = self._choose_best(name, index, criterion, dataset)
        if chosen is None:
            raise WeightsNotFoundError(
                f"run {name}: no iteration scored on {criterion!r} has sound weights in {self.where}"
            )
        iteration, pinned = chosen
        return BestChoice(iteration, index.mean_score(criterion, dataset, iteration), pinned)

    def _choose_best(
        self, name: str, index: RunIndex, criterion: str, dataset: str | None
    ) -> tuple[int, bool] | None:
        """(iteration, pinned) of the best sound checkpoint by `criterion`, or None: the one rule."""
        legacy: set[int] | None = None

        def has_weights(iteration: int) -> bool:
            nonlocal legacy
            if index.usable(iteration):
                return True
            if iteration in index.checkpoints:
                return False  # ours, and a check found it damaged
            if legacy is None:
                legacy = set(self.legacy_iterations(name))
            return iteration in legacy

        pinned = self._pin(index, criterion, dataset)
        if pinned is not None:
            if has_weights(pinned):
                return pinned, True
            log.warning(
                "run %s: the pinned best %s iteration %d has no sound weights; using the computed best",
                name,
                criterion,
                pinned,
            )
        by_dataset = index.scores.get(criterion)
        if not by_dataset or (dataset is not None and dataset not in by_dataset):
            return None
        for iteration in index.ranking(criterion, dataset):
            if has_weights(iteration):
                return iteration, False
        return None

    @staticmethod
    def _pin(index: RunIndex, criterion: str, dataset: str | None) -> int | None:
        if (dataset, criterion) in index.pins:
            return index.pins[(dataset, criterion)]
        if dataset is None:
            # one dataset only: its pin is also the pin over all datasets
            datasets = list(index.scores.get(criterion, {}))
            if len(datasets) == 1:
                return index.pins.get((datasets[0], criterion))
        return None

    def store_best(self, run: RunLike, iteration: int, dataset: str | None, criterion: str) -> None:
        """Pin `iteration` as the best by `criterion` on `dataset` (None: over all datasets)."""
        name = run_name(run)
        iteration = check_iteration(iteration)
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name", slash_ok=True)
        if iteration not in self.iterations(name):
            raise WeightsNotFoundError(f"can't pin iteration {iteration} of run {name}: it has no weights")
        self.append_index(
            name, [{"op": "pin", "dataset": dataset, "criterion": criterion, "iteration": iteration}]
        )

    # ------------------------------------------------------------------ garbage

    def gc(self, older_than: float | timedelta, *, dry_run: bool = False) -> list[Leftover]:
        """Remove what killed writers left behind, if older than `older_than` (seconds or a timedelta).

        That is complete blobs no index entry names, GridFS chunks without a file document, and
        files-backend temporary files. Anything younger is left alone: a writer still at work
        has written its blobs but not yet its index entry. Returns what was removed (with
        dry_run: what would be).
        """
        cutoff = gc_cutoff(older_than)
        with self.fresh_reads():
            return self._gc(cutoff, dry_run)

    def _gc(self, cutoff: float, dry_run: bool) -> list[Leftover]:
        found = Collected(item for item in self.partial_leftovers() if item.created < cutoff)
        for run in self.list_runs():
            referenced = self._referenced(run, found.skipped)
            if referenced is None:
                continue
            for name, size, created in self.blob_stats(run):
                if name not in referenced and created < cutoff:
                    found.append(Leftover("unreferenced blob", run, name, size, created, key=name))
        for run, why in found.skipped.items():
            log.warning("gc: skipping the blobs of run %s: %s", run, why)
        if dry_run:
            return found
        removed = Collected()
        removed.skipped = found.skipped
        for item in found:
            if item.kind == "unreferenced blob":
                # a blob that an index entry names by now (a very slow writer) stays
                referenced = self._referenced(item.run, removed.skipped)
                if referenced is None or item.name in referenced:
                    continue
            self.remove_leftover(item)
            removed.append(item)
        if removed:
            log.info(
                "gc removed %d leftover(s), %d bytes, from %s",
                len(removed),
                sum(i.size for i in removed),
                self.where,
            )
        return removed

    def _referenced(self, run: str, skipped: dict[str, str]) -> set[str] | None:
        """The blob names the run's index names; None (and why, in `skipped`) when part of its
        index can't be read: a blob only that part names would look unreferenced."""
        try:
            index = self.read_index(run)
        except (DacapoStoreError, OSError) as exc:
            skipped[run] = f"its index can't be read ({exc})"
            return None
        if index.problems:
            skipped[run] = (
                f"its index has {len(index.problems)} part(s) that can't be read ({index.problems[0]}"
                f"{'; ...' if len(index.problems) > 1 else ''}), so a blob may be named there; "
                "nothing of it is collected while `dacapo-store check` reports the damage"
            )
            return None
        return {
            record.get("name") for meta in index.checkpoints.values() for record in meta["blobs"].values()
        }

    # ------------------------------------------------------------------ training stats

    def store_training_stats(self, run: RunLike, stats: TrainingStatsInput) -> int:
        """Record loss and time per iteration; returns how many iterations were new.

        `stats`: TrainingIterationStats items or a mapping iteration -> {"loss", "time"}. An
        iteration already stored (by us or by DaCapo) with the same values is skipped; with other
        values, TrainingStatsConflictError is raised and nothing is written.
        """
        name = run_name(run)
        rows = training_rows(stats)
        existing = self._training_stats(name)
        conflicts = [it for it, row in rows.items() if it in existing and not same_stats(existing[it], row)]
        if conflicts:
            raise TrainingStatsConflictError(
                f"run {name} already has other training stats at iteration(s) {_summary(sorted(conflicts))} "
                f"(e.g. {conflicts[0]}: stored loss, time {existing[conflicts[0]]}, "
                f"given {rows[conflicts[0]]}); "
                "nothing was stored"
            )
        new = {it: row for it, row in rows.items() if it not in existing}
        if new:
            try:
                self.append_training_stats(name, dict(sorted(new.items())))
            except OSError as exc:
                doing = f"storing training stats of run {name} at iteration(s) {_summary(sorted(new))}"
                raise naming(exc, doing, self.where) from exc
        return len(new)

    def retrieve_training_stats(self, run: RunLike) -> list[TrainingIterationStats]:
        """Loss and time per iteration, ours and DaCapo's, sorted by iteration."""
        stats = self._training_stats(run_name(run))
        return [TrainingIterationStats(it, loss, time) for it, (loss, time) in sorted(stats.items())]

    def delete_training_stats(self, run: RunLike) -> None:
        """Remove the run's training stats that we stored (DaCapo's own files are never touched)."""
        self.drop_training_stats(run_name(run))

    def training_stats_updated(self, run: RunLike) -> datetime | None:
        """When the run's training stats, ours or DaCapo's, were last written (UTC); None if it has none.

        What dates a run that trains before its first checkpoint (DaCapo's `time` field is seconds
        per iteration, not a date): `training_stats_extent`'s second half.
        """
        return self.training_stats_extent(run)[1]

    def training_stats_extent(self, run: RunLike) -> tuple[int | None, datetime | None]:
        """(highest iteration, when last written, UTC) of the run's training stats, ours and
        DaCapo's; (None, None) if it has none.

        What a run's summary needs of its stats, without reading them all: on MongoDB one indexed
        query per collection, however many iterations DaCapo logged.
        """
        name = run_name(run)
        found = [self.training_stats_last(name)]
        if self.dacapo is not None:
            found.append(self.dacapo.training_stats_last(name))
        present = [f for f in found if f is not None]
        if not present:
            return None, None
        stamps = [when for _, when in present if when is not None]
        updated = datetime.fromtimestamp(max(stamps), timezone.utc) if stamps else None
        return max(it for it, _ in present), updated

    def _training_stats(self, run: str) -> dict[int, tuple[float, float]]:
        theirs = {} if self.dacapo is None else self.dacapo.training_stats(run)
        ours = self.read_training_stats(run)
        return {**theirs, **ours} if theirs else ours

    def unpin(self, run: RunLike, criterion: str, dataset: str | None = None) -> None:
        """Drop the pin of `criterion` on `dataset`; CriterionNotFoundError if there is none."""
        name = run_name(run)
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name")
        if (dataset, criterion) not in self.read_index(name).pins:
            on = f" on dataset {dataset!r}" if dataset is not None else ""
            raise CriterionNotFoundError(f"run {name} has no pin for {criterion!r}{on}")
        self.append_index(name, [{"op": "unpin", "dataset": dataset, "criterion": criterion}])

    def pins(self, run: RunLike) -> list[tuple[str | None, str, int]]:
        """(dataset or None, criterion, iteration) of every pin of the run."""
        return sorted(
            ((d, c, i) for (d, c), i in self.read_index(run_name(run)).pins.items()),
            key=lambda p: (p[1], p[0] or ""),
        )

    # ------------------------------------------------------------------ checking

    def check_blob(self, run: str, record: Mapping[str, Any]) -> str | None:
        """What is wrong with one blob (missing, size, checksum), or None: the one checksum check."""
        try:
            self._verified(run, -1, record)
        except BlobNotFoundError:
            return f"blob {record.get('name')} is missing"
        except CorruptWeightsError as exc:
            text = str(exc)
            return text[text.index("blob ") :].split(";")[0] if "blob " in text else text
        except (KeyError, TypeError) as exc:
            return f"unreadable blob record {record!r}: {exc}"
        return None

    def verify(self, run: RunLike, *, record: bool = True) -> list[WeightsProblem]:
        """Check the run: every checkpoint's blobs present, of their size and checksum, and every
        line of its index and training stats readable (`journal_problems`).

        A damaged checkpoint is recorded in the run's index (unless `record=False`), so
        `retrieve_best` never names it again until it is stored anew; a checkpoint marked damaged
        that now checks out sound loses its mark. Either record applies only to the checkpoint
        checked: one stored again meanwhile is checked anew, never marked for the old one's blobs.
        """
        name = run_name(run)
        with self.fresh_reads():
            index = self.read_index(name)
            found_in_journals = self._journal_findings(index, self.read_training_stats(name))[0]
        problems = [WeightsProblem(name, None, p) for p in found_in_journals]
        events = []
        for iteration, meta in sorted(index.checkpoints.items()):
            found = self._checkpoint_problems(name, meta)
            for _ in range(3):
                if not found:
                    break
                # replaced or removed while we checked it? then what is there now is what counts
                current = self.read_checkpoint(name, iteration)
                if current is None or blob_names(current) == blob_names(meta):
                    found = found if current is not None else []
                    break
                meta, found = current, self._checkpoint_problems(name, current)
            problems += [WeightsProblem(name, iteration, problem) for problem in found]
            if found and index.damaged.get(iteration) != "; ".join(found):
                event = {"op": "damaged", "iteration": iteration, "problem": "; ".join(found)}
                events.append({**event, "blobs": blob_names(meta)})
            elif not found and iteration in index.damaged:
                events.append({"op": "sound", "iteration": iteration, "blobs": blob_names(meta)})
        if events and record:
            try:
                self.append_index(name, events)
            except (OSError, DacapoStoreError) as exc:
                log.warning("run %s: could not record what verify found: %s", name, exc)
        return problems

    def _checkpoint_problems(self, run: str, meta: Mapping[str, Any]) -> list[str]:
        found = [p for rec in meta.get("blobs", {}).values() if (p := self.check_blob(run, rec))]
        if not meta.get("blobs"):
            found.append("index entry without blobs")
        return found

    def journal_runs(self) -> list[str]:
        """Runs with an index or training stats of ours (what `journal_problems` can look at)."""
        return self.run_names()

    #: What the run's index and training stats are called in messages (the files backend: its files).
    journal_names: tuple[str, str] = ("index", "training stats")

    def journal_problems(self, run: RunLike) -> tuple[list[str], list[str]]:
        """(problems, notes) of the run's own index and training stats as stored: what can't be read
        (a line failing its checksum, a malformed entry: damage, each named with where it is), and
        lines written before lines carried checksums (read as they are; a note)."""
        name = run_name(run)
        with self.fresh_reads():
            return self._journal_findings(self.read_index(name), self.read_training_stats(name))

    def _journal_findings(self, index: RunIndex, stats: Mapping[int, Any]) -> tuple[list[str], list[str]]:
        problems: list[str] = []
        notes: list[str] = []
        for label, found in zip(self.journal_names, (index, stats), strict=True):
            problems += [f"{label} {p}" for p in getattr(found, "problems", ())]
            unchecked = getattr(found, "unchecked", 0)
            if unchecked:
                notes.append(
                    f"{label}: {unchecked} line(s) without a checksum (written before lines had one)"
                )
        return problems, notes

    # ------------------------------------------------------------------ across runs

    def run_names(self) -> list[str]:
        """Runs this store has anything for (checkpoints, scores or pins), sorted."""
        raise NotImplementedError

    def run_bests(self, runs: Iterable[str] | None = None) -> dict[str, dict[str, list]]:
        """run -> {"<criterion>/<dataset or ''>": [iteration, value, pinned]}: each run's bests.

        Backends keep this summary cached (it is what `leaderboard` reads); this one computes it.
        """
        return {name: self.compute_bests(name) for name in (self.run_names() if runs is None else runs)}

    def compute_bests(self, name: str, index: RunIndex | None = None) -> dict[str, list]:
        """One run's bests for every criterion, over each dataset and over all (see `run_bests`)."""
        index = self.run_index(name) if index is None else index
        out: dict[str, list] = {}
        keys = {(c, d) for c, by_d in index.scores.items() for d in [None, *by_d]}
        keys |= {(c, d) for d, c in index.pins}
        for criterion, dataset in keys:
            try:
                chosen = self._choose_best(name, index, criterion, dataset)
            except ValueError:  # no direction known for the criterion
                continue
            if chosen is not None:
                value: float | None = index.mean_score(criterion, dataset, chosen[0])
                value = None if value != value else value  # NaN: a pin without a score
                out[f"{criterion}/{dataset or ''}"] = [chosen[0], value, chosen[1]]
        return out

    def leaderboard(
        self,
        criterion: str,
        runs: Iterable[RunLike] | None = None,
        dataset: str | None = None,
        *,
        top: int | None = None,
    ) -> list[LeaderboardEntry]:
        """Each run's best checkpoint by `criterion`, best run first (by the criterion's direction).

        `runs` limits it to those runs; `dataset=None` ranks by the mean over datasets, as
        `retrieve_best` does; `top` keeps only the first so many. Runs without a sound scored
        checkpoint are left out.
        """
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name", slash_ok=True)
        names = None if runs is None else [run_name(r) for r in runs]
        found = self.bests_for(f"{criterion}/{dataset or ''}", names)
        return rank_entries(found, self.direction(criterion, names), top)

    def bests_for(self, key: str, runs: Iterable[str] | None = None) -> list[tuple[str, list]]:
        """(run, [iteration, value, pinned]) of the runs with a best by `key` (see `run_bests`)."""
        return [(name, bests[key]) for name, bests in self.run_bests(runs).items() if key in bests]

    def direction(self, criterion: str, runs: list[str] | None = None) -> bool:
        """Whether higher is better for `criterion`: DaCapo's table, else the first run that stores it."""
        known = known_direction(criterion)
        if known is not None:
            return known
        for name in self.run_names() if runs is None else runs:
            stored = self.read_index(name).directions.get(criterion)
            if stored is not None:
                return stored
        return True

    # ------------------------------------------------------------------ pruning

    def prune(
        self, run: RunLike, keep_last: int = 1, config_store: Any = None, *, dry_run: bool = False
    ) -> list[int]:
        """Delete checkpoints that are not among the last `keep_last`, not a best, a pin or a start.

        Starts come from `config_store.starts_from(run)` (the options' config store when omitted).
        Legacy DaCapo files are never deleted. Returns the deleted (or, with dry_run, deletable)
        iterations.
        """
        name = run_name(run)
        if type(keep_last) is not int or keep_last < 0:
            raise ValueError(f"keep_last must be a non-negative int, got {keep_last!r}")
        if config_store is None:
            from ..config_store import create_config_store

            with create_config_store() as own:
                starts = own.starts_from(name)
        else:
            starts = config_store.starts_from(name)
        index = self.run_index(name)
        ours = sorted(index.checkpoints)
        keep = set(ours[len(ours) - keep_last :]) if keep_last else set()
        keep |= set(self._bests(name, index))
        for _, criterion in starts:
            if criterion == "latest":
                if ours:
                    keep.add(ours[-1])
            elif criterion.isascii() and criterion.isdigit():
                keep.add(int(criterion))
            else:
                try:
                    keep.add(self.retrieve_best(name, criterion))
                except (CriterionNotFoundError, WeightsNotFoundError, ValueError) as exc:
                    log.warning("run %s: a start by %r keeps nothing: %s", name, criterion, exc)
        doomed = [it for it in ours if it not in keep]
        if not dry_run:
            for iteration in doomed:
                self.remove(name, iteration)
            if doomed:
                log.info("pruned %d checkpoint(s) of run %s: %s", len(doomed), name, _summary(doomed))
        return doomed

    def _bests(self, run: str, index: RunIndex) -> Iterator[int]:
        yield from index.pins.values()
        for criterion, by_dataset in index.scores.items():
            for dataset in [None, *by_dataset]:
                with contextlib.suppress(CriterionNotFoundError, WeightsNotFoundError, ValueError):
                    yield self.retrieve_best(run, criterion, dataset)


def _hashing(
    chunks: Iterable[bytes | memoryview], digests: Iterable[Any], counter: list[int]
) -> Iterator[Any]:
    """The chunks, while a worker thread feeds each to the digests as the caller writes it.

    sha256 runs at about the speed of writing to the page cache, and hashlib lets go of the GIL
    while it works: hashing chunk n beside the write of chunk n halves the time of a store.
    Chunks are hashed in order (the next waits for the previous); they stay alive meanwhile.
    """
    digests = tuple(digests)

    def update(chunk: Any) -> None:
        for digest in digests:
            digest.update(chunk)

    with ThreadPoolExecutor(1, thread_name_prefix="dacapo_store-hash") as pool:
        pending = None
        for chunk in chunks:
            if pending is not None:
                pending.result()
            pending = pool.submit(update, chunk)
            counter[0] += memoryview(chunk).nbytes
            yield chunk
        if pending is not None:
            pending.result()


def gc_cutoff(older_than: float | timedelta) -> float:
    """The time (seconds since the epoch) before which a leftover is old enough for `gc`."""
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ValueError(
            f"older_than must be a non-negative number of seconds or a timedelta, got {older_than!r}"
        )
    return time.time() - seconds


def _summary(iterations: list[int]) -> str:
    if not iterations:
        return "none"
    if len(iterations) <= 8:
        return ", ".join(map(str, iterations))
    return f"{len(iterations)} from {iterations[0]} to {iterations[-1]}"


__all__ = [
    "BestChoice",
    "BlobNotFoundError",
    "Collected",
    "LeaderboardEntry",
    "Leftover",
    "PickleCheckpointError",
    "Weights",
    "WeightsProblem",
    "WeightsStore",
    "check_iteration",
    "run_name",
]
