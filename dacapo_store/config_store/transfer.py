"""Copying documents between stores: idempotent, never overwriting, keeping who stored what."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from ..errors import DacapoStoreError, DuplicateNameError
from .base import ConfigStore
from .documents import KINDS, META_KEY, RUN_PARTS, check_kind, config_part


@attrs.define
class CopyReport:
    """What a copy did, per document as (kind, name[, reason])."""

    copied: list[tuple[str, str]] = attrs.Factory(list)
    unchanged: list[tuple[str, str]] = attrs.Factory(list)
    conflicts: list[tuple[str, str, str]] = attrs.Factory(list)
    failed: list[tuple[str, str, str]] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.failed


def copy_documents(
    source: ConfigStore,
    target: ConfigStore,
    kinds: Iterable[str] = KINDS,
    on_document: Callable[[str, str], None] | None = None,
) -> CopyReport:
    """Copy every document of `kinds` from source to target.

    Documents need no config class: unknown `__type__`s copy whole. An equal document at the
    target is left as is (so rerunning is a no-op); a different one is a conflict, reported
    and never overwritten; an unreadable source document is reported as failed.
    """
    report = CopyReport()
    target.adopt_dialect(source.dialect())  # a new registry copies in the source's DaCapo dialect
    for kind in kinds:
        check_kind(kind)
        for name, doc in source.documents(kind, with_metadata=True):
            if on_document is not None:
                on_document(kind, name)
            if isinstance(doc, Exception):
                report.failed.append((kind, name, str(doc)))
                continue
            clash = _part_conflict(target, config_part(doc)) if kind == "runs" else None
            if clash is not None:
                report.conflicts.append((kind, name, clash))
                continue
            try:
                # `or {}`: a document without metadata (DaCapo's own) gets none at the target.
                written = target.put_document(kind, config_part(doc), metadata=doc.get(META_KEY) or {})
            except DuplicateNameError as exc:
                report.conflicts.append((kind, name, str(exc)))
            except DacapoStoreError as exc:
                report.failed.append((kind, name, str(exc)))
            else:
                (report.copied if written else report.unchanged).append((kind, name))
    return report


def _part_conflict(target: ConfigStore, run: dict) -> str | None:
    """Why a run can't go to the target as it is: a part it embeds (task, architecture, trainer,
    datasplit) is stored there under its name as another document; None if none is."""
    for field, kind in RUN_PARTS.items():
        part = run.get(field)
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            continue
        try:
            target.check_document(kind, part)
        except DuplicateNameError:
            return (
                f"its {field} {part['name']!r} differs from the {kind[:-1]} of that name in "
                f"{target.describe()}; the run was not copied (rename one of the two)"
            )
        except DacapoStoreError:
            continue  # a name the target can't hold: reported with the part itself
    return None


def count_documents(store: ConfigStore, kinds: Iterable[str] = KINDS) -> int:
    return sum(len(store.names(kind)) for kind in kinds)
