"""LocalWeightsStore: checkpoints as files under `<basedir>/<run>/checkpoints/`.

Layout of one run::

    checkpoints/index.jsonl        the run's index: a header line, then one JSON event per line
    checkpoints/index.jsonl.lock   filelock guarding appends
    checkpoints/blobs/<iteration>-<token>.model.safetensors
    checkpoints/blobs/<iteration>-<token>.optimizer.pt
    checkpoints/training_stats.jsonl   our training stats: a header line, then `[iteration, loss, time]`
    checkpoints/iterations/<iteration>   DaCapo's checkpoints (read only, see `dacapo_store.legacy`)

A blob is written to a temporary file in `blobs/`, fsynced and renamed into place. The index is
append-only: an event is one line written by one `write` under the lock and fsynced; readers take
only complete lines, so they never see half an event. Each process keeps the parsed index of a run
and reads only what was appended since, which keeps `retrieve_best` in microseconds on big runs.
The training stats journal works the same way: appending never rewrites what is there.

DaCapo's own files under the same `basedir` (its checkpoints, `stats/`, best files) are read in
place through `self.dacapo` and never written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from ..cache import cache_file
from ..checksums import check_lines, line_state, seal_json, sealed_array
from ..errors import CorruptWeightsError, InvalidNameError, TrainingStatsConflictError
from ..fsutil import fsync_dir, write_temp
from ..names import run_name_problem
from .base import BlobNotFoundError, Leftover, WeightsStore
from .index import RunIndex
from .inputs import InputState, sweep
from .scores import direction_conflict
from .stats import TrainingRows, same_stats
from .summary import NO_LEGACY, BestsSummary

if TYPE_CHECKING:
    from ..legacy.registry import DacapoRegistry

log = logging.getLogger(__name__)

_HEADER_KEY = "dacapo_store_index"
_STATS_KEY = "dacapo_store_training_stats"
#: Our registry-wide bookkeeping beside the run folders (DaCapo never looks there).
PRIVATE_DIR = ".dacapo_store"
#: Writers append the name of each run whose index they changed (see `bests_for`).
_CHANGES_FILE = "changed-runs.log"
#: How often a leaderboard checks every run's journal anyway: what no writer logged (a writer that
#: can't write the change log, DaCapo adding checkpoints, a run folder removed by hand) shows
#: within this many seconds.
SWEEP_EVERY = 60.0
_LOCK_TIMEOUT = 60.0
_CACHE_SIZE = 64


class _Cached:
    __slots__ = ("header", "identity", "index", "lines", "mtime", "offset", "tail")

    def __init__(
        self,
        identity: tuple[int, int],
        header: bytes,
        offset: int,
        index: Any,
        lines: int,
        tail: bytes,
        mtime: int,
    ) -> None:
        #: the journal's mtime when it was `offset` bytes long: written since without growing
        #: (changed in place, by hand or by a fault) means read it all again
        self.mtime = mtime
        self.identity = identity
        self.header = header
        self.offset = offset
        self.index = index
        #: how many lines (the header included) end before `offset`
        self.lines = lines
        #: the bytes just before `offset` (a journal truncated and rewritten since differs there)
        self.tail = tail


# Parsed journals (index: a RunIndex; training stats: a dict) by path, shared by every
# LocalWeightsStore of the process. An entry is only reused for the same file (device, inode
# and header line), and only extended, never trusted stale.
_cache: OrderedDict[str, _Cached] = OrderedDict()
_cache_lock = threading.Lock()
#: `fresh.on` while a thread reads through `LocalWeightsStore.fresh_reads`
_fresh = threading.local()


class LocalWeightsStore(WeightsStore):
    """Weights, scores and pins of runs in folders under `basedir` (DaCapo's `runs_base_dir`)."""

    journal_names = ("index.jsonl", "training_stats.jsonl")

    def __init__(self, basedir: str | os.PathLike[str], *, dacapo: DacapoRegistry | None = None) -> None:
        """`dacapo`: where DaCapo's own data of these runs is; default: DaCapo's files under `basedir`."""
        from ..legacy.registry import DacapoFiles

        self.basedir = Path(basedir).expanduser().absolute()
        self.where = str(self.basedir)
        self.dacapo = dacapo if dacapo is not None else DacapoFiles(self.basedir)

    def _checkpoints(self, run: str) -> Path:
        return self.basedir / run / "checkpoints"

    @staticmethod
    def _writable(run: str) -> None:
        """InvalidNameError, before any I/O, for a run whose folder would be one the layout keeps
        at the top of the registry (`configs/`, DaCapo's `stats/`)."""
        problem = run_name_problem(run)
        if problem is not None:
            raise InvalidNameError(f"invalid run name {run!r}: {problem}")

    def _journal(self, run: str) -> Path:
        return self._checkpoints(run) / "index.jsonl"

    # ------------------------------------------------------------------ blobs

    def put_blob(self, run: str, name: str, chunks: Iterable[bytes | memoryview]) -> None:
        """Write to a temporary file beside the target, fsync, rename into place, fsync the folder."""
        self._writable(run)
        folder = self._checkpoints(run) / "blobs"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = write_temp(folder, name, chunks)
        try:
            os.replace(tmp, folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(folder)

    def get_blob(self, run: str, name: str) -> Any:
        """A private (copy-on-write) memory map of the blob: read once, no copy."""
        try:
            with open(self._checkpoints(run) / "blobs" / name, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return bytearray()
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {name} for run {run} in {self.where}") from None

    def delete_blob(self, run: str, name: str) -> None:
        """Unlink the blob file; absent is fine."""
        (self._checkpoints(run) / "blobs" / name).unlink(missing_ok=True)

    def list_blobs(self, run: str) -> list[str]:
        """Complete blob files (temporary files are not listed)."""
        try:
            return sorted(e.name for e in os.scandir(self._checkpoints(run) / "blobs") if e.name[0] != ".")
        except FileNotFoundError:
            return []

    # ------------------------------------------------------------------ leftovers (gc)

    def list_runs(self) -> list[str]:
        """Folders under basedir with a `checkpoints/` folder."""
        try:
            entries = list(os.scandir(self.basedir))
        except FileNotFoundError:
            return []
        return sorted(e.name for e in entries if e.is_dir() and (Path(e.path) / "checkpoints").is_dir())

    def blob_stats(self, run: str) -> list[tuple[str, int, float]]:
        """Complete blob files with their size and modification time."""
        out = []
        for name in self.list_blobs(run):
            try:
                st = os.stat(self._checkpoints(run) / "blobs" / name)
            except FileNotFoundError:
                continue
            out.append((name, st.st_size, st.st_mtime))
        return out

    def partial_leftovers(self) -> list[Leftover]:
        """`.tmp-*` files (from `write_temp`) in each run's `checkpoints/` and `checkpoints/blobs/`."""
        found = []
        for run in self.list_runs():
            for folder in (self._checkpoints(run), self._checkpoints(run) / "blobs"):
                try:
                    entries = list(os.scandir(folder))
                except FileNotFoundError:
                    continue
                for entry in entries:
                    if entry.name.startswith(".tmp-") and entry.is_file(follow_symlinks=False):
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        name = str(Path(entry.path).relative_to(self._checkpoints(run)))
                        found.append(
                            Leftover("temporary file", run, name, st.st_size, st.st_mtime, key=entry.path)
                        )
        return found

    def remove_leftover(self, leftover: Leftover) -> None:
        """Unlink the temporary file or unreferenced blob."""
        if leftover.kind == "unreferenced blob":
            self.delete_blob(leftover.run, leftover.name)
        else:
            Path(leftover.key).unlink(missing_ok=True)

    # ------------------------------------------------------------------ the index journal

    def append_index(self, run: str, events: list[dict[str, Any]]) -> None:
        """Append events as sealed lines, under the run's lock, in one write, fsynced (all or
        nothing); scores whose direction differs from the run's are refused under the lock."""
        if not events:
            return
        self._writable(run)
        payload = b"".join(seal_json(e) + b"\n" for e in events)
        path = self._journal(run)
        with _locked(path):
            if any(e.get("op") == "scores" for e in events):
                # the directions as they are now, under the lock: the second of two racing
                # opposite first directions is refused like the second of two calls in a row
                conflict = direction_conflict(run, self.read_index(run).directions, events)
                if conflict is not None:
                    raise conflict
            _append(path, _HEADER_KEY, payload)
        self._log_change(run)

    def _changes_file(self) -> Path:
        return self.basedir / PRIVATE_DIR / _CHANGES_FILE

    def _log_change(self, run: str) -> None:
        """Append `run` to the registry's change log, after its journal: one line, one write.

        Best-effort: without it a leaderboard sees the change at its next full check.
        """
        file = self._changes_file()
        try:
            file.parent.mkdir(exist_ok=True)
            fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, json.dumps(run).encode() + b"\n")
            finally:
                os.close(fd)
        except OSError as exc:
            log.debug("change of run %s not logged in %s: %s", run, file, exc)

    def read_indexes(self, runs: Iterable[str] | None = None) -> dict[str, RunIndex]:
        """Indexes of `runs` (None: every folder under basedir with an index journal)."""
        if runs is None:
            try:
                with os.scandir(self.basedir) as entries:
                    runs = [e.name for e in entries if e.is_dir() and self._journal(e.name).is_file()]
            except FileNotFoundError:
                runs = []
        return {run: self.read_index(run) for run in runs}

    def changes_since(self, token: Any, runs: Collection[str]) -> tuple[Any, set[str] | None]:
        """The token is the stat signature of everything each run's summary reads (`inputs.py`):
        our journals, DaCapo's checkpoints, best files and stats; appends and replacements show."""
        previous = token if isinstance(token, InputState) else None
        state = self.input_signatures(runs, previous)
        if previous is None:
            return state, None
        return state, state.changed(previous, runs)

    def input_signatures(self, runs: Collection[str], previous: InputState | None = None) -> InputState:
        """Stat signatures of the files each run's summary is read from (see `inputs.py`).

        With the state of an earlier sweep, folders whose mtime did not move are not listed again;
        without one, every folder is. `complete` is False when DaCapo keeps the runs' stats
        somewhere a stat can't see (MongoDB): only a full read finds changes there.
        """
        from ..legacy.registry import DacapoFiles

        roots = [str(self.basedir)]
        dacapo_base = None
        complete = self.dacapo is None
        if self.dacapo is not None:
            runs_dir = self.dacapo.runs_dir
            if runs_dir is not None and runs_dir != self.basedir:
                roots.append(str(runs_dir))
            if isinstance(self.dacapo, DacapoFiles):
                dacapo_base, complete = str(self.dacapo.basedir), True
        return sweep(roots, dacapo_base, runs, previous, complete=complete)

    @contextlib.contextmanager
    def fresh_reads(self) -> Iterator[None]:
        """Journals read within it are read whole from disk (and the cache replaced with that)."""
        before = getattr(_fresh, "on", False)
        _fresh.on = True
        try:
            yield
        finally:
            _fresh.on = before

    def read_index(self, run: str) -> RunIndex:
        """The run's index, read incrementally: only lines appended since the last call are parsed."""
        return _read_journal(self._journal(run), _HEADER_KEY, RunIndex, _fold_events, _index_problems)

    # ------------------------------------------------------------------ training stats journal

    def _stats_journal(self, run: str) -> Path:
        return self._checkpoints(run) / "training_stats.jsonl"

    def read_training_stats(self, run: str) -> dict[int, tuple[float, float]]:
        """Our training stats, read incrementally like the index."""
        return _read_journal(self._stats_journal(run), _STATS_KEY, TrainingRows, _fold_stats, _stats_problems)

    def append_training_stats(self, run: str, rows: Mapping[int, tuple[float, float]]) -> None:
        """Append the rows not stored yet, under the journal's lock, in one write, fsynced."""
        self._writable(run)
        path = self._stats_journal(run)
        with _locked(path):
            stored = self.read_training_stats(run)
            conflicts = [it for it, row in rows.items() if it in stored and not same_stats(stored[it], row)]
            if conflicts:
                raise TrainingStatsConflictError(
                    f"run {run} got other training stats at iteration(s) {sorted(conflicts)[:8]} meanwhile; "
                    "nothing was stored"
                )
            payload = b"".join(
                seal_json([it, loss, time]) + b"\n" for it, (loss, time) in rows.items() if it not in stored
            )
            if payload:
                _append(path, _STATS_KEY, payload)

    def training_stats_written(self, run: str) -> float | None:
        """The journal's mtime: every append writes it."""
        try:
            return os.stat(self._stats_journal(run)).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def drop_training_stats(self, run: str) -> None:
        """Remove the journal (under its lock)."""
        path = self._stats_journal(run)
        if not path.exists():
            return
        with _locked(path):
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)

    def forget_run(self, run: str) -> None:
        """Remove the run's journal (under its lock) and the emptied blobs folder."""
        path = self._journal(run)
        if not path.exists():
            return
        with _locked(path):
            path.unlink(missing_ok=True)
        Path(str(path) + ".lock").unlink(missing_ok=True)
        for folder in (self._checkpoints(run) / "blobs", self._checkpoints(run)):
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: DaCapo's own files or leftovers stay
        fsync_dir(self.basedir / run)
        self._log_change(run)

    # ------------------------------------------------------------------ across runs

    def journal_runs(self) -> list[str]:
        """Run folders with a `checkpoints/` folder (our index or training stats may be there)."""
        return self.list_runs()

    def run_names(self) -> list[str]:
        """Run folders that hold our index journal."""
        return sorted(name for name, _ in self._journal_sigs())

    def _journal_sigs(self, runs: Iterable[str] | None = None) -> list[tuple[str, tuple[int, int, int]]]:
        """(run, (size, mtime_ns, inode) of its journal) for every run with one (or those of `runs`)."""
        base = str(self.basedir)
        if runs is None:
            try:
                runs = [name for name in os.listdir(base) if name[0] != "."]
            except (FileNotFoundError, NotADirectoryError):
                return []
        found = []
        stat = os.stat
        for name in runs:  # string paths: this loop is the leaderboard's cost at 10k runs
            try:
                st = stat(f"{base}/{name}/checkpoints/index.jsonl")
            except OSError:
                continue
            found.append((name, (st.st_size, st.st_mtime_ns, st.st_ino)))
        return found

    def _legacy_sig(self, run: str) -> int:
        """The mtime of the run's DaCapo checkpoint folder, NO_LEGACY if there is none."""
        try:
            return os.stat(f"{self.basedir}/{run}/checkpoints/iterations").st_mtime_ns
        except OSError:
            return NO_LEGACY

    def run_bests(self, runs: Iterable[str] | None = None) -> dict[str, dict[str, list]]:
        """Each run's bests by key, from the validated summary (see `bests_for`)."""
        summary, present = self._summary(runs)
        return {name: summary.run_bests(name) for name in present}

    def bests_for(self, key: str, runs: Iterable[str] | None = None) -> list[tuple[str, list]]:
        """(run, [iteration, value, pinned]) of every run with a best by `key`, from a registry-wide
        summary (in the per-user cache, see `summary.py`: reading writes nothing into the
        registry folder, which DaCapo may share; saving it is best-effort).

        Writers log each run they change (`_log_change`), so between full checks only the runs in
        the change log's new lines are looked at. A full check (at least every `SWEEP_EVERY`
        seconds, or when the log is new, replaced or damaged) compares every run's journal stat,
        and, for a run that had DaCapo checkpoints when its entry was built, that folder's mtime.
        """
        summary, present = self._summary(runs)
        table = summary.key(key)
        return [(name, table[name]) for name in present if name in table]

    def _summary(self, runs: Iterable[str] | None) -> tuple[BestsSummary, list[str]]:
        summary = self._load_summary()
        if runs is None:
            try:
                log_st = os.stat(self._changes_file())
            except OSError:
                log_st = None
            tail = self._logged_changes(summary, log_st)
            if tail is not None and log_st is not None and summary.log is not None:
                # only the runs writers logged since the summary last read the log
                changed_runs, offset = tail
                changed = self._refresh(summary, self._journal_sigs(changed_runs), changed_runs)
                if changed or offset != summary.log[1]:
                    summary.log = [log_st.st_ino, offset, summary.log[2]]
                    self._save_summary(summary)
                return summary, list(summary.sigs)
            swept_at = time.time()
            sigs = self._journal_sigs(None)
            self._refresh(summary, sigs, None)
            # the log as it was before this check: what is logged during it is read next time
            summary.log = None if log_st is None else [log_st.st_ino, log_st.st_size, swept_at]
            self._save_summary(summary)
            return summary, [name for name, _ in sigs if name in summary.sigs]
        wanted = list(runs)
        sigs = self._journal_sigs(wanted)
        if self._refresh(summary, sigs, wanted):
            self._save_summary(summary)
        return summary, [name for name, _ in sigs if name in summary.sigs]

    def _logged_changes(
        self, summary: BestsSummary, log_st: os.stat_result | None
    ) -> tuple[set[str], int] | None:
        """(runs logged as changed since the summary last read the log, new offset), or None when
        every journal must be checked: no log, a new log, or the last full check too long ago."""
        if log_st is None or summary.log is None:
            return None
        inode, offset, swept_at = summary.log
        if log_st.st_ino != inode or log_st.st_size < offset or time.time() - swept_at >= SWEEP_EVERY:
            return None
        offset = int(offset)
        if log_st.st_size == offset:
            return set(), offset
        try:
            with open(self._changes_file(), "rb") as f:
                f.seek(offset)
                data = f.read(log_st.st_size - offset)
        except OSError:
            return None
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        names = set()
        for line in complete.splitlines():
            try:
                name = json.loads(line)
            except ValueError:
                return None  # damaged: check everything
            if isinstance(name, str):
                names.add(name)
        return names, offset + len(complete)

    def _refresh(
        self, summary: BestsSummary, sigs: list[tuple[str, tuple[int, int, int]]], runs: Iterable[str] | None
    ) -> bool:
        """Bring the summary's entries of these runs up to date (runs=None: all runs, dropping
        those whose journal is gone); True if anything changed."""
        changed = False
        found = set()
        for name, sig in sigs:
            found.add(name)
            cached = summary.sigs.get(name)
            if (
                cached is not None
                and tuple(cached[:3]) == sig
                and (cached[3] == NO_LEGACY or cached[3] == self._legacy_sig(name))
            ):
                continue
            try:
                index = self.read_index(name)
            except CorruptWeightsError as exc:
                log.warning("leaderboard: skipping run %s: %s", name, exc)
                if name in summary.sigs:
                    summary.drop_run(name)
                    changed = True
                continue
            summary.set_run(name, (*sig, self._legacy_sig(name)), self.compute_bests(name, index))
            changed = True
        gone = (set(summary.sigs) if runs is None else set(runs) & set(summary.sigs)) - found
        for name in gone:
            summary.drop_run(name)  # its journal is gone
            changed = True
        return changed

    def _bests_file(self) -> Path:
        return cache_file("run-bests", self.basedir, ".jsonl")

    def _load_summary(self) -> BestsSummary:
        file = self._bests_file()
        try:
            st = file.stat()
        except OSError:
            return BestsSummary()
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with _cache_lock:
            cached = _bests_cache.get(str(file))
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            summary = BestsSummary.parse(file.read_bytes())
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError):
            log.warning("%s is unreadable; rebuilding it", file)
            summary = BestsSummary()
        with _cache_lock:
            _bests_cache[str(file)] = (key, summary)
        return summary

    def _save_summary(self, summary: BestsSummary) -> None:
        # A cache validated on every read: racing savers are harmless, the last rename wins.
        file = self._bests_file()
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            os.replace(write_temp(file.parent, file.name, [summary.dumps()], fsync=False), file)
            st = file.stat()
        except OSError as exc:
            log.debug("run bests not saved in %s: %s", file.parent, exc)
            return
        with _cache_lock:
            _bests_cache[str(file)] = ((st.st_mtime_ns, st.st_size, st.st_ino), summary)


_bests_cache: dict[str, tuple[tuple, BestsSummary]] = {}


def _locked(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=_LOCK_TIMEOUT)


def _append(path: Path, header_key: str, payload: bytes) -> None:
    """Append `payload` (whole sealed lines) to a journal in one write, fsynced; the caller holds its
    lock. All or nothing: a write cut short (a full disk, an I/O error, an interrupt) is cut off
    again before the lock is released, so no reader is left with part of a batch."""
    if not path.exists():
        header = seal_json({header_key: 1, "id": secrets.token_hex(16)}) + b"\n"
        tmp = write_temp(path.parent, path.name, [header])
        os.replace(tmp, path)
        fsync_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        _drop_torn_tail(fd, path)
        start = os.fstat(fd).st_size
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
        os.fsync(fd)
    finally:
        os.close(fd)


def _sound_lines(path: str, lines: list[bytes], first: int) -> tuple[list[Any], list[int], list[str], int]:
    """(values, their line numbers, problems, unchecked count) of complete journal lines, the first
    of which is line `first`: lines failing their checksum or not parsing are problems, named by
    line, and skipped."""
    numbers: list[int] | range = range(first, first + len(lines))
    whole = sealed_array(lines)
    if whole is not None:  # every line sealed and sound: one parse, without the checksums
        return json.loads(whole), numbers, [], 0
    damaged, unchecked = check_lines(lines)
    problems = []
    if damaged:
        bad = set(damaged)
        problems = [f"line {first + i}: fails its checksum" for i in damaged]
        numbers = [first + i for i in range(len(lines)) if i not in bad]
        lines = [line for i, line in enumerate(lines) if i not in bad]
    try:  # one parse for all the lines; line by line only if one does not parse
        values = json.loads(b"[" + b",".join(lines) + b"]") if lines else []
    except ValueError:
        values, kept = [], []
        for number, line in zip(numbers, lines, strict=True):
            try:
                values.append(json.loads(line))
                kept.append(number)
            except ValueError:
                problems.append(f"line {number}: not a JSON value")
        numbers = kept
    if problems:
        log.warning("%s: skipping damaged line(s): %s", path, "; ".join(problems[:10]))
    return values, list(numbers) if damaged else numbers, problems, len(unchecked)


def _fold_events(index: RunIndex, path: str, lines: list[bytes], first: int) -> RunIndex:
    events, numbers, problems, unchecked = _sound_lines(path, lines, first)
    return index.with_events(events, numbers).with_problems(problems, unchecked)


def _fold_stats(stats: TrainingRows, path: str, lines: list[bytes], first: int) -> TrainingRows:
    rows, numbers, problems, unchecked = _sound_lines(path, lines, first)
    new = TrainingRows(stats)  # a reader may still hold the old one
    for number, row in zip(numbers, rows, strict=True):
        try:
            if len(row) == 4 and isinstance(row[3], str):
                row = row[:3]  # the checksum
            iteration, loss, time = row
            if type(iteration) is not int or iteration < 0:
                raise ValueError
            new[iteration] = (float(loss), float(time))
        except (TypeError, ValueError):
            log.warning("skipping a malformed training stats line in %s: %.80r", path, row)
            problems.append(f"line {number}: not an [iteration, loss, time] row")
    new.problems = (*stats.problems, *problems)
    new.unchecked = stats.unchecked + unchecked
    return new


def _index_problems(index: RunIndex, problems: list[str]) -> RunIndex:
    return index.with_problems(problems)


def _stats_problems(stats: TrainingRows, problems: list[str]) -> TrainingRows:
    new = TrainingRows(stats)
    new.problems, new.unchecked = (*stats.problems, *problems), stats.unchecked
    return new


def _fold_header(header: bytes, header_key: str) -> str | None:
    """What is wrong with a journal's first line, or None if it is our header."""
    line = header.rstrip(b"\n")
    if line_state(line) == "damaged":
        return "line 1 (the header): fails its checksum"
    try:
        if json.loads(line).get(header_key) != 1:
            raise ValueError
    except (ValueError, AttributeError):
        return f"line 1 (the header): not a {header_key} header"
    return None


#: How many bytes before a cached offset are compared to tell the journal is the one cached.
_TAIL = 32


def _read_journal(
    path_: Path, header_key: str, empty: Callable[[], Any], fold: Callable[..., Any], with_problems: Callable
) -> Any:
    """A journal's folded value, parsing only the complete lines appended since the last read.

    A damaged line (checksum, JSON) or header is skipped and reported in the value's problems;
    the rest is read. A cached value is extended only if the journal is still the file it was
    read from: same file, same first line, and the bytes just before the offset read so far.
    """
    path = str(path_)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return empty()
    try:
        st = os.fstat(fd)
        identity = (st.st_dev, st.st_ino)
        head = os.pread(fd, 512, 0)
        cut = head.find(b"\n")
        header = head[: cut + 1] if cut >= 0 else b""
        with _cache_lock:
            cached = None if getattr(_fresh, "on", False) else _cache.get(path)
            if cached is not None:
                _cache.move_to_end(path)
        if (
            cached is not None
            and header
            and cached.identity == identity
            and cached.header == header
            and (cached.offset < st.st_size or cached.mtime == st.st_mtime_ns)
            and os.pread(fd, len(cached.tail), cached.offset - len(cached.tail)) == cached.tail
        ):
            if cached.offset == st.st_size and cached.mtime == st.st_mtime_ns:
                return cached.index
            start, value, first = cached.offset, cached.index, cached.lines + 1
            before = cached.tail
            data = _pread_all(fd, start, st.st_size - start)
        else:
            data = _pread_all(fd, 0, st.st_size)
            cut = data.find(b"\n")
            if cut < 0:  # not even a whole first line: a header being written, or damage
                problem = "line 1 (the header): incomplete" if data else "empty file"
                return with_problems(empty(), [problem])
            header = before = data[: cut + 1]
            value, start, first = empty(), cut + 1, 2
            problem = _fold_header(header, header_key)
            if problem is not None:
                log.warning("%s: %s", path, problem)
                value = with_problems(value, [problem])
            data = data[start:]
    finally:
        os.close(fd)
    end = data.rfind(b"\n") + 1  # only complete lines
    lines = data[:end].split(b"\n")[:-1]
    value = fold(value, path, lines, first)
    tail = (before + data[: min(end, _TAIL)])[-_TAIL:] if end < _TAIL else data[end - _TAIL : end]
    with _cache_lock:
        mtime = st.st_mtime_ns if start + end == st.st_size else -1  # a line still being written
        _cache[path] = _Cached(identity, header, start + end, value, first - 1 + len(lines), tail, mtime)
        _cache.move_to_end(path)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def _pread_all(fd: int, offset: int, size: int) -> bytes:
    parts = []
    while size > 0:
        part = os.pread(fd, size, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        size -= len(part)
    return b"".join(parts)


def _drop_torn_tail(fd: int, path: Path) -> None:
    """Cut a last line left unfinished by a writer that died mid-write (we hold the lock)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    step = 4096
    end = size
    while end > 0:
        begin = max(0, end - step)
        block = os.pread(fd, end - begin, begin)
        cut = block.rfind(b"\n")
        if cut >= 0:
            os.ftruncate(fd, begin + cut + 1)
            log.warning("dropped a torn last line of %s", path)
            return
        end = begin
    raise ValueError(f"{path} has no complete header line")
