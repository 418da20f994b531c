"""Copying a registry: config documents with their metadata, and for the runs copied, everything
the weights store holds for them. Used by `copy`, `export` and `import`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .config_store.base import ConfigStore
from .config_store.documents import KINDS
from .config_store.transfer import CopyReport, copy_documents, count_documents
from .weights.base import WeightsStore
from .weights.transfer import RunTransfer, blob_count, copy_run_weights


@attrs.define
class TransferReport:
    """What a registry copy did: the documents, then each run's weights."""

    configs: CopyReport
    runs: list[RunTransfer] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        return self.configs.ok and all(r.ok for r in self.runs)

    def as_json(self) -> dict[str, Any]:
        """The `copy`/`export`/`import --json` summary (shape documented in the README)."""
        c = self.configs
        return {
            "ok": self.ok,
            "documents": {
                "copied": len(c.copied),
                "unchanged": len(c.unchanged),
                "conflicts": [{"kind": k, "name": n, "reason": r} for k, n, r in c.conflicts],
                "failed": [{"kind": k, "name": n, "reason": r} for k, n, r in c.failed],
            },
            "runs": [
                {
                    "run": r.run,
                    "checkpoints_copied": r.checkpoints_copied,
                    "checkpoints_unchanged": r.checkpoints_unchanged,
                    "bytes_copied": r.bytes_copied,
                    "scores_copied": r.scores_copied,
                    "scores_unchanged": r.scores_unchanged,
                    "pins_copied": r.pins_copied,
                    "pins_unchanged": r.pins_unchanged,
                    "training_stats": r.training_stats,
                    "legacy_skipped": r.legacy_skipped,
                    "dacapo_not_copied": r.dacapo_not_copied,
                    "conflicts": r.conflicts,
                    "failed": r.failed,
                }
                for r in self.runs
            ],
        }


def transfer_total(source: ConfigStore, kinds: Iterable[str], weights: WeightsStore | None) -> int:
    """Steps of a transfer (documents, then blobs), for a progress bar."""
    kinds = list(kinds)
    total = count_documents(source, kinds)
    if weights is not None and "runs" in kinds:
        total += sum(blob_count(weights, run) for run in source.names("runs"))
    return total


def transfer(
    source: ConfigStore,
    target: ConfigStore,
    kinds: Iterable[str] = KINDS,
    *,
    source_weights: WeightsStore | None = None,
    target_weights: WeightsStore | None = None,
    on_step: Callable[..., None] | None = None,
) -> TransferReport:
    """Copy documents of `kinds`; with both weights stores, also the weights of every copied run.

    Idempotent: what the target holds equal is left alone; conflicts are reported, never overwritten.
    """
    kinds = list(kinds)
    report = TransferReport(copy_documents(source, target, kinds, on_document=on_step))
    if source_weights is not None and target_weights is not None and "runs" in kinds:
        # a run whose config conflicts is another run at the target: its weights stay apart
        skipped = {
            name for kind, name, _ in [*report.configs.conflicts, *report.configs.failed] if kind == "runs"
        }
        for run in source.names("runs"):
            if run in skipped:
                continue
            report.runs.append(copy_run_weights(source_weights, target_weights, run, on_blob=on_step))
    return report
