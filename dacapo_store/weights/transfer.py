"""Copying what a weights store holds for a run into another: checkpoints, scores, pins, stats.

Blobs move as they are (never re-encoded), each verified against its recorded size and checksum
on the way; a checkpoint becomes visible at the target only when its index event is appended
after its blobs, as `store_weights` does. Nothing at the target is overwritten: what is there
and equal is left alone (reruns are no-ops), what is there and different is a conflict.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import attrs

from ..errors import CorruptWeightsError, TrainingStatsConflictError
from .base import BlobNotFoundError, WeightsStore, run_name
from .checkpoints import CHECKSUMS, blob_checksum

log = logging.getLogger(__name__)


@attrs.define
class RunTransfer:
    """What copying one run's weights did; the lists hold one line per item."""

    run: str
    checkpoints_copied: list[int] = attrs.Factory(list)
    checkpoints_unchanged: list[int] = attrs.Factory(list)
    bytes_copied: int = 0
    scores_copied: int = 0
    scores_unchanged: int = 0
    pins_copied: int = 0
    pins_unchanged: int = 0
    training_stats: str = "none"
    #: DaCapo's own pickled checkpoints (not copied: they stay where DaCapo wrote them)
    legacy_skipped: list[int] = attrs.Factory(list)
    #: what DaCapo keeps for the run that a copy does not carry (its checkpoints, validation
    #: scores, best files): `import-dacapo` converts them
    dacapo_not_copied: list[str] = attrs.Factory(list)
    conflicts: list[str] = attrs.Factory(list)
    failed: list[str] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.failed and not self.dacapo_not_copied


def blob_count(store: WeightsStore, run: str) -> int:
    """How many blobs the run's checkpoints have (for a progress bar)."""
    return sum(len(m.get("blobs", {})) for m in store.read_index(run_name(run)).checkpoints.values())


def copy_run_weights(
    source: WeightsStore,
    target: WeightsStore,
    run: str,
    on_blob: Callable[[str, str], None] | None = None,
) -> RunTransfer:
    """Copy `run`'s checkpoints, validation scores with their directions, pins and training stats."""
    name = run_name(run)
    report = RunTransfer(name)
    src, dst = source.read_index(name), target.read_index(name)
    for iteration, meta in sorted(src.checkpoints.items()):
        _copy_checkpoint(
            source, target, name, iteration, meta, dst.checkpoints.get(iteration), report, on_blob
        )
    report.legacy_skipped = [it for it in source.legacy_iterations(name) if it not in src.checkpoints]
    if report.legacy_skipped:
        report.dacapo_not_copied.append(f"checkpoints {', '.join(map(str, report.legacy_skipped))}")
    theirs = source.dacapo.index(name) if source.dacapo is not None else None
    if theirs is not None and theirs.scores:
        report.dacapo_not_copied.append("validation scores")
    if theirs is not None and theirs.pins:
        report.dacapo_not_copied.append("best files")

    grouped: dict[tuple[int, str], dict[str, Any]] = defaultdict(
        lambda: {"scores": {}, "higher_is_better": {}}
    )
    for criterion, by_dataset in src.scores.items():
        higher = src.directions.get(criterion)
        theirs = dst.directions.get(criterion)
        if higher is not None and theirs is not None and higher is not theirs:
            report.conflicts.append(f"criterion {criterion}: the target stores the other direction")
            continue
        for dataset, values in by_dataset.items():
            have = dst.scores.get(criterion, {}).get(dataset, {})
            for iteration, value in values.items():
                if iteration not in have:
                    event = grouped[(iteration, dataset)]
                    event["scores"][criterion] = value
                    if higher is not None:
                        event["higher_is_better"][criterion] = higher
                elif _same_score(have[iteration], value):
                    report.scores_unchanged += 1
                else:
                    report.conflicts.append(
                        f"score {criterion} on {dataset} at {iteration}: "
                        f"target {have[iteration]}, source {value}"
                    )
    events = [
        {"op": "scores", "iteration": it, "dataset": ds, **values}
        for (it, ds), values in sorted(grouped.items())
    ]
    for (dataset, criterion), iteration in sorted(src.pins.items(), key=lambda p: (p[0][1], p[0][0] or "")):
        have = dst.pins.get((dataset, criterion))
        if have is None:
            events.append({"op": "pin", "dataset": dataset, "criterion": criterion, "iteration": iteration})
            report.pins_copied += 1
        elif have == iteration:
            report.pins_unchanged += 1
        else:
            report.conflicts.append(
                f"pin {criterion} on {dataset or 'all datasets'}: target {have}, source {iteration}"
            )
    if events:
        target.append_index(name, events)
    report.scores_copied = sum(len(e["scores"]) for e in events if e["op"] == "scores")
    _copy_training_stats(source, target, name, report)
    return report


def _copy_checkpoint(
    source: WeightsStore,
    target: WeightsStore,
    run: str,
    iteration: int,
    meta: dict[str, Any],
    existing: dict[str, Any] | None,
    report: RunTransfer,
    on_blob: Callable[[str, str], None] | None,
) -> None:
    records = meta.get("blobs", {})
    if existing is not None:
        for record in records.values():
            if on_blob is not None:
                on_blob(run, record.get("name", "?"))
        try:
            same = _same_checkpoint(target, run, iteration, existing, meta)
        except (CorruptWeightsError, BlobNotFoundError, KeyError) as exc:
            report.failed.append(f"checkpoint {iteration}: can't compare with the target's: {exc}")
            return
        if same:
            report.checkpoints_unchanged.append(iteration)
        else:
            report.conflicts.append(f"checkpoint {iteration}: the target holds another one")
        return
    written = []
    try:
        for record in records.values():
            if target.check_blob(run, record) is not None:  # absent (or a damaged leftover)
                buffer = source.verified_blob(run, iteration, record)
                target.put_blob(run, record["name"], [buffer])
                written.append(record["name"])
                report.bytes_copied += int(record["size"])
            if on_blob is not None:
                on_blob(run, record["name"])
        target.append_index(run, [{"op": "checkpoint", "iteration": iteration, "meta": meta}])
    except (CorruptWeightsError, BlobNotFoundError) as exc:
        report.failed.append(f"checkpoint {iteration}: {exc}")
        for blob in written:
            target.delete_blob(run, blob)
        return
    report.checkpoints_copied.append(iteration)


def _copy_training_stats(source: WeightsStore, target: WeightsStore, run: str, report: RunTransfer) -> None:
    """The run's training stats: iterations the target lacks are added, equal ones left alone;
    other values at an iteration the target has are a conflict (nothing of them is written)."""
    stats = source.retrieve_training_stats(run)
    if not stats:
        return
    try:
        added = target.store_training_stats(run, stats)
    except TrainingStatsConflictError as exc:
        report.training_stats = "conflict"
        report.conflicts.append(f"training stats: the target holds other ones ({exc})")
        return
    report.training_stats = "copied" if added else "unchanged"


def _same_checkpoint(
    target: WeightsStore, run: str, iteration: int, held: dict[str, Any], meta: dict[str, Any]
) -> bool:
    """Whether the target's checkpoint `held` has the same parts, sizes and bytes as `meta`: by the
    checksums both records carry, or, where they share none (a sha256-only entry of an earlier
    version beside an xxh3-128 one), by the source's checksum of the target's blob (verified)."""
    ours, theirs = held.get("blobs", {}), meta.get("blobs", {})
    if ours.keys() != theirs.keys():
        return False
    for part, record in theirs.items():
        have = ours[part]
        if have.get("size") != record.get("size"):
            return False
        shared = [key for key, _, _ in CHECKSUMS if key in have and key in record]
        if shared:
            if any(have[key] != record[key] for key in shared):
                return False
        else:
            key, _, checksum = blob_checksum(record)
            if checksum(target.verified_blob(run, iteration, have)) != record[key]:
                return False
    return True


def _same_score(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)
