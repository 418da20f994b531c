"""GridFSWeightsStore: checkpoints in MongoDB GridFS, index and scores in small collections.

- blobs: GridFS bucket `weights` (`weights.files`, `weights.chunks`), filename `<run>/<blob>`.
  GridFS writes the chunks first and the file document last, so a blob is whole or absent.
- `weights_index`: one document per checkpoint, `{run_name, iteration, meta}`, written after its
  blobs: this document is what makes a checkpoint visible.
- `validation_scores`: one document per `{run_name, iteration, dataset}` (DaCapo's collection),
  with `scores` and `higher_is_better` mappings; new criteria are merged in with `$set`.
- `weights_pins`: one document per `{run_name, dataset, criterion}` pinned by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any

import gridfs
from pymongo.errors import OperationFailure

from ..mongo import connect, describe, translate_errors
from .base import BlobNotFoundError, WeightsStore
from .index import RunIndex

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
        self._scores = self.db["validation_scores"]
        self._pins = self.db["weights_pins"]
        with translate_errors(self.where):
            for collection, keys in [
                (self._index, ["run_name", "iteration"]),
                (self._scores, ["run_name", "iteration", "dataset"]),
                (self._pins, ["run_name", "dataset", "criterion"]),
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
        return self.read_indexes([run]).get(run) or RunIndex()

    def read_indexes(self, runs: Iterable[str] | None = None) -> dict[str, RunIndex]:
        """Indexes of `runs` (None: every run with a document here), in one query per collection."""
        query: dict[str, Any] = {} if runs is None else {"run_name": {"$in": list(runs)}}
        events: dict[str, list[dict[str, Any]]] = {}
        with translate_errors(self.where):
            for doc in self._index.find(query, projection={"_id": False}):
                events.setdefault(doc.get("run_name"), []).append(
                    {"op": "checkpoint", "iteration": doc.get("iteration"), "meta": doc.get("meta")}
                )
            for doc in self._scores.find(query, projection={"_id": False}):
                events.setdefault(doc.get("run_name"), []).append(
                    {
                        "op": "scores",
                        "iteration": doc.get("iteration"),
                        "dataset": doc.get("dataset"),
                        "scores": doc.get("scores"),
                        "higher_is_better": doc.get("higher_is_better"),
                    }
                )
            for doc in self._pins.find(query, projection={"_id": False}):
                events.setdefault(doc.get("run_name"), []).append(
                    {
                        "op": "pin",
                        "dataset": doc.get("dataset"),
                        "criterion": doc.get("criterion"),
                        "iteration": doc.get("iteration"),
                    }
                )
        found = {run: RunIndex().with_events(evs) for run, evs in events.items() if isinstance(run, str)}
        if runs is not None:
            found = {run: found.get(run) or RunIndex() for run in runs}
        return found

    def changes_since(self, token: Any, runs: Collection[str]) -> tuple[Any, set[str] | None]:
        """Checkpoints and scores by (count, newest _id): new documents name their runs; pins whole.

        Pins are few, so they are read whole and compared (a pin moved in place shows). A checkpoint
        replaced in place, or a score of an already scored iteration and dataset updated with
        `$set`, keeps its _id: callers read everything again now and then to see those.
        """
        collections = (self._index, self._scores)
        with translate_errors(self.where):
            counts = tuple(_count_and_newest(c) for c in collections)
            pins: dict[str, tuple] = {}
            for doc in self._pins.find({}, projection={"_id": False}):
                run = doc.get("run_name")
                if isinstance(run, str):
                    pins[run] = (
                        *pins.get(run, ()),
                        (doc.get("dataset"), doc.get("criterion"), doc.get("iteration")),
                    )
            pins = {run: tuple(sorted(p, key=repr)) for run, p in pins.items()}
            now = (counts, pins)
            if not isinstance(token, tuple) or len(token) != 2 or len(token[0]) != len(counts):
                return now, None
            old_counts, old_pins = token
            changed = {run for run in set(pins) | set(old_pins) if pins.get(run) != old_pins.get(run)}
            for collection, (count, newest), (old_count, old_newest) in zip(
                collections, counts, old_counts, strict=True
            ):
                if (count, newest) == (old_count, old_newest):
                    continue
                if count < old_count or old_newest is None:
                    return now, None
                added = collection.find({"_id": {"$gt": old_newest}}, projection={"run_name": True})
                found = {d.get("run_name") for d in added}
                if len(found) == 0 and count != old_count:
                    return now, None
                changed |= {r for r in found if isinstance(r, str)}
        return now, changed

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
                else:
                    raise ValueError(f"unknown index event {op!r}")


def _count_and_newest(collection: Any) -> tuple[int, Any]:
    newest = collection.find_one({}, projection={"_id": True}, sort=[("_id", -1)])
    return collection.estimated_document_count(), None if newest is None else newest["_id"]
