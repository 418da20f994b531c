"""A full disk (a 2 MiB tmpfs) or a write that fails half way: a batch of training stats is all or
nothing, a config and its metadata one outcome, and every error names what it was writing."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import strict_mongo
import torch
from conftest import small_run
from pymongo.errors import AutoReconnect
from strict_mongo import StrictMongoClient

from dacapo_store.config_store import FileConfigStore
from dacapo_store.errors import StoreConnectionError
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore, TrainingIterationStats


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted for the test (needs root, or a system that lets us mount)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here to make a 2 MiB file system")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"can't mount a 2 MiB tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all but about `leave` bytes of the disk."""
    free = shutil.disk_usage(disk).free
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def stats(first: int, count: int) -> list[TrainingIterationStats]:
    return [TrainingIterationStats(i, loss=1 / (i + 1), time=0.25) for i in range(first, first + count)]


@pytest.mark.parametrize("rows", [2_000, 60_000])  # 60,000 rows: over 2 MiB
def test_a_batch_of_training_stats_that_fills_the_disk_leaves_none_of_its_rows(small_disk, rows):
    store = LocalWeightsStore(small_disk)
    assert store.store_training_stats("run", stats(0, 100)) == 100
    filler = fill(small_disk, 20_000) if rows == 2_000 else None
    with pytest.raises(OSError) as caught:
        store.store_training_stats("run", stats(100, rows))
    assert [s.iteration for s in LocalWeightsStore(small_disk).retrieve_training_stats("run")] == list(
        range(100)
    )
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.strerror.startswith(
        f"No space left on device while storing training stats of run run at iteration(s) {rows} from 100 "
        f"to {rows + 99} in {small_disk}"
    )
    assert store.journal_problems("run") == ([], [])
    if filler is not None:
        filler.unlink()
        assert store.store_training_stats("run", stats(100, rows)) == rows  # the retry: all of it
        assert len(LocalWeightsStore(small_disk).retrieve_training_stats("run")) == 100 + rows


def test_a_checkpoint_that_fills_the_disk_names_its_run_and_iteration_and_the_last_one_stays(small_disk):
    store = LocalWeightsStore(small_disk)
    small = {"w": torch.zeros(1024)}
    store.store_weights("run", 1, small)
    with pytest.raises(
        OSError,
        match=r"No space left on device while writing the checkpoint of run run at "
        r"iteration 2 in ",
    ):
        store.store_weights("run", 2, {"w": torch.zeros(1024, 1024)})  # 4 MiB
    assert store.iterations("run") == [1]
    assert torch.equal(LocalWeightsStore(small_disk).retrieve_weights("run", 1).model["w"], small["w"])
    assert [p.name for p in (small_disk / "run" / "checkpoints" / "blobs").iterdir()] == [
        store.metadata("run", 1)["blobs"]["model"]["name"]
    ]


def test_a_config_stored_as_the_disk_fills_is_whole_or_absent_and_a_retry_completes(small_disk):
    for leave in range(0, 5 * 4096, 2048):
        registry = small_disk / f"r{leave}"
        store = FileConfigStore(registry / "configs")
        run = small_run("run")
        store.store(small_run("warm-up"))  # the folders exist: what is left is for documents
        filler = fill(small_disk, leave)
        try:
            store.store(run)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            assert " while storing " in exc.strerror and f"{registry}/configs" in exc.strerror
        filler.unlink()
        for kind, name in [("runs", "run"), *((k, getattr(run, f).name) for f, k in _PARTS)]:
            try:
                store.get_document(kind, name)
            except KeyError:
                continue
            assert store.metadata(kind, name).created_by is not None, (leave, kind)
        assert store.store(run) in (True, False)
        assert store.metadata("runs", "run").created_by is not None
        shutil.rmtree(registry)


_PARTS = [
    ("task_config", "tasks"),
    ("architecture_config", "architectures"),
    ("trainer_config", "trainers"),
    ("datasplit_config", "datasplits"),
]


def test_a_gridfs_batch_of_training_stats_cut_short_leaves_none_of_its_rows(monkeypatch):
    store = GridFSWeightsStore(client=StrictMongoClient(), db_name="dacapo")
    store.store_training_stats("run", stats(0, 10))
    original = strict_mongo.StrictCollection.insert_many

    def half_then_lost(self, documents, *args, **kwargs):
        documents = list(documents)
        original(self, documents[: len(documents) // 2], *args, **kwargs)
        raise AutoReconnect("connection reset by peer")

    monkeypatch.setattr(strict_mongo.StrictCollection, "insert_many", half_then_lost)
    with pytest.raises(StoreConnectionError):
        store.store_training_stats("run", stats(10, 200))
    monkeypatch.undo()
    assert [s.iteration for s in store.retrieve_training_stats("run")] == list(range(10))
    assert store.store_training_stats("run", stats(10, 200)) == 200


def test_os_errors_of_a_store_keep_their_errno(tmp_path, monkeypatch):
    store = LocalWeightsStore(tmp_path)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OSError, match="while writing the checkpoint of run run at iteration 1") as caught:
        store.store_weights("run", 1, {"w": torch.zeros(2)})
    assert caught.value.errno == errno.EROFS
