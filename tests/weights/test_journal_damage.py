"""Damage in a run's index or training stats is reported, read around, and never collected.

On files every journal line carries its own checksum, so a flipped byte anywhere in a line (an op,
a score's digit, an iteration) is found; on MongoDB a malformed part of a run's document is the
same kind of damage. Either way: reads go on with what is intact and say what they skipped,
`check`, `check --weights` and `weights verify` name the run and where (exit 1), and `gc` leaves
every blob of the run alone.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import no_options, small_run

from dacapo_store.cli import app
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.weights import LocalWeightsStore, TrainingIterationStats

from .conftest import build_store

STATE = {"w": torch.arange(4.0)}


@pytest.fixture
def cli(backend_spec, monkeypatch, tmp_path):
    """Run the command line against the registry of `backend_spec`: (exit code, stdout, stderr)."""
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path / "options")))
    if backend_spec["backend"] == "files":
        Path(backend_spec["path"], "configs").mkdir(parents=True, exist_ok=True)
        args = ["--store", f"files:{backend_spec['path']}"]
    else:
        monkeypatch.setenv("DACAPO_WEIGHTS_STORE", "gridfs")
        server = backend_spec["client"]
        monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *a, **k: server.sibling())
        args = ["--store", "mongodb://localhost:27017", "--db", backend_spec["db"]]

    def run(*command: str):
        result = CliRunner().invoke(app, [*args, *command], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


def files_check(path: Path) -> tuple[int, list[str]]:
    """`dacapo-store check --weights --json` of a files registry: (exit code, problems)."""
    (path / "configs").mkdir(exist_ok=True)
    result = CliRunner().invoke(
        app,
        ["--store", f"files:{path}", "check", "--weights", "--json"],
        env={"DACAPO_OPTIONS_FILE": str(no_options(path.parent / "options"))},
        catch_exceptions=False,
    )
    return result.exit_code, [p["problem"] for p in json.loads(result.stdout)["problems"]]


def checkpoints_100_to_500(store) -> None:
    for iteration in range(100, 501, 100):
        store.store_weights("run", iteration, STATE)
        store.store_validation_scores("run", iteration, {"voi": 1 - iteration / 1000})


def journal(spec) -> Path:
    return Path(spec["path"]) / "run" / "checkpoints" / "index.jsonl"


def change_line(path: Path, contains: bytes, old: bytes, new: bytes) -> int:
    """Replace `old` by `new` (one byte) in the line holding `contains`; the line's number."""
    lines = path.read_bytes().split(b"\n")
    number = next(i for i, line in enumerate(lines) if contains in line)
    lines[number] = lines[number].replace(old, new, 1)
    mtime = path.stat().st_mtime_ns
    path.write_bytes(b"\n".join(lines))
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))  # later than the write it damages, as in life
    return number + 1


def damage_checkpoint_500(store, spec) -> str:
    """The entry of checkpoint 500 made unreadable behind the store's back; where the damage is."""
    if spec["backend"] == "files":
        line = change_line(journal(spec), b'"op":"checkpoint","iteration":500', b"checkpoint", b"checkpoinu")
        return f"index.jsonl line {line}"
    store.db["weights_runs"].update_one({"_id": "run"}, {"$set": {"checkpoints.500.blobs": "x"}})
    return "weights_runs"


def test_a_damaged_index_line_hides_nothing_else_and_gc_keeps_every_blob_of_the_run(
    backend_spec, cli, caplog
):
    store = build_store(backend_spec)
    checkpoints_100_to_500(store)
    blobs = store.list_blobs("run")
    where = damage_checkpoint_500(store, backend_spec)

    code, out, err = cli("gc", "--older-than", "0s", "--yes")
    assert build_store(backend_spec).list_blobs("run") == blobs  # 500's blobs too
    assert code == 1
    assert "skipped run run" in err and "can't be read" in err

    for command in (["check"], ["check", "--weights"], ["weights", "verify"]):
        code, out, err = cli(*command, "--json")
        assert code == 1, (command, out, err)
        found = json.loads(out)["problems"]
        assert any(where in p["problem"] for p in found), (command, found)
        assert all(p.get("name", p.get("run")) == "run" for p in found)

    fresh = build_store(backend_spec)
    with caplog.at_level(logging.WARNING), fresh.fresh_reads():  # as a new process reads it
        assert fresh.iterations("run") == [100, 200, 300, 400]  # the rest reads on
    assert where.split()[0] in caplog.text or "skipping" in caplog.text
    assert fresh.read_index("run").problems


def test_the_files_journal_damaged_in_its_op_reads_again_once_repaired(tmp_path):
    store = LocalWeightsStore(tmp_path)
    checkpoints_100_to_500(store)
    path = tmp_path / "run" / "checkpoints" / "index.jsonl"
    change_line(path, b'"op":"checkpoint","iteration":500', b"checkpoint", b"checkpoinu")
    with store.fresh_reads():
        assert 500 not in store.iterations("run")
    change_line(path, b'"op":"checkpoinu","iteration":500', b"checkpoinu", b"checkpoint")
    assert store.iterations("run") == [100, 200, 300, 400, 500]
    assert store.read_index("run").problems == ()
    assert torch.equal(store.retrieve_weights("run", 500).model["w"], STATE["w"])


@pytest.mark.parametrize(
    "what, contains, old, new",
    [
        ("a score's digit", b'"iteration":300,"dataset"', b'"voi":0.7', b'"voi":0.1'),
        (
            "a checkpoint's iteration",
            b'"op":"checkpoint","iteration":200',
            b'"iteration":200',
            b'"iteration":900',
        ),
        ("a direction", b'"iteration":100,"dataset"', b'"voi":false}', b'"voi":true }'),
    ],
)
def test_a_flipped_byte_in_a_journal_line_is_damage_not_a_wrong_answer(tmp_path, what, contains, old, new):
    store = LocalWeightsStore(tmp_path)
    checkpoints_100_to_500(store)
    line = change_line(tmp_path / "run" / "checkpoints" / "index.jsonl", contains, old, new)
    code, problems = files_check(tmp_path)
    assert code == 1
    assert problems == [f"index.jsonl line {line}: fails its checksum"]
    with store.fresh_reads():
        index = store.read_index("run")
    assert index.problems == (f"line {line}: fails its checksum",)
    assert 900 not in index.checkpoints
    assert index.scores["voi"]["validate"].get(300) != 0.1
    assert store.journal_problems("run")[0] == [f"index.jsonl line {line}: fails its checksum"]
    assert store.retrieve_best("run", "voi") == 500  # the intact scores still rank


def test_a_flipped_digit_in_training_stats_is_reported_and_the_other_rows_read(tmp_path):
    store = LocalWeightsStore(tmp_path)
    store.store_training_stats("run", [TrainingIterationStats(i, loss=0.5, time=1.25) for i in range(10)])
    path = tmp_path / "run" / "checkpoints" / "training_stats.jsonl"
    line = change_line(path, b"[7,", b"0.5", b"0.9")
    assert files_check(tmp_path) == (1, [f"training_stats.jsonl line {line}: fails its checksum"])
    with store.fresh_reads():
        assert [s.iteration for s in store.retrieve_training_stats("run")] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert store.journal_problems("run")[0] == [f"training_stats.jsonl line {line}: fails its checksum"]
    assert store.verify("run")[0].problem == f"training_stats.jsonl line {line}: fails its checksum"


def test_a_damaged_training_stats_header_blocks_neither_reads_nor_writes_and_is_reported(tmp_path):
    store = LocalWeightsStore(tmp_path)
    store.store_training_stats("run", [TrainingIterationStats(1, loss=0.5, time=1.0)])
    path = tmp_path / "run" / "checkpoints" / "training_stats.jsonl"
    change_line(path, b"dacapo_store_training_stats", b"dacapo_store", b"dacapo_storf")
    assert files_check(tmp_path)[0] == 1
    with store.fresh_reads():
        assert store.retrieve_training_stats("run") == [TrainingIterationStats(1, 0.5, 1.0)]
    assert store.store_training_stats("run", [TrainingIterationStats(2, loss=0.25, time=1.0)]) == 1
    assert [s.iteration for s in LocalWeightsStore(tmp_path).retrieve_training_stats("run")] == [1, 2]
    assert store.journal_problems("run")[0] == [
        "training_stats.jsonl line 1 (the header): fails its checksum"
    ]


def test_check_reports_damaged_training_stats_of_a_run_without_checkpoints(backend_spec, cli):
    store = build_store(backend_spec)
    store.store_training_stats("run", [TrainingIterationStats(i, loss=0.5, time=1.0) for i in range(3)])
    if backend_spec["backend"] == "files":
        path = Path(backend_spec["path"]) / "run" / "checkpoints" / "training_stats.jsonl"
        where = f"training_stats.jsonl line {change_line(path, b'[1,', b'0.5', b'0.7')}"
    else:
        store.db["weights_training_stats"].update_one({"iteration": 1}, {"$set": {"loss": "x"}})
        where = "weights_training_stats document"
    # the run has a document, so check knows of it before its first checkpoint
    if backend_spec["backend"] == "files":
        configs = FileConfigStore(Path(backend_spec["path"]) / "configs")
    else:
        configs = MongoConfigStore(client=backend_spec["client"], db_name=backend_spec["db"])
    configs.store(small_run("run"))
    code, out, _ = cli("check", "--json")
    assert code == 1
    assert [p["problem"].startswith(where) for p in json.loads(out)["problems"]] == [True]


def test_lines_written_before_checksums_still_read_and_check_notes_them(tmp_path):
    path = tmp_path / "run" / "checkpoints" / "index.jsonl"
    path.parent.mkdir(parents=True)
    events = [
        {"dacapo_store_index": 1, "id": "0" * 32},
        {
            "op": "scores",
            "iteration": 5,
            "dataset": "validate",
            "scores": {"voi": 0.5},
            "higher_is_better": {"voi": False},
        },
        {
            "op": "scores",
            "iteration": 6,
            "dataset": "validate",
            "scores": {"voi": 0.4},
            "higher_is_better": {"voi": False},
        },
    ]
    path.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in events))  # as 0.1 wrote them
    store = LocalWeightsStore(tmp_path)
    assert store.retrieve_validation_scores("run") == {"voi": {"validate": {5: 0.5, 6: 0.4}}}
    store.store_validation_scores("run", 7, {"voi": 0.3})  # a checked line after unchecked ones
    assert store.journal_problems("run") == (
        [],
        ["index.jsonl: 2 line(s) without a checksum (written before lines had one)"],
    )
