"""import-dacapo: copy a DaCapo 0.3 registry into a dacapo_store registry, reading the source only.

Configs are copied as documents (`ConfigStore.put_document`, so classes not known here copy too),
checkpoints are loaded with the restricted unpickler and stored in our format (safetensors model
and optimizer, an xxh3-128 checksum per blob) and read back verified, scores and DaCapo's best
files become our scores and pins, training stats ours. Whatever is already at the target is
skipped, so a rerun imports nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ..config_store.dialects import document_dialect
from ..config_store.documents import KIND_CLASSES
from ..errors import (
    DacapoStoreError,
    DuplicateNameError,
    InvalidNameError,
    PickleCheckpointError,
    StoreConnectionError,
)
from ..weights.base import WeightsStore, run_name
from ..weights.stats import same_stats
from .registry import CONFIG_KINDS, DacapoRegistry
from .unpickler import load_checkpoint

log = logging.getLogger(__name__)


@attrs.define
class ImportReport:
    """What an import did (or, with dry_run, would do): items as (what, name, detail)."""

    dry_run: bool = False
    converted: list[tuple[str, str, str]] = attrs.Factory(list)
    skipped: list[tuple[str, str, str]] = attrs.Factory(list)
    failed: list[tuple[str, str, str]] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        """No item failed (skips are fine: already there, or not convertible by design)."""
        return not self.failed

    def counts(self) -> dict[str, dict[str, int]]:
        """outcome -> what -> how many."""
        out: dict[str, dict[str, int]] = {}
        for outcome in ("converted", "skipped", "failed"):
            for what, _, _ in getattr(self, outcome):
                out.setdefault(outcome, {}).setdefault(what, 0)
                out[outcome][what] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "counts": self.counts(),
            **{
                outcome: [{"what": w, "name": n, "detail": d} for w, n, d in getattr(self, outcome)]
                for outcome in ("converted", "skipped", "failed")
            },
        }


def import_dacapo(
    source: DacapoRegistry,
    configs: Any,
    weights: WeightsStore,
    *,
    runs: Iterable[str] | None = None,
    dry_run: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> ImportReport:
    """Copy `source` into `configs` (a ConfigStore) and `weights`; see the module docstring."""
    report = ImportReport(dry_run=dry_run)
    step = on_step or (lambda _: None)
    selected = None if runs is None else list(dict.fromkeys(runs))
    run_names = source.run_names() if selected is None else selected
    wanted = None if selected is None else _referenced(source, selected)
    documents = [
        (kind, name, doc)
        for kind in CONFIG_KINDS
        for name, doc in source.config_documents(kind)
        if wanted is None or name in wanted.get(kind, ())
    ]
    if any(_is_dacapo_main(kind, doc) for kind, _, doc in documents):
        configs.adopt_dialect("main")  # a new registry takes DaCapo main documents as they are
    for kind, name, doc in documents:
        step(f"{kind}/{name}")
        _import_config(configs, kind, name, doc, report, dry_run)
    if source.runs_dir is None:
        report.skipped.append(
            (
                "checkpoints",
                "*",
                "no runs_base_dir given (--runs-dir): DaCapo's checkpoints and bests not looked for",
            )
        )
    for run in run_names:
        step(f"run {run}")
        try:
            _import_run(source, weights, run, report, dry_run)
        except StoreConnectionError:
            raise
        except DacapoStoreError as exc:
            report.failed.append(("run", run, str(exc)))
    return report


def import_steps(source: DacapoRegistry, runs: Iterable[str] | None = None) -> int:
    """How many steps `import_dacapo` reports (for a progress bar)."""
    selected = None if runs is None else list(dict.fromkeys(runs))
    wanted = None if selected is None else _referenced(source, selected)
    total = 0
    for kind in CONFIG_KINDS:
        names = source.config_names(kind)
        total += len(names) if wanted is None else sum(1 for n in names if n in wanted.get(kind, ()))
    return total + len(source.run_names() if selected is None else selected)


def _referenced(source: DacapoRegistry, runs: list[str]) -> dict[str, set[str]]:
    """Config names of these runs and of their parts (task, architecture, trainer, datasplit)."""
    wanted: dict[str, set[str]] = {"runs": set(runs)}
    parts = {
        "task_config": "tasks",
        "architecture_config": "architectures",
        "trainer_config": "trainers",
        "datasplit_config": "datasplits",
    }
    for run in runs:
        doc = source.run_document(run) or {}
        for field, kind in parts.items():
            part = doc.get(field)
            if isinstance(part, Mapping) and isinstance(part.get("name"), str):
                wanted.setdefault(kind, set()).add(part["name"])
    return wanted


def _is_dacapo_main(kind: str, doc: Any) -> bool:
    return isinstance(doc, Mapping) and document_dialect(KIND_CLASSES[kind], doc) == "main"


def _import_config(configs: Any, kind: str, name: str, doc: Any, report: ImportReport, dry_run: bool) -> None:
    what = kind[:-1] + " config"
    if isinstance(doc, Exception):
        report.failed.append((what, name, f"unreadable at the source: {doc}"))
        return
    try:
        if dry_run:
            try:
                existing = configs.get_document(kind, name)
            except KeyError:
                report.converted.append((what, name, "would be copied"))
                return
            if existing == {k: v for k, v in doc.items() if k != "_id"}:
                report.skipped.append((what, name, "already there"))
            else:
                report.skipped.append((what, name, "a different document has this name at the target"))
            return
        if configs.put_document(kind, doc):
            report.converted.append((what, name, "copied"))
        else:
            report.skipped.append((what, name, "already there"))
    except DuplicateNameError:
        report.skipped.append((what, name, "a different document has this name at the target; left as it is"))
    except (DacapoStoreError, ValueError, TypeError) as exc:
        report.skipped.append((what, name, str(exc)))


def _import_run(
    source: DacapoRegistry, weights: WeightsStore, run: str, report: ImportReport, dry_run: bool
) -> None:
    try:
        run_name(run)
    except (InvalidNameError, TypeError) as exc:
        report.skipped.append(("run", str(run), str(exc)))
        return
    index = weights.read_index(run)
    present = set(index.checkpoints)
    # checkpoints
    for iteration in source.checkpoint_iterations(run):
        label = f"{run}@{iteration}"
        if iteration in present:
            report.skipped.append(("checkpoint", label, "already imported"))
            continue
        path = source.checkpoint_path(run, iteration)
        try:
            model, optimizer = load_checkpoint(path)
        except PickleCheckpointError as exc:
            report.skipped.append(("checkpoint", label, f"not convertible without unpickling code: {exc}"))
            continue
        except DacapoStoreError as exc:
            report.failed.append(("checkpoint", label, str(exc)))
            continue
        if dry_run:
            report.converted.append(("checkpoint", label, "would be converted"))
            present.add(iteration)
            continue
        try:
            weights.store_weights(run, iteration, model, optimizer)
            stored = weights.retrieve_weights(run, iteration)  # checksums verified on the way
        except StoreConnectionError:
            raise
        except (DacapoStoreError, ValueError, TypeError) as exc:
            report.failed.append(("checkpoint", label, f"can't be stored in our format: {exc}"))
            continue
        if not _same_tensors(stored.model, model):
            raise DacapoStoreError(f"checkpoint {label} did not read back equal after conversion")
        blobs = stored.metadata["blobs"] if stored.metadata else {}
        digest = blobs.get("model", {}).get("xxh3_128", "?")[:12]
        report.converted.append(("checkpoint", label, f"xxh3-128 {digest}"))
        present.add(iteration)
    # validation scores
    for event in source.score_events(run):
        label = f"{run}@{event['iteration']} on {event['dataset']}"
        have = {
            c: index.scores.get(c, {}).get(event["dataset"], {}).get(event["iteration"])
            for c in event["scores"]
        }
        if all(have[c] is not None and _same_score(have[c], v) for c, v in event["scores"].items()):
            report.skipped.append(("scores", label, "already imported"))
            continue
        if dry_run:
            report.converted.append(("scores", label, f"{len(event['scores'])} criteria would be copied"))
            continue
        try:
            weights.store_validation_scores(
                run,
                event["iteration"],
                event["scores"],
                dataset=event["dataset"],
                higher_is_better=event["higher_is_better"],
            )
        except (DacapoStoreError, ValueError, TypeError) as exc:
            report.skipped.append(("scores", label, str(exc)))
        else:
            report.converted.append(("scores", label, f"{len(event['scores'])} criteria"))
    # DaCapo's store_best choices, as pins
    for pin in source.bests(run):
        label = f"{run}: {pin['criterion']} on {pin['dataset']}"
        if index.pins.get((pin["dataset"], pin["criterion"])) == pin["iteration"]:
            report.skipped.append(("best", label, "already pinned"))
            continue
        if pin["iteration"] not in present and pin["iteration"] not in weights.legacy_iterations(run):
            report.skipped.append(
                ("best", label, f"iteration {pin['iteration']} has no weights at the target")
            )
            continue
        if dry_run:
            report.converted.append(("best", label, f"would pin iteration {pin['iteration']}"))
            continue
        try:
            weights.store_best(run, pin["iteration"], pin["dataset"], pin["criterion"])
        except (DacapoStoreError, ValueError, TypeError) as exc:
            report.skipped.append(("best", label, str(exc)))
        else:
            report.converted.append(("best", label, f"pinned iteration {pin['iteration']}"))
    # training stats
    stats = source.training_stats(run)
    if stats:
        have = weights.read_training_stats(run)
        new = {it: row for it, row in stats.items() if it not in have}
        clash = [it for it, row in stats.items() if it in have and not same_stats(have[it], row)]
        if clash:
            report.failed.append(
                ("training stats", run, f"the target has other values at iteration(s) {sorted(clash)[:8]}")
            )
        elif not new:
            report.skipped.append(("training stats", run, "already imported"))
        elif dry_run:
            report.converted.append(("training stats", run, f"{len(new)} iteration(s) would be copied"))
        else:
            weights.append_training_stats(run, dict(sorted(new.items())))
            report.converted.append(("training stats", run, f"{len(new)} iteration(s)"))


def _same_tensors(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    import torch

    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def _same_score(a: float, b: float) -> bool:
    """Equal scores, NaN equal to NaN (DaCapo's "validated, no value" is imported as NaN)."""
    return a == b or (a != a and b != b)
