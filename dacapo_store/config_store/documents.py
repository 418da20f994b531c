"""Document-level helpers shared by the stores and the CLI: kinds, metadata, hashes, diffs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ..configs import (
    ArchitectureConfig,
    ArrayConfig,
    DatasetConfig,
    DataSplitConfig,
    RunConfig,
    TaskConfig,
    TrainerConfig,
)
from ..provenance import current_user, utc_now

#: collection name -> the class its documents structure as (DaCapo's collections).
KIND_CLASSES: dict[str, type] = {
    "runs": RunConfig,
    "tasks": TaskConfig,
    "architectures": ArchitectureConfig,
    "trainers": TrainerConfig,
    "datasplits": DataSplitConfig,
    "datasets": DatasetConfig,
    "arrays": ArrayConfig,
}
KINDS: tuple[str, ...] = tuple(KIND_CLASSES)

#: run document field -> the kind its sub-config is stored in.
RUN_PARTS: dict[str, str] = {
    "task_config": "tasks",
    "architecture_config": "architectures",
    "trainer_config": "trainers",
    "datasplit_config": "datasplits",
}

#: The key under which documents carry who stored them and when in the export/copy format
#: (`documents(kind, with_metadata=True)`, `put_document`, `show --meta`). Stored documents
#: never hold it: the metadata is kept beside them.
META_KEY = "__dacapo_store__"
#: The metadata key naming the run a part (task, architecture, trainer, datasplit) was stored
#: for by `store(run)`: while that run is not stored and no stored run uses the part, `gc`
#: takes the part for a leftover of a store cut short.
PART_OF = "part_of"
#: Keys a backend may add that are not part of the config.
STORAGE_KEYS = frozenset({"_id", META_KEY})


def check_kind(kind: object) -> str:
    if kind not in KIND_CLASSES:
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    return kind  # type: ignore[return-value]


def kind_of(config: object) -> str:
    """The collection a config object is stored in."""
    for kind, cls in KIND_CLASSES.items():
        if isinstance(config, cls):
            return kind
    raise TypeError(f"{type(config).__name__} is not a storable config (kinds: {', '.join(KINDS)})")


def config_part(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The config of a stored document: without `_id` and the store's metadata."""
    return {k: v for k, v in doc.items() if k not in STORAGE_KEYS}


def content_hash(doc: Mapping[str, Any]) -> str:
    """sha256 of the config's canonical JSON (sorted keys), independent of storage keys."""
    text = json.dumps(config_part(doc), sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def new_metadata(doc: Mapping[str, Any]) -> dict[str, str]:
    return {
        "created_at": utc_now(),
        "created_by": current_user(),
        "content_hash": content_hash(doc),
    }


@attrs.frozen
class DocumentMetadata:
    """Who stored a document and when (None for documents written by DaCapo itself)."""

    created_at: datetime | None
    created_by: str | None
    content_hash: str

    @classmethod
    def of(cls, doc: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> DocumentMetadata:
        """The metadata of `doc`: `meta` if given, else the one it carries under META_KEY."""
        meta = meta if meta is not None else (doc.get(META_KEY) or {})
        created = meta.get("created_at")
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        recorded = meta.get("content_hash")
        return cls(
            created_at=created,
            created_by=meta.get("created_by"),
            # the hash recorded when it was stored; a document DaCapo wrote has none: its own
            content_hash=recorded if isinstance(recorded, str) else content_hash(doc),
        )


def diff_documents(stored: Any, given: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, stored value, given value) for every leaf where two documents differ."""
    if isinstance(stored, Mapping) and isinstance(given, Mapping):
        out = []
        for key in [*stored, *(k for k in given if k not in stored)]:
            if key in STORAGE_KEYS and not path:
                continue
            sub = f"{path}.{key}" if path else str(key)
            out += diff_documents(stored.get(key, _MISSING), given.get(key, _MISSING), sub)
        return out
    # A tuple and a list are the same array once stored (BSON, JSON): compare items.
    if isinstance(stored, (list, tuple)) and isinstance(given, (list, tuple)) and len(stored) == len(given):
        out = []
        for i, (a, b) in enumerate(zip(stored, given, strict=True)):
            out += diff_documents(a, b, f"{path}[{i}]")
        return out
    # 1 == True in Python, but not in a config.
    if stored == given and (type(stored) is bool) == (type(given) is bool):
        return []
    return [(path, stored, given)]


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


_MISSING = _Missing()


def with_tuples_of(doc: Any, canonical: Any) -> Any:
    """`doc` with a tuple wherever `canonical` (the same config, unstructured) has one.

    MongoDB and JSON give tuples back as lists; DaCapo's files hold them as tuples, and its
    files store compares with `==`. Nothing else of `doc` changes.
    """
    if isinstance(doc, dict) and isinstance(canonical, dict):
        return {k: with_tuples_of(v, canonical[k]) if k in canonical else v for k, v in doc.items()}
    if isinstance(doc, (list, tuple)) and isinstance(canonical, (list, tuple)) and len(doc) == len(canonical):
        items = [with_tuples_of(a, b) for a, b in zip(doc, canonical, strict=True)]
        return tuple(items) if isinstance(canonical, tuple) else items
    return doc


def format_differences(differences: list[tuple[str, Any, Any]], limit: int = 10) -> str:
    shown = [f"{p or '<document>'}: stored {a!r}, given {b!r}" for p, a, b in differences[:limit]]
    if len(differences) > limit:
        shown.append(f"... and {len(differences) - limit} more")
    return "; ".join(shown)


def run_references(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a run document is filtered and linked by."""
    start = doc.get("start_config") or {}
    out = {f"{part}.name": (doc.get(part) or {}).get("name") for part in RUN_PARTS}
    if isinstance(start, Mapping):
        out["start_config.run"] = start.get("run")
        out["start_config.criterion"] = start.get("criterion")
    return out
