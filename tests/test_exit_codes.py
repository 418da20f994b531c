"""Commands that should fail do, with the README's exit codes (issue 17, item 7): 0 success, 1 a
failure the command found, 2 a usage error or a store that can't be reached; one line on stderr."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import full_run, no_options, small_run

from dacapo_store import converter
from dacapo_store.cli import app
from dacapo_store.config_store import FileConfigStore
from dacapo_store.configs import DummyTaskConfig, StartConfig
from dacapo_store.weights import LocalWeightsStore

PACK = Path(__file__).resolve().parent / "data" / "dacapo-0.3.5" / "files"


def invoke(*argv: str, **kwargs):
    return CliRunner().invoke(app, list(argv), catch_exceptions=False, **kwargs)


@pytest.fixture(autouse=True)
def _options(tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path / "options")))
    monkeypatch.delenv("DACAPO_RUNS_BASE_DIR", raising=False)


@pytest.fixture
def stranger(tmp_path) -> Path:
    """Someone's folder that holds no registry, with an old temporary-looking file in it."""
    folder = tmp_path / "stranger"
    (folder / "x" / "checkpoints").mkdir(parents=True)
    leftover = folder / "x" / "checkpoints" / ".tmp-keep-me"
    leftover.write_text("not ours")
    os.utime(leftover, (1, 1))
    return folder


@pytest.mark.parametrize(
    "argv", [["weights", "verify"], ["leaderboard", "voi"], ["gc", "--dry-run"], ["check", "--weights"]]
)
def test_a_folder_that_holds_no_registry_is_a_usage_error(stranger, argv):
    result = invoke("--store", f"files:{stranger}", *argv)
    assert result.exit_code == 2
    assert f"no registry at {stranger}" in result.stderr and result.stderr.count("\n") == 1
    assert ".tmp-keep-me" not in result.stdout
    assert (stranger / "x" / "checkpoints" / ".tmp-keep-me").exists()


def test_an_unreachable_mongodb_with_a_runs_folder_is_exit_2(tmp_path, monkeypatch):
    (tmp_path / "runs" / "configs").mkdir(parents=True)
    monkeypatch.setenv("DACAPO_RUNS_BASE_DIR", str(tmp_path / "runs"))
    result = invoke("--store", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", "leaderboard", "voi")
    assert result.exit_code == 2 and "can't reach MongoDB" in result.stderr


def test_import_dacapo_from_a_folder_that_is_no_dacapo_registry_is_exit_2(tmp_path):
    (tmp_path / "reg" / "configs").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    result = invoke(
        "--store", f"files:{tmp_path / 'reg'}", "import-dacapo", "--from", f"files:{tmp_path / 'empty'}"
    )
    assert result.exit_code == 2 and "not a DaCapo registry" in result.stderr
    assert result.stderr.count("\n") == 1


def test_import_dacapo_of_a_run_the_source_does_not_have_is_exit_1(tmp_path):
    (tmp_path / "reg" / "configs").mkdir(parents=True)
    result = invoke(
        "--store", f"files:{tmp_path / 'reg'}", "import-dacapo", "--from", f"files:{PACK}", "--runs", "nope"
    )
    assert result.exit_code == 1 and "no run named 'nope'" in result.stderr
    assert FileConfigStore(tmp_path / "reg" / "configs").names("runs") == []


def test_init_of_a_configs_folder_says_which_folder_to_init(tmp_path):
    result = invoke("init", str(tmp_path / "reg" / "configs"))
    assert result.exit_code == 2 and f"dacapo-store init {tmp_path / 'reg'}" in result.stderr
    assert not (tmp_path / "reg").exists()


def test_a_missing_options_file_named_by_the_variable_is_exit_2(tmp_path, monkeypatch):
    (tmp_path / "reg" / "configs").mkdir(parents=True)
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(tmp_path / "typo.yaml"))
    result = invoke("--store", f"files:{tmp_path / 'reg'}", "info")
    assert result.exit_code == 2
    assert f"DACAPO_OPTIONS_FILE names {tmp_path / 'typo.yaml'}, which does not exist" in result.stderr


def test_an_unknown_option_is_warned_once(tmp_path, monkeypatch, caplog):
    (tmp_path / "reg" / "configs").mkdir(parents=True)
    options = tmp_path / "odd.yaml"
    options.write_text(f"runs_base_dir: {tmp_path / 'reg'}\nunheard_of: 1\n")
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(options))
    from dacapo_store import options as options_module

    options_module._warned.clear()
    with caplog.at_level(logging.WARNING, logger="dacapo_store.options"):
        assert invoke("leaderboard", "voi").exit_code == 0
    assert sum("unheard_of" in r.getMessage() for r in caplog.records) == 1


# -- check: a start run without scores yet is a note ----------------------------------------------


@pytest.fixture
def starts(tmp_path):
    configs, weights = FileConfigStore(tmp_path / "configs"), LocalWeightsStore(tmp_path)
    configs.store_run_config(full_run("parent", start_config=None))
    configs.store_run_config(full_run("child", start_config=StartConfig("parent", "voi")))
    return tmp_path, weights


def test_check_notes_a_start_whose_run_has_no_scores_yet(starts):
    folder, _ = starts
    result = invoke("--store", f"files:{folder}", "check", "--json")
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["notes"]
    assert any(n["name"] == "child" and "has no scores yet" in n["note"] for n in notes)


def test_check_fails_a_start_whose_run_has_scores_but_not_under_that_criterion(starts):
    folder, weights = starts
    weights.store_weights("parent", 1, {"w": torch.ones(1)})
    weights.store_validation_scores("parent", 1, {"dice": 0.5})
    result = invoke("--store", f"files:{folder}", "check", "--json")
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["name"] == "child" and "(it has: dice)" in problem["problem"]


# -- copy ----------------------------------------------------------------------------------------


def test_copy_does_not_copy_a_run_whose_part_conflicts_at_the_target(tmp_path):
    source = FileConfigStore(tmp_path / "a" / "configs")
    run = small_run("run")
    source.store_run_config(run)
    target = FileConfigStore(tmp_path / "b" / "configs")
    target.store_task_config(
        DummyTaskConfig(run.task_config.name, embedding_dims=99, detection_threshold=0.1)
    )
    result = invoke("copy", "--from", f"files:{tmp_path / 'a'}", "--to", f"files:{tmp_path / 'b'}", "--json")
    assert result.exit_code == 1
    conflicts = {(c["kind"], c["name"]) for c in json.loads(result.stdout)["documents"]["conflicts"]}
    assert ("runs", "run") in conflicts and ("tasks", run.task_config.name) in conflicts
    assert target.names("runs") == []


def test_copy_from_a_dacapo_registry_says_what_it_leaves_and_points_at_import_dacapo(tmp_path):
    source = tmp_path / "dacapo"
    shutil.copytree(PACK, source, symlinks=True)
    result = invoke("copy", "--from", f"files:{source}", "--to", f"files:{tmp_path / 'ours'}")
    assert result.exit_code == 1
    assert "import-dacapo" in result.stdout
    assert "DaCapo's own checkpoints" in result.stderr


# -- usage errors: exit 2, one line ---------------------------------------------------------------


@pytest.fixture
def registry(tmp_path):
    configs = FileConfigStore(tmp_path / "configs")
    configs.store_run_config(small_run("run"))
    LocalWeightsStore(tmp_path).store_weights("run", 1, {"w": torch.ones(1)})
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["weights", "best", "run", "a.b"],
        ["leaderboard", "latest"],
        ["scores", "run", "--criterion", "12"],
        ["show", "tasks", "anything", "--repetition", "1"],
    ],
)
def test_usage_errors_are_exit_2_and_one_line(registry, argv):
    result = invoke("--store", f"files:{registry}", *argv)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_add_of_a_name_the_files_backend_cant_hold_is_exit_2(registry, tmp_path):
    doc = converter.unstructure(small_run("has/slash"))
    file = tmp_path / "run.json"
    file.write_text(json.dumps(doc))
    result = invoke("--store", f"files:{registry}", "add", str(file))
    assert result.exit_code == 2
    assert FileConfigStore(registry / "configs").names("runs") == ["run"]


def test_import_of_a_folder_that_is_no_registry_is_exit_2(registry, tmp_path):
    (tmp_path / "plain").mkdir()
    result = invoke("--store", f"files:{registry}", "import", str(tmp_path / "plain"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


def test_serve_on_a_busy_port_is_exit_2_one_line(registry):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = invoke("--store", f"files:{registry}", "serve", "--port", str(port))
    assert result.exit_code == 2
    assert "in use" in result.stderr and result.stderr.count("\n") == 1
