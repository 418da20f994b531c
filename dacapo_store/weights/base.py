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

import hashlib
import logging
import math
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
from ..criteria import check_criterion, check_score, known_direction, start_rule
from ..errors import (
    CorruptWeightsError,
    CriterionNotFoundError,
    DacapoStoreError,
    PickleCheckpointError,
    StoreConnectionError,
    TrainingStatsConflictError,
    WeightsNotFoundError,
)
from ..names import check_name
from ..provenance import current_user, utc_now
from .best import choose, direction, kept_by_bests, pin_of
from .digest import RunDigest, damaged_digest, digest_of
from .index import RunIndex
from .leaderboard import LeaderboardEntry, leaderboard_entries
from .stats import TrainingIterationStats, TrainingStatsInput, same_stats, training_rows

if TYPE_CHECKING:
    from ..legacy.registry import DacapoRegistry
    from .digests import DigestTable

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
    iteration: int
    problem: str


def run_name(run: RunLike) -> str:
    """The checked name of a run given by name or RunConfig."""
    if isinstance(run, RunConfig):
        run = run.name
    return check_name(run, "run name")


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

    def read_indexes(self, runs: Iterable[str] | None = None) -> dict[str, RunIndex]:
        """Indexes of many runs (None: every run with an index here); backends may batch the reads."""
        if runs is None:
            raise NotImplementedError(f"{type(self).__name__} can't list its runs")
        return {run: self.read_index(run) for run in runs}

    def changes_since(
        self, token: Any, runs: Collection[str] = (), *, thorough: bool = False
    ) -> tuple[Any, set[str] | None]:
        """(new token, runs whose data may have changed since `token` was handed out).

        The one change signal of the store, for views over many runs (`DigestTable`): it watches
        `runs` and every run the store has (ours and DaCapo's), and names new runs too. None
        instead of a set means "any run may have changed" (read `run_names()`); `token` None asks
        for a first token (a backend may then name every run it has). `thorough`: look behind
        what summarizes the markers (now and then; it may answer None). The default knows nothing.
        """
        return None, None

    def runs_with_stats(self, runs: Collection[str], token: Any = None) -> set[str] | None:
        """Those of `runs` that may have training stats, ours or DaCapo's (None: any may): the
        others' extent needs no read. `token`: one from `changes_since`, which may know."""
        return None

    def stored_digests(self, runs: Iterable[str]) -> dict[str, RunDigest]:
        """The digests writers stored of these runs' own indexes (`digest.py`), for the runs whose
        stored digest matches its source as it is now; the others are left out (read them)."""
        return {}

    def dacapo_runs(self, runs: Iterable[str], token: Any = None) -> set[str]:
        """Those of `runs` for which DaCapo keeps scores, best files or checkpoints (their index is
        ours laid over DaCapo's). `token`: one from `changes_since`, which may already know."""
        return set() if self.dacapo is None else self.dacapo.runs_with_index(runs)

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
        """Add stats of iterations not stored yet, durably, never rewriting what is there.

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
            meta = {
                "format": FORMAT,
                "iteration": iteration,
                "created_at": utc_now(),
                "created_by": current_user(),
                "blobs": blobs,
            }
            self.append_index(name, [{"op": "checkpoint", "iteration": iteration, "meta": meta}])
        except BaseException:
            for blob in written:
                self._delete_quietly(name, blob)
            raise
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
            if criterion in stored and stored[criterion] is not higher:
                raise ValueError(
                    f"run {name} stores {criterion!r} as {_direction(stored[criterion])}, "
                    f"not {_direction(higher)}; use another criterion name for the other direction"
                )
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
        self.append_index(name, [event])

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
        """What `retrieve_best` picks, with its score and whether it is a pin (one read of the index).

        The rule is `best.choose`: a loadable pin wins, else the best score with a loadable
        checkpoint (ours or DaCapo's; damaged ones skipped; NaN never best; ties to the earlier).
        """
        name = run_name(run)
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name", slash_ok=True)
        index = self.run_index(name)
        by_dataset = index.scores.get(criterion)
        pinned = pin_of(index, criterion, dataset)
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
        chosen = choose(index, criterion, dataset)
        if chosen is None or not chosen.loadable:
            raise WeightsNotFoundError(
                f"run {name}: no iteration scored on {criterion!r} has sound weights in {self.where}"
            )
        if pinned is not None and not chosen.pinned:
            log.warning(
                "run %s: the pinned best %s iteration %d has no sound weights; using the computed best",
                name,
                criterion,
                pinned,
            )
        value = math.nan if chosen.value is None else chosen.value
        return BestChoice(chosen.iteration, value, chosen.pinned)

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
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError(
                f"older_than must be a non-negative number of seconds or a timedelta, got {older_than!r}"
            )
        cutoff = time.time() - seconds
        found = [item for item in self.partial_leftovers() if item.created < cutoff]
        for run in self.list_runs():
            referenced = self._referenced(run)
            for name, size, created in self.blob_stats(run):
                if name not in referenced and created < cutoff:
                    found.append(Leftover("unreferenced blob", run, name, size, created, key=name))
        if dry_run:
            return found
        removed = []
        for item in found:
            # a blob that an index entry names by now (a very slow writer) stays
            if item.kind == "unreferenced blob" and item.name in self._referenced(item.run):
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

    def _referenced(self, run: str) -> set[str]:
        return {
            record.get("name")
            for meta in self.read_index(run).checkpoints.values()
            for record in meta["blobs"].values()
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
            self.append_training_stats(name, dict(sorted(new.items())))
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
            check_name(dataset, "dataset name", slash_ok=True)
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
        """Check every checkpoint of the run: each blob present, of its size and checksum.

        Damaged checkpoints are recorded in the run's index (unless `record=False`), so
        `retrieve_best` never names them again until they are stored anew.
        """
        name = run_name(run)
        index = self.read_index(name)
        problems: list[WeightsProblem] = []
        fresh_damage = []
        for iteration, meta in sorted(index.checkpoints.items()):
            found = [p for rec in meta.get("blobs", {}).values() if (p := self.check_blob(name, rec))]
            if not meta.get("blobs"):
                found.append("index entry without blobs")
            for problem in found:
                problems.append(WeightsProblem(name, iteration, problem))
            if found and index.damaged.get(iteration) != "; ".join(found):
                fresh_damage.append({"op": "damaged", "iteration": iteration, "problem": "; ".join(found)})
        if fresh_damage and record:
            try:
                self.append_index(name, fresh_damage)
            except (OSError, DacapoStoreError) as exc:
                log.warning("run %s: could not record damaged checkpoints: %s", name, exc)
        return problems

    # ------------------------------------------------------------------ across runs

    def run_names(self) -> list[str]:
        """Runs this store has anything for (checkpoints, scores or pins), ours and DaCapo's, sorted."""
        ours = set(self.own_run_names())
        if self.dacapo is not None:
            ours.update(self.dacapo.run_names())
        return sorted(ours)

    def own_run_names(self) -> list[str]:
        """Runs with an index of ours (checkpoints, scores or pins)."""
        raise NotImplementedError

    def run_digest(self, run: RunLike) -> RunDigest:
        """The run's digest (`digest.py`): its bests by every criterion and dataset, and the rest a
        view over many runs needs. A run whose data can't be read has a digest saying what is wrong."""
        name = run_name(run)
        return self.run_digests([name])[name]

    def run_digests(self, runs: Iterable[str], token: Any = None) -> dict[str, RunDigest]:
        """Digests of `runs`: the stored one where its stamp matches its source and DaCapo has
        nothing for the run, else folded from the index (ours over DaCapo's). `token`: one from
        `changes_since`, which may already know which runs DaCapo has data for."""
        runs = list(runs)
        theirs = self.dacapo_runs(runs, token)
        stored = self.stored_digests([r for r in runs if r not in theirs])
        with_stats = self.runs_with_stats(runs, token)
        out = {}
        for run in runs:
            found = stored.get(run)
            found = found if found is not None else self._fold_digest(run, run in theirs)
            if with_stats is not None and run not in with_stats:
                out[run] = found
                continue
            trained_until, written = self._stats_extent(run)
            if trained_until is not None:
                found = attrs.evolve(found, trained_until=trained_until, stats_written=written)
            out[run] = found
        return out

    def _stats_extent(self, run: str) -> tuple[int | None, float | None]:
        try:
            trained_until, written = self.training_stats_extent(run)
        except StoreConnectionError:
            raise
        except (DacapoStoreError, OSError, ValueError) as exc:
            log.warning("run %s: its training stats are unreadable: %s", run, exc)
            return None, None
        return trained_until, None if written is None else written.timestamp()

    def _fold_digest(self, run: str, theirs: bool) -> RunDigest:
        try:
            index = self.run_index(run) if theirs else self.read_index(run)
        except StoreConnectionError:
            raise
        except (DacapoStoreError, OSError) as exc:
            log.warning("run %s: its data can't be read: %s", run, exc)
            return damaged_digest(self.describe_problem(exc))
        return digest_of(index)

    def describe_problem(self, exc: BaseException) -> str:
        """What is wrong with a run's data, for any reader: the message without the store's paths."""
        return str(exc) or type(exc).__name__

    def digest_table(self) -> DigestTable:
        """This store's table of every run's digest (made on first use, kept up to date by
        `DigestTable.refresh`): what `leaderboard` ranks and the run catalog is built on."""
        table = self.__dict__.get("_digest_table")
        if table is None:
            from .digests import DigestTable

            table = self.__dict__.setdefault("_digest_table", DigestTable(self))
        return table

    def leaderboard(
        self,
        criterion: str,
        runs: Iterable[RunLike] | None = None,
        dataset: str | None = None,
        *,
        top: int | None = None,
    ) -> list[LeaderboardEntry]:
        """Each run's best by `criterion`, best run first (by the criterion's direction).

        `runs` limits it to those runs; `dataset=None` ranks by the mean over datasets, as
        `retrieve_best` does; `top` keeps only the first so many. A run whose scored iterations
        have no loadable checkpoint is listed by its best score with `loadable=False`. The same
        rule and ranking as the command line and the dashboard (`best.py`).
        """
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name", slash_ok=True)
        names = None if runs is None else [run_name(r) for r in runs]
        table = self.digest_table()
        digests = table.refresh(watch=names or ())
        if names is not None:
            digests = {n: digests[n] for n in names if n in digests}
        key = (criterion, dataset)
        found = [(name, d.bests[key]) for name, d in digests.items() if key in d.bests]
        higher = direction(criterion, (digests[n].directions.get(criterion) for n in sorted(digests)))
        return leaderboard_entries(found, higher, top)

    def direction(self, criterion: str, runs: list[str] | None = None) -> bool:
        """Whether higher is better for `criterion`: DaCapo's table, else the first run (by name)
        that stores it, else True (`best.direction`)."""
        known = known_direction(criterion)
        if known is not None:
            return known
        names = self.run_names() if runs is None else sorted(runs)
        return direction(criterion, (self.read_index(name).directions.get(criterion) for name in names))

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
        keep |= kept_by_bests(index)
        for _, criterion in starts:
            try:
                kind, value = start_rule(criterion)
            except (TypeError, ValueError) as exc:
                log.warning("run %s: a start by %r keeps nothing: %s", name, criterion, exc)
                continue
            if kind == "latest":
                if index.iterations():
                    keep.add(index.iterations()[-1])
            elif kind == "iteration":
                keep.add(value)  # type: ignore[arg-type]
            else:
                chosen = choose(index, value, None)  # type: ignore[arg-type]
                if chosen is not None and chosen.loadable:
                    keep.add(chosen.iteration)
        doomed = [it for it in ours if it not in keep]
        if not dry_run:
            for iteration in doomed:
                self.remove(name, iteration)
            if doomed:
                log.info("pruned %d checkpoint(s) of run %s: %s", len(doomed), name, _summary(doomed))
        return doomed


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


def _direction(higher: bool) -> str:
    return "higher-is-better" if higher else "lower-is-better"


def _summary(iterations: list[int]) -> str:
    if not iterations:
        return "none"
    if len(iterations) <= 8:
        return ", ".join(map(str, iterations))
    return f"{len(iterations)} from {iterations[0]} to {iterations[-1]}"


__all__ = [
    "BestChoice",
    "BlobNotFoundError",
    "LeaderboardEntry",
    "Leftover",
    "PickleCheckpointError",
    "Weights",
    "WeightsProblem",
    "WeightsStore",
    "check_iteration",
    "run_name",
]
