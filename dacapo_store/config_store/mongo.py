"""MongoConfigStore: one collection per kind, unique on `name`, DaCapo's layout."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError, OperationFailure

from ..mongo import connect, describe, translate_errors
from .base import ConfigStore
from .documents import KINDS

log = logging.getLogger(__name__)


class MongoConfigStore(ConfigStore):
    """Configs in a MongoDB database shared by many writers.

    Insert relies on a unique index on `name` (a DuplicateKeyError means "compare with
    what is there"), never on check-then-write. Names reach queries only as checked `str`.
    """

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
        self._where = describe(db_host, db_name)
        with translate_errors(self._where):
            for kind in KINDS:
                try:
                    self.db[kind].create_index("name", unique=True, name="name_unique")
                except OperationFailure as exc:
                    # e.g. a DaCapo database holding one name twice (it indexes runs on
                    # (name, repetition)): work on, but say why duplicates are possible.
                    log.warning("no unique index on %s.name in %s: %s", kind, self._where, exc)
            self.db["runs"].create_index("start_config.run", name="start_run")

    def describe(self) -> str:
        return self._where

    def __repr__(self) -> str:
        return f"MongoConfigStore({self._where!r})"

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def _insert(self, kind: str, name: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        with translate_errors(self._where):
            try:
                self.db[kind].insert_one(dict(doc))
                return None
            except DuplicateKeyError:
                existing = self.db[kind].find_one({"name": name}, projection={"_id": False})
        return existing if existing is not None else self._insert(kind, name, doc)

    def _find(self, kind: str, name: str) -> dict[str, Any] | None:
        with translate_errors(self._where):
            return self.db[kind].find_one({"name": name}, projection={"_id": False})

    def _names(self, kind: str, where: Mapping[str, list[str]] | None = None) -> list[str]:
        query = {field: {"$in": list(values)} for field, values in (where or {}).items()}
        with translate_errors(self._where):
            return sorted(
                d["name"] for d in self.db[kind].find(query, projection={"name": True, "_id": False})
            )

    def _delete(self, kind: str, name: str) -> bool:
        with translate_errors(self._where):
            return self.db[kind].delete_one({"name": name}).deleted_count == 1

    def _documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        with translate_errors(self._where):
            for doc in self.db[kind].find({}, projection={"_id": False}):
                yield str(doc.get("name")), doc
