"""MongoConfigStore: one collection per kind, unique on `name`, DaCapo's layout."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pymongo.errors import DuplicateKeyError

from ..checksums import seal_record
from ..errors import DacapoStoreError
from ..mongo import connect, describe, release, translate_errors
from ..mongo_indexes import DACAPO_CONFIG_INDEXES, IndexSpec, ensure_indexes
from ..where import Condition, mongo_filter
from .base import ConfigStore
from .dialects import dialect_query
from .documents import KIND_CLASSES, KINDS, check_kind

log = logging.getLogger(__name__)

_INSERT_ATTEMPTS = 5

#: Our collection of who stored which config when (DaCapo never reads it).
METADATA_COLLECTION = "config_metadata"

#: DaCapo's own indexes on its collections, plus ours: on runs a unique name (DaCapo's
#: `name_rep` allows one name per repetition) and the start lookup of `starts_from`, and the
#: metadata collection's key.
INDEXES: tuple[IndexSpec, ...] = (
    *(DACAPO_CONFIG_INDEXES[kind] for kind in KINDS),
    IndexSpec("runs", "name", (("name", 1),), unique=True),
    IndexSpec("runs", "start_run", (("start_config.run", 1),)),
    IndexSpec(METADATA_COLLECTION, "kind_name", (("kind", 1), ("name", 1)), unique=True),
)


#: What a document stored without a name (DaCapo main allows `name: None` on runs) is listed
#: and found as: the file name DaCapo main's files store gives it, `None.yaml`.
NAMELESS = "None"


def _name_query(name: str) -> dict[str, Any]:
    return {"name": {"$in": [name, None]}} if name == NAMELESS else {"name": name}


def listed_name(value: Any) -> str:
    """The name a document is listed under: its own, or `None` for a nameless one."""
    return NAMELESS if value is None else str(value)


class MongoConfigStore(ConfigStore):
    """Configs in a MongoDB database shared by many writers.

    Insert relies on a unique index on `name` (a DuplicateKeyError means "compare with
    what is there"), never on check-then-write. Names reach queries only as checked `str`,
    so they may hold '/' (DaCapo's generated dataset and array names do). Metadata lives in
    `config_metadata`, one document per (kind, name), never in DaCapo's collections.
    """

    slash_in_names = True
    keeps_tuples = False
    keeps_key_order = True

    def __init__(
        self,
        db_host: str | None = None,
        db_name: str = "dacapo",
        *,
        client: Any = None,
        timeout: float = 5.0,
        dialect: str | None = None,
    ) -> None:
        self._set_dialect_option(dialect)
        self._owns_client = client is None
        self.client, self.db = connect(db_host, db_name, client=client, timeout=timeout)
        self._where = describe(db_host, db_name)
        self._closed = False
        with translate_errors(self._where):
            ensure_indexes(self.db, INDEXES, self._where)

    def describe(self) -> str:
        return self._where

    def __repr__(self) -> str:
        return f"MongoConfigStore({self._where!r})"

    def close(self) -> None:
        """Give back the client if this store connected it (closed with its last store)."""
        if self._owns_client and not self._closed:
            self._closed = True
            release(self.client)

    def _insert(self, kind: str, name: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        with translate_errors(self._where):
            for _ in range(_INSERT_ATTEMPTS):
                try:
                    self.db[kind].insert_one(dict(doc))
                    return None
                except DuplicateKeyError:
                    # the winner, read from the primary; None only if it was deleted meanwhile
                    existing = self.db[kind].find_one({"name": name}, projection={"_id": False})
                if existing is not None:
                    return existing
        raise DacapoStoreError(
            f"{kind} {name!r} in {self._where} was stored and deleted by others {_INSERT_ATTEMPTS} "
            "times while we tried to insert it; try again"
        )

    def _find(self, kind: str, name: str) -> dict[str, Any] | None:
        with translate_errors(self._where):
            return self.db[kind].find_one(_name_query(name), projection={"_id": False})

    def _find_all(self, kind: str, name: str) -> list[dict[str, Any]]:
        with translate_errors(self._where):
            return list(self.db[kind].find(_name_query(name), projection={"_id": False}))

    def _find_many(self, kind: str, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        wanted: list[Any] = [*names, None] if NAMELESS in names else list(names)
        with translate_errors(self._where):
            for doc in self.db[kind].find({"name": {"$in": wanted}}, projection={"_id": False}):
                found.setdefault(listed_name(doc.get("name")), []).append(doc)
        return found

    def _holds_dialect(self, kind: str, dialect: str) -> bool:
        # Asked in the database, not by reading every document: a DaCapo main run, trainer or
        # architecture always shows its dialect at its top level (run-level batch_size, a
        # trainer without one, `_input_shape`, a class main added).
        query = dialect_query(KIND_CLASSES[kind], dialect)
        if query is not None:
            with translate_errors(self._where):
                if self.db[kind].find_one(query, projection={"_id": True}) is not None:
                    return True
        if dialect == "main" and kind in ("runs", "trainers", "architectures"):
            return False
        return super()._holds_dialect(kind, dialect)

    def _replace(self, kind: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        with translate_errors(self._where):
            for doc in self.db[kind].find(_name_query(name)):
                if {k: v for k, v in doc.items() if k != "_id"} == old:
                    # Matched on the whole document: a writer in between makes this a no-op.
                    found = self.db[kind].replace_one(doc, dict(new))
                    return found.matched_count == 1
        return False

    def _get_meta(self, kind: str, name: str) -> dict[str, Any] | None:
        with translate_errors(self._where):
            return self.db[METADATA_COLLECTION].find_one(
                {"kind": kind, "name": name}, projection={"_id": False, "kind": False, "name": False}
            )

    def _all_meta(self, kind: str) -> dict[str, dict[str, Any]]:
        with translate_errors(self._where):
            found = self.db[METADATA_COLLECTION].find(
                {"kind": kind}, projection={"_id": False, "kind": False}
            )
            return {m.pop("name"): m for m in found}

    def _put_meta(self, kind: str, name: str, meta: dict[str, Any]) -> None:
        with translate_errors(self._where):
            self.db[METADATA_COLLECTION].replace_one(
                {"kind": kind, "name": name}, {"kind": kind, "name": name, **seal_record(meta)}, upsert=True
            )

    def _claim_meta(self, kind: str, name: str, meta: dict[str, Any]) -> bool:
        """Insert the record; the unique (kind, name) index refuses it if the name has one."""
        with translate_errors(self._where):
            try:
                self.db[METADATA_COLLECTION].insert_one({"kind": kind, "name": name, **seal_record(meta)})
            except DuplicateKeyError:
                return False
        return True

    def _unclaim_meta(self, kind: str, name: str, meta: dict[str, Any]) -> None:
        """Delete the record only if it is still this one (one conditional delete)."""
        with translate_errors(self._where):
            self.db[METADATA_COLLECTION].delete_one({"kind": kind, "name": name, **seal_record(meta)})

    def _delete_meta(self, kind: str, name: str) -> None:
        with translate_errors(self._where):
            self.db[METADATA_COLLECTION].delete_one({"kind": kind, "name": name})

    def _names(self, kind: str, where: Mapping[str, list[str]] | None = None) -> list[str]:
        query = {field: {"$in": list(values)} for field, values in (where or {}).items()}
        with translate_errors(self._where):
            # A run DaCapo main stored without a name is listed as "None", never a crash.
            return sorted(
                listed_name(d.get("name"))
                for d in self.db[kind].find(query, projection={"name": True, "_id": False})
            )

    def _where_names(self, conditions: Sequence[Condition]) -> set[str]:
        """One query on the runs collection (`where.mongo_filter`: the rules `where.matches` has)."""
        with translate_errors(self._where):
            found = self.db["runs"].find(mongo_filter(conditions), projection={"name": True, "_id": False})
            return {listed_name(d.get("name")) for d in found}

    def _delete(self, kind: str, name: str) -> bool:
        with translate_errors(self._where):
            return self.db[kind].delete_one(_name_query(name)).deleted_count == 1

    def changes_since(
        self, token: Any, kind: str = "runs", *, thorough: bool = False
    ) -> tuple[Any, set[str] | None]:
        """New documents are those above the newest `_id` seen (the `_id` index answers), named by
        one query. Storing never changes a document in place; a deletion (or an `_id` made earlier
        by another client) shows as a count that doesn't add up, and then, as with `thorough`, the
        names are listed and compared. (`migrate` rewrites documents in place: a thorough check
        sees that.) The token: (kind, count, newest `_id`, names)."""
        check_kind(kind)
        collection = self.db[kind]
        before = token if isinstance(token, tuple) and len(token) == 4 and token[0] == kind else None
        with translate_errors(self._where):
            newest = collection.find_one({}, projection={"_id": True}, sort=[("_id", -1)])
            newest_id = None if newest is None else newest["_id"]
            count = collection.count_documents({})
            if before is not None and not thorough and (count, newest_id) == (before[1], before[2]):
                return before, set()
            if before is not None and not thorough and before[2] is not None:
                added = {
                    listed_name(d.get("name"))
                    for d in collection.find({"_id": {"$gt": before[2]}}, projection={"name": True})
                }
                if count == before[1] + len(added) and not added & before[3]:
                    return (kind, count, newest_id, before[3] | added), added
            names = frozenset(
                listed_name(d.get("name"))
                for d in collection.find({}, projection={"name": True, "_id": False})
            )
        new = (kind, count, newest_id, names)
        return new, None if before is None else set(names ^ before[3])

    def _documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        with translate_errors(self._where):
            for doc in self.db[kind].find({}, projection={"_id": False}):
                yield listed_name(doc.get("name")), doc
