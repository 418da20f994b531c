"""The run catalog: one read model of every run, under every face (CLI, API, dashboard).

For each run: its config summary (parts, repetition, start, who stored it), the digest of its
weights data (`weights/digest.py`: our index laid over DaCapo's, every best by the one rule of
`weights/best.py`, checkpoints and their damage), its training-stats extent and a status; a run
whose data can't be read is in it as damaged, with what is wrong. Runs are those of the config
store and of the weights store (ours and DaCapo's), so a run with scores but no config still shows.

The catalog keeps itself current from the stores' change signals only: the config store's
`changes_since` (files: folder and file stats; MongoDB: the newest `_id`) and the weights store's
`DigestTable` (files: every input's stat; MongoDB: the documents' update markers). Only runs whose
inputs changed are read again. Readers take a `CatalogSnapshot`, immutable: a request filters,
sorts, pages and picks its criterion on one version of the registry, however long it takes.

On files the catalog also starts from a saved copy of itself in the per-user cache (`snapshot.py`),
validated against the same signatures: a cache of the catalog, never its authority.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs

from ..cache import cache_file
from ..config_store.documents import META_KEY, DocumentMetadata, config_part
from ..criteria import main_rank
from ..errors import AmbiguousNameError, ConfigNotFoundError, DacapoStoreError, StoreConnectionError
from ..weights.base import WeightsStore
from ..weights.best import direction
from ..weights.digest import RunDigest, shared
from ..weights.leaderboard import LeaderboardEntry, leaderboard_entries
from ..where import Condition, matches
from . import snapshot as snapshots
from .runs import (
    DEFAULT_STALE_AFTER,
    STATUSES,
    Best,
    RunSummary,
    config_fields,
    weights_fields,
)
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
#: Metric columns a runs table shows at most.
MAX_COLUMNS = 12


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
    #: only runs whose document every condition holds on (`dacapo_store.where`)
    where: tuple[Condition, ...] = ()
    #: criteria whose bests the rows carry besides `criterion`'s (the runs table's metric columns)
    columns: tuple[str, ...] = ()

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
        if len(self.columns) > MAX_COLUMNS:
            raise ValueError(f"at most {MAX_COLUMNS} metric columns, got {len(self.columns)}")


class RunEntry:
    """One run in the catalog: its config fields and its digest; the summary row is made from them
    when first asked for (a leaderboard needs only the bests)."""

    __slots__ = ("_summary", "digest", "fields", "name", "scored_at")

    def __init__(
        self,
        name: str,
        fields: Mapping[str, Any] | None,
        digest: RunDigest,
        scored_at: datetime | None = None,
    ) -> None:
        self.name = name
        self.fields = fields
        #: what the entry was built from (the weights side): a new digest means a new entry
        self.digest = digest
        #: when its scores were last written, for a run with nothing else to date it (`needs_date`)
        self.scored_at = scored_at
        self._summary: RunSummary | None = None

    @property
    def bests(self) -> Mapping[tuple[str, str | None], Best]:
        return self.digest.bests

    @property
    def directions(self) -> Mapping[str, bool | None]:
        return self.digest.directions

    @property
    def summary(self) -> RunSummary:
        found = self._summary
        if found is None:
            fields = {**(self.fields if self.fields is not None else _BLANK), "name": self.name}
            fields.pop("document", None)
            weights = weights_fields(self.digest)
            problems = [p for p in (fields.pop("config_problem", None), weights["damage"]) if p]
            weights["damage"] = "; ".join(problems) or None
            if self.scored_at is not None and (weights["updated_at"] or self.scored_at) <= self.scored_at:
                weights["updated_at"] = self.scored_at
            found = self._summary = RunSummary(**fields, **weights)
        return found


def entry_of(
    name: str, fields: Mapping[str, Any] | None, digest: RunDigest, scored_at: datetime | None = None
) -> RunEntry:
    """A run's entry from its config fields (None: no config document) and its digest."""
    return RunEntry(name, fields, digest, scored_at)


def needs_date(digest: RunDigest) -> bool:
    """A run with scores but no checkpoint time and no training stats time (it scores before its
    first checkpoint): only when its scores were written dates it."""
    return bool(digest.criteria) and digest.checkpoint_time is None and digest.stats_written is None


#: The config fields of a run without a config document.
_BLANK = config_fields("", None, None)
_EMPTY = RunDigest()


class CatalogSnapshot:
    """The catalog at one version: every run's entry, and what pages ask of them. Never changes
    once made; what it computes (orderings, facets) is kept on it."""

    def __init__(self, entries: Mapping[str, RunEntry], version: int, stale_after: timedelta) -> None:
        self.entries = entries
        self.version = version
        self.stale_after = stale_after
        self._memo: dict[Any, Any] = {}
        self._memo_lock = threading.Lock()

    def _cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        found = self._memo.get(key)
        if found is None:
            found = compute()
            with self._memo_lock:
                if len(self._memo) > 64:
                    self._memo.clear()
                self._memo[key] = found
        return found

    # -------------------------------------------------------------- one run

    def names(self) -> list[str]:
        return self._cached(("names",), lambda: sorted(self.entries))

    def stored(self) -> frozenset[str]:
        """The names of every run."""
        return self._cached(("stored",), lambda: frozenset(self.entries))

    def summary(self, name: str) -> RunSummary | None:
        entry = self.entries.get(name)
        return entry.summary if entry else None

    def best(self, name: str, criterion: str, dataset: str | None = None) -> Best | None:
        """The run's best by the criterion (`best.choose`), None if it has none."""
        entry = self.entries.get(name)
        return entry.bests.get((criterion, dataset)) if entry else None

    def starts_from(self, name: str) -> list[tuple[str, str]]:
        """(run, criterion) of every run whose start_config names `name`."""
        return self._cached(("children",), self._children).get(name, [])

    def _children(self) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for entry in self.entries.values():
            s = entry.summary
            if s.start_run is not None:
                out.setdefault(s.start_run, []).append((s.name, str(s.start_criterion)))
        return {k: sorted(v) for k, v in out.items()}

    def start_of(self, name: str) -> tuple[str, str] | None:
        """(run, criterion) the run starts from, or None."""
        entry = self.entries.get(name)
        s = entry.summary if entry else None
        return (s.start_run, str(s.start_criterion)) if s and s.start_run is not None else None

    # -------------------------------------------------------------- across runs

    def criteria(self) -> dict[str, list[str]]:
        """Every criterion with the datasets it was scored on, over all runs."""
        return self._cached(("criteria",), self._criteria)

    def _criteria(self) -> dict[str, list[str]]:
        found: dict[str, set[str]] = {}
        for entry in self.entries.values():
            for criterion, dataset in entry.bests:
                found.setdefault(criterion, set())
                if dataset is not None:
                    found[criterion].add(dataset)
        return {c: sorted(d) for c, d in sorted(found.items())}

    def default_criterion(
        self, criterion: str | None, dataset: str | None = None, runs: Iterable[RunEntry] | None = None
    ) -> str | None:
        """The criterion asked for, else the one most of `runs` (default: every run) have a best
        by (on `dataset`, if given): ties go to the main metric (`criteria.main_rank`), then
        the name. Never a criterion none of them has."""
        if criterion is not None:
            return criterion
        if runs is None:
            return self._cached(("default", dataset), lambda: most_common(self.entries.values(), dataset))
        return most_common(runs, dataset)

    def direction(self, criterion: str) -> bool:
        """Which way `criterion` ranks runs (`best.direction`: the table, else the runs' own)."""
        return self._cached(
            ("direction", criterion),
            lambda: direction(criterion, (self.entries[n].directions.get(criterion) for n in self.names())),
        )

    def used(self, kind: str) -> dict[str, list[str]]:
        """The dataset or array configs (`kind`) the runs' documents hold -> the runs holding each:
        what DaCapo's files layout keeps only inside datasplits."""
        return self._cached(("used", kind), lambda: self._used(kind))

    def _used(self, kind: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in self.names():
            for k, used in self.entries[name].summary.uses:
                if k == kind:
                    out.setdefault(used, []).append(name)
        return dict(sorted(out.items()))

    def facets(self) -> dict[str, list[tuple[str, int]]]:
        """The values each part filter can take, with how many runs have each."""
        return self._cached(("facets",), self._facets)

    def _facets(self) -> dict[str, list[tuple[str, int]]]:
        out: dict[str, dict[str, int]] = {f: {} for f in PART_FILTERS}
        for entry in self.entries.values():
            for f in PART_FILTERS:
                value = getattr(entry.summary, f)
                if value is not None:
                    out[f][value] = out[f].get(value, 0) + 1
        return {f: sorted(counts.items()) for f, counts in out.items()}

    def leaderboard(
        self,
        criterion: str,
        dataset: str | None = None,
        *,
        runs: Iterable[str] | None = None,
        parts: Mapping[str, Iterable[str]] | None = None,
        top: int | None = None,
    ) -> list[LeaderboardEntry]:
        """Each run's best by the criterion, ranked (`best.ranked`, as `WeightsStore.leaderboard`);
        `runs` and `parts` (task=, architecture=, ...: any of the values) narrow the runs."""
        chosen = self.entries if runs is None else {n: self.entries[n] for n in runs if n in self.entries}
        wanted = {f: set(v) for f, v in (parts or {}).items() if v}
        key = (criterion, dataset)
        found = []
        for name, entry in chosen.items():
            best = entry.bests.get(key)
            if best is None or any(getattr(entry.summary, f) not in v for f, v in wanted.items()):
                continue
            found.append((name, best))
        return leaderboard_entries(found, self.direction(criterion), top)

    def query(self, q: RunQuery, now: datetime | None = None) -> dict[str, Any]:
        """One page of runs (or leaderboard rows): total after filters, the rows with their best."""
        now = now or datetime.now(timezone.utc)
        # statuses move with the clock: a cached ordering lives for 10 s at most
        bucket = int(now.timestamp() // 10) if (q.status or q.sort == "status") else 0
        selection = attrs.evolve(
            q,
            offset=0,
            limit=1,
            criterion=None,
            columns=(),
            sort="name",
            descending=False,
            with_best_only=False,
        )
        filtered = self._cached(("filtered", selection, bucket), lambda: self._filtered(q, now))
        criterion = q.criterion or (q.columns[0] if q.columns else None)
        columns = q.columns
        if criterion is None:
            columns = self._cached(
                ("default", selection, q.dataset, bucket), lambda: covering(filtered, q.dataset)
            )
            criterion = columns[0] if columns else None
        elif not columns:
            columns = (criterion,)
        key = ("query", attrs.evolve(q, offset=0, limit=1, criterion=criterion, columns=()), bucket)
        ordered = self._cached(key, lambda: self._ordered(filtered, q, criterion, now))
        page = ordered[q.offset : q.offset + q.limit]
        rows = []
        for entry in page:
            row = entry.summary.as_json(now, self.stale_after)
            best = entry.bests.get((criterion, q.dataset)) if criterion else None
            row["best"] = attrs.asdict(best) if best else None
            row["bests"] = {c: _asdict(entry.bests.get((c, q.dataset))) for c in columns}
            rows.append(row)
        return {
            "total": len(ordered),
            "offset": q.offset,
            "limit": q.limit,
            "criterion": criterion,
            "dataset": q.dataset,
            "columns": [{"criterion": c, "higher_is_better": self.direction(c)} for c in columns],
            "rows": rows,
        }

    def _filtered(self, q: RunQuery, now: datetime) -> list[RunEntry]:
        """The runs the query's filters select (its criterion aside), by name."""
        needle = q.name.casefold() if q.name else None
        chosen = []
        by_name = self._cached(("by_name",), lambda: [self.entries[n] for n in self.names()])
        parts = [(f, getattr(q, f)) for f in PART_FILTERS if getattr(q, f)]
        for entry in by_name:
            s = entry.summary
            if any(getattr(s, f) not in values for f, values in parts):
                continue
            if needle is not None and needle not in s.name.casefold():
                continue
            if q.status and s.status(now, self.stale_after) not in q.status:
                continue
            if q.uses is not None and q.uses not in s.uses:
                continue
            if q.where and not matches((entry.fields or _BLANK).get("document"), q.where):
                continue
            chosen.append(entry)
        return chosen

    def _ordered(
        self, filtered: list[RunEntry], q: RunQuery, criterion: str | None, now: datetime
    ) -> list[RunEntry]:
        """The filtered runs in the query's order (with a best by the criterion only, if asked)."""
        if q.with_best_only:
            key = (criterion, q.dataset)
            chosen = [e for e in filtered if criterion is not None and key in e.bests]
        else:
            chosen = list(filtered)
        if q.sort == "name":
            if q.descending:
                chosen.reverse()
            return chosen
        if q.sort == "best":
            return self._by_best(chosen, criterion, q.dataset, q.descending)

        def key(e: RunEntry) -> Any:
            if q.sort == "status":
                return STATUSES.index(e.summary.status(now, self.stale_after))
            return getattr(e.summary, q.sort)

        present = [e for e in chosen if key(e) is not None]
        absent = [e for e in chosen if key(e) is None]
        present.sort(key=key, reverse=q.descending)
        return present + absent

    def _by_best(
        self, chosen: list[RunEntry], criterion: str | None, dataset: str | None, worst_first: bool
    ) -> list[RunEntry]:
        """Best first (the leaderboard's order, `best.ranked`); runs without a best last."""
        if criterion is None:
            return chosen
        by_name = {e.name: e for e in chosen}
        ranked = self.leaderboard(criterion, dataset, runs=by_name)
        order = [by_name[e.run] for e in ranked]
        if worst_first:
            valued = [e for e, r in zip(order, ranked, strict=True) if r.value is not None]
            order = valued[::-1] + order[len(valued) :]
        seen = {e.run for e in ranked}
        return order + [e for e in chosen if e.name not in seen]


class RunCatalog:
    """Every run of a config store (or none) and a weights store, as one read model.

    `snapshot()` gives the current version, after asking the stores what changed at most every
    `recheck` seconds. While that costs less than `budget` seconds it is done before answering
    (a change shows on the next load); where it costs more (100,000 runs) it runs in a background
    thread, at most every five times its cost, and answers come from the version at hand.
    Every `full_every` seconds a thorough check looks at every input anyway (on files, every
    folder listed again; on MongoDB, everything read again), in the background.
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
        persist: bool = True,
    ) -> None:
        """`persist`: on files, start from (and save) the catalog's copy in the per-user cache."""
        self.configs = configs
        self.weights = weights
        self.recheck = recheck
        self.budget = budget
        self.full_every = full_every
        self.stale_after = stale_after
        self.table = weights.digest_table()
        self._config_token: Any = None
        self._config_fields: dict[str, dict] = {}
        self._current = CatalogSnapshot({}, 0, stale_after)
        self._snapshot_file = self._snapshot_path() if persist else None
        self._saved_version = 0
        self._started = False
        # Run documents are kept beside the fields once a `where` search asks for them (the first
        # one reads them all in one pass); until then the catalog holds fields only.
        self._documents_missing = True  # the saved copy keeps fields only
        self._built = False  # a refresh went through: later ones may run in the background
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._saver: threading.Thread | None = None
        self._cost = 0.0  # seconds the last incremental check took
        self._checked = -float("inf")
        self._full_at = -float("inf")

    @property
    def version(self) -> int:
        return self._current.version

    def snapshot(self, *, documents: bool = False) -> CatalogSnapshot:
        """The catalog as it is now (see `refresh`): one immutable version, for one request.
        `documents`: with every run's document, for a `where` search (the first such snapshot
        reads them in one pass; later refreshes keep them current with the fields)."""
        self.refresh()
        if documents and self._documents_missing:
            self._load_documents()
        return self._current

    def _load_documents(self) -> None:
        """Put each run's document beside its fields: one pass, at the first search (a catalog
        that is never searched never holds them, and its saved copy keeps fields only)."""
        with self._refresh_lock:
            if not self._documents_missing:
                return
            fields = self._config_fields
            if self.configs is not None:
                for name, doc in self.configs.documents("runs", ordered=False):
                    found = fields.get(name)
                    if found is not None and "document" not in found and not isinstance(doc, Exception):
                        found["document"] = shared_parts(config_part(doc))
            self._documents_missing = False  # from now on each refresh keeps them

    # Each of these reads one version; to read several things of one version, take `snapshot()`.

    def names(self) -> list[str]:
        return self.snapshot().names()

    def summary(self, name: str) -> RunSummary | None:
        return self.snapshot().summary(name)

    def best(self, name: str, criterion: str, dataset: str | None = None) -> Best | None:
        return self.snapshot().best(name, criterion, dataset)

    def criteria(self) -> dict[str, list[str]]:
        return self.snapshot().criteria()

    def stored(self) -> frozenset[str]:
        return self.snapshot().stored()

    def facets(self) -> dict[str, list[tuple[str, int]]]:
        return self.snapshot().facets()

    def query(self, q: RunQuery, now: datetime | None = None) -> dict[str, Any]:
        return self.snapshot().query(q, now)

    def leaderboard(
        self, criterion: str, dataset: str | None = None, **kwargs: Any
    ) -> list[LeaderboardEntry]:
        return self.snapshot().leaderboard(criterion, dataset, **kwargs)

    # -------------------------------------------------------------- keeping up with the stores

    def refresh(self, force: bool = False) -> None:
        """Bring the catalog up to date with the stores (at most every `recheck` seconds)."""
        since = time.monotonic() - self._checked
        if not force and since < self.recheck:
            return
        full = self._built and time.monotonic() - self._full_at >= self.full_every
        if not force and self._built and (self._cost > self.budget or full):
            if not full and since < 5 * self._cost:
                return  # the check thread gets at most a sixth of the time
            with self._lock:
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(
                        target=self._in_background, name="run-catalog", daemon=True
                    )
                    self._worker.start()
            return
        self._refresh_now(force)

    def flush(self) -> None:
        """Wait until the catalog's saved copy being written (if any) is written."""
        saver = self._saver
        if saver is not None:
            saver.join()

    def _in_background(self) -> None:
        try:
            self._refresh_now()
        except Exception as exc:  # the requests go on with the version at hand; the next check retries
            log.error("run catalog: checking the stores failed: %s", exc, exc_info=True)

    def _refresh_now(self, force: bool = False) -> None:
        with self._refresh_lock:
            if not force and time.monotonic() - self._checked < self.recheck:
                return  # another thread just did it
            first = not self._started
            if first:
                self._started = True
                if self._restore():
                    self._full_at = time.monotonic()  # the snapshot's listings are trusted once
            started = time.monotonic()
            full = not first and (force or started - self._full_at >= self.full_every)
            try:
                self._refresh(full)
                self._built = True
            finally:
                self._checked = time.monotonic()
            if full or (first and self._full_at < 0):
                self._full_at = self._checked  # a first build reads everything: a full check
            elif not first:
                self._cost = self._checked - started
            if first or full:
                self._save()

    def _refresh(self, full: bool) -> None:
        configs_changed = self._refresh_configs(full)
        watch = set(self._config_fields)
        digests = self.table.refresh(watch=watch, full=full)
        old = self._current.entries
        names = watch | set(digests)
        changed = (set(old) ^ names) | configs_changed
        changed |= {n for n in names & set(old) if digests.get(n, _EMPTY) is not old[n].digest}
        changed &= names | set(old)
        if not changed:
            return
        entries = dict(old)
        for name in changed:
            if name in names:
                digest = digests.get(name, _EMPTY)
                entries[name] = entry_of(
                    name, self._config_fields.get(name), digest, self._scored_at(name, digest)
                )
            else:
                entries.pop(name, None)
        self._current = CatalogSnapshot(entries, self._current.version + 1, self.stale_after)
        log.debug("catalog: %d runs, %d changed", len(entries), len(changed))

    def _refresh_configs(self, full: bool) -> set[str]:
        """Read the run documents that changed; the names whose config fields changed."""
        if self.configs is None:
            return set()
        token, changed = self.configs.changes_since(self._config_token, "runs", thorough=full)
        fields = self._config_fields
        if changed is None:
            new = dict(_all_config_fields(self.configs, not self._documents_missing))
            changed = set(new) ^ set(fields) | {n for n in new if new[n] != fields.get(n)}
        elif changed:
            new = dict(fields)
            for name in changed:
                found = _config_fields_of(self.configs, name, not self._documents_missing)
                if found is None:
                    new.pop(name, None)
                else:
                    new[name] = found
        else:
            new = fields
        self._config_fields, self._config_token = new, token
        return set(changed)

    def _scored_at(self, name: str, digest: RunDigest) -> datetime | None:
        """When the run's scores were last written, for a run nothing else dates (`needs_date`)."""
        if not needs_date(digest):
            return None
        try:
            return self.weights.scores_written(name)
        except StoreConnectionError:
            raise
        except (DacapoStoreError, OSError) as exc:
            log.warning("run %s: when its scores were written can't be read: %s", name, exc)
            return None

    # -------------------------------------------------------------- the saved copy (files)

    def _snapshot_path(self) -> Path | None:
        basedir = getattr(self.weights, "basedir", None)
        path = getattr(self.configs, "path", None) if self.configs is not None else None
        if basedir is None or (self.configs is not None and path is None):
            return None  # a database answers what changed without a saved copy
        return cache_file("run-catalog", Path(basedir), also=[Path(path)] if path is not None else [])

    def _snapshot_keys(self) -> tuple[str, str]:
        path = getattr(self.configs, "path", None) if self.configs is not None else None
        return str(Path(path).resolve()) if path is not None else "", str(
            Path(self.weights.basedir).resolve()
        )  # type: ignore[attr-defined]

    def _restore(self) -> bool:
        """Start from the saved copy, if there is a good one: the next check reads only what changed."""
        if self._snapshot_file is None:
            return False
        saved = snapshots.load(self._snapshot_file, *self._snapshot_keys())
        if saved is None:
            return False
        self._config_token, self._config_fields = saved.config_token, saved.config_fields
        self._documents_missing = True
        self.table.restore(saved.weights_token, saved.digests)
        entries = {}
        for name in set(saved.config_fields) | set(saved.digests):
            digest = saved.digests.get(name, _EMPTY)
            entries[name] = entry_of(
                name, saved.config_fields.get(name), digest, self._scored_at(name, digest)
            )
        self._current = CatalogSnapshot(entries, self._current.version + 1, self.stale_after)
        self._saved_version = self._current.version
        log.info("run catalog: %d runs from %s", len(entries), self._snapshot_file)
        return True

    def _save(self, wait: bool = False) -> None:
        """Save the catalog's copy if it changed since it was loaded or saved (best-effort). Taken
        now (the caller holds the refresh lock: fields, digests and tokens of one check), written
        by a thread of its own, so no answer waits for it (a command's process waits for it at
        exit, after printing); `wait`: write it here."""
        if self._snapshot_file is None or self.version == self._saved_version:
            return
        if self._saver is not None and self._saver.is_alive():
            return  # the next check saves what this one would have
        saved = snapshots.Saved(
            configs=self._snapshot_keys()[0],
            weights=self._snapshot_keys()[1],
            config_token=self._config_token,
            config_fields=self._config_fields,
            weights_token=self.table.token,
            digests=self.table.digests,
        )
        version = self.version

        def write() -> None:
            if snapshots.save(self._snapshot_file, saved):  # type: ignore[arg-type]
                self._saved_version = version

        if wait:
            write()
            return
        self._saver = threading.Thread(target=write, name="run-catalog-save")
        self._saver.start()


def _all_config_fields(configs: Any, documents: bool = False) -> Iterable[tuple[str, dict]]:
    """(name, config fields) of every stored run, in one pass over the documents."""
    seen = set()
    for name, doc in configs.documents("runs", with_metadata=True, ordered=False):
        if name in seen:
            continue  # DaCapo's repetitions: the first
        seen.add(name)
        if isinstance(doc, Exception):
            yield name, _unreadable(name, doc)
            continue
        yield name, _fields(configs, name, doc, documents)


def _config_fields_of(configs: Any, name: str, documents: bool = False) -> dict | None:
    """The config fields of one run, None if it is no longer stored."""
    try:
        try:
            raw = configs.raw_document("runs", name)
        except AmbiguousNameError as exc:  # DaCapo's repetitions: the first
            raw = configs.raw_document("runs", name, repetition=min(exc.repetitions))
    except ConfigNotFoundError:
        return None
    except StoreConnectionError:
        raise
    except (DacapoStoreError, ValueError, TypeError, OSError) as exc:
        return _unreadable(name, exc)
    return _fields(configs, name, raw, documents)


def _fields(configs: Any, name: str, raw: Mapping[str, Any], documents: bool = False) -> dict:
    """The run's config fields; `raw` carries its metadata when the store has a current one (the
    store's `documents(with_metadata=True)` and `raw_document` look it up: no second read)."""
    meta = DocumentMetadata.of(raw) if META_KEY in raw else None
    doc = config_part(raw)
    fields = config_fields(name, doc, meta)
    if documents:
        fields["document"] = shared_parts(doc)
    return fields


def shared_parts(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The run document with each nested config part replaced by the one copy of it (runs share
    their task, architecture, trainer and datasplit: 10,000 runs hold a few dozen distinct parts):
    what `where` searches, kept beside the run's fields (never saved with the catalog's copy)."""
    out = dict(doc)
    for field, value in doc.items():
        if isinstance(value, Mapping):
            key = ("part", field, json.dumps(value, sort_keys=True, default=str))
            out[field] = shared(key, lambda value=value: value)
    return out


def _unreadable(name: str, exc: BaseException) -> dict:
    log.warning("run %s: unreadable document: %s", name, exc)
    fields = config_fields(name, None, None)
    fields["config_problem"] = f"its config document can't be read: {exc}"
    return fields


def most_common(runs: Iterable[RunEntry], dataset: str | None = None) -> str | None:
    """The criterion most of the runs have a best by (on `dataset`, or over their datasets); ties
    go to the main metric (`criteria.main_rank`: dice before a dummy's blipp_score), then the name."""
    counts: Counter[str] = Counter()
    for entry in runs:
        if dataset is None:
            counts.update(entry.digest.criteria)
        else:
            counts.update(c for c, d in entry.bests if d == dataset)
    if not counts:
        return None
    return min(counts, key=lambda c: (-counts[c], main_rank(c), c))


#: Metric columns the runs table shows by default, at most.
DEFAULT_COLUMNS = 3


def covering(
    runs: Iterable[RunEntry], dataset: str | None = None, most: int = DEFAULT_COLUMNS
) -> tuple[str, ...]:
    """The default metric columns: the most common criterion (`most_common`), then, while some of
    the runs with scores have a best by none of the columns so far, the most common among those
    (runs of several tasks share no criterion: each gets a column, up to `most`)."""
    left = [e for e in runs if e.digest.criteria]
    out: list[str] = []
    while left and len(out) < most:
        found = most_common(left, dataset)
        if found is None:
            break
        out.append(found)
        left = [e for e in left if (found, dataset) not in e.bests]
    return tuple(out)


def _asdict(best: Best | None) -> dict[str, Any] | None:
    return attrs.asdict(best) if best else None


def leaderboard(
    catalog: RunCatalog | CatalogSnapshot,
    criterion: str,
    dataset: str | None = None,
    *,
    parts: Mapping[str, Iterable[str]] | None = None,
    top: int | None = None,
) -> list[LeaderboardEntry]:
    """The catalog's leaderboard (see `CatalogSnapshot.leaderboard`)."""
    snap = catalog.snapshot() if isinstance(catalog, RunCatalog) else catalog
    return snap.leaderboard(criterion, dataset, parts=parts, top=top)


__all__ = ["MAX_LIMIT", "PART_FILTERS", "SORT_KEYS", "CatalogSnapshot", "RunCatalog", "RunEntry", "RunQuery"]
