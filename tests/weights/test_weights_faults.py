"""Faults: killed writers, damaged blobs, concurrent readers, legacy pickles."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from dacapo_store.errors import CorruptWeightsError
from dacapo_store.weights import LocalWeightsStore, PickleCheckpointError
from dacapo_store.weights.serialization import FormatError, load_torch

from .conftest import assert_same_state, build_store, trained

REPO = Path(__file__).resolve().parents[2]

CHILD_PRELUDE = """
import json, sys
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore
spec = json.loads(sys.argv[1])
if spec["backend"] == "files":
    store = LocalWeightsStore(spec["path"])
else:
    store = GridFSWeightsStore(spec["uri"], spec["db"])
"""


def spawn(spec: dict, body: str, *args: str) -> subprocess.Popen:
    """A Python child process running `body` with `store` opened from `spec` (and sys.argv[2:] = args)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    code = CHILD_PRELUDE + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(spec), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def bytes_being_written(spec: dict) -> int:
    """How much of an uncommitted blob a writer has put down so far."""
    if spec["backend"] == "files":
        folder = Path(spec["path"]) / "run" / "checkpoints" / "blobs"
        sizes = []
        for entry in os.scandir(folder) if folder.is_dir() else []:
            if entry.name.startswith(".tmp-"):
                with contextlib.suppress(FileNotFoundError):
                    sizes.append(entry.stat().st_size)
        return max(sizes, default=0)
    store = build_store(spec)
    return store.db["weights.chunks"].count_documents({}) * 255 * 1024


def test_a_writer_killed_mid_store_leaves_no_checkpoint_and_the_store_works(shared_spec):
    store = build_store(shared_spec)
    small, _ = trained()
    store.store_weights("run", 1, small)
    writer = spawn(
        shared_spec,
        """
        import torch
        state = {f"w{i}": torch.full((1024, 1024), float(i)) for i in range(16)}  # 64 MB
        store.store_weights("run", 2, state)
        """,
    )
    try:
        deadline = time.monotonic() + 60
        while bytes_being_written(shared_spec) < 8 * 1024 * 1024:
            assert writer.poll() is None, f"writer ended before it was killed: {writer.stderr.read()!r}"
            assert time.monotonic() < deadline, "writer never started writing"
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait()
        writer.stdout.close()
        writer.stderr.close()
    assert writer.returncode == -signal.SIGKILL
    store = build_store(shared_spec)
    assert store.iterations("run") == [1]
    assert all(not blob.startswith("2-") for blob in store.list_blobs("run"))
    store.store_weights("run", 2, small)
    assert store.iterations("run") == [1, 2]
    assert_same_state(store.retrieve_weights("run", 2).model, small.state_dict())


def test_a_reader_polling_while_another_process_stores_never_gets_a_partial_checkpoint(shared_spec):
    store = build_store(shared_spec)
    writer = spawn(
        shared_spec,
        """
        import torch
        for i in range(1, 11):
            for iteration, value in [(i, float(i)), (i - 1, i - 0.5)] if i > 1 else [(i, float(i))]:
                state = {name: torch.full((128, 1024), value) for name in "abcd"}  # 2 MB
                store.store_weights("run", iteration, state, {"state": {}, "param_groups": [{"v": value}]})
        """,
    )
    loads = 0
    try:
        deadline = time.monotonic() + 60
        while writer.poll() is None:
            assert time.monotonic() < deadline, "writer did not finish"
            latest = store.latest_iteration("run")
            if latest is None:
                continue
            for iteration in {latest, max(latest - 1, 1)}:
                weights = store.retrieve_weights("run", iteration)
                value = weights.optimizer["param_groups"][0]["v"]
                assert value in (float(iteration), iteration + 0.5)
                for tensor in weights.model.values():
                    assert tensor.shape == (128, 1024) and bool((tensor == value).all())
                loads += 1
        assert writer.returncode == 0, writer.stderr.read()
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
        writer.stdout.close()
        writer.stderr.close()
    assert loads > 0
    assert store.iterations("run") == list(range(1, 11))


def test_concurrent_score_writers_lose_nothing(shared_spec):
    body = """
        dataset = sys.argv[2]
        for i in range(40):
            store.store_validation_scores("run", i, {"dice": i / 100}, dataset=dataset)
        """
    writers = [spawn(shared_spec, body, dataset) for dataset in ("a", "b")]
    for writer in writers:
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
        writer.stdout.close()
        writer.stderr.close()
    scores = build_store(shared_spec).retrieve_validation_scores("run")["dice"]
    assert {d: len(v) for d, v in scores.items()} == {"a": 40, "b": 40}


# ---------------------------------------------------------------- damaged data


def flip_a_byte(store, run: str, blob: str) -> None:
    """Change one byte in the middle of a stored blob, behind the store's back."""
    if isinstance(store, LocalWeightsStore):
        path = store.basedir / run / "checkpoints" / "blobs" / blob
        with open(path, "r+b") as f:
            f.seek(path.stat().st_size // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
        return
    files = store.db["weights.files"].find_one({"filename": f"{run}/{blob}"})
    chunk = store.db["weights.chunks"].find_one({"files_id": files["_id"], "n": 0})
    data = bytearray(chunk["data"])
    data[len(data) // 2] ^= 0xFF
    store.db["weights.chunks"].update_one({"_id": chunk["_id"]}, {"$set": {"data": bytes(data)}})


@pytest.mark.parametrize("part", ["model", "optimizer"])
def test_a_flipped_byte_raises_corrupt_weights_naming_run_and_iteration(store, part):
    model, optimizer = trained()
    store.store_weights("run", 7, model, optimizer)
    flip_a_byte(store, "run", store.metadata("run", 7)["blobs"][part]["name"])
    with pytest.raises(CorruptWeightsError, match=r"run run at iteration 7.*xxh3-128 checksum"):
        store.retrieve_weights("run", 7)


def test_an_entry_with_only_a_sha256_still_verifies(store):
    model, _ = trained()
    store.store_weights("run", 7, model)
    meta = store.metadata("run", 7)
    record = meta["blobs"]["model"]
    assert set(record) == {"name", "xxh3_128", "size"}
    # as written before xxh3-128 was recorded
    record["sha256"] = hashlib.sha256(bytes(store.get_blob("run", record["name"]))).hexdigest()
    del record["xxh3_128"]
    store.append_index("run", [{"op": "checkpoint", "iteration": 7, "meta": meta}])
    assert_same_state(store.retrieve_weights("run", 7).model, model.state_dict())
    flip_a_byte(store, "run", record["name"])
    with pytest.raises(CorruptWeightsError, match=r"run run at iteration 7.*its sha256"):
        store.retrieve_weights("run", 7)


def test_a_truncated_blob_raises_corrupt_weights(tmp_path):
    store = LocalWeightsStore(tmp_path)
    model, _ = trained()
    store.store_weights("run", 7, model)
    path = tmp_path / "run" / "checkpoints" / "blobs" / store.metadata("run", 7)["blobs"]["model"]["name"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorruptWeightsError, match="bytes, expected"):
        store.retrieve_weights("run", 7)


def test_a_torn_last_index_line_is_ignored_and_cut_by_the_next_writer(tmp_path):
    store = LocalWeightsStore(tmp_path)
    model, _ = trained()
    store.store_weights("run", 1, model)
    journal = tmp_path / "run" / "checkpoints" / "index.jsonl"
    with open(journal, "ab") as f:
        f.write(b'{"op":"checkpoint","iteration":2,"meta":{"blo')
    assert LocalWeightsStore(tmp_path).iterations("run") == [1]
    store.store_weights("run", 3, model)
    assert store.iterations("run") == [1, 3]
    assert all(json.loads(line) for line in journal.read_bytes().splitlines())


# ---------------------------------------------------------------- legacy DaCapo checkpoints


class _Boom:
    """Unpickling this writes a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).touch, ())


def write_legacy(tmp_path: Path, iteration: int, payload) -> Path:
    path = tmp_path / "run" / "checkpoints" / "iterations" / str(iteration)
    path.parent.mkdir(parents=True)
    torch.save(payload, path)
    return path


def test_a_legacy_pickle_of_state_dicts_loads_without_allow_pickle(tmp_path):
    model, optimizer = trained()
    write_legacy(tmp_path, 5, {"model": model.state_dict(), "optimizer": optimizer.state_dict()})
    store = LocalWeightsStore(tmp_path)
    assert store.iterations("run") == [5]
    weights = store.retrieve_weights("run", 5)
    assert_same_state(dict(weights.model), dict(model.state_dict()))
    assert_same_state(weights.optimizer, optimizer.state_dict())


def test_a_legacy_pickle_beyond_the_allow_list_is_refused_without_allow_pickle(tmp_path):
    write_legacy(tmp_path, 5, {"model": {}, "extra": Path("x")})
    with pytest.raises(PickleCheckpointError, match=r"pathlib\.PosixPath.*allow_pickle=True"):
        LocalWeightsStore(tmp_path).retrieve_weights("run", 5)


def test_a_refused_legacy_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "code_ran"
    write_legacy(tmp_path, 5, {"model": {}, "evil": _Boom(str(marker))})
    with pytest.raises(PickleCheckpointError):
        LocalWeightsStore(tmp_path).retrieve_weights("run", 5)
    assert not marker.exists()


def test_a_legacy_pickle_loads_with_allow_pickle(tmp_path):
    model, optimizer = trained()
    write_legacy(tmp_path, 5, {"model": model.state_dict(), "optimizer": optimizer.state_dict()})
    weights = LocalWeightsStore(tmp_path).retrieve_weights("run", 5, allow_pickle=True)
    assert_same_state(dict(weights.model), dict(model.state_dict()))
    assert_same_state(weights.optimizer, optimizer.state_dict())


def test_optimizer_data_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    buffer = io.BytesIO()
    torch.save({"state": {}, "evil": _Boom(str(marker))}, buffer)
    with pytest.raises(FormatError):
        load_torch(buffer.getvalue())
    assert not marker.exists()
