"""A stricter mongomock: the refusals and replica-set behaviour of a real MongoDB 7 that mongomock hides.

`StrictMongoClient` is a `mongomock.MongoClient` that also:

- refuses an index with the keys of an existing index under another name
  (OperationFailure code 85, IndexOptionsConflict) and a name reused for other keys or options
  (code 86, IndexKeySpecsConflict), as `createIndexes` on a server does;
- with `read_only=True` (an account with the `read` role) refuses every write, `createIndexes`
  included even when the index exists (code 13, Unauthorized);
- with `standalone=True` refuses `commitQuorum` on index builds (code 2, BadValue), as a
  standalone server does;
- serves reads whose read preference allows a secondary (secondary, secondaryPreferred, nearest)
  from a lagging secondary: a copy of the data taken at the last `replicate()` call;
- records the write concern of every write (`writes`), and refuses use after `close()`;
- applies each write whole, and takes each read's documents whole: a signal arriving meanwhile
  (SIGINT) is delivered after it, as a client interrupted mid-call finds the server's write done
  or not done, never half done, and the server unharmed (mongomock's own lock and documents
  would be left half changed).

Clients made with `sibling()` share the server (data and secondary) with the original, like
two processes connected to one replica set.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import signal
import threading
from typing import Any

import mongomock
from mongomock import helpers as _helpers
from mongomock.filtering import filter_applies
from mongomock.store import CollectionStore, ServerStore
from pymongo.errors import InvalidOperation, OperationFailure
from pymongo.write_concern import WriteConcern

_WRITES = (
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "find_one_and_delete",
    "find_one_and_replace",
    "find_one_and_update",
    "bulk_write",
    "drop",
    "drop_index",
    "drop_indexes",
)
#: read preference modes that may read from a secondary (primaryPreferred reads the primary while it is up)
_SECONDARY_MODES = {2, 3, 4}


class _Secondary:
    """The lagging secondary: a copy of the primary's data as of the last `replicate()`."""

    def __init__(self) -> None:
        self.store = ServerStore()

    def replicate(self, primary: ServerStore) -> None:
        fresh = ServerStore()
        for db_name, db_store in primary._databases.items():
            for name, source in db_store._collections.items():
                target = fresh[db_name][name]
                target._documents = collections.OrderedDict(
                    (key, copy.deepcopy(doc)) for key, doc in source._documents.items()
                )
                target.indexes = copy.deepcopy(source.indexes)
                target._is_force_created = source._is_force_created
        self.store = fresh


class StrictMongoClient(mongomock.MongoClient):
    """mongomock with a real server's index, privilege and replica-set behaviour (see the module)."""

    def __init__(
        self,
        host: Any = None,
        *,
        read_only: bool = False,
        standalone: bool = False,
        _secondary: _Secondary | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, **kwargs)
        self.read_only = read_only
        self.standalone = standalone
        self._secondary = _secondary or _Secondary()
        #: (namespace, write concern document) of every write, in order
        self.writes: list[tuple[str, dict[str, Any]]] = []
        #: (namespace, index name, commitQuorum asked for) of every index build
        self.index_builds: list[tuple[str, str, Any]] = []
        #: namespace -> callables run once, just before the next find on it (another client acting
        #: between two reads of ours, e.g. a writer replacing a blob while it is read)
        self.before_find: dict[str, list[Any]] = {}
        #: the same, just before the next write on a namespace
        self.before_write: dict[str, list[Any]] = {}
        self.closed = False

    def sibling(self, **options: Any) -> StrictMongoClient:
        """Another client of the same server (same data, same secondary), e.g. a read-only account."""
        options.setdefault("standalone", self.standalone)
        return StrictMongoClient(_store=self._store, _secondary=self._secondary, **options)

    def replicate(self) -> None:
        """Let the secondary catch up with the primary."""
        self._secondary.replicate(self._store)

    def close(self) -> None:
        self.closed = True

    def get_database(
        self,
        name: str | None = None,
        codec_options: Any = None,
        read_preference: Any = None,
        write_concern: Any = None,
        read_concern: Any = None,
    ) -> StrictDatabase:
        if self.closed:
            raise InvalidOperation("Cannot use MongoClient after close")
        if name is None:
            return self.get_default_database(
                codec_options=codec_options,
                read_preference=read_preference,
                write_concern=write_concern,
                read_concern=read_concern,
            )
        plain = read_preference is None and write_concern is None
        db = self._database_accesses.get(name) if plain else None
        if db is None:
            db = StrictDatabase(
                self,
                name,
                _store=self._store[name],
                read_preference=read_preference or self.read_preference,
                codec_options=codec_options or self._codec_options,
                read_concern=read_concern,
                write_concern=write_concern,
            )
            if plain:
                self._database_accesses[name] = db
        return db


class StrictDatabase(mongomock.Database):
    def __init__(
        self, client: StrictMongoClient, name: str, _store: Any, write_concern: Any = None, **kw: Any
    ):
        super().__init__(client, name, _store, **kw)
        self._write_concern = write_concern or WriteConcern()

    @property
    def write_concern(self) -> WriteConcern:
        return self._write_concern

    def get_collection(
        self,
        name: str,
        codec_options: Any = None,
        read_preference: Any = None,
        write_concern: Any = None,
        read_concern: Any = None,
    ) -> StrictCollection:
        self._ensure_valid_collection_name(name)
        return StrictCollection(
            self,
            name=name,
            read_concern=read_concern,
            write_concern=write_concern or self._write_concern,
            read_preference=read_preference or self.read_preference,
            codec_options=codec_options or self._codec_options,
            _db_store=self._store,
        )

    def with_options(
        self,
        codec_options: Any = None,
        read_preference: Any = None,
        write_concern: Any = None,
        read_concern: Any = None,
    ) -> StrictDatabase:
        return StrictDatabase(
            self._client,
            self.name,
            self._store,
            read_preference=read_preference or self._read_preference,
            codec_options=codec_options or self._codec_options,
            read_concern=read_concern or self._read_concern,
            write_concern=write_concern or self._write_concern,
        )

    def command(self, command: Any, **kwargs: Any) -> dict[str, Any]:
        if self._client.closed:
            raise InvalidOperation("Cannot use MongoClient after close")
        return super().command(command, **kwargs)


def _unauthorized(collection: StrictCollection, command: str) -> OperationFailure:
    return OperationFailure(
        f"not authorized on {collection.database.name} to execute command "
        f"{{ {command}: {collection.name!r} }}",
        13,
        {"ok": 0, "code": 13, "codeName": "Unauthorized"},
    )


class StrictCollection(mongomock.Collection):
    _writing = 0

    def __getitem__(self, name: str) -> StrictCollection:
        # as pymongo: a sub-collection (fs.files) keeps this collection's options
        return StrictCollection(
            self.database,
            name=f"{self.name}.{name}",
            write_concern=self._write_concern,
            read_concern=self._read_concern,
            read_preference=self._read_preference,
            codec_options=self._codec_options,
            _db_store=self._db_store,
        )

    def with_options(
        self,
        codec_options: Any = None,
        read_preference: Any = None,
        write_concern: Any = None,
        read_concern: Any = None,
    ) -> StrictCollection:
        return StrictCollection(
            self.database,
            name=self.name,
            write_concern=write_concern or self._write_concern,
            read_concern=read_concern or self._read_concern,
            read_preference=read_preference or self._read_preference,
            codec_options=codec_options or self._codec_options,
            _db_store=self._db_store,
        )

    @property
    def _client(self) -> StrictMongoClient:
        return self.database.client

    def _reads_secondary(self) -> bool:
        return not self._writing and getattr(self._read_preference, "mode", 0) in _SECONDARY_MODES

    def _iter_documents(self, filter: Any):
        if self._client.closed:
            raise InvalidOperation("Cannot use MongoClient after close")
        if not self._reads_secondary():
            with _atomic():  # mongomock's store lock is taken and given back whole
                return super()._iter_documents(filter)
        source: CollectionStore = self._client._secondary.store[self.database.name][self.name]
        return (doc for doc in list(source.documents) if filter_applies(filter, doc))

    def find(self, *args: Any, **kwargs: Any) -> Any:
        hooks = self._client.before_find.get(f"{self.database.name}.{self.name}")
        if hooks:
            hooks.pop(0)()
        return super().find(*args, **kwargs)

    def _write(self, command: str) -> None:
        client = self._client
        if client.closed:
            raise InvalidOperation("Cannot use MongoClient after close")
        if client.read_only:
            raise _unauthorized(self, command)
        hooks = client.before_write.get(f"{self.database.name}.{self.name}")
        if hooks:
            hooks.pop(0)()
        client.writes.append((f"{self.database.name}.{self.name}", dict(self._write_concern.document)))

    def create_index(self, key_or_list: Any, cache_for: int = 300, session: Any = None, **kwargs: Any) -> str:
        self._write("createIndexes")
        quorum = kwargs.pop("commitQuorum", None)
        if quorum is not None and self._client.standalone:
            raise OperationFailure(
                "Standalones can't specify commitQuorum", 2, {"ok": 0, "code": 2, "codeName": "BadValue"}
            )
        keys = _helpers.create_index_list(key_or_list)
        name = kwargs.get("name") or _helpers.gen_index_name(keys)
        wanted = {"key": [(k, int(d)) for k, d in keys], "unique": bool(kwargs.get("unique", False))}
        for info in self.list_indexes():
            existing = {
                "key": [(k, int(d)) for k, d in info["key"].items()],
                "unique": bool(info.get("unique")),
            }
            if info["name"] == name and existing != wanted:
                raise OperationFailure(
                    f"An existing index has the same name as the requested index. "
                    f"Requested index: {wanted}, existing index: {existing}",
                    86,
                    {"ok": 0, "code": 86, "codeName": "IndexKeySpecsConflict"},
                )
            if info["name"] != name and existing["key"] == wanted["key"]:
                raise OperationFailure(
                    f"Index already exists with a different name: {info['name']}",
                    85,
                    {"ok": 0, "code": 85, "codeName": "IndexOptionsConflict"},
                )
        self._client.index_builds.append((f"{self.database.name}.{self.name}", name, quorum))
        self._writing += 1
        try:
            return super().create_index(key_or_list, cache_for, session, **kwargs)
        finally:
            self._writing -= 1

    def create_indexes(self, indexes: Any, session: Any = None, **kwargs: Any) -> list[str]:
        names = []
        for model in indexes:
            document = dict(model.document)
            keys = list(document.pop("key").items())
            names.append(self.create_index(keys, **document, **kwargs))
        return names


@contextlib.contextmanager
def _atomic() -> Any:
    """A server applies a write whole, whatever happens to the client meanwhile: a SIGINT or SIGTERM
    arriving while mongomock changes its documents (or holds its store's lock) is handled after
    it, never in the middle (mongomock's own structures would be left half changed).

    The signals' handlers are swapped for ones that only note them (blocking them instead would
    lose one for good should an interrupt already due land between blocking and unblocking).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous: dict[int, Any] = {}
    try:
        for sig in _DEFERRED:
            previous[sig] = signal.signal(sig, lambda number, frame: noted.append(number))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(noted):
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)  # raises KeyboardInterrupt, or notes it for an outer write
            elif handler == signal.SIG_DFL:
                signal.raise_signal(sig)


_DEFERRED = (signal.SIGINT, signal.SIGTERM)


def _guarded(method_name: str):
    method = getattr(mongomock.Collection, method_name)

    def write(self: StrictCollection, *args: Any, **kwargs: Any) -> Any:
        self._write(method_name)
        self._writing += 1
        try:
            with _atomic():
                return method(self, *args, **kwargs)
        finally:
            self._writing -= 1

    write.__name__ = method_name
    return write


for _name in _WRITES:
    setattr(StrictCollection, _name, _guarded(_name))
