"""Checkpoints: store, load (checksums verified), list, remove and verify a run's weights.

A checkpoint is one or two blobs (model and optimizer as safetensors) plus an index entry with
each blob's size and xxh3-128 checksum (its content identity, which every load verifies: it runs at
memory speed, so neither a store nor a load waits for it; entries written before it existed carry a
sha256 and are verified by it). Blobs get fresh names
and are written first; the index entry is added last, so a checkpoint appears whole or not at all;
replacing one swaps the index entry, then deletes the old blobs. DaCapo's own checkpoint files are
read through the restricted unpickler and never deleted.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from ..errors import CorruptWeightsError, DacapoStoreError, PickleCheckpointError, WeightsNotFoundError
from ..fsutil import cause_of, naming
from ..provenance import current_user, utc_now
from .backend import BlobNotFoundError
from .index import RunIndex, blob_names
from .records import RunLike, Weights, WeightsProblem, check_iteration, run_name, summary

if TYPE_CHECKING:
    from .backend import WeightsBackend

# torch (via .serialization) is imported on first use, so scores, bests and listings stay light.

log = logging.getLogger(__name__)

FORMAT = "dacapo_store.weights/1"


class Checkpoints:
    """The checkpoint part of `WeightsStore`."""

    backend: WeightsBackend

    def legacy_iterations(self, run: str) -> list[int]:
        """Iterations with a DaCapo checkpoint (a pickle under `checkpoints/iterations/`)."""
        return [] if self.dacapo is None else self.dacapo.checkpoint_iterations(run)

    def legacy_path(self, run: str, iteration: int) -> Path | None:
        """DaCapo's checkpoint file of this iteration, if there is one."""
        return None if self.dacapo is None else self.dacapo.checkpoint_path(run, iteration)

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
                checksum = xxhash.xxh3_128()
                counter = [0]
                self.backend.put_blob(name, blob, _hashing(chunks, checksum, counter))
                written.append(blob)
                blobs[part] = {"name": blob, "xxh3_128": checksum.hexdigest(), "size": counter[0]}
            old = self.backend.read_checkpoint(name, iteration)
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
            self.backend.append_index(name, [{"op": "checkpoint", "iteration": iteration, "meta": meta}])
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
            meta = self.backend.read_checkpoint(name, iteration)
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
        buffer = self.backend.get_blob(run, record["name"])
        size = memoryview(buffer).nbytes
        if size != record["size"]:
            raise CorruptWeightsError(
                f"weights of run {run} at iteration {iteration} in {self.where}: blob {record['name']} has "
                f"{size} bytes, expected {record['size']}; the checkpoint is damaged, store it again or "
                "remove it"
            )
        key, algorithm, checksum = blob_checksum(record)
        if checksum(buffer) != record[key]:
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
                f"stored iterations: {summary(self.iterations(run))}"
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
        return sorted(set(self.backend.read_index(name).checkpoints).union(self.legacy_iterations(name)))

    def latest_iteration(self, run: RunLike) -> int | None:
        """The highest iteration with weights, or None."""
        found = self.iterations(run)
        return found[-1] if found else None

    def metadata(self, run: RunLike, iteration: int) -> dict[str, Any]:
        """created_at, created_by and blob records of a stored checkpoint."""
        name = run_name(run)
        meta = self.backend.read_checkpoint(name, check_iteration(iteration))
        if meta is None:
            raise WeightsNotFoundError(f"no weights for run {name} at iteration {iteration} in {self.where}")
        return dict(meta)

    def remove(self, run: RunLike, iteration: int) -> None:
        """Delete the checkpoint at `iteration`: first from the index, then its blobs."""
        name = run_name(run)
        iteration = check_iteration(iteration)
        meta = self.backend.read_checkpoint(name, iteration)
        if meta is None:
            legacy = self.legacy_path(name, iteration)
            hint = f"; {legacy} is a legacy DaCapo file, delete it by hand" if legacy else ""
            raise WeightsNotFoundError(f"no weights for run {name} at iteration {iteration}{hint}")
        self.backend.append_index(name, [{"op": "remove", "iteration": iteration}])
        for record in meta["blobs"].values():
            self._delete_quietly(name, record["name"])

    def delete_run(self, run: RunLike) -> list[int]:
        """Delete every checkpoint, score and pin of the run; DaCapo's own files stay. Returns the
        iterations whose checkpoints were deleted."""
        name = run_name(run)
        removed = sorted(self.backend.read_index(name).checkpoints)
        for iteration in removed:
            self.remove(name, iteration)
        for blob in self.backend.list_blobs(name):
            self._delete_quietly(name, blob)
        self.delete_training_stats(name)
        self.backend.forget_run(name)
        log.info("deleted the weights and scores of run %s from %s", name, self.where)
        return removed

    def _delete_quietly(self, run: str, blob: str) -> None:
        try:
            self.backend.delete_blob(run, blob)
        except Exception as exc:  # the index no longer points at it: a leftover, not an error
            log.warning("could not delete blob %s of run %s: %s", blob, run, exc)

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
        with self.backend.fresh_reads():
            index = self.backend.read_index(name)
            found_in_journals = self._journal_findings(index, self.backend.read_training_stats(name))[0]
        problems = [WeightsProblem(name, None, p) for p in found_in_journals]
        events = []
        for iteration, meta in sorted(index.checkpoints.items()):
            found = self._checkpoint_problems(name, meta)
            for _ in range(3):
                if not found:
                    break
                # replaced or removed while we checked it? then what is there now is what counts
                current = self.backend.read_checkpoint(name, iteration)
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
                self.backend.append_index(name, events)
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
        found = self.backend.journal_runs()
        return self.run_names() if found is None else found

    def journal_problems(self, run: RunLike) -> tuple[list[str], list[str]]:
        """(problems, notes) of the run's own index and training stats as stored: what can't be read
        (a line failing its checksum, a malformed entry: damage, each named with where it is), and
        lines written before lines carried checksums (read as they are; a note)."""
        name = run_name(run)
        with self.backend.fresh_reads():
            return self._journal_findings(
                self.backend.read_index(name), self.backend.read_training_stats(name)
            )

    def _journal_findings(self, index: RunIndex, stats: Mapping[int, Any]) -> tuple[list[str], list[str]]:
        problems: list[str] = []
        notes: list[str] = []
        for label, found in zip(self.backend.journal_names, (index, stats), strict=True):
            problems += [f"{label} {p}" for p in getattr(found, "problems", ())]
            unchecked = getattr(found, "unchecked", 0)
            if unchecked:
                notes.append(
                    f"{label}: {unchecked} line(s) without a checksum (written before lines had one)"
                )
        return problems, notes


#: the checksums a blob record may carry, in the order a load prefers them: (record key, name,
#: function of the bytes). Entries written before xxh3-128 existed carry only a sha256.
CHECKSUMS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("xxh3_128", "xxh3-128 checksum", lambda data: xxhash.xxh3_128(data).hexdigest()),
    ("sha256", "sha256", lambda data: hashlib.sha256(data).hexdigest()),
)


def blob_checksum(record: Mapping[str, Any]) -> tuple[str, str, Callable[[Any], str]]:
    """The checksum a load verifies `record`'s blob by (KeyError for a record without one)."""
    for found in CHECKSUMS:
        if found[0] in record:
            return found
    raise KeyError("no checksum")


def _hashing(chunks: Iterable[bytes | memoryview], checksum: Any, counter: list[int]) -> Iterator[Any]:
    """The chunks, while a worker thread feeds each to the checksum as the caller writes it.

    xxhash lets go of the GIL while it works: hashing chunk n beside the write of chunk n takes
    the checksum off the store's time. Chunks are hashed in order (the next waits for the
    previous); they stay alive meanwhile.
    """

    def update(chunk: Any) -> None:
        checksum.update(chunk)

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
