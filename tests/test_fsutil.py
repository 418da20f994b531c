"""write_temp: a large file is written back as it goes, whole and byte for byte; a failed write
leaves nothing."""

from __future__ import annotations

import itertools
import os

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
