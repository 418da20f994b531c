"""Upkeep: what killed writers left behind (`gc`), and checkpoints no best, pin or start needs (`prune`)."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..criteria import start_rule
from .backend import Leftover
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
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError(
                f"older_than must be a non-negative number of seconds or a timedelta, got {older_than!r}"
            )
        cutoff = time.time() - seconds
        found = [item for item in self.backend.partial_leftovers() if item.created < cutoff]
        for run in self.backend.list_runs():
            referenced = self._referenced(run)
            for name, size, created in self.backend.blob_stats(run):
                if name not in referenced and created < cutoff:
                    found.append(Leftover("unreferenced blob", run, name, size, created, key=name))
        if dry_run:
            return found
        removed = []
        for item in found:
            # a blob that an index entry names by now (a very slow writer) stays
            if item.kind == "unreferenced blob" and item.name in self._referenced(item.run):
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

    def _referenced(self, run: str) -> set[str]:
        return {
            record.get("name")
            for meta in self.backend.read_index(run).checkpoints.values()
            for record in meta["blobs"].values()
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
