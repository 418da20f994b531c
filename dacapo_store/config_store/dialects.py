"""DaCapo's two document dialects at the store level: which one a document or registry is in,
writing a config or document in the registry's dialect, and what a dialect can't express.

DaCapo 0.3.5 (PyPI) and DaCapo's main branch write different documents for the same configs
(see `dacapo_store.conversion` and the README, "Sharing one registry with DaCapo"). A
registry writes DaCapo 0.3.5's unless its options say `dacapo_dialect: main` or it already
holds DaCapo main documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..configs._base import DIALECTS, document_key
from ..conversion import class_named, converter
from ..errors import ConfigValidationError, DialectError

#: What `document_dialect` answers for a document both dialects write alike.
EITHER = "either"
#: ... and for one holding fields of both (neither dialect explains it).
MIXED = "mixed"

#: Fields DaCapo main moved from the trainer to the run.
MOVED_TO_THE_RUN = ("batch_size", "learning_rate", "snapshot_interval")


def check_dialect(value: object) -> str:
    """`value` if it names a dialect; ValueError saying which exist otherwise."""
    if value not in DIALECTS:
        raise ValueError(f"unknown DaCapo dialect {value!r}: use one of {', '.join(DIALECTS)}")
    return value  # type: ignore[return-value]


def other_dialect(dialect: str) -> str:
    return next(d for d in DIALECTS if d != dialect)


def document_dialect(cls: type, doc: Mapping[str, Any]) -> str:
    """ "0.3.5", "main", "either" (both write it alike) or "mixed" (fields of both)."""
    try:
        return converter.dialect_of(doc, cls) or EITHER
    except DialectError:
        return MIXED


def dialect_query(cls: type, dialect: str) -> dict[str, Any] | None:
    """A MongoDB filter matching documents of `cls`'s family whose top level shows `dialect`
    (see `conversion.dialect_of`), or None if no top level can."""
    from ..configs._base import FAMILIES, TYPE_KEY, dialects_of, family_of, required_in

    family = family_of(cls)
    classes = list(FAMILIES[family].values()) if family is not None else [cls]
    clauses: list[dict[str, Any]] = []
    for member in classes:
        tag = {TYPE_KEY: member.__name__} if family is not None else {}
        if dialects_of(member) == (dialect,):
            clauses.append(tag)
            continue
        fields = attrs.fields(member)
        own = {document_key(a, dialect) for a in fields} - {
            document_key(a, other_dialect(dialect)) for a in fields
        }
        clauses += [{**tag, key: {"$exists": True}} for key in sorted(own - {None})]
        for a in fields:
            other = other_dialect(dialect)
            key = document_key(a, other)
            if required_in(a, other) and key is not None:
                clauses.append({**tag, key: {"$exists": True, "$in": [None]}})
                if document_key(a, dialect) is None:
                    clauses.append({**tag, key: {"$exists": False}})
    return {"$or": clauses} if clauses else None


def differences(a: Any, b: Any, path: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    """(path, value in a, value in b) of every field where two configs differ; attribute names
    and indices in the path. A bool is not an int here, as in documents."""
    if attrs.has(type(a)) and type(a) is type(b):
        out = []
        for f in attrs.fields(type(a)):
            out += differences(getattr(a, f.name), getattr(b, f.name), (*path, f.name))
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += differences(x, y, (*path, i))
        return out
    if isinstance(a, Mapping) and isinstance(b, Mapping) and a.keys() == b.keys():
        out = []
        for key in a:
            out += differences(a[key], b[key], (*path, key))
        return out
    if isinstance(a, bool) != isinstance(b, bool) or a != b:
        return [(path, a, b)]
    return []


def dotted(path: tuple) -> str:
    """`trainer_config.augments[0].subsample` for ("trainer_config", "augments", 0, "subsample")."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "<config>"


def unexpressed(dialect: str, lost: list[tuple[tuple, Any, Any]]) -> str:
    """What a dialect can't express, one clause per field: `trainer_config.batch_size = 4 (...)`."""
    parts = []
    for path, value, _ in lost[:8]:
        text = f"{dotted(path)} = {value!r}"
        if path and path[-1] in MOVED_TO_THE_RUN:
            where = "on the RunConfig" if dialect == "main" else "in the trainer"
            text += f" (DaCapo {dialect} keeps {path[-1]} {where})"
        parts.append(text)
    if len(lost) > 8:
        parts.append(f"and {len(lost) - 8} more")
    return f"DaCapo {dialect} has no place for {', '.join(parts)}"


def in_dialect(cls: type, config: Any, dialect: str) -> dict[str, Any]:
    """The document of `config` in `dialect`, if that dialect reads it back as an equal config;
    DialectError naming what it can't express otherwise."""
    doc = converter.unstructure(config, dialect=dialect)  # DialectError for a class it lacks
    try:
        back = converter.structure(doc, cls, dialect=dialect)
    except ConfigValidationError as exc:
        raise DialectError(f"DaCapo {dialect} can't express it: {exc}", exc.errors) from None
    lost = differences(config, back)
    if lost:
        raise DialectError(
            unexpressed(dialect, lost), [f"{dotted(p)}: not in DaCapo {dialect}" for p, *_ in lost]
        )
    return doc


def same_document(a: Any, b: Any) -> bool:
    """Whether two documents hold the same fields and values, a tuple and a list alike (as once
    stored in MongoDB or JSON), a bool never equal to a number."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_document(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_document(x, y) for x, y in zip(a, b, strict=True))
    return isinstance(a, bool) == isinstance(b, bool) and a == b


# --- migrating a registry into one dialect ---------------------------------------------------------

#: The metadata key holding, per content hash of a migrated document, what its dialect couldn't
#: express: `{hash: {"from": dialect, "to": dialect, "kept": [{"path": [...], "value": v}]}}`.
STASH_KEY = "dialect_stash"


@attrs.define
class DocumentMigration:
    """One document's part in a migration: what it becomes, or why it can't."""

    kind: str
    name: str
    repetition: Any
    source: str | None  # its dialect; None: both write it alike
    status: str  # "migrate", "unchanged" or "refused"
    changes: list[dict[str, Any]] = attrs.field(factory=list)
    reason: str | None = None
    old: dict[str, Any] | None = attrs.field(default=None, repr=False)
    new: dict[str, Any] | None = attrs.field(default=None, repr=False)
    stash: dict[str, Any] | None = attrs.field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "name": self.name, "from": self.source, "status": self.status}
        if self.repetition is not None:
            out["repetition"] = self.repetition
        if self.changes:
            out["changes"] = self.changes
        if self.reason:
            out["reason"] = self.reason
        return out


@attrs.define
class MigrationReport:
    """What `ConfigStore.migrate` found and (unless a dry run) did."""

    to: str
    dry_run: bool
    documents: list[DocumentMigration] = attrs.field(factory=list)

    def count(self, status: str) -> int:
        return sum(1 for d in self.documents if d.status == status)

    @property
    def ok(self) -> bool:
        return self.count("refused") == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "dry_run": self.dry_run,
            "migrate": self.count("migrate"),
            "unchanged": self.count("unchanged"),
            "refused": self.count("refused"),
            "documents": [d.as_json() for d in self.documents if d.status != "unchanged"],
        }


def same_exactly(a: Any, b: Any, *, ordered: bool, tuples: bool) -> bool:
    """`same_document`, and also key order (`ordered`: BSON) and tuple vs list (`tuples`: DaCapo's
    YAML), and an int never equal to a float: what DaCapo's re-store compares."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys_match = list(a) == list(b) if ordered else a.keys() == b.keys()
        return keys_match and all(same_exactly(a[k], b[k], ordered=ordered, tuples=tuples) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if tuples and isinstance(a, tuple) != isinstance(b, tuple):
            return False
        return len(a) == len(b) and all(
            same_exactly(x, y, ordered=ordered, tuples=tuples) for x, y in zip(a, b, strict=True)
        )
    return _scalar_type(a) is _scalar_type(b) and a == b


def _scalar_type(value: Any) -> type:
    """bool, int (bson's Int64 too) or float, else the value's own type."""
    for kind in (bool, int, float):
        if isinstance(value, kind):
            return kind
    return type(value)


def translate(config: Any, target: str) -> Any:
    """`config` with what DaCapo moved between trainer and run carried across, for `target`.

    DaCapo 0.3.5 keeps batch size, learning rate and snapshots in the trainer; DaCapo main on
    the run. A run going to main takes its trainer's; a run going to 0.3.5 gives its trainer
    the run's where the trainer has none; a lone trainer going to 0.3.5 takes DaCapo main's
    run defaults (batch size 1, learning rate 0.001). What changes is kept beside the document.
    """
    from ..configs import RunConfig, TrainerConfig

    if isinstance(config, RunConfig) and config.trainer_config is not None:
        trainer = config.trainer_config
        if target == "main":
            return attrs.evolve(
                config,
                batch_size=_first(trainer.batch_size, config.batch_size),
                learning_rate=_first(trainer.learning_rate, config.learning_rate),
                snapshot_interval=_first(
                    getattr(trainer, "snapshot_interval", None), config.snapshot_interval
                ),
            )
        return attrs.evolve(
            config,
            trainer_config=_filled(
                trainer, config.batch_size, config.learning_rate, config.snapshot_interval
            ),
        )
    if isinstance(config, TrainerConfig) and target == "0.3.5":
        defaults = attrs.fields_dict(RunConfig)
        return _filled(config, defaults["batch_size"].default, defaults["learning_rate"].default, None)
    return config


def _first(value: Any, otherwise: Any) -> Any:
    return otherwise if value is None else value


def _filled(trainer: Any, batch_size: Any, learning_rate: Any, snapshot_interval: Any) -> Any:
    changes = {
        "batch_size": _first(trainer.batch_size, batch_size),
        "learning_rate": _first(trainer.learning_rate, learning_rate),
    }
    if "snapshot_interval" in attrs.fields_dict(type(trainer)):
        changes["snapshot_interval"] = _first(trainer.snapshot_interval, snapshot_interval)
    return attrs.evolve(trainer, **changes)


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def with_values(config: Any, kept: list[dict[str, Any]]) -> Any:
    """`config` with each kept `{"path": [...], "value": v}` put back in place."""
    for item in kept:
        config = _replaced(config, list(item["path"]), item["value"])
    return config


def _replaced(obj: Any, path: list[Any], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if attrs.has(type(obj)):
        field = attrs.fields_dict(type(obj))[head]
        return attrs.evolve(obj, **{field.alias: _replaced(getattr(obj, head), rest, value)})
    if isinstance(obj, list):
        return [_replaced(v, rest, value) if i == head else v for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return type(obj)(_replaced(v, rest, value) if i == head else v for i, v in enumerate(obj))
    if isinstance(obj, Mapping):
        return {k: (_replaced(v, rest, value) if k == head else v) for k, v in obj.items()}
    raise KeyError(f"no field at {dotted(tuple(path))}")


def plan_document(
    cls: type,
    doc: dict[str, Any],
    stash: Mapping[str, Any] | None,
    target: str,
    *,
    ordered: bool,
    tuples: bool,
) -> tuple[str, str | None, dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """(status, source dialect, new document, stash entry for it, reason) for one document.

    A document is migrated only if it is exactly the document its dialect writes (so nothing of
    it can be lost on the way), its stash entry (from an earlier migration) is used to give back
    what the other way couldn't express, and what `target` can't express is returned to keep.
    """
    from .documents import content_hash

    try:
        source = converter.dialect_of(doc, cls)
    except DialectError as exc:
        return "refused", None, None, None, str(exc)
    try:
        config = converter.structure(doc, cls, dialect=source)
    except ConfigValidationError as exc:
        return "refused", source, None, None, f"it does not read as a config: {exc}"
    exact = [d for d in DIALECTS if _exact_in(config, doc, d, ordered=ordered, tuples=tuples)]
    if target in exact or (source in (None, target) and not exact):
        return "unchanged", source, None, None, None
    if not exact:
        return (
            "refused",
            source,
            None,
            None,
            (
                f"it is not exactly the document DaCapo {source} writes for its config (other keys, "
                "types or order: `check` lists what reads only leniently), so rewriting it could lose "
                "something; left as it is"
            ),
        )
    source = exact[0]
    entry = (stash or {}).get(content_hash(doc))
    try:
        if entry and entry.get("from") == target and entry.get("to") == source:
            config = with_values(config, entry.get("kept") or [])
            new = converter.unstructure(config, dialect=target)
            return "migrate", source, new, None, None
        moved = translate(config, target)
        new = converter.unstructure(moved, dialect=target)
        back = converter.structure(new, cls, dialect=target)
    except (DialectError, ConfigValidationError) as exc:
        return "refused", source, None, None, f"DaCapo {target} can't express it: {exc}"
    except KeyError as exc:
        return "refused", source, None, None, f"its kept values don't fit it any more: {exc}"
    kept = [{"path": list(path), "value": value} for path, value, _ in differences(config, back)]
    odd = [item for item in kept if not _plain(item["value"])]
    if odd:
        where = ", ".join(dotted(tuple(i["path"])) for i in odd)
        return (
            "refused",
            source,
            None,
            None,
            f"DaCapo {target} can't express {where}, and it can't be kept beside",
        )
    if with_values(back, kept) != config:
        return "refused", source, None, None, "what it can't express could not be kept beside it"
    new_entry = {"from": source, "to": target, "kept": kept} if kept else None
    return "migrate", source, new, new_entry, None


def _exact_in(config: Any, doc: Any, dialect: str, *, ordered: bool, tuples: bool) -> bool:
    try:
        mine = converter.unstructure(config, dialect=dialect)
    except DialectError:
        return False
    return same_exactly(doc, mine, ordered=ordered, tuples=tuples)


def describe_changes(
    cls: type, old: Mapping[str, Any], new: Mapping[str, Any], source: str, target: str, kept: list[dict]
) -> list[dict[str, Any]]:
    """The key-level changes from `old` to `new`: renamed, added, removed (and whether its value is
    kept beside the document), changed."""
    kept_at = {dotted(tuple(i["path"])) for i in kept}
    out: list[dict[str, Any]] = []
    _changes(cls, old, new, source, target, "", kept_at, out)
    # What moved between trainer and run (a 0.3.5 trainer's batch_size is main's run's).
    added = {c["path"]: c for c in out if c["change"] == "added"}
    for change in out:
        if change["change"] == "removed" and change["path"].split(".")[-1] in MOVED_TO_THE_RUN:
            leaf = change["path"].split(".")[-1]
            other = leaf if change["path"] == f"trainer_config.{leaf}" else f"trainer_config.{leaf}"
            if other in added and same_document(added[other]["value"], change["value"]):
                change["moved_to"] = other
    return out


def _changes(
    cls: type | None, old: Any, new: Any, source: str, target: str, path: str, kept: set[str], out: list
) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        tag = old.get("__type__")
        if isinstance(tag, str):
            cls = class_named(tag)
        renames: dict[str, tuple[str, str]] = {}
        if cls is not None and attrs.has(cls):
            for a in attrs.fields(cls):
                before, after = document_key(a, source), document_key(a, target)
                if before and after and before != after:
                    renames[before] = (after, a.name)
        for key in old:
            sub = f"{path}.{key}" if path else key
            if key in renames and renames[key][0] in new and key not in new:
                out.append({"path": sub, "change": "renamed", "to": renames[key][0]})
                _changes(None, old[key], new[renames[key][0]], source, target, sub, kept, out)
            elif key not in new:
                out.append({"path": sub, "change": "removed", "value": old[key], "kept": sub in kept})
            else:
                _changes(None, old[key], new[key], source, target, sub, kept, out)
        renamed_to = {after for after, _ in renames.values()}
        for key in new:
            if key not in old and key not in renamed_to:
                sub = f"{path}.{key}" if path else key
                out.append({"path": sub, "change": "added", "value": new[key]})
    elif isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _changes(None, a, b, source, target, f"{path}[{i}]", kept, out)
    elif not same_document(old, new):
        out.append({"path": path, "change": "changed", "from": old, "to": new})
