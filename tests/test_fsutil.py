"""write_temp: a large file is written back as it goes (or written directly, past the page cache),
whole and byte for byte; a failed write leaves nothing."""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import threading

import pytest

from dacapo_store import fsutil


def test_a_large_write_is_written_back_in_steps_and_lands_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "WRITEBACK_STEP", 1 << 20)
    asked = []
    real = fsutil._writeback()
    assert real is not None  # Linux: sync_file_range is there

    def spy(fd, offset, nbytes):
        asked.append((offset, nbytes))
        return real(fd, offset, nbytes)

    monkeypatch.setattr(fsutil, "_writeback", lambda: spy)
    chunks = [os.urandom(700_000) for _ in range(8)]
    tmp = fsutil.write_temp(tmp_path, "blob", chunks)
    assert tmp.read_bytes() == b"".join(chunks)
    # each step starts where the previous ended, and together they cover what was written by then
    assert asked[0][0] == 0 and all(a + n == b for (a, n), (b, _) in itertools.pairwise(asked))
    assert len(asked) >= 4 and asked[-1][0] + asked[-1][1] <= 8 * 700_000


def test_without_fsync_nothing_is_asked_of_the_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "WRITEBACK_STEP", 1)
    monkeypatch.setattr(fsutil, "_writeback", lambda: pytest.fail("asked for writeback"))
    tmp = fsutil.write_temp(tmp_path, "cache", [b"x" * 100], fsync=False)
    assert tmp.read_bytes() == b"x" * 100


def test_a_failing_chunk_leaves_no_temporary_file(tmp_path):
    def chunks():
        yield b"a" * 10
        raise RuntimeError("the producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        fsutil.write_temp(tmp_path, "blob", chunks())
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- direct writes (checkpoint blobs)


def opened_flags(monkeypatch) -> list[int]:
    """The flags of every os.open call from here on."""
    flags, real = [], os.open

    def spy(path, flag, *args, **kwargs):
        flags.append(flag)
        return real(path, flag, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return flags


def odd_chunks() -> list[bytes]:
    # 8 MiB and a bit, in pieces that straddle the 1 MiB buffers: full buffers, then a tail
    return [os.urandom(n) for n in (100, 3 << 20, 1, (5 << 20) - 1, 12_345)]


def no_write_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("dacapo_store-write")]


def test_a_direct_write_goes_past_the_page_cache_and_lands_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "DIRECT_STEP", 1 << 20)
    flags = opened_flags(monkeypatch)
    chunks = odd_chunks()
    tmp = fsutil.write_temp(tmp_path, "blob", chunks, direct=True)
    assert tmp.read_bytes() == b"".join(chunks)
    assert flags[0] & os.O_DIRECT  # asked for; written directly where the file system takes it
    assert no_write_threads()


def test_direct_io_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv(fsutil.DIRECT_IO_ENV, "0")
    flags = opened_flags(monkeypatch)
    tmp = fsutil.write_temp(tmp_path, "blob", [b"x" * 100], direct=True)
    assert tmp.read_bytes() == b"x" * 100
    assert flags and not any(f & os.O_DIRECT for f in flags)


def test_a_file_system_without_direct_io_is_written_through_the_page_cache(tmp_path, monkeypatch):
    real = os.open

    def no_direct(path, flag, *args, **kwargs):
        if flag & os.O_DIRECT:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), str(path))
        return real(path, flag, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_direct)
    monkeypatch.setattr(fsutil, "DIRECT_STEP", 1 << 20)
    chunks = odd_chunks()
    tmp = fsutil.write_temp(tmp_path, "blob", chunks, direct=True)
    assert tmp.read_bytes() == b"".join(chunks)


def test_a_direct_write_the_file_system_refuses_goes_on_through_the_page_cache(tmp_path, monkeypatch):
    # some file systems take O_DIRECT at open and refuse the writes (an alignment they want)
    real, refused = os.pwrite, []

    def picky(fd, data, offset):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(offset)
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", picky)
    monkeypatch.setattr(fsutil, "DIRECT_STEP", 1 << 20)
    chunks = odd_chunks()
    tmp = fsutil.write_temp(tmp_path, "blob", chunks, direct=True)
    assert tmp.read_bytes() == b"".join(chunks)
    assert refused  # it was asked, and the rest went without


@pytest.mark.parametrize("at", [0, 3])
def test_an_io_error_in_a_direct_write_is_raised_and_leaves_nothing(tmp_path, monkeypatch, at):
    real, calls = os.pwrite, [0]

    def failing(fd, data, offset):
        calls[0] += 1
        if calls[0] > at:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", failing)
    monkeypatch.setattr(fsutil, "DIRECT_STEP", 1 << 20)
    with pytest.raises(OSError) as caught:
        fsutil.write_temp(tmp_path, "blob", odd_chunks(), direct=True)
    assert caught.value.errno == errno.EIO
    assert list(tmp_path.iterdir()) == []
    assert no_write_threads()


def test_a_failing_chunk_of_a_direct_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "DIRECT_STEP", 1 << 20)

    def chunks():
        yield os.urandom(5 << 20)
        raise RuntimeError("the producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        fsutil.write_temp(tmp_path, "blob", chunks(), direct=True)
    assert list(tmp_path.iterdir()) == []
    assert no_write_threads()
