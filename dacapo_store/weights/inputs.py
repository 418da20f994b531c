"""The files a run's summary is read from, as stat signatures: cheap to take again, and to compare.

The dashboard's summary of a run (progress, checkpoints, bests, training stats) is built from:

- our index journal and training stats journal: `<run>/checkpoints/index.jsonl`,
  `<run>/checkpoints/training_stats.jsonl`;
- DaCapo's checkpoint folder `<run>/checkpoints/iterations/` and its best files
  `<run>/checkpoints/<dataset>/<criterion>.json`;
- DaCapo's stats `stats/training_stats/<run>` and `stats/validation_scores/<run>`, and, for a run
  with validation scores, DaCapo's run config `configs/runs/<run>.yaml` (they are read with it).

`sweep` stats them and gives each run one signature (a tuple naming each input present with its
size, mtime and inode) that changes when any of them is created, replaced, written or removed.

Given the state of the previous sweep it skips what a folder's mtime proves unchanged: a run's
`checkpoints/` folder is listed again only when its mtime moved (new journals, DaCapo's
`iterations/` or best folders appear there), and DaCapo's `stats/<kind>/` folders likewise, so a
run costs two stats (its `checkpoints/` folder and its index journal) plus one per other input it
has. Timestamps are coarse (a clock tick of a few ms), so something stat'ed within `RACY_NS` of
its mtime may change again without its mtime moving: its signature then carries the time of the
sweep (it differs at the next one, and the run is read again) and its folder is listed again. A
sweep without a previous state lists every folder. (A file server with its own clock can defeat
this; the dashboard's periodic full sweep is the backstop there.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from ..fsutil import RACY_NS

#: Our journals under `<run>/checkpoints/`.
JOURNALS = ("index.jsonl", "training_stats.jsonl")
#: Names in a signature that hold no DaCapo scores, bests or checkpoints.
_OURS = frozenset({*JOURNALS, "training_stats"})
#: DaCapo's stats folders under its base folder.
STATS_KINDS = ("training_stats", "validation_scores")

Signature = tuple
#: A run's `checkpoints/` folder as last listed: (mtime_ns or -1 if it was racy, inode, the
#: names in it that a summary reads), a list when read from a snapshot; None if there is no such
#: folder.
Listing = Sequence[Any] | None


class InputState:
    """One sweep's signatures by run, and the folder listings a next sweep may reuse."""

    __slots__ = ("complete", "folders", "listings", "roots", "sigs", "stats")

    def __init__(self, roots: list[str] | None = None) -> None:
        #: the folders holding run folders whose `checkpoints/` were listed
        self.roots: list[str] = roots or []
        self.sigs: dict[str, Signature] = {}
        #: checkpoints root -> run -> listing of `<root>/<run>/checkpoints/`
        self.listings: dict[str, dict[str, Listing]] = {}
        #: stats kind -> (folder mtime_ns or -1, inode, run names with a stats file)
        self.stats: dict[str, tuple[int, int, frozenset[str]]] = {}
        #: False when some input of the runs can't be stat'ed (DaCapo's stats in MongoDB)
        self.complete = True
        #: root -> ((mtime_ns or -1 if racy, inode), the folder names in it) as last listed
        self.folders: dict[str, tuple[tuple[int, int], frozenset[str]]] = {}

    def without_dacapo(self, run: str) -> bool:
        """Whether the run has, by this sweep, none of DaCapo's checkpoints, best files or scores
        (so its DaCapo index is empty and needs no reading)."""
        sig = self.sigs.get(run)
        return self.complete and sig is not None and all(type(x) is not str or x in _OURS for x in sig)

    def changed(self, other: InputState, runs: Iterable[str]) -> set[str]:
        """The runs (of `runs`, or gone since) whose signature differs between the two states."""
        runs = set(runs)
        return {run for run in runs | (set(other.sigs) - runs) if self.sigs.get(run) != other.sigs.get(run)}


#: Folders beside the run folders that are never runs: DaCapo's configs and stats.
NOT_RUNS = frozenset({"configs", "stats"})


def sweep(
    roots: list[str],
    dacapo_base: str | None,
    runs: Collection[str],
    previous: InputState | None = None,
    *,
    complete: bool = True,
    discover: bool = False,
) -> InputState:
    """Stat the inputs of `runs`: their `checkpoints/` folders under each of `roots` (ours, and
    DaCapo's when it keeps runs elsewhere) and DaCapo's stats under `dacapo_base` (None: none).

    With `discover`, also every run folder under the roots and every run with DaCapo stats (a
    root is listed again only when its mtime moved since `previous`).
    """
    started = time.time_ns()
    racy_after = started - RACY_NS
    state = InputState(roots)
    state.complete = complete
    if previous is not None and previous.roots != roots:
        previous = None  # listings of other folders: list everything
    stats_names: dict[str, frozenset[str]] = {}
    if dacapo_base is not None:
        for kind in STATS_KINDS:
            folder = f"{dacapo_base}/stats/{kind}"
            before = previous.stats.get(kind) if previous is not None else None
            state.stats[kind] = found = listed_stats(folder, before, racy_after)
            stats_names[kind] = found[2]
    if discover:
        found_runs = set(runs)
        for root in roots:
            found_runs |= _run_folders(root, previous, state, racy_after)
        for names in stats_names.values():
            found_runs |= names
        runs = found_runs
    stat = os.stat
    before_by_root = {root: previous.listings.get(root, {}) if previous is not None else {} for root in roots}
    for root in roots:
        state.listings[root] = {}
    for run in runs:
        sig: list = []
        for root in roots:
            # the common case inline (two stats: the folder and the index journal): 10,000s of runs
            folder = f"{root}/{run}/checkpoints"
            listings = state.listings[root]
            try:
                st = stat(folder)
            except OSError:
                listings[run] = None
                continue
            before = before_by_root[root].get(run)
            if before is None or before[0] != st.st_mtime_ns or before[1] != st.st_ino:
                mtime = -1 if st.st_mtime_ns > racy_after else st.st_mtime_ns
                before = (mtime, st.st_ino, tuple(sorted(_names(folder, _read_by_summary))))
            listings[run] = before
            for name in before[2]:
                path = f"{folder}/{name}"
                if name in JOURNALS or name == "iterations":
                    try:
                        st = stat(path)
                    except OSError:
                        continue
                    sig += (name, st.st_size, st.st_mtime_ns, st.st_ino)
                    if st.st_mtime_ns > racy_after:
                        sig.append(started)  # differs at the next sweep: read again until settled
                else:  # a DaCapo best-file folder: few, listed every time
                    for file in sorted(_names(path, _best_file)):
                        _add(sig, f"{name}/{file}", f"{path}/{file}", racy_after, started)
            if len(roots) > 1:
                sig.append(root)
        if dacapo_base is not None:
            scored = False
            for kind in STATS_KINDS:
                if run in stats_names[kind]:
                    _add(sig, kind, f"{dacapo_base}/stats/{kind}/{run}", racy_after, started)
                    scored = scored or kind == "validation_scores"
            if scored:
                _add(sig, "config", f"{dacapo_base}/configs/runs/{run}.yaml", racy_after, started)
        state.sigs[run] = tuple(sig)
    return state


def _run_folders(root: str, previous: InputState | None, state: InputState, racy_after: int) -> set[str]:
    """The names in `root` that may be run folders; those of the previous sweep if the root's
    mtime did not move since it listed them."""
    try:
        st = os.stat(root)
    except OSError:
        return set()
    sig = (-1 if st.st_mtime_ns > racy_after else st.st_mtime_ns, st.st_ino)
    before = previous.folders.get(root) if previous is not None else None
    if before is not None and sig[0] != -1 and before[0] == sig:
        names = before[1]
    else:
        try:
            with os.scandir(root) as entries:
                names = frozenset(
                    e.name for e in entries if e.name[0] != "." and e.name not in NOT_RUNS and e.is_dir()
                )
        except OSError:
            names = frozenset()
    state.folders[root] = (sig, names)
    return set(names)


def _add(sig: list, name: str, path: str, racy_after: int, started: int) -> None:
    """Append (name, size, mtime, inode) of the file or folder at `path`, if there is one."""
    try:
        st = os.stat(path)
    except OSError:
        return
    sig += (name, st.st_size, st.st_mtime_ns, st.st_ino)
    if st.st_mtime_ns > racy_after:
        sig.append(started)  # differs at the next sweep: read again until it has settled


def _read_by_summary(entry: os.DirEntry) -> bool:
    name = entry.name
    if name in JOURNALS:
        return True
    if name[0] == "." or name == "blobs":  # our blobs: the summary never reads them
        return False
    try:
        return entry.is_dir()  # iterations/, or a DaCapo best-file folder
    except OSError:
        return False


def _best_file(entry: os.DirEntry) -> bool:
    return entry.name.endswith(".json") and entry.name[0] != "."


def listed_stats(
    folder: str, before: tuple[int, int, frozenset[str]] | None, racy_after: int
) -> tuple[int, int, frozenset[str]]:
    try:
        st = os.stat(folder)
    except OSError:
        return (0, 0, frozenset())
    if before is not None and before[0] == st.st_mtime_ns and before[1] == st.st_ino:
        return before
    names = frozenset(_names(folder, lambda e: e.name[0] != "."))
    return (-1 if st.st_mtime_ns > racy_after else st.st_mtime_ns, st.st_ino, names)


def _names(folder: str, keep: object) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if keep(e)]  # type: ignore[operator]
    except OSError:
        return []
