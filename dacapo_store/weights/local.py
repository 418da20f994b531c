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

import json
import logging
import mmap
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from ..errors import CorruptWeightsError, TrainingStatsConflictError
from ..fsutil import fsync_dir, write_temp
from . import digest as digests
from .backend import BlobNotFoundError, Leftover, WeightsBackend
from .base import WeightsStore
from .digest import RunDigest
from .index import RunIndex
from .inputs import InputState, sweep
from .stats import same_stats

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
    __slots__ = ("header", "identity", "index", "offset")

    def __init__(self, identity: tuple[int, int], header: bytes, offset: int, index: Any) -> None:
        self.identity = identity
        self.header = header
        self.offset = offset
        self.index = index


# Parsed journals (index: a RunIndex; training stats: a dict) by path, shared by every
# LocalWeightsStore of the process. An entry is only reused for the same file (device, inode
# and header line), and only extended, never trusted stale.
_cache: OrderedDict[str, _Cached] = OrderedDict()
_cache_lock = threading.Lock()


class LocalBackend(WeightsBackend):
    """The primitives over folders under `basedir` (DaCapo's `runs_base_dir`): blobs, journals,
    digests, the stat signatures of every run's inputs."""

    def __init__(self, basedir: str | os.PathLike[str], *, dacapo: DacapoRegistry | None = None) -> None:
        """`dacapo`: where DaCapo's own data of these runs is; default: DaCapo's files under `basedir`."""
        from ..legacy.registry import DacapoFiles

        self.basedir = Path(basedir).expanduser().absolute()
        self.where = str(self.basedir)
        self.dacapo = dacapo if dacapo is not None else DacapoFiles(self.basedir)

    def _checkpoints(self, run: str) -> Path:
        return self.basedir / run / "checkpoints"

    def _journal(self, run: str) -> Path:
        return self._checkpoints(run) / "index.jsonl"

    # ------------------------------------------------------------------ blobs

    def put_blob(self, run: str, name: str, chunks: Iterable[bytes | memoryview]) -> None:
        """Write to a temporary file beside the target, fsync, rename into place, fsync the folder."""
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
        """Append events as lines, under the run's lock, in one write, fsynced; then the digest."""
        if not events:
            return
        payload = b"".join(
            json.dumps(e, separators=(",", ":"), allow_nan=True).encode() + b"\n" for e in events
        )
        path = self._journal(run)
        with _locked(path):
            _append(path, _HEADER_KEY, payload)
            self._write_digest(run)

    def _write_digest(self, run: str) -> None:
        """Replace the run's digest with one of its journal as it is now (the caller holds the
        journal's lock, so nothing is appended meanwhile). Best-effort: the append is done."""
        path = self._journal(run)
        target = self._checkpoints(run) / DIGEST_FILE
        try:
            index, header, length = _read_journal_state(path, _HEADER_KEY, RunIndex, _fold_events)
            stamp = {"id": _header_id(header), "length": length}
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
        """The digests whose stamp (journal header id, byte length) matches the journal now."""
        base = str(self.basedir)
        out = {}
        for run in runs:
            folder = f"{base}/{run}/checkpoints"
            try:
                fd = os.open(f"{folder}/index.jsonl", os.O_RDONLY)
            except OSError:
                continue
            try:
                size = os.fstat(fd).st_size
                head = os.pread(fd, 256, 0)
            except OSError:
                continue
            finally:
                os.close(fd)
            try:
                doc = json.loads(_read_small(f"{folder}/{DIGEST_FILE}"))
                stamp = doc["of"]
                if stamp["length"] != size or stamp["id"] != _header_id(head[: head.find(b"\n") + 1]):
                    continue
                out[run] = digests.from_json(doc)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue  # absent, stale or damaged: the journal is read instead
        return out

    def describe_problem(self, exc: BaseException) -> str:
        """The message with the registry's folder left out (a reader elsewhere names it another way)."""
        text = super().describe_problem(exc)
        return text.replace(f"{self.basedir}/", "").replace(str(self.basedir), "the registry folder")

    def read_index(self, run: str) -> RunIndex:
        """The run's index, read incrementally: only lines appended since the last call are parsed."""
        return _read_journal(self._journal(run), _HEADER_KEY, RunIndex, _fold_events)

    # ------------------------------------------------------------------ training stats journal

    def _stats_journal(self, run: str) -> Path:
        return self._checkpoints(run) / "training_stats.jsonl"

    def read_training_stats(self, run: str) -> dict[int, tuple[float, float]]:
        """Our training stats, read incrementally like the index."""
        return _read_journal(self._stats_journal(run), _STATS_KEY, dict, _fold_stats)

    def append_training_stats(self, run: str, rows: Mapping[int, tuple[float, float]]) -> None:
        """Append the rows not stored yet, under the journal's lock, in one write, fsynced."""
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
                json.dumps([it, loss, time], allow_nan=True).encode() + b"\n"
                for it, (loss, time) in rows.items()
                if it not in stored
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


def _read_small(path: str) -> bytes:
    """A small file's bytes with the fewest system calls (10,000s of digests are read at once)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = [os.read(fd, 65536)]
        while len(parts[-1]) == 65536:
            parts.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(parts)


def _header_id(header: bytes) -> str | None:
    """The `id` of a journal's header line (None if it has none)."""
    start = header.find(b'"id": "')  # as `_append` writes it: no parse for 10,000s of digests
    end = header.find(b'"', start + 7) if start >= 0 else -1
    if end > start >= 0 and header.endswith(b"}\n") and header.count(b'"id"') == 1:
        return header[start + 7 : end].decode("ascii", "replace")
    try:
        found = json.loads(header).get("id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _locked(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=_LOCK_TIMEOUT)


def _append(path: Path, header_key: str, payload: bytes) -> None:
    """Append `payload` (whole lines) to a journal in one write, fsynced; the caller holds its lock."""
    if not path.exists():
        header = json.dumps({header_key: 1, "id": secrets.token_hex(16)}).encode() + b"\n"
        tmp = write_temp(path.parent, path.name, [header])
        os.replace(tmp, path)
        fsync_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        _drop_torn_tail(fd, path)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse_lines(path: str, lines: list[bytes]) -> list[Any]:
    try:  # one parse for all the new lines; line by line only if one is damaged
        return json.loads(b"[" + b",".join(lines) + b"]") if lines else []
    except ValueError:
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                log.warning("skipping a damaged line in %s: %.80r", path, line)
        return parsed


def _fold_events(index: RunIndex, path: str, lines: list[bytes]) -> RunIndex:
    return index.with_events(_parse_lines(path, lines))


def _fold_stats(
    stats: dict[int, tuple[float, float]], path: str, lines: list[bytes]
) -> dict[int, tuple[float, float]]:
    new = dict(stats)  # a reader may still hold the old one
    for row in _parse_lines(path, lines):
        try:
            iteration, loss, time = row
            if type(iteration) is not int or iteration < 0:
                raise ValueError
            new[iteration] = (float(loss), float(time))
        except (TypeError, ValueError):
            log.warning("skipping a malformed training stats line in %s: %.80r", path, row)
    return new


def _read_journal(path_: Path, header_key: str, empty: Callable[[], Any], fold: Callable[..., Any]) -> Any:
    """A journal's folded value, parsing only the complete lines appended since the last read."""
    return _read_journal_state(path_, header_key, empty, fold)[0]


def _read_journal_state(
    path_: Path, header_key: str, empty: Callable[[], Any], fold: Callable[..., Any]
) -> tuple[Any, bytes, int]:
    """(folded value, header line, bytes folded): the journal read up to its last complete line."""
    path = str(path_)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return empty(), b"", 0
    try:
        st = os.fstat(fd)
        identity = (st.st_dev, st.st_ino)
        head = os.pread(fd, 256, 0)
        header = head[: head.find(b"\n") + 1]
        if not header:
            raise CorruptWeightsError(f"{path} has no header line")
        with _cache_lock:
            cached = _cache.get(path)
            if cached is not None:
                _cache.move_to_end(path)
        if (
            cached is not None
            and cached.identity == identity
            and cached.header == header
            and cached.offset <= st.st_size
        ):
            if cached.offset == st.st_size:
                return cached.index, header, cached.offset
            start, value = cached.offset, cached.index
        else:
            try:
                if json.loads(header).get(header_key) != 1:
                    raise ValueError
            except (ValueError, AttributeError):
                raise CorruptWeightsError(f"{path} is not a dacapo_store journal ({header_key})") from None
            start, value = len(header), empty()
        data = _pread_all(fd, start, st.st_size - start)
    finally:
        os.close(fd)
    end = data.rfind(b"\n") + 1  # only complete lines
    value = fold(value, path, data[:end].splitlines())
    with _cache_lock:
        _cache[path] = _Cached(identity, header, start + end, value)
        _cache.move_to_end(path)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value, header, start + end


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
