"""GridFSWeightsStore: checkpoints in MongoDB GridFS, each run's index in one document.

- blobs: GridFS bucket `weights` (`weights.files`, `weights.chunks`), filename `<run>/<blob>`.
  GridFS writes the chunks first and the file document last, so a blob is whole or absent.
- `weights_runs`: the run's index, one document per run, `_id` the run name:
  `{checkpoints: {"<iteration>": meta}, damaged: {"<iteration>": problem},
  scores: {<dataset>: {"<iteration>": {<criterion>: value}}}, directions: {<criterion>: bool},
  pins: {<dataset, "%" for all>: {<criterion>: iteration}}, updated, writes, digest}` (dataset and
  criterion names with `%`, `.` and `$` escaped). Every write is one single-document update of a few
  paths (`$set`/`$unset`), atomic on the server, so writers of one run (the trainer storing
  checkpoints, a validator storing scores) never lose each other's updates; each sets
  `updated` to the server's clock and adds one to `writes` (two writes in one millisecond),
  which is how readers find what changed. A checkpoint's entry is written after its blobs: it
  is what makes the checkpoint visible. One read gives a run's whole index (a run page, a
  best), and reading every run's index reads one document per run, not one per scored
  iteration (MongoDB's 16 MiB hold about 100,000 scored iterations of 5 criteria).
  A run whose weights are deleted keeps an empty document (its `updated` says so to readers).
  After each write, `digest` holds the run's digest (`digest.py`, as JSON text: one string to
  copy, where a nested document is a field per value) with the `writes` count of the document it
  was computed from, set by an update that matches only while `writes` is still that
  count: a slower writer can never replace a newer digest, and a reader takes it only while the
  counts agree (else it folds the document itself).
- `weights_index`, `weights_scores`, `weights_pins`: the earlier layout of dacapo_store 0.1.0
  (a document per checkpoint, per scored iteration and dataset, per pin). Still read, and
  laid under `weights_runs`; removals and unpins delete there too; nothing new is written
  there.
- `weights_training_stats`: one document per `{run_name, iteration}` with `loss` and `time`.

DaCapo's own collections in the same database (`validation_scores`, `training_stats`, `runs`) are
read in place through `self.dacapo` and never written; DaCapo's checkpoints and best files are
under its runs_base_dir (`dacapo_runs_dir`), as DaCapo keeps them whatever its config store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import gridfs
from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..criteria import direction_conflict
from ..errors import CorruptWeightsError, TrainingStatsConflictError
from ..mongo import connect, describe, release, translate_errors
from ..mongo_indexes import IndexSpec, ensure_indexes
from . import digest as digests
from .backend import BlobNotFoundError, Leftover, WeightsBackend
from .base import WeightsStore
from .digest import RunDigest
from .index import RunIndex, blob_names
from .inputs import InputState, sweep
from .stats import TrainingRows, mongo_stats_last, same_stats

log = logging.getLogger(__name__)

_BUCKET = "weights"
_WRITE_SLICE = 16 * 1024 * 1024

#: Our collections' indexes, and GridFS's own under the names pymongo gives them (another name
#: for the same keys would be refused by the server).
INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("weights_runs", "updated", (("updated", 1),)),
    IndexSpec(
        "weights_training_stats", "run_name_iteration", (("run_name", 1), ("iteration", 1)), unique=True
    ),
    IndexSpec(f"{_BUCKET}.files", "run_name_filename", (("run_name", 1), ("filename", 1))),
    IndexSpec(f"{_BUCKET}.files", "filename_1_uploadDate_1", (("filename", 1), ("uploadDate", 1))),
    IndexSpec(f"{_BUCKET}.chunks", "files_id_1_n_1", (("files_id", 1), ("n", 1)), unique=True),
)


class GridFSBackend(WeightsBackend):
    """The primitives over a MongoDB database (a URI, or a ready `client`): GridFS blobs, one
    index document per run with its digest, training stats documents, update markers."""

    def __init__(
        self,
        db_host: str | None = None,
        db_name: str = "dacapo",
        *,
        client: Any = None,
        timeout: float = 5.0,
        dacapo_runs_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        from ..legacy.registry import DacapoMongo

        self._owns_client = client is None
        self.client, self.db = connect(db_host, db_name, client=client, timeout=timeout)
        self.where = describe(db_host, db_name)
        self._closed = False
        self.dacapo = DacapoMongo(self.db, dacapo_runs_dir, self.where)
        self._fs = gridfs.GridFS(self.db, collection=_BUCKET)
        self._files = self.db[f"{_BUCKET}.files"]
        self._chunks = self.db[f"{_BUCKET}.chunks"]
        self._index = self.db["weights_index"]
        self._scores = self.db["weights_scores"]
        self._pins = self.db["weights_pins"]
        self._runs = self.db["weights_runs"]
        self._stats = self.db["weights_training_stats"]
        with translate_errors(self.where):
            ensure_indexes(self.db, INDEXES, self.where)

    journal_names = ("weights_runs", "weights_training_stats")

    def __repr__(self) -> str:
        return f"GridFSBackend({self.where!r})"

    def close(self) -> None:
        """Give back the client if this backend connected it (closed with its last user)."""
        if self._owns_client and not self._closed:
            self._closed = True
            release(self.client)

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
        """The blob as one bytearray, filled chunk by chunk from `weights.chunks` in order.

        A file document whose chunks are gone when we read them was deleted (or replaced) under
        us: BlobNotFoundError, so the caller looks at the index again. Chunks that are missing,
        out of order or of the wrong size while the file document stays are damage.
        """
        filename = f"{run}/{name}"
        with translate_errors(self.where):
            doc = self._files.find_one({"filename": filename}, sort=[("uploadDate", -1), ("_id", -1)])
            if doc is None:
                raise BlobNotFoundError(f"no blob {name} for run {run} in {self.where}")
            length, chunk_size = int(doc["length"]), int(doc["chunkSize"])
            count = -(-length // chunk_size) if chunk_size > 0 else 0
            buffer = bytearray(length)
            problem = None
            n = 0
            if count == 0 and length:
                problem = f"its chunk size is {chunk_size}"
            cursor = self._chunks.find({"files_id": doc["_id"]}, sort=[("n", 1)])
            for chunk in cursor:
                data = chunk.get("data", b"")
                size = chunk_size if n < count - 1 else length - n * chunk_size
                if chunk.get("n") != n or n >= count:
                    problem = f"chunk #{n} of {count} is missing (found #{chunk.get('n')})"
                    break
                if len(data) != size:
                    problem = f"chunk #{n} has {len(data)} bytes, not {size}"
                    break
                buffer[n * chunk_size : n * chunk_size + size] = data
                n += 1
            cursor.close()
            if problem is None and n != count:
                problem = f"{count - n} of its {count} chunks are missing"
            if problem is not None:
                if self._files.find_one({"_id": doc["_id"]}, projection={"_id": True}) is None:
                    raise BlobNotFoundError(f"blob {name} of run {run} was deleted while it was read")
                raise CorruptWeightsError(
                    f"blob {name} of run {run} in {self.where} is damaged: {problem}; "
                    "store the checkpoint again or remove it"
                )
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

    # ------------------------------------------------------------------ leftovers (gc)

    def list_runs(self) -> list[str]:
        """Runs with GridFS files."""
        with translate_errors(self.where):
            return sorted(r for r in self._files.distinct("run_name") if isinstance(r, str))

    def blob_stats(self, run: str) -> list[tuple[str, int, float]]:
        """Complete GridFS files of the run: name, length, upload time."""
        prefix = f"{run}/"
        projection = {"filename": True, "length": True, "uploadDate": True}
        with translate_errors(self.where):
            docs = list(self._files.find({"run_name": run}, projection=projection))
        return [
            (d["filename"][len(prefix) :], int(d.get("length", 0)), _timestamp(d.get("uploadDate")))
            for d in docs
            if isinstance(d.get("filename"), str) and d["filename"].startswith(prefix)
        ]

    def partial_leftovers(self) -> list[Leftover]:
        """Chunks whose file document does not exist: an upload killed before its last write.

        Their age is that of the file id (an ObjectId made when the upload began); chunks under
        an id of another type have no known age and are reported as written now.
        """
        with translate_errors(self.where):
            ids = set(self._chunks.distinct("files_id")) - set(self._files.distinct("_id"))
            found = []
            for files_id in ids:
                size = count = 0
                for chunk in self._chunks.find({"files_id": files_id}, projection={"data": True}):
                    size += len(chunk.get("data", b""))
                    count += 1
                created = (
                    files_id.generation_time.timestamp() if isinstance(files_id, ObjectId) else time.time()
                )
                name = f"{count} chunk(s) of file {files_id}"
                found.append(Leftover("orphan chunks", None, name, size, created, key=files_id))
        return found

    def remove_leftover(self, leftover: Leftover) -> None:
        """Delete orphan chunks (unless their file document appeared meanwhile), or an unreferenced blob."""
        with translate_errors(self.where):
            if leftover.kind == "unreferenced blob":
                self.delete_blob(leftover.run, leftover.name)
            elif self._files.find_one({"_id": leftover.key}, projection={"_id": True}) is None:
                self._chunks.delete_many({"files_id": leftover.key})

    # ------------------------------------------------------------------ index

    def read_index(self, run: str) -> RunIndex:
        """Checkpoints, scores and pins of the run: its `weights_runs` document (one read)."""
        return self.read_indexes([run]).get(run) or RunIndex()

    def read_indexes(self, runs: Iterable[str] | None = None) -> dict[str, RunIndex]:
        """Indexes of `runs` (None: every run with a document here): one query, plus one per
        collection of the earlier layout."""
        wanted = None if runs is None else list(runs)
        events = self._earlier_layout_events(wanted)
        if wanted is None:
            query: dict[str, Any] = {}
        elif len(wanted) == 1:
            query = {"_id": wanted[0]}
        else:
            query = {"_id": {"$in": wanted}}
        problems: dict[str, list[str]] = {}
        with translate_errors(self.where):
            for doc in self._runs.find(query, projection=_INDEX_ONLY):
                run = doc.get("_id")
                if isinstance(run, str):
                    events.setdefault(run, []).extend(
                        _document_events(run, doc, problems.setdefault(run, []))
                    )
        found = {
            run: RunIndex().with_events(evs).with_problems(problems.get(run, ()))
            for run, evs in events.items()
            if isinstance(run, str)
        }
        if wanted is not None:
            found = {run: found.get(run) or RunIndex() for run in wanted}
        return found

    def _earlier_layout_events(self, runs: list[str] | None) -> dict[Any, list[dict[str, Any]]]:
        """Index events of the runs from the earlier layout's collections (empty in a new database)."""
        query: dict[str, Any] = {} if runs is None else {"run_name": {"$in": runs}}
        events: dict[Any, list[dict[str, Any]]] = {}
        with translate_errors(self.where):
            for doc in self._index.find(query, projection={"_id": False}):
                events.setdefault(doc.get("run_name"), []).append(
                    {"op": "checkpoint", "iteration": doc.get("iteration"), "meta": doc.get("meta")}
                )
                if doc.get("damaged"):
                    events.setdefault(doc.get("run_name"), []).append(
                        {"op": "damaged", "iteration": doc.get("iteration"), "problem": doc["damaged"]}
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
        return events

    def changes_since(
        self, token: Any, runs: Collection[str] = (), *, thorough: bool = False
    ) -> tuple[Any, set[str] | None]:
        """Runs whose data changed since the token, by the documents' own update markers.

        Every write of ours sets its `weights_runs` document's `updated` to the server's clock,
        so an overwrite in place shows like a new score. The query reaches back a few seconds
        before the newest time seen (writes in the same millisecond, the clock of a new primary
        after a failover) and the token keeps the times seen in that window, so a run is named
        again only if its time moved. Collections whose documents are only ever added (our
        training stats, DaCapo's `validation_scores` and `training_stats`, the earlier layout's)
        are watched by their newest `_id`: new documents name their runs. Pins of the earlier
        layout are few and compared whole. DaCapo's checkpoints and best files under its runs
        folder are watched by stat (`inputs.py`), new run folders included. What no marker shows
        (a document DaCapo deletes) shows when the caller asks without a token: a full read.
        """
        added = (
            self._index,
            self._scores,
            self._stats,
            self.db["validation_scores"],
            self.db["training_stats"],
        )
        valid = _valid_token(token) and not thorough  # thorough: read everything again
        newest, recent = (token[0], token[1]) if valid else (None, {})
        with translate_errors(self.where):
            markers = tuple(_newest_id(c) for c in added)
            pins = self._earlier_pins()
            query = {} if newest is None else {"updated": {"$gte": newest - _LOOKBACK}}
            seen: dict[str, tuple[datetime, Any]] = {}
            projection = {"_id": True, "updated": True, "writes": True}
            ids: set[str] = set()
            for doc in self._runs.find(query, projection=projection):
                stamp = doc.get("updated")
                if isinstance(doc.get("_id"), str):
                    ids.add(doc["_id"])
                    if isinstance(stamp, datetime):
                        seen[doc["_id"]] = (stamp, doc.get("writes"))
            changed = {run for run, mark in seen.items() if recent.get(run) != mark}
            newest = max([*(t for t, _ in seen.values()), *([newest] if newest else [])], default=None)
            recent = {} if newest is None else {r: m for r, m in seen.items() if m[0] >= newest - _LOOKBACK}
            files = self._sweep_runs_dir(runs, token[4] if valid else None)
            now = (newest, recent, markers, pins, files)
            if not valid and token is None:
                # a first look: name every run there is (ours, the earlier layout's, DaCapo's)
                names = ids | self._earlier_names()
                if self.dacapo is not None:
                    names |= set(self.dacapo.run_names())
                return now, names | set(runs)
            if not valid:
                return now, None
            old_markers, old_pins, old_files = token[2], token[3], token[4]
            changed |= {run for run in set(pins) | set(old_pins) if pins.get(run) != old_pins.get(run)}
            if files is not None:
                changed |= files.changed(old_files, files.sigs) if old_files is not None else set(files.sigs)
            for collection, marker, old in zip(added, markers, old_markers, strict=True):
                if marker == old:
                    continue
                query = {} if old is None else {"_id": {"$gt": old}}
                changed |= {
                    d.get("run_name")
                    for d in collection.find(query, projection={"run_name": True})
                    if isinstance(d.get("run_name"), str)
                }
        return now, changed

    def _sweep_runs_dir(self, runs: Collection[str], previous: InputState | None) -> InputState | None:
        """Stat signatures of DaCapo's checkpoints and best files under its runs folder, if any."""
        runs_dir = self.dacapo.runs_dir if self.dacapo is not None else None
        if runs_dir is None:
            return None
        previous = previous if isinstance(previous, InputState) else None
        return sweep([str(runs_dir)], None, runs, previous, discover=True)

    def dacapo_runs(self, runs: Iterable[str], token: Any = None) -> set[str]:
        """Runs with DaCapo validation scores, or checkpoints and best files in its runs folder
        (the token's sweep of that folder knows which, where it looked)."""
        runs = list(runs)
        if self.dacapo is None:
            return set()
        scored = self.dacapo.scored_run_names()
        files = token[4] if _valid_token(token) else None
        if files is None or self.dacapo.runs_dir is None:
            return self.dacapo.runs_with_index(runs)
        unknown = [run for run in runs if run not in files.sigs]
        found = {
            run for run in runs if run in scored or (run in files.sigs and not files.without_dacapo(run))
        }
        return found | (self.dacapo.runs_with_index(unknown) if unknown else set())

    def stored_digests(self, runs: Iterable[str]) -> dict[str, RunDigest]:
        """The digests whose `writes` count is their document's (one query for all the runs)."""
        wanted = set(runs)
        out: dict[str, RunDigest] = {}
        if not wanted:
            return out
        # many runs: one pass over the collection (a long `$in` costs more than reading the rest)
        query = {} if len(wanted) > _MANY else {"_id": {"$in": sorted(wanted)}}
        with translate_errors(self.where):
            docs = list(self._runs.find(query, projection={"digest": True, "writes": True}))
        for doc in docs:
            if doc.get("_id") not in wanted:
                continue
            found = doc.get("digest")
            if not isinstance(found, Mapping) or found.get("writes") != doc.get("writes"):
                continue
            try:
                out[doc["_id"]] = digests.from_json(json.loads(found["json"]))
            except (ValueError, KeyError, TypeError):
                continue  # not one this version reads: the document is folded instead
        return out

    def _earlier_pins(self) -> dict[str, tuple]:
        pins: dict[str, tuple] = {}
        for doc in self._pins.find({}, projection={"_id": False}):
            run = doc.get("run_name")
            if isinstance(run, str):
                pins[run] = (
                    *pins.get(run, ()),
                    (doc.get("dataset"), doc.get("criterion"), doc.get("iteration")),
                )
        return {run: tuple(sorted(p, key=repr)) for run, p in pins.items()}

    def read_checkpoint(self, run: str, iteration: int) -> dict[str, Any] | None:
        """One checkpoint's entry, by a single query for that one field."""
        path = f"checkpoints.{iteration}"
        with translate_errors(self.where):
            doc = self._runs.find_one({"_id": run}, projection={path: True})
            meta = ((doc or {}).get("checkpoints") or {}).get(str(iteration))
            if meta is None:
                earlier = self._index.find_one(
                    {"run_name": run, "iteration": iteration}, projection={"_id": False}
                )
                meta = None if earlier is None else earlier.get("meta")
        if meta is None:
            return None
        event = {"op": "checkpoint", "iteration": iteration, "meta": meta}
        return RunIndex().with_events([event]).checkpoints.get(iteration)

    def append_index(self, run: str, events: list[dict[str, Any]]) -> None:
        """Apply each event as one update of the run's document (a few paths, atomic); then set
        the run's digest, which may fail without undoing the events (a digest is derived: a
        reader folds the document itself when the digest is stale or missing)."""
        with translate_errors(self.where):
            for event in events:
                self._apply(run, event)
        self._write_digest(run)

    def _write_digest(self, run: str) -> None:
        """Set the run's digest from its document as read now, only while no write came after that
        read (`writes` unchanged): a later writer sets its own. Best-effort: the write is done."""
        try:
            with translate_errors(self.where):
                doc = self._runs.find_one({"_id": run}, projection={"digest": False, "updated": False})
                if doc is None:
                    return
                problems: list[str] = []
                events = self._earlier_layout_events([run]).get(run, [])
                events += _document_events(run, doc, problems)
                index = RunIndex().with_events(events).with_problems(problems)
                data = json.dumps(digests.to_json(digests.digest_of(index)))
                found = {"writes": doc.get("writes"), "json": data}
                self._runs.update_one({"_id": run, "writes": doc.get("writes")}, {"$set": {"digest": found}})
        except Exception as exc:  # AutoReconnect too: the events are in, the digest is derived
            log.warning("run %s: its digest was not written (%s); readers read its index", run, exc)

    def _apply(self, run: str, event: dict[str, Any]) -> None:
        op = event["op"]
        key = {"_id": run}
        if op == "checkpoint":
            it = event["iteration"]
            self._update(key, {"$set": {f"checkpoints.{it}": event["meta"]}, "$unset": {f"damaged.{it}": ""}})
        elif op == "remove":
            it = event["iteration"]
            self._update(key, {"$unset": {f"checkpoints.{it}": "", f"damaged.{it}": ""}})
            self._index.delete_one({"run_name": run, "iteration": it})
            self._drop_if_empty(run, "checkpoints")
        elif op == "scores":
            it, dataset = event["iteration"], _field(event["dataset"])
            update = {f"scores.{dataset}.{it}.{_field(c)}": v for c, v in event["scores"].items()}
            directions = event["higher_is_better"]
            update.update({f"directions.{_field(c)}": h for c, h in directions.items()})
            # only while each direction is unset or the same: a racing opposite first direction
            # makes the upsert collide with the run's document instead of flipping it
            same = {f"directions.{_field(c)}": {"$in": [h, None]} for c, h in directions.items()}
            for attempt in range(3):
                try:
                    self._update({**key, **same}, {"$set": update})
                    return
                except DuplicateKeyError:
                    conflict = direction_conflict(run, self.read_index(run).directions, [event])
                    if conflict is not None:
                        raise conflict from None
                    if attempt == 2:
                        raise
                    # two first writers of the run's document: the other one's insert won, and
                    # (its filter not being the key alone) the server did not retry ours

        elif op == "pin":
            path = f"pins.{_pin_field(event['dataset'])}.{_field(event['criterion'])}"
            self._update(key, {"$set": {path: event["iteration"]}})
        elif op == "unpin":
            path = f"pins.{_pin_field(event['dataset'])}.{_field(event['criterion'])}"
            self._update(key, {"$unset": {path: ""}})
            self._pins.delete_one(
                {"run_name": run, "dataset": event["dataset"], "criterion": event["criterion"]}
            )
            self._drop_if_empty(run, f"pins.{_pin_field(event['dataset'])}", "pins")
        elif op in ("damaged", "sound"):
            # only on the very checkpoint that was checked (the same blobs), in the same update: a
            # check that raced a re-store never marks the new checkpoint
            it, checked = event["iteration"], event.get("blobs")
            meta = self.read_checkpoint(run, it)
            if meta is None or (checked is not None and blob_names(meta) != checked):
                return
            if op == "damaged":
                change: dict[str, Any] = {"$set": {f"damaged.{it}": event["problem"]}}
            else:
                change = {"$unset": {f"damaged.{it}": ""}}
            same = {f"checkpoints.{it}.blobs.{part}.name": r.get("name") for part, r in meta["blobs"].items()}
            if self._update({**key, **same}, change, upsert=False).matched_count == 0:
                # a checkpoint of the earlier layout (its record in weights_index), as long as no
                # new one is stored in weights_runs: else the upsert collides, and that is that
                with contextlib.suppress(DuplicateKeyError):
                    self._update({**key, f"checkpoints.{it}": {"$exists": False}}, change)
        else:
            raise ValueError(f"unknown index event {op!r}")

    def _update(self, key: dict[str, Any], update: dict[str, Any], *, upsert: bool = True) -> Any:
        update = {**update, "$currentDate": {"updated": True}, "$inc": {"writes": 1}}
        return self._runs.update_one(key, update, upsert=upsert)

    def _drop_if_empty(self, run: str, *paths: str) -> None:
        """Remove maps left empty (so `run_names` can ask `$exists`), each by an update that
        matches only while it is still empty: a writer adding to it meanwhile keeps it."""
        for path in paths:
            self._runs.update_one({"_id": run, path: {}}, {"$unset": {path: ""}})

    def forget_run(self, run: str) -> None:
        """Empty the run's document (it stays, with a new `updated`, so readers see the deletion),
        delete its documents of the earlier layout and its summary entries."""
        with translate_errors(self.where):
            fields = ("checkpoints", "damaged", "scores", "directions", "pins", "digest")
            self._runs.update_one(
                {"_id": run},
                {
                    "$unset": dict.fromkeys(fields, ""),
                    "$currentDate": {"updated": True},
                    "$inc": {"writes": 1},
                },
            )
            for collection in (self._index, self._scores, self._pins):
                collection.delete_many({"run_name": run})

    # ------------------------------------------------------------------ across runs

    def _earlier_names(self) -> set[str]:
        """Runs with documents in the earlier layout's collections."""
        names: set[str] = set()
        with translate_errors(self.where):
            for collection in (self._index, self._scores, self._pins):
                names.update(n for n in collection.distinct("run_name") if isinstance(n, str))
        return names

    def runs_with_stats(self, runs: Collection[str], token: Any = None) -> set[str] | None:
        """The runs with training stats documents, ours or DaCapo's: two `distinct` queries."""
        with translate_errors(self.where):
            found = {n for n in self._stats.distinct("run_name") if isinstance(n, str)}
            found |= {n for n in self.db["training_stats"].distinct("run_name") if isinstance(n, str)}
        return found

    def own_run_names(self) -> list[str]:
        """Runs with checkpoints, scores or pins."""
        with translate_errors(self.where):
            names = self._earlier_names()
            present = {"$or": [{f: {"$exists": True}} for f in ("checkpoints", "scores", "pins")]}
            names.update(d["_id"] for d in self._runs.find(present, projection={"_id": True}))
        return sorted(names)

    def journal_runs(self) -> list[str]:
        """Runs with an index document or training stats of ours."""
        with translate_errors(self.where):
            stats = {r for r in self._stats.distinct("run_name") if isinstance(r, str)}
        return sorted(stats.union(self.own_run_names()))

    # ------------------------------------------------------------------ training stats

    def read_training_stats(self, run: str) -> dict[int, tuple[float, float]]:
        """Our training stats of the run, one indexed query; malformed documents are problems."""
        out = TrainingRows()
        problems = []
        with translate_errors(self.where):
            for doc in self._stats.find({"run_name": run}, projection={"_id": False}):
                try:
                    iteration = doc["iteration"]
                    if type(iteration) is bool or not isinstance(iteration, int) or iteration < 0:
                        raise ValueError
                    out[int(iteration)] = (float(doc["loss"]), float(doc["time"]))
                except (KeyError, TypeError, ValueError):
                    log.warning("skipping a malformed training stats document of run %s: %.100r", run, doc)
                    problems.append(f"document {doc!r:.100}: not an iteration with a loss and a time")
        out.problems = tuple(problems)
        return out

    def index_written(self, run: str) -> float | None:
        """The `updated` marker of the run's `weights_runs` document (every write of ours sets it)."""
        with translate_errors(self.where):
            doc = self._runs.find_one({"_id": run}, projection={"updated": True})
        stamp = doc.get("updated") if doc else None
        if not isinstance(stamp, datetime):
            return None
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()

    def training_stats_written(self, run: str) -> float | None:
        """The ObjectId time of the run's newest stats document, one indexed query."""
        last = self.training_stats_last(run)
        return None if last is None else last[1]

    def training_stats_last(self, run: str) -> tuple[int, float | None] | None:
        """The run's stats document of the highest iteration, one indexed query."""
        with translate_errors(self.where):
            return mongo_stats_last(self._stats, run)

    def append_training_stats(self, run: str, rows: Mapping[int, tuple[float, float]]) -> None:
        """Insert one document per iteration; the unique index turns a race into a comparison.

        All or nothing: when the insert fails (or conflicts), the documents of this batch that did
        land are deleted again, by their `_id`s, before the error is raised. An iteration another
        writer stored with the same values counts as stored.
        """
        docs = [
            {"_id": ObjectId(), "run_name": run, "iteration": it, "loss": loss, "time": time}
            for it, (loss, time) in rows.items()
        ]
        if not docs:
            return
        with translate_errors(self.where):
            try:
                try:
                    self._stats.insert_many(docs, ordered=False)
                except BulkWriteError as exc:
                    if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                        raise
                    stored = self.read_training_stats(run)
                    conflicts = [it for it, row in rows.items() if not same_stats(stored.get(it, row), row)]
                    if conflicts:
                        raise TrainingStatsConflictError(
                            f"run {run} got other training stats at iteration(s) {sorted(conflicts)[:8]} "
                            "meanwhile; nothing was stored"
                        ) from None
            except BaseException:
                self._undo_batch(run, [d["_id"] for d in docs])
                raise

    def _undo_batch(self, run: str, ids: list[Any]) -> None:
        try:
            self._stats.delete_many({"_id": {"$in": ids}})
        except Exception as exc:  # the error that brought us here is the one to raise
            log.warning(
                "run %s: a failed training stats batch may be left in part in %s: %s", run, self.where, exc
            )

    def drop_training_stats(self, run: str) -> None:
        """Delete the run's documents."""
        with translate_errors(self.where):
            self._stats.delete_many({"run_name": run})


class GridFSWeightsStore(WeightsStore):
    """Weights, scores and pins of runs in a MongoDB database (a URI, or a ready `client`): the
    typed API (`WeightsStore`) over a `GridFSBackend`."""

    backend: GridFSBackend

    def __init__(
        self,
        db_host: str | None = None,
        db_name: str = "dacapo",
        *,
        client: Any = None,
        timeout: float = 5.0,
        dacapo_runs_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            GridFSBackend(db_host, db_name, client=client, timeout=timeout, dacapo_runs_dir=dacapo_runs_dir)
        )

    def __repr__(self) -> str:
        return f"GridFSWeightsStore({self.where!r})"

    @property
    def db(self) -> Any:
        """The database."""
        return self.backend.db

    @property
    def client(self) -> Any:
        """The MongoDB client (shared per URI)."""
        return self.backend.client


#: Above this many runs a query reads every run's digest rather than naming them in an `$in`.
_MANY = 200
#: What reading a run's index needs of its document.
_INDEX_ONLY = {"updated": False, "writes": False, "digest": False}


def _field(run: str) -> str:
    """A run name as a MongoDB field name: `%`, `.` and `$` escaped."""
    return run.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def _unfield(field: str) -> str:
    if "%" not in field:  # most names: nothing to undo
        return field
    return field.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def _timestamp(value: Any) -> float:
    """Seconds since the epoch of a BSON date (naive datetimes from pymongo are UTC); now if absent."""
    if not isinstance(value, datetime):
        return time.time()
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


#: How far before the newest `updated` seen a change check reaches back.
_LOOKBACK = timedelta(seconds=5)


def _valid_token(token: Any) -> bool:
    return isinstance(token, tuple) and len(token) == 5 and isinstance(token[2], tuple)


def _pin_field(dataset: str | None) -> str:
    """A pin's dataset as a field name; "%" (never an escaped name) for a pin over all datasets."""
    return "%" if dataset is None else _field(dataset)


def _iteration(key: str) -> int | None:
    return int(key) if key.isascii() and key.isdigit() else None


def _document_events(run: str, doc: Mapping[str, Any], problems: list[str]) -> list[dict[str, Any]]:
    """A `weights_runs` document as index events (checkpoints, damage, scores, pins); what can't
    be read is logged and added to `problems`."""
    events: list[dict[str, Any]] = []

    def mapping(field: str) -> Mapping[str, Any]:
        value = doc.get(field)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            log.warning("run %s: skipping its %s: not a mapping in weights_runs", run, field)
            problems.append(f"{field}: not a mapping")
            return {}
        return value

    def iterations(values: Mapping[str, Any], what: str) -> Iterable[tuple[int, Any]]:
        for key, value in values.items():
            it = _iteration(key)
            if it is None:
                log.warning("run %s: skipping %s %.50r: not an iteration", run, what, key)
                problems.append(f"{what} {key[:50]!r}: not an iteration")
            else:
                yield it, value

    for it, meta in iterations(mapping("checkpoints"), "checkpoint"):
        events.append({"op": "checkpoint", "iteration": it, "meta": meta})
    for it, problem in iterations(mapping("damaged"), "damage record"):
        events.append({"op": "damaged", "iteration": it, "problem": problem})
    directions = {_unfield(c): h for c, h in mapping("directions").items()}
    for dataset, by_iteration in mapping("scores").items():
        if not isinstance(by_iteration, Mapping):
            problems.append(f"scores of dataset {_unfield(dataset)[:50]!r}: not a mapping")
            continue
        for it, values in iterations(by_iteration, "scores of iteration"):
            if not isinstance(values, Mapping):
                problems.append(f"scores of iteration {it} on {_unfield(dataset)[:50]!r}: not a mapping")
            else:
                scores = {_unfield(c): v for c, v in values.items()}
                events.append(
                    {
                        "op": "scores",
                        "iteration": it,
                        "dataset": _unfield(dataset),
                        "scores": scores,
                        "higher_is_better": directions,  # the run's, the same for every iteration
                    }
                )
    for dataset, by_criterion in mapping("pins").items():
        if not isinstance(by_criterion, Mapping):
            problems.append(f"pins of dataset {dataset[:50]!r}: not a mapping")
        else:
            for criterion, it in by_criterion.items():
                events.append(
                    {
                        "op": "pin",
                        "dataset": None if dataset == "%" else _unfield(dataset),
                        "criterion": _unfield(criterion),
                        "iteration": it,
                    }
                )
    return events


def _newest_id(collection: Any) -> Any:
    """The highest `_id` of a collection (the `_id` index answers), None if it is empty."""
    newest = collection.find_one({}, projection={"_id": True}, sort=[("_id", -1)])
    return None if newest is None else newest["_id"]
