"""LocalWeightsStore: checkpoints as files under `<basedir>/<run>/checkpoints/`.

Layout of one run::

    checkpoints/index.jsonl        the run's index: a header line, then one JSON event per line
    checkpoints/index.jsonl.lock   filelock guarding appends
    checkpoints/index.digest.json  the index's digest, stamped with the journal's id and length
    checkpoints/blobs/<iteration>-<token>.model.safetensors
    checkpoints/blobs/<iteration>-<token>.optimizer.pt
    checkpoints/training_stats.jsonl   our training stats: a header line, then `[iteration, loss, time]`
    checkpoints/iterations/<iteration>   DaCapo's checkpoints (read only, see `dacapo_store.legacy`)

A blob is written to a temporary file in `blobs/`, fsynced and renamed into place. The index is
append-only: an event is one line written by one `write` under the lock and fsynced; readers take
only complete lines, so they never see half an event. Each process keeps the parsed index of a run
and reads only what was appended since, which keeps `retrieve_best` in microseconds on big runs.
The training stats journal works the same way: appending never rewrites what is there.

After each append, under the same lock, the writer replaces the run's digest (`digest.py`), stamped
with the journal's header id and byte length: a reader that finds the stamp equal to the journal
as it is now takes the digest instead of parsing the journal (one small file per run, shared by
everyone who reads the registry); otherwise it parses the journal. Writing it is best-effort, after
the append: a failure leaves a digest whose stamp no longer matches, never a wrong one.

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
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from ..checksums import check_lines, line_state, seal_json, sealed_array
from ..criteria import direction_conflict
from ..errors import CorruptWeightsError, InvalidNameError, TrainingStatsConflictError
from ..fsutil import fsync_dir, read_small, temp_files, write_temp
from ..names import run_name_problem
from . import digest as digests
from .backend import BlobNotFoundError, Leftover, WeightsBackend
from .base import WeightsStore
from .digest import RunDigest
from .index import RunIndex
from .inputs import InputState, sweep
from .stats import TrainingRows, same_stats

if TYPE_CHECKING:
    from ..legacy.registry import DacapoRegistry

log = logging.getLogger(__name__)

_HEADER_KEY = "dacapo_store_index"
_STATS_KEY = "dacapo_store_training_stats"
#: The run's digest beside its index journal (see `digest.py`).
DIGEST_FILE = "index.digest.json"
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


class LocalBackend(WeightsBackend):
    """The primitives over folders under `basedir` (DaCapo's `runs_base_dir`): blobs, journals,
    digests, the stat signatures of every run's inputs."""

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
        """Write to a temporary file beside the target (past the page cache where the file system
        allows), fsync, rename into place, fsync the folder."""
        self._writable(run)
        folder = self._checkpoints(run) / "blobs"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = write_temp(folder, name, chunks, direct=True)
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
                for path, st in temp_files(folder):
                    name = str(Path(path).relative_to(self._checkpoints(run)))
                    found.append(Leftover("temporary file", run, name, st.st_size, st.st_mtime, key=path))
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
        nothing); scores whose direction differs from the run's are refused under the lock. Then
        the digest (best-effort: the append is the commit point)."""
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
            self._write_digest(run)

    def _write_digest(self, run: str) -> None:
        """Replace the run's digest with one of its journal as it is now (the caller holds the
        journal's lock, so nothing is appended meanwhile). Best-effort: the append is done."""
        path = self._journal(run)
        target = self._checkpoints(run) / DIGEST_FILE
        try:
            index, header, length, mtime = _read_journal_state(
                path, _HEADER_KEY, RunIndex, _fold_events, _index_problems
            )
            stamp = {"id": _header_id(header), "length": length, "mtime": mtime}
            doc = {"of": stamp, **digests.to_json(digests.digest_of(index))}
            data = json.dumps(doc, separators=(",", ":")).encode()
            os.replace(write_temp(target.parent, target.name, [data], fsync=False), target)
        except (OSError, ValueError, TypeError, CorruptWeightsError) as exc:
            log.warning("run %s: its digest was not written (%s); readers read its journal", run, exc)

    def read_indexes(self, runs: Iterable[str] | None = None) -> dict[str, RunIndex]:
        """Indexes of `runs` (None: every folder under basedir with an index journal)."""
        if runs is None:
            try:
                with os.scandir(self.basedir) as entries:
                    runs = [e.name for e in entries if e.is_dir() and self._journal(e.name).is_file()]
            except FileNotFoundError:
                runs = []
        return {run: self.read_index(run) for run in runs}

    def changes_since(
        self, token: Any, runs: Collection[str] = (), *, thorough: bool = False
    ) -> tuple[Any, set[str] | None]:
        """The token is the stat signature of everything a run's digest and summary read
        (`inputs.py`): our journals, DaCapo's checkpoints, best files and stats; appends,
        replacements and new run folders show. It watches `runs` and every run folder here;
        without a token, the runs it names are all there are. `thorough` lists every folder
        again (a file server may hide an mtime's move) and still names only what changed.

        Where DaCapo keeps its stats in MongoDB no stat sees them: a thorough check then reads
        everything (None), as the dashboard does every few minutes.
        """
        previous = token if isinstance(token, InputState) else None
        state = self.input_signatures(runs, None if thorough else previous, discover=True)
        if previous is None or (thorough and not state.complete):
            return state, set(state.sigs) if previous is None and state.complete else None
        return state, state.changed(previous, state.sigs)

    def input_signatures(
        self, runs: Collection[str], previous: InputState | None = None, *, discover: bool = False
    ) -> InputState:
        """Stat signatures of the files each run's digest and summary are read from (`inputs.py`).

        With the state of an earlier sweep, folders whose mtime did not move are not listed again;
        without one, every folder is. `complete` is False when DaCapo keeps the runs' stats
        somewhere a stat can't see (MongoDB): only a full read finds changes there.
        """
        roots = [str(self.basedir)]
        dacapo_base = None
        complete = self.dacapo is None
        if self.dacapo is not None:
            runs_dir = self.dacapo.runs_dir
            if runs_dir is not None and runs_dir != self.basedir:
                roots.append(str(runs_dir))
            dacapo_base, complete = self.dacapo.stats_folder(), self.dacapo.stats_folder() is not None
        return sweep(roots, dacapo_base, runs, previous, complete=complete, discover=discover)

    def runs_with_stats(self, runs: Collection[str], token: Any = None) -> set[str] | None:
        """The runs whose sweep saw training stats, ours or DaCapo's (and those it did not look at)."""
        if not (isinstance(token, InputState) and token.complete):
            return None
        sigs = token.sigs
        return {
            r
            for r in runs
            if r not in sigs or "training_stats.jsonl" in sigs[r] or "training_stats" in sigs[r]
        }

    def dacapo_runs(self, runs: Iterable[str], token: Any = None) -> set[str]:
        """With a token of `changes_since`, its sweep already knows; else DaCapo's registry looks."""
        if isinstance(token, InputState) and token.complete:
            return {run for run in runs if run in token.sigs and not token.without_dacapo(run)} | {
                run for run in runs if run not in token.sigs and run in self._dacapo_check([run])
            }
        return self._dacapo_check(runs)

    def _dacapo_check(self, runs: Iterable[str]) -> set[str]:
        return set() if self.dacapo is None else self.dacapo.runs_with_index(runs)

    def stored_digests(self, runs: Iterable[str]) -> dict[str, RunDigest]:
        """The digests whose stamp (journal header id, byte length, mtime) matches the journal now."""
        base = str(self.basedir)
        out = {}
        for run in runs:
            folder = f"{base}/{run}/checkpoints"
            try:
                fd = os.open(f"{folder}/index.jsonl", os.O_RDONLY)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                head = os.pread(fd, 256, 0)
            except OSError:
                continue
            finally:
                os.close(fd)
            try:
                doc = json.loads(read_small(f"{folder}/{DIGEST_FILE}"))
                stamp = doc["of"]
                # a line changed in place (damage) keeps the length but not the mtime
                if (
                    stamp["length"] != st.st_size
                    or stamp.get("mtime") != st.st_mtime_ns
                    or stamp["id"] != _header_id(head[: head.find(b"\n") + 1])
                ):
                    continue
                out[run] = digests.from_json(doc)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue  # absent, stale or damaged: the journal is read instead
        return out

    def describe_problem(self, exc: BaseException) -> str:
        """The message with the registry's folder left out (a reader elsewhere names it another way)."""
        text = super().describe_problem(exc)
        return text.replace(f"{self.basedir}/", "").replace(str(self.basedir), "the registry folder")

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

    def index_written(self, run: str) -> float | None:
        """The index journal's mtime: every append writes it."""
        try:
            return os.stat(self._journal(run)).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

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
            (path.parent / DIGEST_FILE).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
        Path(str(path) + ".lock").unlink(missing_ok=True)
        for folder in (self._checkpoints(run) / "blobs", self._checkpoints(run)):
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: DaCapo's own files or leftovers stay
        fsync_dir(self.basedir / run)

    # ------------------------------------------------------------------ across runs

    def journal_runs(self) -> list[str]:
        """Run folders with a `checkpoints/` folder (our index or training stats may be there)."""
        return self.list_runs()

    def own_run_names(self) -> list[str]:
        """Run folders that hold our index journal."""
        base = str(self.basedir)
        try:
            names = [name for name in os.listdir(base) if name[0] != "."]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(name for name in names if os.path.isfile(f"{base}/{name}/checkpoints/index.jsonl"))


class LocalWeightsStore(WeightsStore):
    """Weights, scores and pins of runs in folders under `basedir` (DaCapo's `runs_base_dir`):
    the typed API (`WeightsStore`) over a `LocalBackend`."""

    backend: LocalBackend

    def __init__(self, basedir: str | os.PathLike[str], *, dacapo: DacapoRegistry | None = None) -> None:
        """`dacapo`: where DaCapo's own data of these runs is; default: DaCapo's files under `basedir`."""
        super().__init__(LocalBackend(basedir, dacapo=dacapo))

    @property
    def basedir(self) -> Path:
        """The folder holding the run folders."""
        return self.backend.basedir


def _header_id(header: bytes) -> str | None:
    """The `id` of a journal's header line (None if it has none)."""
    # as `_append` writes it (sealed, compact; older headers had a space): no parse for 10,000s
    start = header.find(b'"id":"')
    start = start + 6 if start >= 0 else header.find(b'"id": "') + 7
    end = header.find(b'"', start) if start >= 7 else -1
    if end > start >= 7 and header.endswith(b"}\n") and header.count(b'"id"') == 1:
        return header[start:end].decode("ascii", "replace")
    try:
        found = json.loads(header).get("id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


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
    return _read_journal_state(path_, header_key, empty, fold, with_problems)[0]


def _read_journal_state(
    path_: Path, header_key: str, empty: Callable[[], Any], fold: Callable[..., Any], with_problems: Callable
) -> tuple[Any, bytes, int, int]:
    """(folded value, header line, bytes folded, the journal's mtime in ns): the journal read up
    to its last complete line."""
    path = str(path_)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return empty(), b"", 0, 0
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
                return cached.index, header, cached.offset, st.st_mtime_ns
            start, value, first = cached.offset, cached.index, cached.lines + 1
            before = cached.tail
            data = _pread_all(fd, start, st.st_size - start)
        else:
            data = _pread_all(fd, 0, st.st_size)
            cut = data.find(b"\n")
            if cut < 0:  # not even a whole first line: a header being written, or damage
                problem = "line 1 (the header): incomplete" if data else "empty file"
                return with_problems(empty(), [problem]), b"", 0, st.st_mtime_ns
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
    return value, header, start + end, st.st_mtime_ns


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
