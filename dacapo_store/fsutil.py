"""File-system helpers shared by the files backends."""

from __future__ import annotations

import collections
import ctypes
import errno
import functools
import mmap
import os
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no direct I/O there either
    fcntl = None  # type: ignore[assignment]

#: A file or folder modified less than this long before it was stat'ed may change again without its
#: mtime moving (an mtime is a clock tick of up to 10 ms; the rest is margin): whoever compares
#: stats to find changes looks at it again next time.
RACY_NS = 100_000_000

#: How far a large write may run ahead of the disk: `write_temp` asks the kernel to start writing
#: back each step as soon as it is written, so the closing fsync waits for the last step only and
#: not for the whole file (a 1.5 GiB checkpoint is then durable about when it is written).
WRITEBACK_STEP = 32 * 1024 * 1024
#: A direct write (`write_temp(..., direct=True)`, checkpoint blobs) goes to the disk in pieces of
#: this size, from page-aligned buffers, `DIRECT_DEPTH` of them in flight while the next fills.
DIRECT_STEP = 8 * 1024 * 1024
DIRECT_DEPTH = 4
#: Set to 0 to write checkpoint blobs through the page cache, as everything else is written.
DIRECT_IO_ENV = "DACAPO_STORE_DIRECT_IO"
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


def write_temp(
    folder: Path, name: str, chunks: Iterable[bytes | memoryview], *, fsync: bool = True, direct: bool = False
) -> Path:
    """Write `chunks` to a new `.tmp-<token>-<name>` in `folder` (fsynced); the caller renames or links it.

    The temporary file lives beside its target so the rename is atomic; on failure it is removed.
    Names starting with `.` are never listed as documents or blobs. Only the first 120 bytes
    of `name` are used, so a target name of up to 255 bytes still gives a valid temporary name.

    `direct` (large blobs, fsynced) writes past the page cache with O_DIRECT where the file
    system takes it (see `_write_direct`), through the page cache otherwise.
    """
    short = name.encode("utf-8", "surrogateescape")[:120].decode("utf-8", "ignore")
    tmp = folder / f".tmp-{secrets.token_hex(6)}-{short}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    fd = None
    if direct and fsync and _direct_io():
        try:
            fd = os.open(tmp, flags | os.O_DIRECT, 0o644)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: this file system has no direct I/O
                raise
    try:
        if fd is not None:
            _write_direct(fd, chunks)
        else:
            fd = os.open(tmp, flags, 0o644)
            _write_buffered(fd, chunks, fsync)
        if fsync:
            os.fsync(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return tmp


def _direct_io() -> bool:
    """Whether direct writes are asked for (on by default) and this system has them (Linux)."""
    return os.environ.get(DIRECT_IO_ENV, "1") != "0" and hasattr(os, "O_DIRECT") and fcntl is not None


def _write_buffered(fd: int, chunks: Iterable[bytes | memoryview], fsync: bool) -> None:
    """Write through the page cache; when the file is to be fsynced, start each `WRITEBACK_STEP`
    on its way to the disk as soon as it is written, so the fsync waits for the last one only."""
    start_writeback = _writeback() if fsync else None
    written = flushed = 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view:
            n = os.write(fd, view)
            view = view[n:]
            written += n
        if start_writeback is not None and written - flushed >= WRITEBACK_STEP:
            start_writeback(fd, flushed, written - flushed)
            flushed = written


def _write_direct(fd: int, chunks: Iterable[bytes | memoryview]) -> None:
    """Write to `fd` (opened with O_DIRECT) past the page cache.

    The bytes are copied into page-aligned buffers of `DIRECT_STEP`; each full buffer is written
    at its (aligned) offset by a worker thread while the next one fills, `DIRECT_DEPTH` writes in
    flight. A write through the page cache costs the memory it lands in: on a machine that has
    to find (or, in a VM, be given) that memory, a checkpoint's write ran at 0.4-2 GB/s from one
    store to the next, and it evicted what training reads (its data). Written directly it goes at
    the disk's pace (0.33-0.53 s of CPU for 1.5 GiB, where torch.save takes 0.67 s), and the
    fsync finds only the tail to do. The last, partial buffer is written through the page cache,
    as is everything once the file system refuses a direct write (EINVAL: alignment it doesn't
    take).
    """
    buffers = [mmap.mmap(-1, DIRECT_STEP, flags=mmap.MAP_PRIVATE) for _ in range(DIRECT_DEPTH + 1)]
    try:
        with ThreadPoolExecutor(DIRECT_DEPTH, thread_name_prefix="dacapo_store-write") as pool:
            inflight: collections.deque[Future[None]] = collections.deque()
            offset = filled = current = 0
            try:
                for chunk in chunks:
                    view = memoryview(chunk).cast("B")
                    while view:
                        n = min(len(view), DIRECT_STEP - filled)
                        buffers[current][filled : filled + n] = view[:n]
                        filled += n
                        view = view[n:]
                        if filled == DIRECT_STEP:
                            inflight.append(pool.submit(_pwrite_all, fd, buffers[current], filled, offset))
                            offset, filled, current = offset + filled, 0, (current + 1) % len(buffers)
                            if len(inflight) == DIRECT_DEPTH:  # the buffer filled next is free then
                                inflight.popleft().result()
            finally:
                while inflight:  # no buffer is let go while a write may still read it
                    inflight.popleft().result()
            if filled:
                _stop_direct(fd)
                _pwrite_all(fd, buffers[current], filled, offset)
    finally:
        for buffer in buffers:
            buffer.close()


def _pwrite_all(fd: int, buffer: mmap.mmap, nbytes: int, offset: int) -> None:
    done = 0
    while done < nbytes:
        # a view only for the call: none may outlive it (an error's traceback would keep it, and
        # the buffer could not be closed)
        with memoryview(buffer) as whole, whole[done:nbytes] as view:
            direct = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
            try:
                n = os.pwrite(fd, view, offset + done)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not direct:
                    raise
                _stop_direct(fd)  # a direct write this file system won't take: the page cache then
                continue
        done += n


def _stop_direct(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)


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
