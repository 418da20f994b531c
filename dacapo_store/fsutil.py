"""File-system helpers shared by the files backends."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

#: A file or folder modified less than this long before it was stat'ed may change again without its
#: mtime moving (an mtime is a clock tick of up to 10 ms; the rest is margin): whoever compares
#: stats to find changes looks at it again next time.
RACY_NS = 100_000_000

#: How far a large write may run ahead of the disk: `write_temp` asks the kernel to start writing
#: back each step as soon as it is written, so the closing fsync waits for the last step only and
#: not for the whole file (a 1.5 GiB checkpoint is then durable about when it is written).
WRITEBACK_STEP = 32 * 1024 * 1024
#: What fsync of a folder answers where folders can't be fsynced (some network file systems):
#: nothing to make durable there. Anything else (EIO above all) is a failed write and raised.
_NO_DIR_FSYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EROFS})


def fsync_dir(folder: Path) -> None:
    """Make a rename or link in `folder` durable; a no-op where folders can't be fsynced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIR_FSYNC:
            raise
    finally:
        os.close(fd)


def write_temp(folder: Path, name: str, chunks: Iterable[bytes | memoryview], *, fsync: bool = True) -> Path:
    """Write `chunks` to a new `.tmp-<token>-<name>` in `folder` (fsynced); the caller renames or links it.

    The temporary file lives beside its target so the rename is atomic; on failure it is removed.
    Names starting with `.` are never listed as documents or blobs. Only the first 120 bytes
    of `name` are used, so a target name of up to 255 bytes still gives a valid temporary name.
    """
    short = name.encode("utf-8", "surrogateescape")[:120].decode("utf-8", "ignore")
    tmp = folder / f".tmp-{secrets.token_hex(6)}-{short}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    start_writeback = _writeback() if fsync else None
    try:
        with os.fdopen(fd, "wb", buffering=0) as f:
            written = flushed = 0
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                while view:
                    n = f.write(view)
                    view = view[n:]
                    written += n
                if start_writeback is not None and written - flushed >= WRITEBACK_STEP:
                    start_writeback(fd, flushed, written - flushed)
                    flushed = written
            if fsync:
                os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


@functools.cache
def _writeback() -> Callable[[int, int, int], object] | None:
    """Linux's `sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE)`: start writing a range
    back, without waiting (a hint: a failure changes nothing); None where there is no such call."""
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return lambda fd, offset, nbytes: call(fd, offset, nbytes, 2)


def naming(exc: BaseException, doing: str, where: str) -> BaseException:
    """An OSError (a full disk, an I/O error) again, of the same errno, its message saying what
    was being written (`doing`) where; anything else as it is."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return exc
    text = exc.strerror or str(exc)
    file = f" ({exc.filename})" if exc.filename else ""
    return OSError(exc.errno, f"{text} while {doing} in {where}{file}")


def cause_of(exc: BaseException) -> BaseException | None:
    """What `raise naming(exc, ...) from cause_of(exc)` chains: the OSError renamed, or what the
    exception re-raised as it is was already caused by."""
    return exc if isinstance(exc, OSError) and exc.errno is not None else exc.__cause__


def read_small(path: str) -> bytes:
    """A small file's bytes with the fewest system calls: a cold catalog reads two or three
    files a run (documents, metadata, digests), 100,000s of them at once."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = [os.read(fd, 65536)]
        while len(parts[-1]) == 65536:
            parts.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(parts)


def temp_files(folder: Path) -> list[tuple[str, os.stat_result]]:
    """(path, stat) of the `.tmp-*` files `write_temp` left in `folder` (none if it is absent)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        if entry.name.startswith(".tmp-") and entry.is_file(follow_symlinks=False):
            try:
                found.append((entry.path, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    return found
