"""WeightsStore: the typed weights API, written once over a few blob-backend primitives.

A checkpoint is one or two blobs (model as safetensors, optimizer as weights-only torch data) plus
an index entry with each blob's sha256 and size. Blobs get fresh names, are written first, and the
index entry is added last, so a checkpoint appears whole or not at all; replacing one swaps the
index entry, then deletes the old blobs. Scores, criterion directions and pins live in the same
per-run index. Backends (`LocalWeightsStore`, `GridFSWeightsStore`) implement only the primitives.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Union

import attrs

from ..configs.runs import RunConfig
from ..errors import (
    CorruptWeightsError,
    CriterionNotFoundError,
    DacapoStoreError,
    PickleCheckpointError,
    WeightsNotFoundError,
)
from ..names import check_name
from ..provenance import current_user, utc_now
from .index import RunIndex
from .scores import check_criterion, check_score, known_direction

# torch (via .serialization) is imported on first use, so scores, bests and listings stay light.

log = logging.getLogger(__name__)

RunLike = Union[str, RunConfig]  # noqa: UP007 -- a runtime alias, py3.10-safe
FORMAT = "dacapo_store.weights/1"


class BlobNotFoundError(DacapoStoreError, LookupError):
    """A backend has no blob of that name (internal: the typed API turns it into a better error)."""


@attrs.frozen
class Weights:
    """One checkpoint: model and optimizer state dicts on the CPU, and its metadata."""

    model: dict[str, Any]
    optimizer: dict[str, Any] | None
    run: str
    iteration: int
    #: created_at, created_by and the blob records; None for a legacy DaCapo checkpoint.
    metadata: dict[str, Any] | None = None


def run_name(run: RunLike) -> str:
    """The checked name of a run given by name or RunConfig."""
    if isinstance(run, RunConfig):
        run = run.name
    return check_name(run, "run name")


def check_iteration(iteration: object) -> int:
    """`iteration` if it is a non-negative int."""
    if type(iteration) is not int or iteration < 0:
        raise ValueError(f"iteration must be a non-negative int, got {iteration!r}")
    return iteration


class WeightsStore(ABC):
    """Checkpoints, validation scores and best-iteration choices of runs (CONTRACT.md "Weights store")."""

    #: How to find this store, for messages (no passwords).
    where: str = "?"

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

    def changes_since(self, token: Any, runs: Collection[str]) -> tuple[Any, set[str] | None]:
        """(new token, runs whose index may have changed since `token` was handed out).

        A cheap check for caches over many runs (the dashboard): None instead of a set means
        "any run may have changed". `token` None asks for a first token. The default knows nothing.
        """
        return None, None

    def read_checkpoint(self, run: str, iteration: int) -> dict[str, Any] | None:
        """The index entry of one checkpoint; backends may answer without reading the whole index."""
        return self.read_index(run).checkpoints.get(iteration)

    def legacy_iterations(self, run: str) -> list[int]:
        """Iterations with a legacy DaCapo checkpoint (pickle); none unless the backend has them."""
        return []

    def legacy_path(self, run: str, iteration: int) -> Path | None:
        """The legacy DaCapo checkpoint file of this iteration, if there is one."""
        return None

    # ------------------------------------------------------------------ checkpoints

    def store_weights(self, run: RunLike, iteration: int, model: Any, optimizer: Any = None) -> None:
        """Store a checkpoint of `model` (and `optimizer`), replacing any at this iteration."""
        from .serialization import as_state_dict, safetensors_chunks, torch_bytes

        name = run_name(run)
        check_iteration(iteration)
        model_state = as_state_dict(model, "model")
        optimizer_state = None if optimizer is None else as_state_dict(optimizer, "optimizer")
        token = secrets.token_hex(8)
        blobs: dict[str, dict[str, Any]] = {}
        parts: list[tuple[str, str, Any]] = [("model", "safetensors", safetensors_chunks(model_state))]
        if optimizer_state is not None:
            parts.append(("optimizer", "pt", [torch_bytes(optimizer_state)]))
        written: list[str] = []
        try:
            for part, ext, chunks in parts:
                blob = f"{iteration}-{token}.{part}.{ext}"
                digest = hashlib.sha256()
                counter = [0]
                self.put_blob(name, blob, _hashing(chunks, digest, counter))
                written.append(blob)
                blobs[part] = {"name": blob, "sha256": digest.hexdigest(), "size": counter[0]}
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
        check_iteration(iteration)
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
        from .serialization import FormatError, load_safetensors, load_torch

        records = meta["blobs"]
        buffers = {part: self._verified(run, iteration, record) for part, record in records.items()}
        try:
            model = load_safetensors(buffers["model"])
            optimizer = load_torch(buffers["optimizer"]) if "optimizer" in buffers else None
        except (FormatError, KeyError) as exc:
            raise CorruptWeightsError(
                f"weights of run {run} at iteration {iteration} in {self.where} can't be read: {exc}"
            ) from None
        public = {k: v for k, v in meta.items() if k != "blobs"}
        public["blobs"] = {part: dict(record) for part, record in records.items()}
        return Weights(model=model, optimizer=optimizer, run=run, iteration=iteration, metadata=public)

    def _verified(self, run: str, iteration: int, record: Mapping[str, Any]) -> Any:
        buffer = self.get_blob(run, record["name"])
        size = memoryview(buffer).nbytes
        if size != record["size"]:
            raise CorruptWeightsError(
                f"weights of run {run} at iteration {iteration} in {self.where}: blob {record['name']} has "
                f"{size} bytes, expected {record['size']}; the checkpoint is damaged, store it again or "
                "remove it"
            )
        if hashlib.sha256(buffer).hexdigest() != record["sha256"]:
            raise CorruptWeightsError(
                f"weights of run {run} at iteration {iteration} in {self.where}: blob {record['name']} "
                "does not match its sha256; the checkpoint is damaged, store it again or remove it"
            )
        return buffer

    def _retrieve_legacy(self, run: str, iteration: int, allow_pickle: bool) -> Weights:
        path = self.legacy_path(run, iteration)
        if path is None:
            raise WeightsNotFoundError(
                f"no weights for run {run} at iteration {iteration} in {self.where}; "
                f"stored iterations: {_summary(self.iterations(run))}"
            )
        if not allow_pickle:
            raise PickleCheckpointError(
                f"weights of run {run} at iteration {iteration} are a legacy DaCapo pickle ({path}); "
                "loading a pickle can run arbitrary code, so pass allow_pickle=True only if you trust "
                "the file, then store_weights() it again to convert it"
            )
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
        check_iteration(iteration)
        meta = self.read_checkpoint(name, iteration)
        if meta is None:
            legacy = self.legacy_path(name, iteration)
            hint = f"; {legacy} is a legacy DaCapo file, delete it by hand" if legacy else ""
            raise WeightsNotFoundError(f"no weights for run {name} at iteration {iteration}{hint}")
        self.append_index(name, [{"op": "remove", "iteration": iteration}])
        for record in meta["blobs"].values():
            self._delete_quietly(name, record["name"])

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
        check_iteration(iteration)
        check_name(dataset, "dataset name")
        if not isinstance(scores, Mapping) or not scores:
            raise ValueError(f"scores must be a non-empty mapping of criterion to number, got {scores!r}")
        given = dict(higher_is_better or {})
        values = {check_criterion(c): check_score(c, v) for c, v in scores.items()}
        stored = self.read_index(name).directions
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
        return sorted(self.read_index(run_name(run)).scores)

    def retrieve_validation_scores(self, run: RunLike) -> dict[str, dict[str, dict[int, float]]]:
        """All scores of a run: criterion -> dataset -> iteration -> value."""
        scores = self.read_index(run_name(run)).scores
        return {c: {d: dict(v) for d, v in by_d.items()} for c, by_d in scores.items()}

    def retrieve_best(self, run: RunLike, criterion: str, dataset: str | None = None) -> int:
        """The iteration with weights that is best by `criterion` (a pin, if there is one, wins).

        With `dataset=None`, the mean over the datasets validated at each iteration.
        """
        name = run_name(run)
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name")
        index = self.read_index(name)
        pinned = self._pin(index, criterion, dataset)
        if pinned is not None:
            if index.has_weights(pinned) or pinned in self.legacy_iterations(name):
                return pinned
            log.warning(
                "run %s: the pinned best %s iteration %d has no weights; using the computed best",
                name,
                criterion,
                pinned,
            )
        by_dataset = index.scores.get(criterion)
        if not by_dataset:
            raise CriterionNotFoundError(
                f"run {name} has no validation scores for criterion {criterion!r}; "
                f"it has: {', '.join(sorted(index.scores)) or 'none'}"
            )
        if dataset is not None and dataset not in by_dataset:
            raise CriterionNotFoundError(
                f"run {name} has no {criterion!r} scores on dataset {dataset!r}; "
                f"it has them on: {', '.join(sorted(by_dataset))}"
            )
        legacy: set[int] | None = None
        for iteration in index.ranking(criterion, dataset):
            if index.has_weights(iteration):
                return iteration
            if legacy is None:
                legacy = set(self.legacy_iterations(name))
            if iteration in legacy:
                return iteration
        raise WeightsNotFoundError(
            f"run {name}: no iteration scored on {criterion!r} has weights in {self.where}"
        )

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
        check_iteration(iteration)
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name")
        if iteration not in self.iterations(name):
            raise WeightsNotFoundError(f"can't pin iteration {iteration} of run {name}: it has no weights")
        self.append_index(
            name, [{"op": "pin", "dataset": dataset, "criterion": criterion, "iteration": iteration}]
        )

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

            config_store = create_config_store()
        starts = config_store.starts_from(name)
        index = self.read_index(name)
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


def _hashing(chunks: Iterable[bytes | memoryview], digest: Any, counter: list[int]) -> Iterator[Any]:
    for chunk in chunks:
        digest.update(chunk)
        counter[0] += memoryview(chunk).nbytes
        yield chunk


def _direction(higher: bool) -> str:
    return "higher-is-better" if higher else "lower-is-better"


def _summary(iterations: list[int]) -> str:
    if not iterations:
        return "none"
    if len(iterations) <= 8:
        return ", ".join(map(str, iterations))
    return f"{len(iterations)} from {iterations[0]} to {iterations[-1]}"


__all__ = [
    "BlobNotFoundError",
    "PickleCheckpointError",
    "Weights",
    "WeightsStore",
    "check_iteration",
    "run_name",
]
