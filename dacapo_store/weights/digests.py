"""DigestTable: every run's digest in a weights store, kept up to date by the store's change signal.

The weights side of the run catalog, and what `WeightsStore.leaderboard` ranks: one mechanism for
both. A refresh asks the store's `changes_since` which runs changed (on files a stat of each run's
inputs; on MongoDB the documents' update markers) and reads the digests of those only
(`WeightsStore.run_digests`: the stored digests whose stamp matches, read together, and the other
runs' indexes folded one at a time: a cold build never holds every run's index, only digests).

The table is replaced whole on each refresh (`digests` is never changed in place): a reader keeps
the mapping it took for as long as it needs one consistent view.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from .digest import RunDigest

if TYPE_CHECKING:
    from .base import WeightsStore

log = logging.getLogger(__name__)


def is_empty(digest: RunDigest) -> bool:
    """Nothing stored for the run: no checkpoint, score or pin, and nothing wrong."""
    return not (digest.checkpoints or digest.bests or digest.criteria or digest.problem)


class DigestTable:
    """Every run's digest in one weights store (runs with nothing stored are left out, unless
    watched), with the change token they were read at."""

    def __init__(self, store: WeightsStore) -> None:
        self.store = store
        self.token: Any = None
        self.digests: Mapping[str, RunDigest] = {}
        #: how many refreshes changed something (a cache over the table compares it)
        self.version = 0
        self._lock = threading.Lock()

    def refresh(
        self, watch: Collection[str] = (), *, full: bool = False, changed_out: set[str] | None = None
    ) -> Mapping[str, RunDigest]:
        """Read again what changed since the last refresh (everything the first time, or `full`)
        and return the table. `watch`: runs to keep (and read) even with nothing stored (the runs
        a config store holds). `changed_out` receives the runs whose digest was read again."""
        with self._lock:
            old = self.digests
            watched = set(watch)
            token, changed = self.store.changes_since(self.token, set(old) | watched, thorough=full)
            if changed is None:
                wanted = set(self.store.run_names()) | watched | set(old)
                new: dict[str, RunDigest] = {}
            else:
                wanted = set(changed) | (watched - set(old))
                # runs kept only because they were watched, and no longer are, go
                new = {r: d for r, d in old.items() if r in watched or not is_empty(d)}
            if wanted:
                found = self.store.run_digests(sorted(wanted), token)
                for run, digest in found.items():
                    if is_empty(digest) and run not in watched:
                        new.pop(run, None)
                    else:
                        new[run] = digest
            if wanted or len(new) != len(old):
                self.digests = new
                self.version += 1
            self.token = token
            if changed_out is not None:
                changed_out |= wanted
            return self.digests

    def restore(self, token: Any, digests: Mapping[str, RunDigest]) -> None:
        """Start from a saved state (a snapshot): the next refresh reads only what changed since."""
        with self._lock:
            self.token, self.digests = token, dict(digests)
            self.version += 1


__all__ = ["DigestTable", "is_empty"]
