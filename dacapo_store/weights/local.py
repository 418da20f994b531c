"""LocalWeightsStore: checkpoints as files under `<basedir>/<run>/checkpoints/`.

Layout of one run::

    checkpoints/index.jsonl        the run's index: a header line, then one JSON event per line
    checkpoints/index.jsonl.lock   filelock guarding appends
    checkpoints/blobs/<iteration>-<token>.model.safetensors
    checkpoints/blobs/<iteration>-<token>.optimizer.pt
    checkpoints/iterations/<iteration>   legacy DaCapo pickles (read only, with allow_pickle=True)

A blob is written to a temporary file in `blobs/`, fsynced and renamed into place. The index is
append-only: an event is one line written by one `write` under the lock and fsynced; readers take
only complete lines, so they never see half an event. Each process keeps the parsed index of a run
and reads only what was appended since, which keeps `retrieve_best` in microseconds on big runs.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..errors import CorruptWeightsError
from ..fsutil import fsync_dir, write_temp
from .base import BlobNotFoundError, WeightsStore
from .index import RunIndex

log = logging.getLogger(__name__)

_HEADER_KEY = "dacapo_store_index"
_LOCK_TIMEOUT = 60.0
_CACHE_SIZE = 64


class _Cached:
    __slots__ = ("header", "identity", "index", "offset")

    def __init__(self, identity: tuple[int, int], header: bytes, offset: int, index: RunIndex) -> None:
        self.identity = identity
        self.header = header
        self.offset = offset
        self.index = index


# Parsed journals by path, shared by every LocalWeightsStore of the process. An entry is only
# reused for the same file (device, inode and header line), and only extended, never trusted stale.
_cache: OrderedDict[str, _Cached] = OrderedDict()
_cache_lock = threading.Lock()


class LocalWeightsStore(WeightsStore):
    """Weights, scores and pins of runs in folders under `basedir` (DaCapo's `runs_base_dir`)."""

    def __init__(self, basedir: str | os.PathLike[str]) -> None:
        self.basedir = Path(basedir).expanduser().absolute()
        self.where = str(self.basedir)

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

    # ------------------------------------------------------------------ legacy DaCapo files

    def legacy_iterations(self, run: str) -> list[int]:
        """Iterations under `checkpoints/iterations/` (DaCapo's own pickles)."""
        try:
            entries = os.scandir(self._checkpoints(run) / "iterations")
        except (FileNotFoundError, NotADirectoryError):
            return []
        with entries:
            return sorted(
                int(e.name) for e in entries if e.name.isascii() and e.name.isdigit() and e.is_file()
            )

    def legacy_path(self, run: str, iteration: int) -> Path | None:
        """`checkpoints/iterations/<iteration>` if it is a file."""
        path = self._checkpoints(run) / "iterations" / str(iteration)
        return path if path.is_file() else None

    # ------------------------------------------------------------------ the index journal

    def append_index(self, run: str, events: list[dict[str, Any]]) -> None:
        """Append events as lines, under the run's lock, in one write, fsynced."""
        if not events:
            return
        payload = b"".join(
            json.dumps(e, separators=(",", ":"), allow_nan=True).encode() + b"\n" for e in events
        )
        path = self._journal(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=_LOCK_TIMEOUT):
            if not path.exists():
                self._create_journal(path)
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
            try:
                _drop_torn_tail(fd, path)
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)

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
        """The token is each run's journal stat (inode, size, mtime): appends and replacements show."""
        now: dict[str, tuple[int, int, int] | None] = {}
        for run in runs:
            try:
                st = os.stat(self._journal(run))
                now[run] = (st.st_ino, st.st_size, st.st_mtime_ns)
            except (FileNotFoundError, NotADirectoryError):
                now[run] = None
        if token is None:
            return now, None
        return now, {run for run, sig in now.items() if token.get(run, False) != sig}

    @staticmethod
    def _create_journal(path: Path) -> None:
        header = json.dumps({_HEADER_KEY: 1, "id": secrets.token_hex(16)}).encode() + b"\n"
        tmp = write_temp(path.parent, path.name, [header])
        os.replace(tmp, path)
        fsync_dir(path.parent)

    def read_index(self, run: str) -> RunIndex:
        """The run's index, read incrementally: only lines appended since the last call are parsed."""
        path = str(self._journal(run))
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return RunIndex()
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
                    return cached.index
                start, index = cached.offset, cached.index
            else:
                try:
                    if json.loads(header).get(_HEADER_KEY) != 1:
                        raise ValueError
                except (ValueError, AttributeError):
                    raise CorruptWeightsError(f"{path} is not a dacapo_store weights index") from None
                start, index = len(header), RunIndex()
            data = _pread_all(fd, start, st.st_size - start)
        finally:
            os.close(fd)
        end = data.rfind(b"\n") + 1  # only complete lines
        lines = data[:end].splitlines()
        try:  # one parse for all the new lines; line by line only if one is damaged
            events = json.loads(b"[" + b",".join(lines) + b"]") if lines else []
        except ValueError:
            events = []
            for line in lines:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    log.warning("skipping a damaged line in %s: %.80r", path, line)
        index = index.with_events(events)
        with _cache_lock:
            _cache[path] = _Cached(identity, header, start + end, index)
            _cache.move_to_end(path)
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return index


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
