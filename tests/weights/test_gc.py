"""gc: what killed writers leave behind is removed once old enough; nothing else ever is."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch
from bson import ObjectId
from bson.binary import Binary
from click.testing import CliRunner
from conftest import no_options

from dacapo_store.cli import app
from dacapo_store.fsutil import write_temp

from .conftest import assert_same_state, build_store

HOUR = 3600
OLD = time.time() - 2 * HOUR


def leave_unreferenced_blob(store, spec, run: str, name: str, size: int, *, old: bool) -> None:
    """A complete blob that no index entry names (a writer killed before its index entry)."""
    store.put_blob(run, name, [b"x" * size])
    if old and spec["backend"] == "files":
        path = Path(spec["path"]) / run / "checkpoints" / "blobs" / name
        os.utime(path, (OLD, OLD))
    elif old:
        when = datetime.fromtimestamp(OLD, timezone.utc)
        store.db["weights.files"].update_one({"filename": f"{run}/{name}"}, {"$set": {"uploadDate": when}})


def leave_partial_write(store, spec, run: str, size: int, *, old: bool) -> None:
    """A temporary file (files) or chunks without a file document (GridFS) of a killed upload."""
    if spec["backend"] == "files":
        folder = Path(spec["path"]) / run / "checkpoints" / "blobs"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = write_temp(folder, "9-dead.model.safetensors", [b"y" * size])
        if old:
            os.utime(tmp, (OLD, OLD))
    else:
        when = datetime.fromtimestamp(OLD if old else time.time(), timezone.utc)
        files_id = ObjectId.from_datetime(when) if old else ObjectId()
        half = size // 2
        store.db["weights.chunks"].insert_many(
            [
                {"files_id": files_id, "n": 0, "data": Binary(b"y" * half)},
                {"files_id": files_id, "n": 1, "data": Binary(b"y" * (size - half))},
            ]
        )


@pytest.fixture
def littered(backend_spec):
    """A store with one checkpoint and, beside it, old and fresh leftovers of killed writers."""
    store = build_store(backend_spec)
    model = {"w": torch.arange(10, dtype=torch.float32)}
    store.store_weights("run", 1, model)
    leave_unreferenced_blob(store, backend_spec, "run", "2-old.model.safetensors", 1000, old=True)
    leave_unreferenced_blob(store, backend_spec, "run", "3-fresh.model.safetensors", 10, old=False)
    leave_partial_write(store, backend_spec, "run", 500, old=True)
    leave_partial_write(store, backend_spec, "run", 50, old=False)
    return store, model


def summary(items):
    return sorted((i.kind, i.size) for i in items)


def test_gc_removes_only_leftovers_older_than_the_age(littered, backend_spec):
    store, model = littered
    partial = "temporary file" if backend_spec["backend"] == "files" else "orphan chunks"
    removed = store.gc(older_than=HOUR)
    assert summary(removed) == sorted([("unreferenced blob", 1000), (partial, 500)])
    assert "2-old.model.safetensors" not in store.list_blobs("run")
    assert "3-fresh.model.safetensors" in store.list_blobs("run")  # a writer may be at work
    assert summary(store.gc(older_than=timedelta(hours=1))) == []
    assert summary(store.gc(older_than=0)) == sorted([("unreferenced blob", 10), (partial, 50)])
    assert_same_state(store.retrieve_weights("run", 1).model, model)
    assert store.iterations("run") == [1]


def test_gc_dry_run_removes_nothing(littered):
    store, _ = littered
    blobs = store.list_blobs("run")
    found = store.gc(older_than=HOUR, dry_run=True)
    assert len(found) == 2
    assert store.list_blobs("run") == blobs
    assert len(store.gc(older_than=HOUR, dry_run=True)) == 2


@pytest.mark.parametrize("bad", [-1, "1h", None, True])
def test_gc_refuses_a_bad_age_and_removes_nothing(littered, bad):
    store, _ = littered
    with pytest.raises(ValueError, match="older_than must be a non-negative number of seconds"):
        store.gc(older_than=bad)
    assert len(store.gc(older_than=0, dry_run=True)) == 4


@pytest.fixture
def cli_args(backend_spec, monkeypatch, tmp_path):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    if backend_spec["backend"] == "files":
        (Path(backend_spec["path"]) / "configs").mkdir(parents=True, exist_ok=True)  # a registry
        return ["--store", f"files:{backend_spec['path']}"]
    monkeypatch.setenv("DACAPO_WEIGHTS_STORE", "gridfs")
    if backend_spec["backend"] == "mongodb":
        return ["--store", backend_spec["uri"], "--db", backend_spec["db"]]
    server = backend_spec["client"]
    monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *args, **kwargs: server.sibling())
    return ["--store", "mongodb://localhost:27017", "--db", backend_spec["db"]]


def test_the_gc_command_lists_asks_and_removes(littered, cli_args):
    store, _ = littered
    run = CliRunner().invoke
    result = run(app, [*cli_args, "gc", "--older-than", "1h", "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2-old.model.safetensors" in result.stdout
    assert "would remove 2 leftover(s), 1500 bytes" in result.stdout
    assert "2-old.model.safetensors" in store.list_blobs("run")
    result = run(app, [*cli_args, "gc", "--older-than", "1h"], catch_exceptions=False)
    assert result.exit_code == 2 and "--yes" in result.stderr  # not a terminal: refuses without --yes
    result = run(app, [*cli_args, "gc", "--older-than", "60m", "--yes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "removed 2 leftover(s), 1500 bytes" in result.stdout
    assert "2-old.model.safetensors" not in store.list_blobs("run")
    result = run(app, [*cli_args, "gc", "--yes"], catch_exceptions=False)
    assert "nothing to collect" in result.stdout
    result = run(app, [*cli_args, "gc", "--older-than", "soon"], catch_exceptions=False)
    assert result.exit_code == 2 and "not an age" in result.stderr
