"""Copying documents between stores: idempotent, never overwriting, keeping who stored what."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from ..errors import DacapoStoreError, DuplicateNameError
from .base import ConfigStore
from .documents import KINDS, META_KEY, check_kind, config_part


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


def count_documents(store: ConfigStore, kinds: Iterable[str] = KINDS) -> int:
    return sum(len(store.names(kind)) for kind in kinds)
