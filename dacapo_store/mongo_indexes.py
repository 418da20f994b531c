"""The MongoDB indexes the stores need, and the one way to make sure they exist.

DaCapo's collections get DaCapo's own indexes: same names, keys and options as DaCapo 0.3.5
creates them, because a server refuses a second index with the same keys under another name
(IndexOptionsConflict, code 85) and whichever tool came second would fail to open. Our own
collections get ours. `ensure_indexes` reads `list_indexes()` first and creates only what is
missing, so an account with the `read` role opens a store whose indexes exist without trying
`createIndexes` (which needs the privilege even for an existing index).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import attrs
from pymongo.errors import ConfigurationError, OperationFailure

log = logging.getLogger(__name__)

Keys = tuple[tuple[str, int], ...]

_UNAUTHORIZED = 13
_CONFLICTS = {85, 86}  # IndexOptionsConflict, IndexKeySpecsConflict: another tool made it differently
_NOT_ABOUT_QUORUM = {_UNAUTHORIZED, 11000, *_CONFLICTS}  # 11000: duplicates under a unique key


@attrs.frozen
class IndexSpec:
    """One index: the collection, its name, its keys in order, and whether it is unique."""

    collection: str
    name: str
    keys: Keys
    unique: bool = False


def _spec(collection: str, name: str, *fields: str, unique: bool = False) -> IndexSpec:
    return IndexSpec(collection, name, tuple((f, 1) for f in fields), unique)


#: DaCapo 0.3.5's indexes on its config collections (see tests/data/dacapo_mongo_indexes.json).
DACAPO_CONFIG_INDEXES: dict[str, IndexSpec] = {
    kind: _spec(kind, "name", "name", unique=True)
    for kind in ("tasks", "datasplits", "datasets", "arrays", "architectures", "trainers")
}
DACAPO_CONFIG_INDEXES["runs"] = _spec("runs", "name_rep", "name", "repetition", unique=True)

#: DaCapo 0.3.5's indexes on the collections it alone writes (we only read them).
DACAPO_OTHER_INDEXES: tuple[IndexSpec, ...] = (
    _spec("users", "username", "username", unique=True),
    _spec("training_stats", "run_it", "run_name", "iteration", unique=True),
    _spec("training_stats", "it", "iteration"),
    _spec("validation_scores", "run_it_ds", "run_name", "iteration", "dataset", unique=True),
    _spec("validation_scores", "it", "iteration"),
)


def present(spec: IndexSpec, existing: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The existing index with the keys of `spec`, whatever its name (None if there is none)."""
    for info in existing:
        keys = tuple((str(k), int(d)) for k, d in dict(info["key"]).items())
        if keys == spec.keys:
            return info
    return None


def ensure_indexes(db: Any, specs: Iterable[IndexSpec], where: str) -> list[IndexSpec]:
    """Create the indexes of `specs` that `db` lacks; return those still missing afterwards.

    An index with the same keys under another name counts as present (creating ours would be
    refused with code 85); if it lacks the uniqueness we want, a warning says so. An account
    without the privilege to create indexes gets one warning naming what is missing, and reads
    work on. Index builds ask for `commitQuorum="majority"` and fall back to the server's
    default where the server refuses that option (a standalone, or a server before 4.4).
    """
    missing: list[IndexSpec] = []
    listed: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        if spec.collection not in listed:
            try:
                listed[spec.collection] = list(db[spec.collection].list_indexes())
            except OperationFailure as exc:
                log.warning("can't list the indexes of %s in %s: %s", spec.collection, where, exc)
                listed[spec.collection] = []
        found = present(spec, listed[spec.collection])
        if found is None:
            missing.append(spec)
        elif spec.unique and not found.get("unique"):
            log.warning(
                "index %s on %s in %s is not unique: concurrent writers may store duplicates",
                found.get("name"),
                spec.collection,
                where,
            )
    if not missing:
        return []
    still: list[IndexSpec] = []
    unauthorized: list[IndexSpec] = []
    quorum = True
    for spec in missing:
        try:
            quorum = _create(db, spec, quorum)
        except OperationFailure as exc:
            if exc.code == _UNAUTHORIZED:
                unauthorized.append(spec)
            else:
                # e.g. duplicates already stored under a unique key (DaCapo's runs hold names
                # per repetition), or another tool made a clashing index: work on without it
                why = "another tool made a clashing index" if exc.code in _CONFLICTS else str(exc)
                log.warning("no index %s on %s in %s: %s", spec.name, spec.collection, where, why)
            still.append(spec)
    if unauthorized:
        log.warning(
            "the account has no right to create indexes in %s; missing: %s. Reads work; ask an admin "
            "to open the store once with a readWrite account so that concurrent writes stay safe",
            where,
            ", ".join(f"{s.collection}.{s.name}" for s in unauthorized),
        )
    return still


def _create(db: Any, spec: IndexSpec, quorum: bool) -> bool:
    """Create one index; return whether commitQuorum may be asked for next time."""
    options: dict[str, Any] = {"name": spec.name, "unique": spec.unique}
    if quorum:
        try:
            db[spec.collection].create_index(list(spec.keys), commitQuorum="majority", **options)
            return True
        except ConfigurationError:
            pass  # the driver knows the server predates commitQuorum
        except OperationFailure as exc:
            # a standalone says "Standalones can't specify commitQuorum" (BadValue); anything
            # that is not about the option fails the same way without it, so try once more
            if exc.code in _NOT_ABOUT_QUORUM:
                raise
    db[spec.collection].create_index(list(spec.keys), **options)
    return False
