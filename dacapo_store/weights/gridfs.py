"""GridFSWeightsStore: checkpoints in MongoDB GridFS, index and scores in small collections.

- blobs: GridFS bucket `weights` (`weights.files`, `weights.chunks`), filename `<run>/<blob>`.
  GridFS writes the chunks first and the file document last, so a blob is whole or absent.
- `weights_index`: one document per checkpoint, `{run_name, iteration, meta}`, written after its
  blobs: this document is what makes a checkpoint visible.
- `weights_scores`: one document per `{run_name, iteration, dataset}`, with `scores` and
  `higher_is_better` mappings; new criteria are merged in with `$set`.
- `weights_pins`: one document per `{run_name, dataset, criterion}` pinned by hand.
- `weights_bests`: a summary of each run's bests, rewritten after every index write of the run:
  one document per `key` ("<criterion>/<dataset or ''>") and `bucket` (a hash of the run name,
  0-63), `{key, bucket, entries: {<run name, '%', '.', '$' escaped>: [iteration, value, pinned]}}`.
  A run's entry changes with one single-field `$set`; a leaderboard reads the 64 documents of
  its key, whatever the number of runs (a few hundred entries per document at 10,000 runs).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from typing import Any

import gridfs
from pymongo.errors import OperationFailure

from ..mongo import connect, describe, translate_errors
from ..names import check_name
from .base import BlobNotFoundError, LeaderboardEntry, WeightsStore, run_name
from .index import RunIndex
from .leaderboard import rank_entries
from .scores import check_criterion

log = logging.getLogger(__name__)

_BUCKET = "weights"
_WRITE_SLICE = 16 * 1024 * 1024


class GridFSWeightsStore(WeightsStore):
    """Weights, scores and pins of runs in a MongoDB database (a URI, or a ready `client`)."""

    def __init__(
        self,
        db_host: str | None = None,
        db_name: str = "dacapo",
        *,
        client: Any = None,
        timeout: float = 5.0,
    ) -> None:
        self._owns_client = client is None
        self.client, self.db = connect(db_host, db_name, client=client, timeout=timeout)
        self.where = describe(db_host, db_name)
        self._fs = gridfs.GridFS(self.db, collection=_BUCKET)
        self._files = self.db[f"{_BUCKET}.files"]
        self._index = self.db["weights_index"]
        self._scores = self.db["weights_scores"]
        self._pins = self.db["weights_pins"]
        self._summary = self.db["weights_bests"]
        with translate_errors(self.where):
            for collection, keys in [
                (self._index, ["run_name", "iteration"]),
                (self._scores, ["run_name", "iteration", "dataset"]),
                (self._pins, ["run_name", "dataset", "criterion"]),
                (self._summary, ["key", "bucket"]),
            ]:
                try:
                    collection.create_index([(k, 1) for k in keys], unique=True, name="_".join(keys))
                except OperationFailure as exc:
                    # e.g. DaCapo's own validation_scores documents: work on without the guarantee
                    log.warning("no unique index on %s%s in %s: %s", collection.name, keys, self.where, exc)
            self._files.create_index([("run_name", 1), ("filename", 1)], name="run_name_filename")

    def __repr__(self) -> str:
        return f"GridFSWeightsStore({self.where!r})"

    def close(self) -> None:
        """Close the client if this store created it."""
        if self._owns_client:
            self.client.close()

    # ------------------------------------------------------------------ blobs

    def put_blob(self, run: str, name: str, chunks: Iterable[bytes | memoryview]) -> None:
        """Stream the chunks into a new GridFS file; its file document is written last."""
        with translate_errors(self.where):
            grid_in = self._fs.new_file(filename=f"{run}/{name}", run_name=run)
            try:
                for chunk in chunks:
                    view = memoryview(chunk).cast("B")
                    for start in range(0, len(view), _WRITE_SLICE):
                        grid_in.write(view[start : start + _WRITE_SLICE].tobytes())
                grid_in.close()
            except BaseException:
                grid_in.abort()
                raise

    def get_blob(self, run: str, name: str) -> Any:
        """The blob as a bytearray (one copy of the chunks)."""
        with translate_errors(self.where):
            grid_out = self._fs.find_one({"filename": f"{run}/{name}"})
            if grid_out is None:
                raise BlobNotFoundError(f"no blob {name} for run {run} in {self.where}")
            buffer = bytearray(grid_out.length)
            position = 0
            for chunk in grid_out:
                buffer[position : position + len(chunk)] = chunk
                position += len(chunk)
        if position != len(buffer):
            return buffer[:position]  # shorter than its file document says: the checksum will tell
        return buffer

    def delete_blob(self, run: str, name: str) -> None:
        """Delete every GridFS file of that name (absent is fine)."""
        with translate_errors(self.where):
            for doc in self._files.find({"filename": f"{run}/{name}"}, projection={"_id": True}):
                self._fs.delete(doc["_id"])

    def list_blobs(self, run: str) -> list[str]:
        """The run's complete GridFS files."""
        prefix = f"{run}/"
        with translate_errors(self.where):
            names = [
                d["filename"] for d in self._files.find({"run_name": run}, projection={"filename": True})
            ]
        return sorted(n[len(prefix) :] for n in names if n.startswith(prefix))

    # ------------------------------------------------------------------ index

    def read_index(self, run: str) -> RunIndex:
        """Checkpoints, scores and pins of the run, read from their collections as index events."""
        events: list[dict[str, Any]] = []
        with translate_errors(self.where):
            for doc in self._index.find({"run_name": run}, projection={"_id": False}):
                events.append(
                    {"op": "checkpoint", "iteration": doc.get("iteration"), "meta": doc.get("meta")}
                )
                if doc.get("damaged"):
                    events.append(
                        {"op": "damaged", "iteration": doc.get("iteration"), "problem": doc["damaged"]}
                    )
            for doc in self._scores.find({"run_name": run}, projection={"_id": False}):
                events.append(
                    {
                        "op": "scores",
                        "iteration": doc.get("iteration"),
                        "dataset": doc.get("dataset"),
                        "scores": doc.get("scores"),
                        "higher_is_better": doc.get("higher_is_better"),
                    }
                )
            for doc in self._pins.find({"run_name": run}, projection={"_id": False}):
                events.append(
                    {
                        "op": "pin",
                        "dataset": doc.get("dataset"),
                        "criterion": doc.get("criterion"),
                        "iteration": doc.get("iteration"),
                    }
                )
        return RunIndex().with_events(events)

    def read_checkpoint(self, run: str, iteration: int) -> dict[str, Any] | None:
        """One checkpoint's entry, by a single indexed query."""
        with translate_errors(self.where):
            doc = self._index.find_one({"run_name": run, "iteration": iteration}, projection={"_id": False})
        if doc is None:
            return None
        return RunIndex().with_events([{"op": "checkpoint", **doc}]).checkpoints.get(iteration)

    def append_index(self, run: str, events: list[dict[str, Any]]) -> None:
        """Apply each event as one single-document write (upsert or delete)."""
        with translate_errors(self.where):
            for event in events:
                op = event["op"]
                if op == "checkpoint":
                    key = {"run_name": run, "iteration": event["iteration"]}
                    self._index.replace_one(key, {**key, "meta": event["meta"]}, upsert=True)
                elif op == "remove":
                    self._index.delete_one({"run_name": run, "iteration": event["iteration"]})
                elif op == "scores":
                    key = {"run_name": run, "iteration": event["iteration"], "dataset": event["dataset"]}
                    update = {f"scores.{c}": v for c, v in event["scores"].items()}
                    update.update({f"higher_is_better.{c}": h for c, h in event["higher_is_better"].items()})
                    self._scores.update_one(key, {"$set": update}, upsert=True)
                elif op == "pin":
                    key = {"run_name": run, "dataset": event["dataset"], "criterion": event["criterion"]}
                    self._pins.replace_one(key, {**key, "iteration": event["iteration"]}, upsert=True)
                elif op == "unpin":
                    key = {"run_name": run, "dataset": event["dataset"], "criterion": event["criterion"]}
                    self._pins.delete_one(key)
                elif op == "damaged":
                    key = {"run_name": run, "iteration": event["iteration"]}
                    self._index.update_one(key, {"$set": {"damaged": event["problem"]}})
                else:
                    raise ValueError(f"unknown index event {op!r}")
            self._refresh_bests(run)

    def forget_run(self, run: str) -> None:
        """Delete the run's checkpoint entries, scores, pins and summary."""
        with translate_errors(self.where):
            for collection in (self._index, self._scores, self._pins):
                collection.delete_many({"run_name": run})
            field = f"entries.{_field(run)}"
            self._summary.update_many(
                {"bucket": _bucket(run), field: {"$exists": True}}, {"$unset": {field: ""}}
            )

    # ------------------------------------------------------------------ across runs

    def _refresh_bests(self, run: str) -> None:
        """Rewrite the run's entries in the summary from its index as it is now (after this
        writer's events): one `$set` per key it has, one `$unset` where it has no best any more."""
        bests = self.compute_bests(run)
        bucket, field = _bucket(run), f"entries.{_field(run)}"
        with translate_errors(self.where):
            for key, best in bests.items():
                self._summary.update_one({"key": key, "bucket": bucket}, {"$set": {field: best}}, upsert=True)
            self._summary.update_many(
                {"bucket": bucket, "key": {"$nin": list(bests)}, field: {"$exists": True}},
                {"$unset": {field: ""}},
            )

    def run_names(self) -> list[str]:
        """Runs with checkpoints, scores or pins."""
        with translate_errors(self.where):
            names: set[str] = set()
            for collection in (self._index, self._scores, self._pins):
                names.update(n for n in collection.distinct("run_name") if isinstance(n, str))
        return sorted(names)

    def run_bests(self, runs: Iterable[str] | None = None) -> dict[str, dict[str, list]]:
        """Each run's bests from the `weights_bests` summary."""
        wanted = None if runs is None else set(runs)
        query: dict[str, Any] = (
            {} if wanted is None else {"bucket": {"$in": sorted({_bucket(r) for r in wanted})}}
        )
        out: dict[str, dict[str, list]] = {}
        with translate_errors(self.where):
            for doc in self._summary.find(query, projection={"_id": False}):
                for encoded, best in (doc.get("entries") or {}).items():
                    name = _unfield(encoded)
                    if wanted is None or name in wanted:
                        out.setdefault(name, {})[doc["key"]] = best
        return out

    def leaderboard(
        self,
        criterion: str,
        runs: Iterable[Any] | None = None,
        dataset: str | None = None,
        *,
        top: int | None = None,
    ) -> list[LeaderboardEntry]:
        """As `WeightsStore.leaderboard`, reading only the summary documents of one key."""
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name")
        names = None if runs is None else {run_name(r) for r in runs}
        query: dict[str, Any] = {"key": f"{criterion}/{dataset or ''}"}
        if names is not None:
            query["bucket"] = {"$in": sorted({_bucket(n) for n in names})}
        found = []
        with translate_errors(self.where):
            for doc in self._summary.find(query, projection={"_id": False, "entries": True}):
                for encoded, best in (doc.get("entries") or {}).items():
                    name = _unfield(encoded)
                    if names is None or name in names:
                        found.append((name, best))
        higher = self.direction(criterion, None if names is None else sorted(names))
        return rank_entries(found, higher, top)


_BUCKETS = 64


def _bucket(run: str) -> int:
    """The summary bucket of a run: stable across processes and machines."""
    return zlib.crc32(run.encode()) % _BUCKETS


def _field(run: str) -> str:
    """A run name as a MongoDB field name: `%`, `.` and `$` escaped."""
    return run.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def _unfield(field: str) -> str:
    return field.replace("%24", "$").replace("%2E", ".").replace("%25", "%")
