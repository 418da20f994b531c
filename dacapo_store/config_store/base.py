"""ConfigStore: the typed registry API, written once over a backend's document primitives."""

from __future__ import annotations

import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from ..checksums import open_record, seal_record
from ..configs import RunConfig
from ..conversion import converter
from ..errors import (
    AmbiguousNameError,
    ConfigInUseError,
    ConfigNotFoundError,
    ConfigValidationError,
    DialectError,
    DuplicateNameError,
    InvalidNameError,
)
from ..fsutil import naming
from ..names import check_name, name_problem, run_name_problem
from ..weights.base import Leftover, gc_cutoff
from ..where import Condition, matches
from ..where import parse_all as parse_where
from .dialects import (
    STASH_KEY,
    DocumentMigration,
    MigrationReport,
    check_dialect,
    describe_changes,
    differences,
    dotted,
    in_dialect,
    other_dialect,
    plan_document,
    same_document,
)
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
    #: The DaCapo dialect the options name (`dacapo_dialect`), or None: found in the documents.
    dialect_option: str | None = None
    #: What DaCapo's re-store compares here: files with == on the YAML (a tuple is not a list),
    #: MongoDB the BSON bytes (key order matters). A migration rewrites only exact documents.
    keeps_tuples: bool = True
    keeps_key_order: bool = False
    #: The order kinds are looked through for DaCapo main documents: those that show it first.
    DIALECT_SCAN_ORDER = ("runs", "trainers", "architectures", "arrays", "datasets", "datasplits", "tasks")

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
    def _replace(self, kind: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        """Put `new` in place of the document `old` stored under `name`, atomically (a reader sees
        one or the other); False, writing nothing, if no document under `name` equals `old` now."""

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

    # -- the DaCapo dialect this registry writes ---------------------------------------------

    def dialect(self) -> str:
        """The DaCapo dialect written here: the option `dacapo_dialect` if set, else "main" if the
        registry holds a DaCapo main document, else "0.3.5". Looked up once per store object."""
        if self.dialect_option is not None:
            return self.dialect_option
        found = getattr(self, "_dialect_found", None)
        if found is None:
            holds_main = any(self._holds_dialect(kind, "main") for kind in self.DIALECT_SCAN_ORDER)
            found = self._dialect_found = "main" if holds_main else "0.3.5"
            log.debug("%s writes DaCapo %s documents (found in its documents)", self.describe(), found)
        return found

    def adopt_dialect(self, dialect: str) -> bool:
        """Write `dialect` from now on unless the options name another or the registry holds a
        document only the other dialect writes (a new registry receiving a copy keeps the
        source's dialect); whether this registry now writes `dialect`."""
        check_dialect(dialect)
        if self.dialect_option is not None or self.dialect() == dialect:
            return self.dialect() == dialect
        if any(self._holds_dialect(kind, other_dialect(dialect)) for kind in self.DIALECT_SCAN_ORDER):
            return False
        self._dialect_found = dialect
        return True

    def _forget_dialect(self) -> None:
        self._dialect_found = None

    def _set_dialect_option(self, dialect: str | None) -> None:
        self.dialect_option = None if dialect is None else check_dialect(dialect)

    def _holds_dialect(self, kind: str, dialect: str) -> bool:
        """Whether a document of `kind` is in `dialect` (by its fields); backends may ask faster."""
        cls = KIND_CLASSES[kind]
        for _, doc in self._documents(kind):
            if isinstance(doc, Exception):
                continue
            try:
                if converter.dialect_of(config_part(doc), cls) == dialect:
                    return True
            except DialectError:
                continue  # fields of both: it shows neither
        return False

    def _in_registry_dialect(self, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        """`doc` as this registry writes it: DaCapo's tuples back (a document from MongoDB or JSON),
        and a document of the other dialect translated, if this one expresses all of it.

        A document whose class isn't installed here, or that isn't a valid config, is kept as
        given. DialectError for a document of the other dialect that this one can't express, or
        one mixing both.
        """
        cls = KIND_CLASSES[kind]
        name = doc.get("name")
        try:
            source = converter.dialect_of(doc, cls)
        except DialectError as exc:
            raise DialectError(
                f"{kind}/{name!r} can't be stored in {self.describe()}: {exc}", exc.errors
            ) from None
        try:
            config, _ = converter.structure_lenient(doc, cls, dialect=source)
        except ConfigValidationError:
            return doc  # a class not installed here, or not a valid config: stored as given
        target = self.dialect()
        mine = converter.unstructure(config, dialect=target)
        # Both may read it alike, yet it may be the other dialect's exact document (a 0.3.5
        # ZarrArrayConfig, without main's ome_metadata): then it is written as this one's.
        theirs = converter.unstructure
        if (
            source is None
            and not same_document(doc, mine)
            and same_document(doc, theirs(config, dialect=other_dialect(target)))
        ):
            return mine
        if source in (None, target):
            return with_tuples_of(doc, mine)
        try:
            return in_dialect(cls, config, target)
        except DialectError as exc:
            raise self._dialect_refusal(kind, name, f"a DaCapo {source} document", exc) from None

    def _dialect_refusal(self, kind: str, name: object, what: str, exc: DialectError) -> DialectError:
        target = self.dialect()
        return DialectError(
            f"{kind[:-1]} {name!r} ({what}) can't be stored in {self.describe()}, which holds DaCapo "
            f"{target} documents: {exc}; write it where DaCapo {other_dialect(target)} is used, or "
            f"migrate this registry (dacapo-store migrate --to {other_dialect(target)})",
            exc.errors,
        )

    def migrate(self, to: str, *, dry_run: bool = True) -> MigrationReport:
        """Rewrite every document into DaCapo dialect `to`; with `dry_run` only say what would change.

        Nothing is lost: what `to` can't express is kept beside the document, in its metadata
        (`dialect_stash`), and given back when migrating the other way. Each document is
        replaced atomically, only if it is still the one read; a document already in `to`, or
        one both dialects write alike, is left as it is, so running it twice writes nothing the
        second time. A document that can't be migrated (a class `to` lacks, a run without the
        parts DaCapo 0.3.5 requires, a document that is not exactly its dialect's) is left as
        it is and reported.
        """
        target = check_dialect(to)
        report = MigrationReport(to=target, dry_run=dry_run)
        for kind in KINDS:
            metas = self._all_meta(kind)
            for name, doc in sorted(self._documents(kind), key=lambda item: item[0]):
                if isinstance(doc, Exception):
                    report.documents.append(
                        DocumentMigration(kind, name, None, None, "refused", reason=str(doc))
                    )
                    continue
                planned = self._plan_migration(kind, name, config_part(doc), metas.get(name), target)
                report.documents.append(planned)
        if not dry_run:
            for item in report.documents:
                if item.status == "migrate" and not self._migrate_document(item, target):
                    item.status, item.reason = "refused", "it changed while being migrated; left as it is"
            self._forget_dialect()
        return report

    def _plan_migration(
        self, kind: str, name: str, doc: dict[str, Any], meta: Mapping[str, Any] | None, target: str
    ) -> DocumentMigration:
        stash = (meta or {}).get(STASH_KEY)
        status, source, new, entry, reason = plan_document(
            KIND_CLASSES[kind],
            doc,
            stash if isinstance(stash, Mapping) else None,
            target,
            ordered=self.keeps_key_order,
            tuples=self.keeps_tuples,
        )
        item = DocumentMigration(
            kind, name, doc.get("repetition") if kind == "runs" else None, source, status
        )
        item.reason = reason
        if status == "migrate":
            item.old, item.new, item.stash = doc, new, entry
            kept = (entry or {}).get("kept") or []
            item.changes = describe_changes(KIND_CLASSES[kind], doc, new, source, target, kept)
        return item

    def _migrate_document(self, item: DocumentMigration, target: str) -> bool:
        """Write one planned migration: the stash first (beside the old document's metadata, keyed by
        the new document's hash), then the document, then the metadata for the new content."""
        kind, name, old, new = item.kind, item.name, item.old, item.new
        assert old is not None and new is not None
        recorded = self._get_meta(kind, name) or {}
        author = {k: v for k, v in recorded.items() if k not in ("content_hash", STASH_KEY)}
        if _current(recorded, old) is None:
            author = {}  # recorded for another content: not this document's author
        stash = dict(recorded.get(STASH_KEY) or {})
        stash.pop(content_hash(old), None)
        if item.stash is not None:
            stash[content_hash(new)] = item.stash
            self._put_meta(kind, name, {**recorded, STASH_KEY: stash})
        if not self._replace(kind, name, old, new):
            return False
        meta = {**author, **({STASH_KEY: stash} if stash else {})}
        if meta:
            self._put_meta(kind, name, {**meta, "content_hash": content_hash(new)})
        else:
            self._delete_meta(kind, name)
        log.info("migrated %s/%s in %s to DaCapo %s", kind, name, self.describe(), target)
        return True

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

    def _document_name(self, kind: str, doc: Mapping[str, Any]) -> str:
        """The name a document to store is stored under; one without (DaCapo main stores runs
        with `name: None`) can't be."""
        if doc.get("name") is None:
            raise InvalidNameError(
                f"a {kind[:-1]} document without a name (name: None, which DaCapo main allows for runs) "
                "can't be stored; give it a name"
            )
        return self._check_name(doc.get("name"), f"{kind[:-1]} name", kind)

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
        config = self._in_registry_dialect(kind, config_part(doc))
        name = self._document_name(kind, config)
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
        # never carries `part_of`: it is about the run this very store was writing; the dialect
        # `show --meta` adds is the document's own, not metadata.
        meta = {k: v for k, v in given.items() if k not in (PART_OF, "dialect")} if given else None
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
        meta = self._stored_meta(kind, name)
        if meta and PART_OF in meta and meta.get("content_hash") == content_hash(config):
            self._put_meta(kind, name, {k: v for k, v in meta.items() if k != PART_OF})

    def check_document(self, kind: str, doc: Mapping[str, Any]) -> bool:
        """Whether `doc` would be written (True) or is already stored equal (False); reads only.

        A different document under its name raises DuplicateNameError, as `put_document` would.
        """
        check_kind(kind)
        config = config_part(doc)
        name = self._document_name(kind, config)
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

    def changes_since(
        self, token: Any, kind: str = "runs", *, thorough: bool = False
    ) -> tuple[Any, set[str] | None]:
        """(new token, names of `kind` added, removed or changed since `token` was handed out).

        None instead of a set: anything may have changed (a first token, or one this store can't
        compare): read them all. Documents are never rewritten in place (storing is create-only,
        metadata goes with its document), so names tell what changed; backends that can tell it
        more cheaply do (files: the folders' and files' stats; MongoDB: the newest `_id`).
        `thorough`: look at every document's marker, not only at what summarizes them.
        """
        check_kind(kind)
        names = frozenset(self._names(kind))
        previous = token[1] if isinstance(token, tuple) and len(token) == 2 and token[0] == kind else None
        new = (kind, names)
        return new, None if previous is None else set(names ^ previous)

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
                meta = self._stored_meta(part_kind, part["name"])
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
        self, kind: str, *, with_metadata: bool = False, ordered: bool = True
    ) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        """Every (name, config document) of a kind, sorted by name; unreadable ones as exceptions.

        `with_metadata=True` adds the document's metadata under `__dacapo_store__` (the
        export format, and what `put_document` takes back), when it has some. `ordered=False`
        yields them as the store reads them, one at a time: a pass over 100,000 documents then
        holds one, not all.
        """
        check_kind(kind)
        metas = (
            {n: self._opened_meta(m, kind, n) for n, m in self._all_meta(kind).items()}
            if with_metadata
            else {}
        )
        found = self._documents(kind)
        for name, doc in sorted(found, key=lambda item: item[0]) if ordered else found:
            if isinstance(doc, Exception):
                yield name, doc
                continue
            doc = config_part(doc)
            meta = _current(metas.get(name), doc)
            yield name, ({**doc, META_KEY: meta} if meta else doc)

    def raw_document(self, kind: str, name: str, *, repetition: int | None = None) -> dict[str, Any]:
        """The stored document with its metadata under `__dacapo_store__`, if it has some."""
        doc = config_part(self._find_or_raise(kind, name, repetition))
        meta = _current(self._stored_meta(kind, name), doc)
        return {**doc, META_KEY: meta} if meta else doc

    def metadata(self, kind: str, name: str, *, repetition: int | None = None) -> DocumentMetadata:
        """Who stored the document and when (None for DaCapo's own), and its content hash.

        The hash is the one recorded when it was stored. If the document changed since (a hand
        edit, or DaCapo stored another one under the name), the record is not its author's
        (`created_at`/`created_by` are None) but its hash still differs from the content's,
        which is how `check` finds the change.
        """
        doc = config_part(self._find_or_raise(kind, name, repetition))
        recorded = self._stored_meta(kind, name)
        current = _current(recorded, doc)
        if current is None and recorded and isinstance(recorded.get("content_hash"), str):
            return DocumentMetadata(created_at=None, created_by=None, content_hash=recorded["content_hash"])
        return DocumentMetadata.of(doc, current)

    def _stored_meta(self, kind: str, name: str) -> dict[str, Any] | None:
        """The document's metadata as stored, checksum verified (`_opened_meta`)."""
        return self._opened_meta(self._get_meta(kind, name), kind, name)

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
                meta = self._stored_meta(kind, name) or {}
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
        doc = self._document_of(kind, config)
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

    def document_of(self, config: Any) -> dict[str, Any]:
        """The document storing `config` writes here, in this registry's DaCapo dialect; the
        DialectError or ConfigValidationError `store` would raise, before anything is written."""
        return self._document_of(kind_of(config), config)

    def _document_of(self, kind: str, config: Any) -> dict[str, Any]:
        """The document of `config` in this registry's dialect; refused if it would not read back
        as an equal config (a field of a wrong type, or one the dialect can't express)."""
        dialect = self.dialect()
        name = getattr(config, "name", "?")
        try:
            return in_dialect(KIND_CLASSES[kind], config, dialect)
        except DialectError as exc:
            problem = exc
        # A config the other dialect writes whole is one this dialect can't express...
        try:
            in_dialect(KIND_CLASSES[kind], config, other_dialect(dialect))
        except DialectError:
            pass
        else:
            raise self._dialect_refusal(kind, name, f"a DaCapo {other_dialect(dialect)} config", problem)
        # ... else a field holds a value of the wrong type.
        try:
            back = converter.structure(
                converter.unstructure(config, dialect=dialect), KIND_CLASSES[kind], dialect=dialect
            )
        except ConfigValidationError as exc:
            raise ConfigValidationError(
                f"{kind[:-1]} config {name!r} can't be stored, it would not read back: {exc}", exc.errors
            ) from None
        lost = differences(config, back)
        where = dotted(lost[0][0]) if lost else "?"
        raise ConfigValidationError(
            f"{kind[:-1]} config {name!r} can't be stored: field {where} does not read back equal "
            "(check its type)"
        )

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
        *,
        where: Iterable[str] | None = None,
    ) -> list[str]:
        """Names of stored runs, optionally only those using the given parts and those whose
        document every `where` expression holds on (`dacapo_store.where`: 'PATH OP VALUE';
        WhereError, a ValueError, for one it can't read, before anything is read)."""
        conditions = parse_where(where)
        names = self.names(
            "runs",
            task_names=task_names,
            datasplit_names=datasplit_names,
            architecture_names=architecture_names,
            trainer_names=trainer_names,
        )
        if not conditions:
            return names
        found = self._where_names(conditions)
        return [n for n in names if n in found]

    def _where_names(self, conditions: Sequence[Condition]) -> set[str]:
        """Runs any of whose documents the conditions hold on: one pass over them (MongoDB asks
        the runs collection instead)."""
        return {
            name
            for name, doc in self._documents("runs")
            if not isinstance(doc, Exception) and matches(config_part(doc), conditions)
        }

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
