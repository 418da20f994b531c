"""ConfigStore: the typed registry API, written once over a backend's document primitives."""

from __future__ import annotations

import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ..checksums import open_record, seal_record
from ..configs import RunConfig
from ..conversion import converter
from ..errors import (
    AmbiguousNameError,
    ConfigInUseError,
    ConfigNotFoundError,
    ConfigValidationError,
    DuplicateNameError,
    InvalidNameError,
)
from ..fsutil import naming
from ..names import check_name, name_problem, run_name_problem
from ..weights.base import Leftover, gc_cutoff
from .documents import (
    KIND_CLASSES,
    KINDS,
    META_KEY,
    PART_OF,
    RUN_PARTS,
    DocumentMetadata,
    check_kind,
    config_part,
    content_hash,
    diff_documents,
    format_differences,
    kind_of,
    new_metadata,
    with_tuples_of,
)

log = logging.getLogger(__name__)

#: retrieve_run_config_names keyword -> the run document field it filters on.
RUN_FILTERS = {
    "task_names": "task_config.name",
    "datasplit_names": "datasplit_config.name",
    "architecture_names": "architecture_config.name",
    "trainer_names": "trainer_config.name",
}


class ConfigStore(ABC):
    """A registry of DaCapo configs, one collection per kind.

    Backends implement primitives over plain documents and over each document's metadata
    (kept beside the documents, never inside them, so DaCapo's comparisons on re-store hold);
    everything typed (converting, verifying, comparing, duplicate and in-use errors, the
    per-kind DaCapo methods) is here.
    """

    #: Whether names may hold '/': only where a name is never part of a path (MongoDB).
    slash_in_names: bool = False

    # -- the primitives a backend implements ---------------------------------------------

    @abstractmethod
    def _insert(self, kind: str, name: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Store `doc` under `name` unless the name exists, atomically; return the existing doc if so."""

    @abstractmethod
    def _find(self, kind: str, name: str) -> dict[str, Any] | None:
        """The stored document, or None."""

    @abstractmethod
    def _names(self, kind: str, where: Mapping[str, list[str]] | None = None) -> list[str]:
        """Sorted names; `where` maps a dotted field to the values it may take."""

    @abstractmethod
    def _delete(self, kind: str, name: str) -> bool:
        """Remove the document; False if there was none."""

    @abstractmethod
    def _documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        """Every (name, document) of a kind; an unreadable one comes as its exception."""

    def _find_all(self, kind: str, name: str) -> list[dict[str, Any]]:
        """Every document stored under `name`: more than one only for DaCapo's run repetitions."""
        doc = self._find(kind, name)
        return [] if doc is None else [doc]

    @abstractmethod
    def _get_meta(self, kind: str, name: str) -> dict[str, Any] | None:
        """The metadata recorded for a document, or None (DaCapo-written documents have none)."""

    @abstractmethod
    def _all_meta(self, kind: str) -> dict[str, dict[str, Any]]:
        """name -> metadata, for every document of a kind that has some."""

    @abstractmethod
    def _put_meta(self, kind: str, name: str, meta: dict[str, Any]) -> None:
        """Record (or replace) a document's metadata."""

    @abstractmethod
    def _delete_meta(self, kind: str, name: str) -> None:
        """Forget a document's metadata; nothing if there is none."""

    def _claim_meta(self, kind: str, name: str, meta: dict[str, Any]) -> bool:
        """Record `meta` unless the name has metadata already; True if it was recorded.

        What `put_document` writes before the document, so that a document of ours never lands
        without its metadata. Backends make it atomic (create-if-absent); this default is not.
        """
        if self._get_meta(kind, name) is not None:
            return False
        self._put_meta(kind, name, meta)
        return True

    def _unclaim_meta(self, kind: str, name: str, meta: dict[str, Any]) -> None:
        """Forget the metadata if it is still `meta` (a claim for a document that did not land)."""
        if self._get_meta(kind, name) == seal_record(meta):
            self._delete_meta(kind, name)

    @abstractmethod
    def describe(self) -> str:
        """Where this store is, for messages (never with a password)."""

    def close(self) -> None:  # noqa: B027 -- backends with resources override it
        """Release what the store holds."""

    def __enter__(self) -> ConfigStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- documents: what the CLI works on, no config class needed --------------------------

    #: Run names this backend can't hold (the files layout keeps folders of these names beside
    #: the run folders).
    reserved_run_names: frozenset[str] = frozenset()

    def _check_name(self, name: object, what: str = "name", kind: str | None = None) -> str:
        """`name` if it is a valid name of a `kind` document here: '/' only where names are never
        paths and never in a run's name (a run's name is a folder of its checkpoints on every
        backend), and no name the layout reserves."""
        name = check_name(name, what, slash_ok=self.slash_in_names or kind == "runs")
        if kind == "runs":
            problem = run_name_problem(name, self.reserved_run_names)
            if problem is not None:
                raise InvalidNameError(f"invalid run name {name!r}: {problem}")
        return name

    def name_problem(self, kind: str, name: str) -> str | None:
        """Why `name` can't name a `kind` document here, or None (what `check` reports)."""
        problem = name_problem(name, slash_ok=self.slash_in_names and kind != "runs")
        if problem is None and kind == "runs":
            problem = run_name_problem(name, self.reserved_run_names)
        return problem

    def _find_or_raise(self, kind: str, name: str, repetition: int | None = None) -> dict[str, Any]:
        check_kind(kind)
        self._check_name(name, kind=kind)
        if repetition is not None and (kind != "runs" or type(repetition) is not int):
            raise TypeError(f"repetition must be an int, for runs only; got {repetition!r} for {kind}")
        if kind == "runs":
            return self._pick(kind, name, self._find_all(kind, name), repetition)
        doc = self._find(kind, name)
        if doc is None:
            raise ConfigNotFoundError(f"no {kind[:-1]} config named {name!r} in {self.describe()}")
        return doc

    def _pick(
        self, kind: str, name: str, docs: list[dict[str, Any]], repetition: int | None
    ) -> dict[str, Any]:
        """The one document of `docs` (all stored under `name`), or the error get_document raises."""
        if repetition is not None:
            docs = [d for d in docs if d.get("repetition") == repetition]
        if len(docs) > 1:
            reps = sorted(d.get("repetition") for d in docs)
            raise AmbiguousNameError(
                f"{len(docs)} runs are named {name!r} in {self.describe()} (DaCapo repetitions "
                f"{', '.join(map(str, reps))}); choose one with repetition=",
                reps,
            )
        if not docs:
            what = f" with repetition {repetition}" if repetition is not None else ""
            raise ConfigNotFoundError(f"no {kind[:-1]} config named {name!r}{what} in {self.describe()}")
        return docs[0]

    def get_document(self, kind: str, name: str, *, repetition: int | None = None) -> dict[str, Any]:
        """The stored config document (without storage keys); ConfigNotFoundError if absent.

        Runs that share a name (DaCapo's repetitions) raise AmbiguousNameError unless
        `repetition` picks one.
        """
        return config_part(self._find_or_raise(kind, name, repetition))

    def get_documents(self, kind: str, names: Iterable[str]) -> list[dict[str, Any]]:
        """`get_document` of each name, in order, read together (one query on MongoDB).

        The first name that is missing or ambiguous raises what `get_document` raises for it.
        """
        check_kind(kind)
        names = [self._check_name(name, kind=kind) for name in names]
        found = self._find_many(kind, names)
        return [config_part(self._pick(kind, name, found.get(name, []), None)) for name in names]

    def _find_many(self, kind: str, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        """name -> every document stored under it (see `_find_all`); backends may read them at once."""
        return {name: self._find_all(kind, name) for name in names}

    def put_document(
        self, kind: str, doc: Mapping[str, Any], *, metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Store a config document; True if written, False if an equal one was there.

        A different document under the same name raises DuplicateNameError naming the
        fields that differ. `metadata` keeps the original author when copying stores (an
        empty mapping: the document has none, as DaCapo's own); a document carrying
        `__dacapo_store__` (an exported one) gives its metadata that way. Without either,
        the metadata is new (this user, now). The document is stored without it; the
        metadata goes beside it.
        """
        return self._put(kind, doc, metadata, None)

    def _put(
        self, kind: str, doc: Mapping[str, Any], metadata: Mapping[str, Any] | None, part_of: str | None
    ) -> bool:
        """`put_document`; `part_of` names the run a new part is stored for (see `gc`)."""
        check_kind(kind)
        if not isinstance(doc, Mapping):
            raise ConfigValidationError(f"a {kind} document must be a mapping, got {type(doc).__name__}")
        embedded = doc.get(META_KEY)
        config = self._with_tuples(kind, config_part(doc))
        name = self._check_name(config.get("name"), f"{kind[:-1]} name", kind)
        # an equal document stored already is a no-op, before anything is written. DaCapo's
        # MongoDB index allows one run name per repetition; ours, one name per run.
        for existing in self._find_all(kind, name):
            self._raise_if_different(kind, name, existing, config)
            if part_of is None and kind != "runs":
                self._adopt(kind, name, config)
            return False
        if metadata is not None:
            given: Mapping[str, Any] | None = metadata
        elif isinstance(embedded, Mapping):
            given = embedded
        else:
            given = new_metadata(config)
        # An empty mapping carries "no metadata" (a DaCapo-written document being copied). A copy
        # never carries `part_of`: it is about the run this very store was writing.
        meta = {k: v for k, v in given.items() if k != PART_OF} if given else None
        if meta:
            meta["content_hash"] = content_hash(config)
            if part_of is not None:
                meta[PART_OF] = part_of
        # The metadata lands first, the document after it: a document of ours is never without
        # its metadata (metadata without a document, of a store cut short, is a leftover for gc).
        # (should the document not land, the claim stays: harmless, and gc's after an hour)
        try:
            claimed = bool(meta) and self._claim_meta(kind, name, meta)
            existing = self._insert(kind, name, config)
        except OSError as exc:
            raise naming(exc, f"storing {kind}/{name}", self.describe()) from exc
        if existing is None:
            if meta and not claimed:  # the name had metadata left by an earlier document
                self._put_meta(kind, name, meta)
            log.debug("stored %s/%s in %s", kind, name, self.describe())
            return True
        if claimed:  # an equal or other document landed meanwhile: its metadata, if any, is not ours
            self._unclaim_meta(kind, name, meta)
        self._raise_if_different(kind, name, existing, config)
        return False

    def _adopt(self, kind: str, name: str, config: Mapping[str, Any]) -> None:
        """A part stored for a run that never landed, stored now on its own: no longer an orphan."""
        meta = self._opened_meta(self._get_meta(kind, name), kind, name)
        if meta and PART_OF in meta and meta.get("content_hash") == content_hash(config):
            self._put_meta(kind, name, {k: v for k, v in meta.items() if k != PART_OF})

    @staticmethod
    def _with_tuples(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        """A document from MongoDB or JSON with DaCapo's tuples back, when its classes are known."""
        try:
            config, _ = converter.structure_lenient(doc, KIND_CLASSES[kind])
        except ConfigValidationError:
            return doc  # a class not installed here, or not a valid config: stored as given
        return with_tuples_of(doc, converter.unstructure(config))

    def check_document(self, kind: str, doc: Mapping[str, Any]) -> bool:
        """Whether `doc` would be written (True) or is already stored equal (False); reads only.

        A different document under its name raises DuplicateNameError, as `put_document` would.
        """
        check_kind(kind)
        config = config_part(doc)
        name = self._check_name(config.get("name"), f"{kind[:-1]} name", kind)
        existing = self._find_all(kind, name)
        for stored in existing:
            self._raise_if_different(kind, name, stored, config)
        return not existing

    def _raise_if_different(self, kind: str, name: str, existing: Mapping[str, Any], given: dict) -> None:
        stored = config_part(existing)
        differences = diff_documents(stored, given)
        if not differences:
            return
        # A DaCapo-written document may omit defaults or write 1 for 1.0: compare as configs.
        try:
            cls = KIND_CLASSES[kind]
            if converter.structure(stored, cls) == converter.structure(given, cls):
                return
        except ConfigValidationError:
            pass
        raise DuplicateNameError(
            f"a different {kind[:-1]} config named {name!r} is already stored in {self.describe()}; "
            f"differences: {format_differences(differences)}",
            differences,
        )

    def names(self, kind: str, **filters: Iterable[str] | None) -> list[str]:
        """Sorted names of a kind; runs also filter by `task_names=`, `architecture_names=`, ..."""
        check_kind(kind)
        where = {}
        for key, values in filters.items():
            if values is None:
                continue
            if kind != "runs" or key not in RUN_FILTERS:
                raise TypeError(f"unknown filter {key!r} for {kind} (runs take {', '.join(RUN_FILTERS)})")
            if isinstance(values, str):
                values = [values]
            where[RUN_FILTERS[key]] = [self._check_name(v, key[:-1]) for v in values]
        # DaCapo's run repetitions may store one name more than once: each is listed once.
        return list(dict.fromkeys(self._names(kind, where or None)))

    def shared_run_names(self) -> dict[str, list[int]]:
        """Run names held by several documents (DaCapo's repetitions) -> their repetitions."""
        names = self._names("runs")
        shared = sorted({a for a, b in itertools.pairwise(names) if a == b})
        return {name: sorted(d.get("repetition") for d in self._find_all("runs", name)) for name in shared}

    def delete(self, kind: str, name: str, *, force: bool = False) -> None:
        """Remove a document; a run other stored runs start from, or a part stored runs use, needs
        `force=True`."""
        check_kind(kind)
        self._check_name(name, kind=kind)
        if not force:
            self.check_deletable(kind, name)
        if kind == "runs":
            self._find_or_raise(kind, name)  # runs sharing a name: refuse to pick one
        parts = self._find(kind, name) if kind == "runs" else None
        if not self._delete(kind, name):
            raise ConfigNotFoundError(f"no {kind[:-1]} config named {name!r} in {self.describe()}")
        self._delete_meta(kind, name)
        # the parts stored for this run stay, as configs of their own (not orphans for gc)
        for field, part_kind in RUN_PARTS.items():
            part = (parts or {}).get(field)
            if isinstance(part, Mapping) and isinstance(part.get("name"), str):
                meta = self._opened_meta(self._get_meta(part_kind, part["name"]), part_kind, part["name"])
                if meta and meta.get(PART_OF) == name:
                    self._put_meta(part_kind, part["name"], {k: v for k, v in meta.items() if k != PART_OF})
        log.info("deleted %s/%s from %s", kind, name, self.describe())

    def check_deletable(self, kind: str, name: str) -> None:
        """ConfigInUseError if stored runs start from this run or use this part."""
        users = self.used_by(kind, name)
        if users:
            how = "is the start of" if kind == "runs" else "is used by"
            raise ConfigInUseError(
                f"{kind[:-1]} {name!r} {how} run(s) {_names_summary(users)}; "
                "delete those first, or force it (force=True, --force)"
            )

    def used_by(self, kind: str, name: str) -> list[str]:
        """The other stored runs that need this config: runs starting from a run, runs using a part."""
        check_kind(kind)
        self._check_name(name, kind=kind)
        if kind == "runs":
            return [run for run, _ in self.starts_from(name) if run != name]
        for key, field in RUN_FILTERS.items():
            if field.split(".")[0] in RUN_PARTS and RUN_PARTS[field.split(".")[0]] == kind:
                return self.names("runs", **{key: [name]})
        return []

    def documents(
        self, kind: str, *, with_metadata: bool = False
    ) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        """Every (name, config document) of a kind, sorted by name; unreadable ones as exceptions.

        `with_metadata=True` adds the document's metadata under `__dacapo_store__` (the
        export format, and what `put_document` takes back), when it has some.
        """
        check_kind(kind)
        metas = (
            {n: self._opened_meta(m, kind, n) for n, m in self._all_meta(kind).items()}
            if with_metadata
            else {}
        )
        for name, doc in sorted(self._documents(kind), key=lambda item: item[0]):
            if isinstance(doc, Exception):
                yield name, doc
                continue
            doc = config_part(doc)
            meta = _current(metas.get(name), doc)
            yield name, ({**doc, META_KEY: meta} if meta else doc)

    def raw_document(self, kind: str, name: str, *, repetition: int | None = None) -> dict[str, Any]:
        """The stored document with its metadata under `__dacapo_store__`, if it has some."""
        doc = config_part(self._find_or_raise(kind, name, repetition))
        meta = _current(self._opened_meta(self._get_meta(kind, name), kind, name), doc)
        return {**doc, META_KEY: meta} if meta else doc

    def metadata(self, kind: str, name: str, *, repetition: int | None = None) -> DocumentMetadata:
        """Who stored the document and when (None for DaCapo's own), and its content hash.

        The hash is the one recorded when it was stored. If the document changed since (a hand
        edit, or DaCapo stored another one under the name), the record is not its author's
        (`created_at`/`created_by` are None) but its hash still differs from the content's,
        which is how `check` finds the change.
        """
        doc = config_part(self._find_or_raise(kind, name, repetition))
        recorded = self._opened_meta(self._get_meta(kind, name), kind, name)
        current = _current(recorded, doc)
        if current is None and recorded and isinstance(recorded.get("content_hash"), str):
            return DocumentMetadata(created_at=None, created_by=None, content_hash=recorded["content_hash"])
        return DocumentMetadata.of(doc, current)

    def _opened_meta(self, raw: Any, kind: str, name: str) -> dict[str, Any] | None:
        """A backend's metadata record, its checksum verified and taken off; None (with a warning)
        if there is none or it is damaged: damaged metadata never names an author."""
        if raw is None:
            return None
        if isinstance(raw, Exception):
            log.warning(
                "metadata of %s/%s in %s is unreadable, ignored: %s", kind, name, self.describe(), raw
            )
            return None
        meta, state = open_record(raw)
        if state == "damaged":
            log.warning("metadata of %s/%s in %s fails its checksum, ignored", kind, name, self.describe())
            return None
        return meta

    def metadata_problems(self, kind: str) -> tuple[list[tuple[str, str]], list[str]]:
        """((name, problem) of every damaged or unreadable metadata record of a kind, names whose
        record has no checksum (written before records had one)): what `check` reports."""
        check_kind(kind)
        problems, unchecked = [], []
        for name, raw in sorted(self._all_meta(kind).items()):
            if isinstance(raw, Exception):
                problems.append((name, f"its metadata can't be read ({raw})"))
                continue
            state = open_record(raw)[1]
            if state == "damaged":
                problems.append((name, "its metadata fails its checksum (damaged: its author is unknown)"))
            elif state == "unchecked":
                unchecked.append(name)
        return problems, unchecked

    # -- leftovers of killed writers ---------------------------------------------------------

    def _partial_leftovers(self, cutoff: float) -> list[Leftover]:
        """Temporary files of killed writers written before `cutoff` (the files backend has some)."""
        return []

    def gc(self, older_than: float | timedelta, *, dry_run: bool = False) -> list[Leftover]:
        """Remove what writers cut short left among the configs, if older than `older_than`.

        That is temporary files (files backend), metadata whose document never landed ("orphan
        metadata"), and parts a run was being stored with ("orphan part": a task, architecture,
        trainer or datasplit stored for a run that is not stored, which no stored run uses).
        Younger ones are left alone: a writer may still be at work. Returns what was removed
        (with dry_run: what would be).
        """
        cutoff = gc_cutoff(older_than)
        found = self._partial_leftovers(cutoff)
        runs: set[str] | None = None
        for kind in KINDS:
            names = set(self._names(kind))
            for name, raw in sorted(self._all_meta(kind).items()):
                meta = None if isinstance(raw, Exception) else open_record(raw)
                if meta is None or meta[1] == "damaged":
                    continue  # damage is for `check` to report, never for gc to take
                created = _timestamp(meta[0].get("created_at"))
                if created is None or created >= cutoff:
                    continue
                if name not in names:
                    found.append(
                        Leftover("orphan metadata", None, f"{kind}/{name}", 0, created, key=(kind, name))
                    )
                elif kind in RUN_PARTS.values() and isinstance(meta[0].get(PART_OF), str):
                    runs = set(self._names("runs")) if runs is None else runs
                    run = meta[0][PART_OF]
                    if run not in runs and not self.used_by(kind, name):
                        found.append(
                            Leftover("orphan part", run, f"{kind}/{name}", 0, created, key=(kind, name))
                        )
        if dry_run:
            return found
        removed = []
        for item in found:
            if item.kind == "orphan part":
                kind, name = item.key
                meta = self._opened_meta(self._get_meta(kind, name), kind, name) or {}
                if meta.get(PART_OF) != item.run or self._find_all("runs", item.run):
                    continue  # its run landed meanwhile, or it was stored on its own
                try:
                    self.delete(kind, name)  # refuses if a run uses it by now
                except (ConfigInUseError, ConfigNotFoundError):
                    continue
            elif item.kind == "orphan metadata":
                kind, name = item.key
                if self._find_all(kind, name):
                    continue  # its document landed meanwhile (a very slow writer)
                self._delete_meta(kind, name)
            else:
                self._remove_partial(item)
            removed.append(item)
        if removed:
            log.info("gc removed %d config leftover(s) from %s", len(removed), self.describe())
        return removed

    def _remove_partial(self, leftover: Leftover) -> None:  # noqa: B027 -- only files have some
        """Delete one leftover `_partial_leftovers` found (absent is fine)."""

    def starts_from(self, run_name: str) -> list[tuple[str, str]]:
        """(run, criterion) of every stored run whose start_config names `run_name`."""
        self._check_name(run_name, "run name", "runs")
        out = []
        for name in self._names("runs", {"start_config.run": [run_name]}):
            doc = self._find("runs", name)
            start = (doc or {}).get("start_config") or {}
            if start.get("run") == run_name:
                out.append((name, str(start.get("criterion"))))
        return out

    # -- typed configs ----------------------------------------------------------------------

    def store(self, config: Any, *, verify: bool = True, metadata: Mapping[str, Any] | None = None) -> bool:
        """Store a config in its kind; a run's sub-configs go into their kinds too.

        Everything is checked (verify, names, duplicates) before anything is written.
        `metadata` (who stored it and when, e.g. from an exported document) is recorded for
        the config itself; its parts get new metadata.
        Returns True if the config was written, False if an equal one was already stored.
        """
        kind = kind_of(config)
        if verify:
            ok, why = config.verify()
            if not ok:
                raise ConfigValidationError(
                    f"{kind[:-1]} config {getattr(config, 'name', '?')!r} failed verify(): {why}"
                )
        doc = converter.unstructure(config)
        _check_round_trip(kind, config, doc)
        plan = [(kind, doc)]
        if kind == "runs":
            plan = [(part_kind, doc[field]) for field, part_kind in RUN_PARTS.items()] + plan
        for part_kind, part in plan:
            self.check_document(part_kind, part)
        run = doc.get("name") if kind == "runs" else None
        written = [
            self._put(part_kind, part, metadata if part is doc else None, run if part is not doc else None)
            for part_kind, part in plan
        ]
        return written[-1]

    def retrieve(self, kind: str, name: str, *, repetition: int | None = None) -> Any:
        """The stored config, structured as DaCapo reads it; ConfigNotFoundError if absent.

        Read leniently (documents of other DaCapo 0.3.x versions): an unknown key is ignored
        and a number that converts without loss does, each with a warning naming the field.
        """
        doc = self.get_document(kind, name, repetition=repetition)
        try:
            config, notes = converter.structure_lenient(doc, KIND_CLASSES[kind])
        except ConfigValidationError as exc:
            raise type(exc)(f"{kind}/{name!r} in {self.describe()}: {exc}", exc.errors) from exc
        for note in notes:
            log.warning("%s/%r in %s: %s", kind, name, self.describe(), note)
        return config

    # -- DaCapo's per-kind methods, generated once below ------------------------------------

    def retrieve_run_config_names(
        self,
        task_names: Iterable[str] | None = None,
        datasplit_names: Iterable[str] | None = None,
        architecture_names: Iterable[str] | None = None,
        trainer_names: Iterable[str] | None = None,
    ) -> list[str]:
        """Names of stored runs, optionally only those using the given parts."""
        return self.names(
            "runs",
            task_names=task_names,
            datasplit_names=datasplit_names,
            architecture_names=architecture_names,
            trainer_names=trainer_names,
        )

    def retrieve_run_config(self, name: str, repetition: int | None = None) -> RunConfig:
        """The stored RunConfig; AmbiguousNameError if DaCapo stored several repetitions
        under this name and `repetition` does not pick one."""
        return self.retrieve("runs", name, repetition=repetition)


def _timestamp(value: object) -> float | None:
    """Seconds since the epoch of a recorded `created_at` (ISO 8601 text), None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _current(meta: Mapping[str, Any] | None, doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """`meta` if it was recorded for this very document (same content hash), else None."""
    if not meta or meta.get("content_hash") != content_hash(doc):
        return None
    return dict(meta)


def _names_summary(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_round_trip(kind: str, config: Any, doc: dict[str, Any]) -> None:
    """Refuse a config whose document would not read back as an equal config (a wrong field type)."""
    name = getattr(config, "name", "?")
    try:
        back = converter.structure(doc, KIND_CLASSES[kind])
    except ConfigValidationError as exc:
        raise ConfigValidationError(
            f"{kind[:-1]} config {name!r} can't be stored, it would not read back: {exc}", exc.errors
        ) from None
    where = _first_difference(config, back, "")
    if where is not None:
        raise ConfigValidationError(
            f"{kind[:-1]} config {name!r} can't be stored: field {where} does not read back equal "
            "(check its type)"
        )


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    """The path of the first field where a config and its read-back differ, or None."""
    if attrs.has(type(a)) and type(a) is type(b):
        for f in attrs.fields(type(a)):
            found = _first_difference(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}".lstrip("."))
            if found is not None:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(a, bool) != isinstance(b, bool) or a != b:
        return path or "<config>"
    return None


def _add_kind_methods(kind: str, singular: str) -> None:
    def store_config(self: ConfigStore, config: Any, *, verify: bool = True) -> bool:
        if kind_of(config) != kind:
            raise TypeError(
                f"store_{singular}_config takes a {KIND_CLASSES[kind].__name__}, got {type(config).__name__}"
            )
        return self.store(config, verify=verify)

    def retrieve_config(self: ConfigStore, name: str) -> Any:
        return self.retrieve(kind, name)

    def retrieve_config_names(self: ConfigStore) -> list[str]:
        return self.names(kind)

    def delete_config(self: ConfigStore, name: str, *, force: bool = False) -> None:
        self.delete(kind, name, force=force)

    methods = {
        f"store_{singular}_config": (store_config, f"Store a {singular} config (see ConfigStore.store)."),
        f"retrieve_{singular}_config": (retrieve_config, f"The stored {singular} config named `name`."),
        f"retrieve_{singular}_config_names": (retrieve_config_names, f"Sorted names of the stored {kind}."),
        f"delete_{singular}_config": (delete_config, f"Delete the {singular} config named `name`."),
    }
    for attr, (fn, doc) in methods.items():
        if attr in ConfigStore.__dict__:
            continue  # written by hand above (runs take filters)
        fn.__name__ = fn.__qualname__ = attr
        fn.__doc__ = doc
        setattr(ConfigStore, attr, fn)


for _kind in KINDS:
    _add_kind_methods(_kind, _kind[:-1])
