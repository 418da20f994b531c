"""RunCatalog: run summaries and bests of every run, kept in memory and refreshed by change signals.

The runs table and the leaderboard must stay fast at 100,000 runs, so they never load every run
document per request. The catalog keeps one small summary per run (and the best of every criterion
and dataset), and on each request asks the stores only what changed: on files the stat of each run
file and of each run's weights journal; on MongoDB the count and newest `_id` of the collections,
then only the new documents. Filtering, sorting and paging happen here, on the summaries.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
from bson import ObjectId

from ..cache import cache_file
from ..config_store import FileConfigStore, MongoConfigStore
from ..config_store.documents import META_KEY, DocumentMetadata, config_part
from ..config_store.files import META_SUFFIX
from ..config_store.mongo import listed_name
from ..errors import DacapoStoreError
from ..mongo import translate_errors
from ..weights.base import WeightsStore
from ..weights.index import RunIndex
from ..weights.inputs import RACY_NS, InputState
from ..weights.scores import known_direction
from . import snapshot
from .runs import (
    DEFAULT_STALE_AFTER,
    STATUSES,
    Best,
    Prefetched,
    RunSummary,
    best_per_run,
    config_fields,
    run_metadata,
    stats_extent,
    weights_fields,
)
from .snapshot import Snapshot
from .uses import NESTED_KINDS

log = logging.getLogger(__name__)

#: Filters of the runs table: the run's parts match exactly (any of several values).
PART_FILTERS = ("task", "architecture", "trainer", "datasplit")
#: Keys the runs table sorts by.
SORT_KEYS = (
    "name",
    "task",
    "architecture",
    "trainer",
    "datasplit",
    "repetition",
    "iterations_trained",
    "latest_checkpoint",
    "best",
    "status",
    "created_by",
    "created_at",
    "updated_at",
)
MAX_LIMIT = 500


@attrs.frozen
class RunQuery:
    """What the runs table (or the leaderboard) shows: filters, sort, best column, page."""

    task: tuple[str, ...] = ()
    architecture: tuple[str, ...] = ()
    trainer: tuple[str, ...] = ()
    datasplit: tuple[str, ...] = ()
    name: str | None = None
    status: tuple[str, ...] = ()
    sort: str = "name"
    descending: bool = False
    criterion: str | None = None
    dataset: str | None = None
    with_best_only: bool = False
    offset: int = 0
    limit: int = 50
    #: only runs whose document holds this (kind, name) dataset or array config
    uses: tuple[str, str] | None = None

    def __attrs_post_init__(self) -> None:
        if self.sort not in SORT_KEYS:
            raise ValueError(f"unknown sort key {self.sort!r}: use one of {', '.join(SORT_KEYS)}")
        bad = [s for s in self.status if s not in STATUSES]
        if bad:
            raise ValueError(f"unknown status {bad[0]!r}: use one of {', '.join(STATUSES)}")
        if type(self.offset) is not int or self.offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {self.offset!r}")
        if type(self.limit) is not int or not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {self.limit!r}")
        if self.uses is not None and (
            type(self.uses) is not tuple or len(self.uses) != 2 or self.uses[0] not in NESTED_KINDS
        ):
            raise ValueError(f"uses must be (kind, name) with a kind of {', '.join(NESTED_KINDS)}")


@attrs.frozen
class _Entry:
    summary: RunSummary
    bests: Mapping[tuple[str, str | None], Best]
    directions: Mapping[str, bool | None]


class _FileRuns:
    """Run documents of a FileConfigStore: changes by each run file's and metadata file's stat."""

    def __init__(self, store: FileConfigStore) -> None:
        self.store = store
        self.folder = store.path / "runs"
        self.meta_folder = store._meta_file("runs", "-").parent
        self.sigs: dict[str, tuple[int, int, int]] = {}
        self.meta: dict[str, tuple[int, int, int] | None] = {}
        self.folder_sig: tuple[int, int] | None = None
        self.meta_folder_sig: tuple[int, int] | None = None

    def poll(self, full: bool) -> tuple[set[str], dict[str, dict | None]]:
        """(every run name, name -> raw document of each new or changed run).

        Run files are created by a link or rename and removed by an unlink, never rewritten in
        place, and metadata files are renamed into place, so unchanged folder mtimes mean nothing
        came, went or changed: two stats, not one per run. A full poll (now and then) stats every
        file anyway; either way only runs whose stat changed are read.
        """
        racy_after = time.time_ns() - RACY_NS
        folder_sig = _folder_sig(self.folder, racy_after)
        meta_folder_sig = _folder_sig(self.meta_folder, racy_after)
        same_runs = folder_sig is not None and _same(self.folder_sig, folder_sig)
        same_meta = _same(self.meta_folder_sig, meta_folder_sig)
        if not full and same_runs and same_meta:
            return set(self.sigs), {}
        current = self.sigs
        if full or not same_runs:
            current = {}
            try:
                with os.scandir(self.folder) as entries:
                    for e in entries:
                        if e.name.endswith(".yaml") and not e.name.startswith("."):
                            st = e.stat()
                            current[e.name[:-5]] = (st.st_mtime_ns, st.st_size, st.st_ino)
            except FileNotFoundError:
                pass
        meta = self.meta
        if full or not same_meta:
            meta = _meta_sigs(self.meta_folder)
        changed = [
            n for n, sig in current.items() if self.sigs.get(n) != sig or self.meta.get(n) != meta.get(n)
        ]
        self.sigs, self.meta = current, {n: meta.get(n) for n in current}
        self.folder_sig, self.meta_folder_sig = folder_sig, meta_folder_sig
        return set(current), {name: _raw(self.store, name) for name in changed}

    def metadata(self, name: str, raw: Mapping[str, Any]) -> DocumentMetadata | None:
        """The raw document carries the run's current metadata, if it has any (no second read)."""
        return DocumentMetadata.of(raw) if META_KEY in raw else None

    def restore(self, snap: Snapshot) -> None:
        self.sigs, self.meta = dict(snap.run_files), dict(snap.meta_files)
        self.folder_sig, self.meta_folder_sig = snap.runs_folder, snap.meta_folder


def _folder_sig(folder: Path, racy_after: int) -> tuple[int, int] | None:
    """(mtime_ns, inode) of a folder; mtime -1 if it changed so recently that it may again unseen."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (-1 if st.st_mtime_ns > racy_after else st.st_mtime_ns, st.st_ino)


def _same(before: tuple[int, int] | None, now: tuple[int, int] | None) -> bool:
    return before == now and (now is None or now[0] != -1)


def _meta_sigs(folder: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.endswith(META_SUFFIX) and not e.name.startswith("."):
                    st = e.stat()
                    out[e.name[: -len(META_SUFFIX)]] = (st.st_mtime_ns, st.st_size, st.st_ino)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return out


class _MongoRuns:
    """Run documents of a MongoConfigStore: changes by the collection's count and newest _id."""

    def __init__(self, store: MongoConfigStore) -> None:
        self.store = store
        self.collection = store.db["runs"]
        self.token: tuple[int, Any] | None = None
        self.names: set[str] = set()

    def poll(self, full: bool) -> tuple[set[str], dict[str, dict | None]]:
        """New documents are those with an `_id` above the newest seen (the `_id` index answers);
        if the count doesn't add up (a deletion, or an `_id` made a little earlier by another
        client), everything is read again."""
        with translate_errors(self.store.describe()):
            count = self.collection.estimated_document_count()
            docs: list[dict] = []
            incremental = not full and self.token is not None and self.token[1] is not None
            if incremental:
                docs = list(self.collection.find({"_id": {"$gt": self.token[1]}}))
                incremental = count == self.token[0] + len(docs)
            if not incremental:
                docs = list(self.collection.find({}))
                self.names = set()
        ids = [d["_id"] for d in docs if isinstance(d.get("_id"), ObjectId)]
        newest = max(ids) if ids else (self.token[1] if incremental and self.token else None)
        self.token = (count, newest)
        # a run DaCapo main stored without a name is listed as the store lists it, "None"
        changed = {
            listed_name(d.get("name")): d for d in docs if isinstance(d.get("name"), (str, type(None)))
        }
        self.names |= set(changed)
        return self.names, changed

    def metadata(self, name: str, raw: Mapping[str, Any]) -> DocumentMetadata | None:
        return run_metadata(self.store, name, raw)


class _AnyRuns:
    """Any other ConfigStore: names each time, documents of new names (stores never overwrite)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.names: set[str] = set()

    def poll(self, full: bool) -> tuple[set[str], dict[str, dict | None]]:
        names = set(self.store.names("runs"))
        new = names if full else names - self.names
        self.names = names
        return names, {name: _raw(self.store, name) for name in new}

    def metadata(self, name: str, raw: Mapping[str, Any]) -> DocumentMetadata | None:
        return run_metadata(self.store, name, raw)


def _raw(store: Any, name: str) -> dict | None:
    try:
        return store.raw_document("runs", name)
    except (DacapoStoreError, ValueError, TypeError) as exc:
        log.warning("run %s: unreadable document: %s", name, exc)
        return None


class RunCatalog:
    """Summaries of every run of a config store and a weights store, cheap to page, filter, sort.

    `recheck` seconds: how often (at most) a request asks the stores for changes; `full_every`:
    how often everything is checked anyway (catches what the signals can't see, such as a
    MongoDB score overwritten in place): on MongoDB by reading everything again; on files by a
    sweep of every input's stat, reading again only the runs whose signatures changed, in the
    background. On files the catalog also starts from a snapshot in the per-user cache
    (`snapshot.py`) and reads only the runs that changed since it was saved.
    """

    def __init__(
        self,
        configs: Any,
        weights: WeightsStore,
        *,
        recheck: float = 1.0,
        budget: float = 0.05,
        full_every: float = 600.0,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
    ) -> None:
        self.configs = configs
        self.weights = weights
        self.recheck = recheck
        self.budget = budget
        self.full_every = full_every
        self.stale_after = stale_after
        if isinstance(configs, FileConfigStore):
            self._runs: Any = _FileRuns(configs)
        elif isinstance(configs, MongoConfigStore):
            self._runs = _MongoRuns(configs)
        else:
            self._runs = _AnyRuns(configs)
        self._entries: dict[str, _Entry] = {}
        self._config_fields: dict[str, dict] = {}
        self._weights_token: Any = None
        # files on both sides: every input of a summary has a stat signature (see _weights_changes)
        self._files = isinstance(configs, FileConfigStore) and hasattr(weights, "input_signatures")
        self._snapshot_file = self._snapshot_path() if self._files else None
        self._saved_version = 0
        self._started = False
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._cost = 0.0  # seconds the last incremental check took
        self._checked = -float("inf")
        self._full_at = -float("inf")
        self.version = 0
        self._views: OrderedDict[Any, Any] = OrderedDict()

    # -------------------------------------------------------------- keeping up with the stores

    def refresh(self, force: bool = False) -> None:
        """Bring the summaries up to date with the stores (at most every `recheck` seconds).

        While asking the stores costs less than `budget` seconds the request waits for the
        answer, so a change shows on the next load. On a registry where it costs more (stat'ing
        100,000 journals) the check runs in a background thread, at most every five times its
        cost, and requests are answered from the summaries at hand. On files the periodic full
        sweep always runs there (after the first check, which may start from the snapshot).
        """
        since = time.monotonic() - self._checked
        if not force and since < self.recheck:
            return
        sweep = self._files and self._started and time.monotonic() - self._full_at >= self.full_every
        if not force and (self._cost > self.budget or sweep):
            if not sweep and since < 5 * self._cost:
                return  # the check thread gets at most a sixth of the time
            with self._lock:
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._refresh_now, name="run-catalog", daemon=True)
                    self._worker.start()
            return
        self._refresh_now(force)

    def _refresh_now(self, force: bool = False) -> None:
        with self._refresh_lock:
            if not force and time.monotonic() - self._checked < self.recheck:
                return  # another thread just did it
            first = not self._started
            if first:
                self._started = True
                self._restore()
            started = time.monotonic()
            full = force or started - self._full_at >= self.full_every
            try:
                self._refresh(full)
            finally:
                self._checked = time.monotonic()
            if full:
                self._full_at = self._checked
            else:
                self._cost = self._checked - started
            if first or full:
                self._save()

    def _refresh(self, full: bool) -> None:
        names, docs = self._runs.poll(full)
        changed = set(docs)
        config_fields_ = dict(self._config_fields)
        for name in docs:
            raw = docs[name]
            doc = config_part(raw) if isinstance(raw, Mapping) else None
            meta = self._runs.metadata(name, raw) if raw is not None else None
            config_fields_[name] = config_fields(name, doc, meta)
        for name in set(config_fields_) - names:
            del config_fields_[name]
            changed.add(name)
        token, moved = self._weights_changes(names, full)
        if moved is None:
            changed |= names
            try:
                indexes = self.weights.read_indexes(None)
            except NotImplementedError:  # a backend that can't list its runs
                indexes = self.weights.read_indexes(sorted(names))
        else:
            changed |= moved & names
            wanted = sorted(changed & names)
            indexes = self.weights.read_indexes(wanted) if wanted else {}
        self._config_fields = config_fields_
        if not changed:
            self._weights_token = token
            return
        view = self._view(indexes, token, changed & names)
        entries = dict(self._entries)
        for name in changed:
            if name not in names:
                entries.pop(name, None)
            else:
                entries[name] = self._entry(name, indexes.get(name) or RunIndex(), view)
        # readers keep the dict they took; the new one replaces it whole
        self._entries = entries
        self._weights_token = token  # only now: the entries read what it signs
        self._views = OrderedDict()
        self.version += 1
        log.debug("catalog: %d runs, %d changed", len(entries), len(changed))

    def _view(self, indexes: Mapping[str, RunIndex], token: Any, runs: set[str]) -> Prefetched:
        """The weights store as the entries read it: the indexes at hand, and on files, DaCapo's
        checkpoints, scores and bests not looked for where the sweep just found none."""
        if not isinstance(token, InputState):
            return Prefetched(self.weights, indexes)
        return Prefetched(
            self.weights, indexes, without_dacapo={run for run in runs if token.without_dacapo(run)}
        )

    def _weights_changes(self, names: set[str], full: bool) -> tuple[Any, set[str] | None]:
        """(token, runs whose weights data may have changed, None: any). On files the token is
        the signature of every input of each run's summary, and a full check stats them all
        (listing every folder again) and names the runs whose signature changed."""
        if not self._files:
            return self.weights.changes_since(None if full else self._weights_token, names)
        previous = self._weights_token if isinstance(self._weights_token, InputState) else None
        state = self.weights.input_signatures(names, None if full else previous)  # type: ignore[attr-defined]
        if previous is None or (full and not state.complete):
            return state, None  # DaCapo's stats in MongoDB: no stat sees them, read everything
        return state, state.changed(previous, names)

    # -------------------------------------------------------------- the snapshot (files)

    def _snapshot_path(self) -> Path:
        return cache_file("run-catalog", self.weights.basedir, also=[self.configs.path])  # type: ignore[attr-defined]

    def _snapshot_keys(self) -> tuple[str, str]:
        return str(self.configs.path.resolve()), str(self.weights.basedir.resolve())  # type: ignore[attr-defined]

    def _restore(self) -> None:
        """Start from the snapshot, if there is a good one: the next check reads only what changed."""
        if self._snapshot_file is None:
            return
        snap = snapshot.load(self._snapshot_file, *self._snapshot_keys())
        if snap is None:
            return
        try:
            fields_of = operator.attrgetter(*_CONFIG_KEYS)
            config_fields_ = {
                name: dict(zip(_CONFIG_KEYS, fields_of(summary), strict=True))
                for name, (summary, _, _) in snap.entries.items()
            }
        except AttributeError as exc:
            log.warning("run catalog snapshot %s ignored and rebuilt: %s", self._snapshot_file, exc)
            return
        self._entries = {name: _Entry(*entry) for name, entry in snap.entries.items()}
        self._config_fields = config_fields_
        self._runs.restore(snap)
        self._weights_token = snap.inputs
        self._full_at = time.monotonic()  # the first check trusts the snapshot's folder listings
        self._views = OrderedDict()
        self.version += 1
        self._saved_version = self.version
        log.info("run catalog: %d runs from the snapshot %s", len(self._entries), self._snapshot_file)

    def _save(self) -> None:
        """Save the snapshot if the summaries changed since it was loaded or saved (best-effort)."""
        state = self._weights_token
        if self._snapshot_file is None or self.version == self._saved_version:
            return
        if not isinstance(state, InputState) or not state.complete:
            return
        snap = Snapshot(
            configs=self._snapshot_keys()[0],
            weights=self._snapshot_keys()[1],
            entries={name: (e.summary, e.bests, e.directions) for name, e in self._entries.items()},
            run_files=self._runs.sigs,
            meta_files=self._runs.meta,
            runs_folder=self._runs.folder_sig,
            meta_folder=self._runs.meta_folder_sig,
            inputs=state,
        )
        if snapshot.save(self._snapshot_file, snap):
            self._saved_version = self.version

    def _entry(self, name: str, index: RunIndex, view: Prefetched) -> _Entry:
        index = view.run_index(name)  # ours over DaCapo's scores and pins, as every best reads it
        legacy = view.legacy_iterations(name)
        trained_until, updated = stats_extent(self.weights, name)  # not every row: a query per source
        fields = weights_fields(index, legacy, trained_until=trained_until, updated_at=updated)
        summary = RunSummary(**self._config_fields[name], **fields)
        bests: dict[tuple[str, str | None], Best] = {}
        if index.scores:
            for criterion, by_dataset in index.scores.items():
                for dataset in [None, *by_dataset]:
                    best = best_per_run(view, [name], criterion, dataset).get(name)
                    if best is not None:
                        bests[(criterion, dataset)] = best
        directions = {c: index.directions.get(c, known_direction(c)) for c in index.scores}
        return _Entry(summary, bests, directions)

    # -------------------------------------------------------------- reading

    def names(self) -> list[str]:
        self.refresh()
        return sorted(self._entries)

    def summary(self, name: str) -> RunSummary | None:
        self.refresh()
        entry = self._entries.get(name)
        return entry.summary if entry else None

    def starts_from(self, name: str) -> list[tuple[str, str]]:
        """(run, criterion) of every run whose start_config names `name` (from memory)."""
        self.refresh()
        children = self._cached(("children",), self._children)
        return children.get(name, [])

    def _children(self) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for entry in self._entries.values():
            s = entry.summary
            if s.start_run is not None:
                out.setdefault(s.start_run, []).append((s.name, str(s.start_criterion)))
        return {k: sorted(v) for k, v in out.items()}

    def start_of(self, name: str) -> tuple[str, str] | None:
        """(run, criterion) the run starts from, or None (from memory)."""
        entry = self._entries.get(name)
        s = entry.summary if entry else None
        return (s.start_run, str(s.start_criterion)) if s and s.start_run is not None else None

    def stored(self) -> frozenset[str]:
        """The names of every run (from memory)."""
        return self._cached(("stored",), lambda: frozenset(self._entries))

    def best(self, name: str, criterion: str, dataset: str | None = None) -> Best | None:
        entry = self._entries.get(name)
        return entry.bests.get((criterion, dataset)) if entry else None

    def criteria(self) -> dict[str, list[str]]:
        """Every criterion with the datasets it was scored on, over all runs."""
        return self._cached(("criteria",), self._criteria)

    def _criteria(self) -> dict[str, list[str]]:
        found: dict[str, set[str]] = {}
        for entry in list(self._entries.values()):
            for criterion, dataset in entry.bests:
                found.setdefault(criterion, set())
                if dataset is not None:
                    found[criterion].add(dataset)
        return {c: sorted(d) for c, d in sorted(found.items())}

    def facets(self) -> dict[str, list[tuple[str, int]]]:
        """The values each part filter can take, with how many runs have each."""
        return self._cached(("facets",), self._facets)

    def _facets(self) -> dict[str, list[tuple[str, int]]]:
        out: dict[str, dict[str, int]] = {f: {} for f in PART_FILTERS}
        for entry in self._entries.values():
            for f in PART_FILTERS:
                value = getattr(entry.summary, f)
                if value is not None:
                    out[f][value] = out[f].get(value, 0) + 1
        return {f: sorted(counts.items()) for f, counts in out.items()}

    def _cached(self, key: Any, compute: Any) -> Any:
        self.refresh()
        views, full_key = self._views, (self.version, *key)
        found = views.get(full_key)
        if found is None:
            found = compute()
            views[full_key] = found
            while len(views) > 64:
                with contextlib.suppress(KeyError):
                    views.popitem(last=False)
        return found

    def default_criterion(self, criterion: str | None) -> str | None:
        """The criterion asked for, else the first one any run has."""
        if criterion is not None:
            return criterion
        known = self.criteria()
        return next(iter(known), None)

    def query(self, q: RunQuery, now: datetime | None = None) -> dict[str, Any]:
        """One page of runs (or leaderboard rows): total after filters, the rows with their best."""
        now = now or datetime.now(timezone.utc)
        criterion = self.default_criterion(q.criterion)
        # statuses move with the clock: a cached ordering lives for 10 s at most
        bucket = int(now.timestamp() // 10) if (q.status or q.sort == "status") else 0
        key = ("query", attrs.evolve(q, offset=0, limit=1, criterion=criterion), bucket)
        ordered = self._cached(key, lambda: self._ordered(q, criterion, now))
        page = ordered[q.offset : q.offset + q.limit]
        rows = []
        for entry in page:
            row = entry.summary.as_json(now, self.stale_after)
            best = entry.bests.get((criterion, q.dataset)) if criterion else None
            row["best"] = attrs.asdict(best) if best else None
            rows.append(row)
        return {
            "total": len(ordered),
            "offset": q.offset,
            "limit": q.limit,
            "criterion": criterion,
            "dataset": q.dataset,
            "rows": rows,
        }

    def _ordered(self, q: RunQuery, criterion: str | None, now: datetime) -> list[_Entry]:
        needle = q.name.casefold() if q.name else None
        chosen = []
        by_name = self._cached(("by_name",), lambda: sorted(self._entries.values(), key=_name_of))
        for entry in by_name:
            s = entry.summary
            if any(values and getattr(s, f) not in values for f, values in self._parts(q)):
                continue
            if needle is not None and needle not in s.name.casefold():
                continue
            if q.status and s.status(now, self.stale_after) not in q.status:
                continue
            if q.uses is not None and q.uses not in s.uses:
                continue
            if q.with_best_only and (criterion is None or (criterion, q.dataset) not in entry.bests):
                continue
            chosen.append(entry)
        if q.sort == "name":
            if q.descending:
                chosen.reverse()
            return chosen
        if q.sort == "best":
            return self._by_best(chosen, criterion, q.dataset, q.descending)

        def key(e: _Entry) -> Any:
            if q.sort == "status":
                return STATUSES.index(e.summary.status(now, self.stale_after))
            return getattr(e.summary, q.sort)

        present = [e for e in chosen if key(e) is not None]
        absent = [e for e in chosen if key(e) is None]
        present.sort(key=key, reverse=q.descending)
        return present + absent

    @staticmethod
    def _parts(q: RunQuery) -> Iterable[tuple[str, tuple[str, ...]]]:
        return ((f, getattr(q, f)) for f in PART_FILTERS)

    @staticmethod
    def _by_best(
        chosen: list[_Entry], criterion: str | None, dataset: str | None, worst_first: bool
    ) -> list[_Entry]:
        """Best first (each run's own direction for the criterion); runs without a value last."""
        if criterion is None:
            return chosen
        ranked, rest = [], []
        for e in chosen:
            best = e.bests.get((criterion, dataset))
            if best is None or best.value is None:
                rest.append(e)
                continue
            higher = e.directions.get(criterion)
            ranked.append((-best.value if higher else best.value, e))
        ranked.sort(key=lambda pair: pair[0], reverse=worst_first)
        return [e for _, e in ranked] + rest


def _name_of(entry: _Entry) -> str:
    return entry.summary.name


#: The summary fields taken from the run document (the rest come from the weights store).
_CONFIG_KEYS = tuple(config_fields("", None, None))
