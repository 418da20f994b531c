"""A DaCapo 0.3 registry, read where DaCapo keeps it: files (`runs_base_dir`) or a MongoDB database.

Both layouts keep checkpoints and best files under `runs_base_dir` (DaCapo's weights store is
always local). Configs and stats live in `configs/` and `stats/` (files) or in DaCapo's
collections (MongoDB). Everything here only reads; nothing is created, locked or indexed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..config_store import yamlio
from ..errors import DacapoStoreError
from ..mongo import translate_errors
from ..weights.index import RunIndex
from ..weights.stats import mongo_stats_last
from .unpickler import load_stats_pickle
from .validation import score_events

log = logging.getLogger(__name__)

#: Config kinds, as DaCapo's collections and `configs/` folders name them.
CONFIG_KINDS = ("runs", "tasks", "architectures", "trainers", "datasplits", "datasets", "arrays")
# folders under <run>/checkpoints/ that are not DaCapo best-file folders
_NOT_BEST = {"iterations", "blobs"}


class DacapoRegistry(ABC):
    """What DaCapo wrote for runs: run documents, validation scores, training stats, checkpoints, bests."""

    where: str = "?"

    def __init__(self, runs_dir: str | os.PathLike[str] | None) -> None:
        self.runs_dir = None if runs_dir is None else Path(runs_dir).expanduser().absolute()
        self._cache: dict[str, tuple[Any, RunIndex]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:  # noqa: B027 -- only a layout with a connection overrides it
        """Release what the registry holds."""

    # ------------------------------------------------------------------ per layout

    @abstractmethod
    def config_documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        """Every (name, document) of a config kind as DaCapo stored it; unreadable ones as exceptions."""

    @abstractmethod
    def config_names(self, kind: str) -> list[str]:
        """Names of a config kind's documents, without reading the documents."""

    @abstractmethod
    def run_document(self, run: str) -> dict[str, Any] | None:
        """The run's config document, or None."""

    @abstractmethod
    def validation_score_documents(self, run: str) -> list[dict[str, Any]]:
        """DaCapo's ValidationIterationScores documents of the run."""

    @abstractmethod
    def training_stats_documents(self, run: str) -> list[dict[str, Any]]:
        """DaCapo's TrainingIterationStats documents of the run."""

    @abstractmethod
    def stats_run_names(self) -> set[str]:
        """Runs with DaCapo stats."""

    @abstractmethod
    def scored_run_names(self) -> set[str]:
        """Runs with DaCapo validation scores."""

    def stats_folder(self) -> str | None:
        """The folder holding DaCapo's `stats/`, where a stat can see changes to them (None: in a
        database)."""
        return None

    def scores_written(self, run: str) -> float | None:
        """When DaCapo last wrote the run's validation scores (seconds since the epoch); None if none."""
        return None

    @abstractmethod
    def training_stats_written(self, run: str) -> float | None:
        """When DaCapo last wrote the run's training stats (seconds since the epoch); None if none."""

    def training_stats_last(self, run: str) -> tuple[int, float | None] | None:
        """(highest iteration, `training_stats_written`) of DaCapo's training stats; None if none."""
        stats = self.training_stats(run)
        return (max(stats), self.training_stats_written(run)) if stats else None

    def _scores_signature(self, run: str) -> Any:
        """Something that changes when the run's DaCapo scores or config change; None: don't cache."""
        return None

    # ------------------------------------------------------------------ shared

    def run_names(self) -> list[str]:
        """Runs with a config, stats or checkpoints in this registry."""
        names = set(self.config_names("runs"))
        names |= self.stats_run_names()
        if self.runs_dir is not None:
            try:
                with os.scandir(self.runs_dir) as entries:
                    names |= {
                        e.name
                        for e in entries
                        if e.is_dir() and (Path(e.path) / "checkpoints" / "iterations").is_dir()
                    }
            except FileNotFoundError:
                pass
        return sorted(names)

    def _checkpoints(self, run: str) -> Path | None:
        return None if self.runs_dir is None else self.runs_dir / run / "checkpoints"

    def runs_with_index(self, runs: Iterable[str]) -> set[str]:
        """Those of `runs` for which DaCapo keeps validation scores, best files or checkpoint files
        (what `index` reads): a listing of the scores, and of each run's `checkpoints/` folder."""
        scored = self.scored_run_names()
        found = set()
        for run in runs:
            if run in scored:
                found.add(run)
                continue
            folder = self._checkpoints(run)
            if folder is not None and _subfolders(folder, with_iterations=True):
                found.add(run)
        return found

    def checkpoint_iterations(self, run: str) -> list[int]:
        """Iterations with a DaCapo checkpoint file (`checkpoints/iterations/<n>`)."""
        folder = self._checkpoints(run)
        if folder is None:
            return []
        try:
            entries = os.scandir(folder / "iterations")
        except (FileNotFoundError, NotADirectoryError):
            return []
        with entries:
            return sorted(
                int(e.name) for e in entries if e.name.isascii() and e.name.isdigit() and e.is_file()
            )

    def checkpoint_path(self, run: str, iteration: int) -> Path | None:
        """DaCapo's checkpoint file of this iteration, if there is one."""
        folder = self._checkpoints(run)
        if folder is None:
            return None
        path = folder / "iterations" / str(iteration)
        return path if path.is_file() else None

    def bests(self, run: str) -> list[dict[str, Any]]:
        """DaCapo's store_best choices as pin events: `checkpoints/<dataset>/<criterion>.json`."""
        folder = self._checkpoints(run)
        if folder is None:
            return []
        pins = []
        for dataset in _subfolders(folder):
            for name, path in _entries(folder / dataset):
                if not name.endswith(".json") or not path.is_file():
                    continue
                try:
                    with open(path, encoding="utf-8") as f:
                        iteration = json.load(f).get("iteration")
                except (OSError, ValueError, AttributeError) as exc:
                    log.warning("skipping DaCapo best file %s: %s", path, exc)
                    continue
                if type(iteration) is not int or iteration < 0:
                    log.warning("skipping DaCapo best file %s: no iteration in it", path)
                    continue
                pins.append(
                    {
                        "op": "pin",
                        "dataset": dataset,
                        "criterion": name[: -len(".json")],
                        "iteration": iteration,
                    }
                )
        return pins

    def score_events(self, run: str) -> list[dict[str, Any]]:
        """The run's DaCapo validation scores as our `scores` events (see `validation.py`)."""
        documents = self.validation_score_documents(run)
        if not documents:
            return []
        return score_events(run, self.run_document(run), documents)

    def index(self, run: str) -> RunIndex:
        """The run's DaCapo scores, bests and checkpoint iterations as a RunIndex (scores cached
        while their files are unchanged)."""
        signature = self._scores_signature(run)
        with self._lock:
            cached = self._cache.get(run)
        if signature is not None and cached is not None and cached[0] == signature:
            scores = cached[1]
        else:
            scores = RunIndex().with_events(self.score_events(run))
            if signature is not None:
                with self._lock:
                    self._cache[run] = (signature, scores)
        pins = self.bests(run)
        index = scores.with_events(pins) if pins else scores
        legacy = self.checkpoint_iterations(run)
        return index.with_legacy(legacy) if legacy else index

    def training_stats(self, run: str) -> dict[int, tuple[float, float]]:
        """DaCapo's training stats of the run: iteration -> (loss, time)."""
        out: dict[int, tuple[float, float]] = {}
        for doc in self.training_stats_documents(run):
            try:
                iteration, loss, time = doc["iteration"], float(doc["loss"]), float(doc["time"])
            except (KeyError, TypeError, ValueError):
                log.warning("run %s: skipping a DaCapo training stats document that does not fit", run)
                continue
            if type(iteration) is int and iteration >= 0:
                out[iteration] = (loss, time)
        return out


def _subfolders(folder: Path, *, with_iterations: bool = False) -> list[str]:
    """Best-file folders under a run's checkpoints/ (not our blobs/; DaCapo's iterations/ only
    `with_iterations`)."""
    skip = {"blobs"} if with_iterations else _NOT_BEST
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.name not in skip and e.name[0] != "." and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _entries(folder: Path) -> list[tuple[str, Path]]:
    try:
        with os.scandir(folder) as entries:
            return sorted((e.name, Path(e.path)) for e in entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


class DacapoFiles(DacapoRegistry):
    """DaCapo's files layout under `runs_base_dir`: configs/, stats/, <run>/checkpoints/."""

    def __init__(self, basedir: str | os.PathLike[str]) -> None:
        super().__init__(basedir)
        assert self.runs_dir is not None
        self.basedir = self.runs_dir
        self.where = f"files:{self.basedir}"

    def config_documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        folder = self.basedir / "configs" / kind
        files = [name for name, _ in _entries(folder) if name.endswith(".yaml") and name[0] != "."]
        for file in files:
            name = file[: -len(".yaml")]
            try:
                doc = self._yaml(folder / file)
            except (OSError, ValueError) as exc:
                yield name, DacapoStoreError(f"{folder / file}: not a readable YAML document ({exc})")
                continue
            yield name, doc

    def config_names(self, kind: str) -> list[str]:
        folder = self.basedir / "configs" / kind
        return [n[: -len(".yaml")] for n, _ in _entries(folder) if n.endswith(".yaml") and n[0] != "."]

    @staticmethod
    def _yaml(path: Path) -> dict[str, Any]:
        import yaml

        try:
            doc = yamlio.load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(str(exc).splitlines()[0]) from None
        if not isinstance(doc, dict):
            raise ValueError(f"expected a mapping, got {type(doc).__name__}")
        return doc

    def run_document(self, run: str) -> dict[str, Any] | None:
        try:
            return self._yaml(self.basedir / "configs" / "runs" / f"{run}.yaml")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("can't read DaCapo run config of %s: %s", run, exc)
            return None

    def _stats(self, kind: str, run: str) -> list[dict[str, Any]]:
        path = self.basedir / "stats" / kind / run
        try:
            data = load_stats_pickle(path)
        except FileNotFoundError:
            return []
        if not isinstance(data, list):
            log.warning("DaCapo stats file %s is not a list; skipped", path)
            return []
        return [d for d in data if isinstance(d, dict)]

    def validation_score_documents(self, run: str) -> list[dict[str, Any]]:
        return self._stats("validation_scores", run)

    def training_stats_documents(self, run: str) -> list[dict[str, Any]]:
        return self._stats("training_stats", run)

    def scores_written(self, run: str) -> float | None:
        """The scores file's mtime: DaCapo rewrites the whole file each time."""
        try:
            return os.stat(self.basedir / "stats" / "validation_scores" / run).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def training_stats_written(self, run: str) -> float | None:
        """The stats file's mtime: DaCapo rewrites the whole file each time."""
        try:
            return os.stat(self.basedir / "stats" / "training_stats" / run).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def stats_run_names(self) -> set[str]:
        return self._stats_names("training_stats") | self._stats_names("validation_scores")

    def scored_run_names(self) -> set[str]:
        return self._stats_names("validation_scores")

    def _stats_names(self, kind: str) -> set[str]:
        try:
            with os.scandir(self.basedir / "stats" / kind) as entries:
                return {e.name for e in entries if e.name[0] != "." and e.is_file()}
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def stats_folder(self) -> str | None:
        return str(self.basedir)

    def _scores_signature(self, run: str) -> Any:
        out = []
        for path in (
            self.basedir / "stats" / "validation_scores" / run,
            self.basedir / "configs" / "runs" / f"{run}.yaml",
        ):
            try:
                st = path.stat()
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)


class DacapoMongo(DacapoRegistry):
    """DaCapo's MongoDB layout: config collections, `validation_scores`, `training_stats`.

    Checkpoints and best files are under `runs_dir` (DaCapo's runs_base_dir), when given.
    """

    def __init__(
        self,
        db: Any = None,
        runs_dir: str | os.PathLike[str] | None = None,
        where: str | None = None,
        *,
        db_host: str | None = None,
        db_name: str = "dacapo",
        timeout: float = 5.0,
    ) -> None:
        super().__init__(runs_dir)
        if db is None and not db_host:
            raise ValueError("give a MongoDB database or a db_host")
        self._db = db
        self._client: Any = None  # the client we connected, if any: released by close()
        self._connect = (db_host, db_name, timeout)
        if where is None:
            from ..mongo import describe

            where = f"mongodb:{db.name}" if db is not None else describe(db_host, db_name)
        self.where = where

    @property
    def db(self) -> Any:
        """The database; given, or connected on first use (so a weights store opens without a server)."""
        if self._db is None:
            from ..mongo import connect

            host, name, timeout = self._connect
            self._client, self._db = connect(host, name, timeout=timeout)
        return self._db

    def close(self) -> None:
        """Give back the client this registry connected (a given database is the caller's)."""
        if self._client is not None:
            from ..mongo import release

            client, self._client, self._db = self._client, None, None
            release(client)

    def config_documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        with translate_errors(self.where):
            docs = list(self.db[kind].find({}, projection={"_id": False}))
        for doc in docs:
            yield str(doc.get("name")), doc

    def config_names(self, kind: str) -> list[str]:
        with translate_errors(self.where):
            docs = self.db[kind].find({}, projection={"name": True, "_id": False})
            return [str(d.get("name")) for d in docs]

    def run_document(self, run: str) -> dict[str, Any] | None:
        # DaCapo indexes runs on (name, repetition) and reads the first match, as we do
        with translate_errors(self.where):
            found = self.db["runs"].find({"name": run}, projection={"_id": False})
            docs = list(found.sort("repetition", 1).limit(1))
        return docs[0] if docs else None

    def validation_score_documents(self, run: str) -> list[dict[str, Any]]:
        return self._find("validation_scores", run)

    def training_stats_documents(self, run: str) -> list[dict[str, Any]]:
        return self._find("training_stats", run)

    def _find(self, collection: str, run: str) -> list[dict[str, Any]]:
        with translate_errors(self.where):
            return list(self.db[collection].find({"run_name": run}, projection={"_id": False}))

    def scores_written(self, run: str) -> float | None:
        """The ObjectId time of the run's newest document in `validation_scores` (its newest iteration)."""
        with translate_errors(self.where):
            last = mongo_stats_last(self.db["validation_scores"], run)
        return None if last is None else last[1]

    def training_stats_written(self, run: str) -> float | None:
        """The ObjectId time of the run's newest document in `training_stats` (index `run_it`)."""
        last = self.training_stats_last(run)
        return None if last is None else last[1]

    def training_stats_last(self, run: str) -> tuple[int, float | None] | None:
        """The run's document of the highest iteration in `training_stats`: one indexed query."""
        with translate_errors(self.where):
            return mongo_stats_last(self.db["training_stats"], run)

    def stats_run_names(self) -> set[str]:
        return self._distinct("training_stats") | self._distinct("validation_scores")

    def scored_run_names(self) -> set[str]:
        return self._distinct("validation_scores")

    def _distinct(self, collection: str) -> set[str]:
        with translate_errors(self.where):
            return {n for n in self.db[collection].distinct("run_name") if isinstance(n, str)}
