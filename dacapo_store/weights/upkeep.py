"""Upkeep: what killed writers left behind (`gc`), and checkpoints no best, pin or start needs (`prune`)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..criteria import start_rule
from ..errors import DacapoStoreError
from .backend import Collected, Leftover, gc_cutoff
from .best import choose, kept_by_bests
from .records import RunLike, run_name, summary

if TYPE_CHECKING:
    from .backend import WeightsBackend

log = logging.getLogger(__name__)


class Upkeep:
    """The gc and prune part of `WeightsStore`."""

    backend: WeightsBackend

    def gc(self, older_than: float | timedelta, *, dry_run: bool = False) -> list[Leftover]:
        """Remove what killed writers left behind, if older than `older_than` (seconds or a timedelta).

        That is complete blobs no index entry names, GridFS chunks without a file document, and
        files-backend temporary files. Anything younger is left alone: a writer still at work
        has written its blobs but not yet its index entry. Returns what was removed (with
        dry_run: what would be).
        """
        cutoff = gc_cutoff(older_than)
        with self.backend.fresh_reads():
            return self._gc(cutoff, dry_run)

    def _gc(self, cutoff: float, dry_run: bool) -> list[Leftover]:
        found = Collected(item for item in self.backend.partial_leftovers() if item.created < cutoff)
        for run in self.backend.list_runs():
            referenced = self._referenced(run, found.skipped)
            if referenced is None:
                continue
            for name, size, created in self.backend.blob_stats(run):
                if name not in referenced and created < cutoff:
                    found.append(Leftover("unreferenced blob", run, name, size, created, key=name))
        for run, why in found.skipped.items():
            log.warning("gc: skipping the blobs of run %s: %s", run, why)
        if dry_run:
            return found
        removed = Collected()
        removed.skipped = found.skipped
        for item in found:
            if item.kind == "unreferenced blob":
                # a blob that an index entry names by now (a very slow writer) stays
                referenced = self._referenced(item.run, removed.skipped)
                if referenced is None or item.name in referenced:
                    continue
            self.backend.remove_leftover(item)
            removed.append(item)
        if removed:
            log.info(
                "gc removed %d leftover(s), %d bytes, from %s",
                len(removed),
                sum(i.size for i in removed),
                self.where,
            )
        return removed

    def _referenced(self, run: str, skipped: dict[str, str]) -> set[str] | None:
        """The blob names the run's index names; None (and why, in `skipped`) when part of its
        index can't be read: a blob only that part names would look unreferenced."""
        try:
            index = self.backend.read_index(run)
        except (DacapoStoreError, OSError) as exc:
            skipped[run] = f"its index can't be read ({exc})"
            return None
        if index.problems:
            skipped[run] = (
                f"its index has {len(index.problems)} part(s) that can't be read ({index.problems[0]}"
                f"{'; ...' if len(index.problems) > 1 else ''}), so a blob may be named there; "
                "nothing of it is collected while `dacapo-store check` reports the damage"
            )
            return None
        return {
            record.get("name") for meta in index.checkpoints.values() for record in meta["blobs"].values()
        }

    def prune(
        self, run: RunLike, keep_last: int = 1, config_store: Any = None, *, dry_run: bool = False
    ) -> list[int]:
        """Delete checkpoints that are not among the last `keep_last`, not a best, a pin or a start.

        Starts come from `config_store.starts_from(run)` (the options' config store when omitted).
        Legacy DaCapo files are never deleted. Returns the deleted (or, with dry_run, deletable)
        iterations.
        """
        name = run_name(run)
        if type(keep_last) is not int or keep_last < 0:
            raise ValueError(f"keep_last must be a non-negative int, got {keep_last!r}")
        if config_store is None:
            from ..config_store import create_config_store

            with create_config_store() as own:
                starts = own.starts_from(name)
        else:
            starts = config_store.starts_from(name)
        index = self.run_index(name)
        ours = sorted(index.checkpoints)
        keep = set(ours[len(ours) - keep_last :]) if keep_last else set()
        keep |= kept_by_bests(index)
        for _, criterion in starts:
            try:
                kind, value = start_rule(criterion)
            except (TypeError, ValueError) as exc:
                log.warning("run %s: a start by %r keeps nothing: %s", name, criterion, exc)
                continue
            if kind == "latest":
                if index.iterations():
                    keep.add(index.iterations()[-1])
            elif kind == "iteration":
                keep.add(value)  # type: ignore[arg-type]
            else:
                chosen = choose(index, value, None)  # type: ignore[arg-type]
                if chosen is not None and chosen.loadable:
                    keep.add(chosen.iteration)
        doomed = [it for it in ours if it not in keep]
        if not dry_run:
            for iteration in doomed:
                self.remove(name, iteration)
            if doomed:
                log.info("pruned %d checkpoint(s) of run %s: %s", len(doomed), name, summary(doomed))
        return doomed
