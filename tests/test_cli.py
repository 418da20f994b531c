"""The dacapo-store command line, through click's runner, on the files backend and mongomock."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mongomock
import mongomock.gridfs
import pytest
import torch
import yaml
from click.testing import CliRunner
from conftest import as_lists, full_run, no_options, small_run
from strict_mongo import StrictMongoClient

from dacapo_store import converter
from dacapo_store.cli import app
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.configs import DummyArrayConfig, StartConfig
from dacapo_store.mongo import shared_clients

mongomock.gridfs.enable_gridfs_integration()

UNKNOWN = {"__type__": "PluginOnlyTaskConfig", "name": "plugin_task", "secret_sauce": [1, 2, 3]}


class Registry:
    """A store reached through the CLI's --store options, and the same store from Python."""

    def __init__(self, args: list[str], store) -> None:
        self.args = args
        self.store = store

    def run(self, *argv: str, input: str | None = None):
        return CliRunner().invoke(app, [*self.args, *argv], input=input, catch_exceptions=False)


@pytest.fixture
def shared_mongo(monkeypatch):
    """pymongo's MongoClient -> one strict mongomock server; each connect is a new client of it."""
    server = StrictMongoClient()
    monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *args, **kwargs: server.sibling())
    yield server
    assert shared_clients() == [], "a command left a MongoDB client open"


@pytest.fixture(params=["files", "mongomock"])
def registry(request, tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    if request.param == "files":
        (tmp_path / "reg" / "configs").mkdir(parents=True)  # as `dacapo-store init` makes it
        return Registry(
            ["--store", f"files:{tmp_path / 'reg'}"], FileConfigStore(tmp_path / "reg" / "configs")
        )
    server = request.getfixturevalue("shared_mongo")
    return Registry(
        ["--store", "mongodb://admin:hunter2@localhost:27017", "--db", "cli"],
        MongoConfigStore(client=server, db_name="cli"),
    )


def write_yaml(path: Path, *docs) -> Path:
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return path


COMMANDS = [
    [],
    ["info"],
    ["list"],
    ["show"],
    ["add"],
    ["diff"],
    ["delete"],
    ["copy"],
    ["export"],
    ["import"],
    ["check"],
    ["lineage"],
    ["demo"],
    ["weights"],
    ["weights", "list"],
    ["weights", "best"],
    ["weights", "prune"],
    ["import-dacapo"],
    ["migrate"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: dacapo-store" in result.output
    if command and command != ["weights"]:
        assert "Example: dacapo-store" in result.output


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("dacapo-store, version ")


def test_info_says_where_and_counts_each_kind(registry):
    registry.store.store_run_config(full_run())
    result = registry.run("info")
    assert result.exit_code == 0
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines()[1:])
    assert lines["answers"] == "yes"
    assert (lines["runs"], lines["tasks"], lines["arrays"]) == ("1", "1", "0")
    assert "hunter2" not in result.output


def test_list_prints_one_name_per_line_when_piped(registry):
    registry.store.store_run_config(full_run("b"))
    registry.store.store_run_config(small_run("a"))
    result = registry.run("list", "runs")
    assert (result.exit_code, result.stdout) == (0, "a\nb\n")


def test_list_json_parses_and_filters(registry):
    registry.store.store_run_config(full_run("b"))
    registry.store.store_run_config(small_run("a"))
    result = registry.run("list", "runs", "--architecture", "unet", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == ["b"]
    result = registry.run("list", "runs", "--task", "dummy_task", "--task", "distances", "--json")
    assert json.loads(result.stdout) == ["a", "b"]


def test_list_filters_on_other_kinds_are_a_usage_error(registry):
    result = registry.run("list", "tasks", "--architecture", "unet")
    assert result.exit_code == 2
    assert "filter runs only" in result.stderr


def test_show_prints_the_document_as_yaml_and_json(registry):
    registry.store.store_run_config(full_run())
    expected = as_lists(converter.unstructure(full_run()))
    as_yaml = registry.run("show", "runs", "run")
    assert as_yaml.exit_code == 0
    assert yaml.safe_load(as_yaml.stdout) == expected
    as_json = registry.run("show", "runs", "run", "--format", "json")
    assert json.loads(as_json.stdout) == expected


def test_show_meta_says_who_stored_it(registry):
    registry.store.store_array_config(DummyArrayConfig("a"))
    doc = json.loads(registry.run("show", "arrays", "a", "--format", "json", "--meta").stdout)
    assert "@" in doc["__dacapo_store__"]["created_by"]
    assert doc["__dacapo_store__"]["content_hash"].startswith("sha256:")


def test_a_shown_document_with_meta_can_be_added_again_keeping_its_author(registry, tmp_path):
    registry.store.store_run_config(full_run())
    shown = registry.run("show", "runs", "run", "--meta").stdout
    original = registry.store.metadata("runs", "run")
    file = tmp_path / "run.yaml"
    file.write_text(shown)
    registry.store.delete("runs", "run")
    result = registry.run("add", str(file))
    assert result.exit_code == 0, result.output
    assert registry.store.retrieve_run_config("run") == full_run()
    assert registry.store.metadata("runs", "run") == original
    assert "__dacapo_store__" not in registry.store.get_document("runs", "run")


def test_a_missing_config_is_one_line_on_stderr_and_exit_1(registry):
    result = registry.run("show", "runs", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "no run config named 'nope'" in result.stderr
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback_without_the_password(registry):
    result = CliRunner().invoke(
        app, [*registry.args, "--debug", "show", "runs", "nope"], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "ConfigNotFoundError: no run config named 'nope'" in result.stderr
    assert "hunter2" not in result.output


def test_a_bad_name_is_a_usage_error_with_the_rule(registry):
    result = registry.run("show", "runs", "../etc")
    assert result.exit_code == 2
    assert "invalid name '../etc'" in result.stderr


def test_add_stores_a_run_and_its_parts_and_rerunning_is_a_no_op(registry, tmp_path):
    file = write_yaml(tmp_path / "run.yaml", converter.unstructure(full_run()))
    first = registry.run("add", str(file))
    assert first.exit_code == 0
    assert "stored runs/'run'" in first.stdout
    assert registry.store.retrieve_run_config("run") == full_run()
    assert registry.store.names("trainers") == ["gunpowder"]
    again = registry.run("add", str(file))
    assert (again.exit_code, again.stdout.strip()) == (0, "unchanged runs/'run'")


def test_add_reads_dacapo_tuples_and_json(registry, tmp_path):
    (tmp_path / "arch.yaml").write_text(
        "__type__: DummyArchitectureConfig\nname: tup\nnum_in_channels: 1\nnum_out_channels: 2\n"
    )
    (tmp_path / "arr.json").write_text(json.dumps([{"__type__": "DummyArrayConfig", "name": "j"}]))
    result = registry.run("add", str(tmp_path / "arch.yaml"), str(tmp_path / "arr.json"))
    assert result.exit_code == 0
    assert registry.store.names("architectures") == ["tup"]
    assert registry.store.names("arrays") == ["j"]


def test_add_with_one_bad_document_stores_nothing(registry, tmp_path):
    good = converter.unstructure(full_run("good"))
    bad = converter.unstructure(full_run("bad"))
    bad["trainer_config"]["batch_size"] = "x"
    file = write_yaml(tmp_path / "runs.yaml", good, bad)
    result = registry.run("add", str(file))
    assert result.exit_code == 1
    assert "trainer_config.batch_size: expected int, got 'x'" in result.stderr
    assert "nothing stored" in result.stderr
    assert registry.store.names("runs") == []
    assert registry.store.names("trainers") == []


def test_add_refuses_a_config_failing_verify_unless_no_verify(registry, tmp_path):
    doc = converter.unstructure(full_run(num_iterations=0))
    file = write_yaml(tmp_path / "run.yaml", doc)
    result = registry.run("add", str(file))
    assert result.exit_code == 1
    assert "num_iterations must be > 0" in result.stderr
    assert registry.store.names("runs") == []
    assert registry.run("add", "--no-verify", str(file)).exit_code == 0
    assert registry.store.names("runs") == ["run"]


def test_add_a_conflicting_document_reports_it_and_keeps_the_store(registry, tmp_path):
    registry.store.store_run_config(full_run())
    file = write_yaml(tmp_path / "run.yaml", converter.unstructure(full_run(num_iterations=3)))
    result = registry.run("add", str(file))
    assert result.exit_code == 1
    assert "num_iterations: stored 100000, given 3" in result.stderr
    assert registry.store.retrieve_run_config("run") == full_run()


def test_add_a_document_of_an_uninstalled_class_needs_kind(registry, tmp_path):
    file = write_yaml(tmp_path / "plugin.yaml", UNKNOWN)
    refused = registry.run("add", str(file))
    assert refused.exit_code == 1
    assert "pass --kind" in refused.stderr
    assert registry.store.names("tasks") == []
    stored = registry.run("add", "--kind", "tasks", str(file))
    assert stored.exit_code == 0
    assert registry.store.get_document("tasks", "plugin_task") == UNKNOWN


def test_diff_lists_differing_fields_and_exits_1(registry):
    registry.store.store_run_config(full_run("a"))
    registry.store.store_run_config(full_run("b", num_iterations=5))
    result = registry.run("diff", "runs", "a", "b")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["field\ta\tb", "num_iterations\t100000\t5"]


def test_diff_of_equal_configs_exits_0(registry):
    registry.store.store_run_config(full_run("a"))
    registry.store.store_run_config(full_run("b"))
    assert registry.run("diff", "runs", "a", "b").exit_code == 0


def test_delete_with_yes_deletes(registry):
    registry.store.store_array_config(DummyArrayConfig("a"))
    result = registry.run("delete", "arrays", "a", "--yes")
    assert (result.exit_code, registry.store.names("arrays")) == (0, [])


def test_delete_without_a_terminal_or_yes_is_refused(registry):
    registry.store.store_array_config(DummyArrayConfig("a"))
    result = registry.run("delete", "arrays", "a")
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert registry.store.names("arrays") == ["a"]


def test_delete_refuses_a_run_others_start_from_unless_force(registry):
    registry.store.store_run_config(small_run("pretrained"))
    registry.store.store_run_config(full_run("finetune"))
    refused = registry.run("delete", "runs", "pretrained", "--yes")
    assert refused.exit_code == 1
    assert "is the start of run(s) finetune" in refused.stderr
    assert registry.store.names("runs") == ["finetune", "pretrained"]
    assert registry.run("delete", "runs", "pretrained", "--yes", "--force").exit_code == 0
    assert registry.store.names("runs") == ["finetune"]


def test_lineage_shows_the_chain_and_the_children(registry):
    registry.store.store_run_config(small_run("pretrained"))
    registry.store.store_run_config(full_run("finetune"))
    up = registry.run("lineage", "finetune")
    assert up.exit_code == 0
    assert "<- pretrained (by voi)" in up.stdout
    down = registry.run("lineage", "pretrained")
    assert "-> finetune (by voi)" in down.stdout


def test_check_reports_documents_that_do_not_structure(registry):
    registry.store.store_run_config(small_run())
    registry.store.put_document("tasks", UNKNOWN)
    result = registry.run("check")
    assert result.exit_code == 1
    assert "tasks\tplugin_task\t" in result.stdout
    assert "PluginOnlyTaskConfig" in result.stdout
    assert "1 problem(s) in 6 documents" in result.stderr


def test_check_of_a_clean_store_exits_0(registry):
    registry.store.store_run_config(small_run())
    result = registry.run("check")
    assert (result.exit_code, result.stdout.strip()) == (0, "all 5 documents check out")


def test_documents_of_uninstalled_classes_survive_list_show_export_import(registry, tmp_path):
    registry.store.put_document("tasks", UNKNOWN)
    assert registry.run("list", "tasks").stdout == "plugin_task\n"
    assert yaml.safe_load(registry.run("show", "tasks", "plugin_task").stdout) == UNKNOWN
    exported = registry.run("export", str(tmp_path / "backup"))
    assert exported.exit_code == 0
    assert FileConfigStore(tmp_path / "backup" / "configs").get_document("tasks", "plugin_task") == UNKNOWN
    fresh = CliRunner().invoke(
        app, ["--store", f"files:{tmp_path / 'fresh'}", "import", str(tmp_path / "backup")]
    )
    assert fresh.exit_code == 0
    assert FileConfigStore(tmp_path / "fresh" / "configs").get_document("tasks", "plugin_task") == UNKNOWN


def test_import_of_a_folder_without_configs_is_refused(registry, tmp_path):
    (tmp_path / "empty").mkdir()
    result = registry.run("import", str(tmp_path / "empty"))
    assert result.exit_code == 2  # a usage error: that folder holds no registry
    assert "no configs/ folder" in result.stderr


def test_copy_files_to_mongo_and_back_is_idempotent(tmp_path, shared_mongo):
    source = FileConfigStore(tmp_path / "src" / "configs")
    source.store_run_config(full_run())
    source.put_document("tasks", UNKNOWN)
    args = [
        "copy",
        "--from",
        f"files:{tmp_path / 'src'}",
        "--to",
        "mongodb://localhost:27017",
        "--db-to",
        "shared",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0
    assert "6 copied, 0 already there, 0 conflicts" in first.stdout
    again = CliRunner().invoke(app, args)
    assert "0 copied, 6 already there, 0 conflicts" in again.stdout
    mongo = MongoConfigStore(client=shared_mongo, db_name="shared")
    assert mongo.retrieve_run_config("run") == full_run()
    assert mongo.metadata("runs", "run") == source.metadata("runs", "run")
    back = CliRunner().invoke(
        app,
        [
            "copy",
            "--from",
            "mongodb://localhost:27017",
            "--db-from",
            "shared",
            "--to",
            f"files:{tmp_path / 'back'}",
        ],
    )
    assert back.exit_code == 0
    assert FileConfigStore(tmp_path / "back" / "configs").get_document("tasks", "plugin_task") == UNKNOWN


def test_copy_reports_a_conflict_and_keeps_the_target(tmp_path):
    FileConfigStore(tmp_path / "a" / "configs").store_run_config(full_run())
    target = FileConfigStore(tmp_path / "b" / "configs")
    target.store_run_config(full_run(num_iterations=1))
    result = CliRunner().invoke(
        app,
        ["copy", "--from", f"files:{tmp_path / 'a'}", "--to", f"files:{tmp_path / 'b'}", "--kinds", "runs"],
    )
    assert result.exit_code == 1
    assert "conflict runs/'run'" in result.stderr
    assert "0 copied, 0 already there, 1 conflicts" in result.stdout
    assert target.retrieve_run_config("run").num_iterations == 1


def test_copy_with_an_unknown_kind_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(
        app,
        ["copy", "--from", f"files:{tmp_path}", "--to", f"files:{tmp_path / 'b'}", "--kinds", "runs,models"],
    )
    assert result.exit_code == 2
    assert "unknown kind(s) models" in result.stderr


def test_an_unreachable_mongodb_is_exit_2_without_the_password():
    result = CliRunner().invoke(
        app, ["--store", "mongodb://admin:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=200", "list", "runs"]
    )
    assert result.exit_code == 2
    assert "can't reach MongoDB at mongodb://***@127.0.0.1:1" in result.stderr
    assert "hunter2" not in result.output


def test_a_store_that_is_neither_files_nor_mongodb_is_a_usage_error():
    result = CliRunner().invoke(app, ["--store", "sqlite:///x.db", "list", "runs"])
    assert result.exit_code == 2
    assert "neither files:PATH nor a mongodb:// URI" in result.stderr


def test_the_installed_console_script_runs_the_demo(tmp_path):
    script = shutil.which("dacapo-store") or str(Path(sys.executable).with_name("dacapo-store"))
    done = subprocess.run(
        [script, "demo", str(tmp_path / "demo")], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "loaded iteration" in done.stdout
    assert "4. Starting blobs_finetune from blobs_baseline" in done.stdout
    assert "[bold]" not in done.stdout  # piped: markup is rendered away, never printed
    store = FileConfigStore(tmp_path / "demo" / "configs")
    assert store.names("runs") == ["blobs_baseline", "blobs_finetune"]
    from dacapo_store.weights import LocalWeightsStore

    stats = LocalWeightsStore(tmp_path / "demo").retrieve_training_stats("blobs_baseline")
    assert [s.iteration for s in stats[:3]] == [0, 10, 20] and len(stats) == 50
    listed = subprocess.run(
        [script, "--store", f"files:{tmp_path / 'demo'}", "list", "runs", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(listed.stdout) == ["blobs_baseline", "blobs_finetune"]


@pytest.fixture(params=["files", "mongomock"])
def trained(request, tmp_path, monkeypatch):
    """A registry with a run that has four checkpoints and voi scores, and a run starting from it.

    files: configs and weights under one folder; mongomock: configs in MongoDB, weights in GridFS.
    """
    from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    if request.param == "files":
        args = ["--store", f"files:{tmp_path}"]
        configs, weights = FileConfigStore(tmp_path / "configs"), LocalWeightsStore(tmp_path)
    else:
        mongomock.gridfs.enable_gridfs_integration()
        server = request.getfixturevalue("shared_mongo")
        monkeypatch.setenv("DACAPO_WEIGHTS_STORE", "gridfs")
        args = ["--store", "mongodb://localhost:27017", "--db", "cli"]
        configs = MongoConfigStore(client=server, db_name="cli")
        weights = GridFSWeightsStore(client=server, db_name="cli")
    configs.store_run_config(small_run("pretrained"))
    configs.store_run_config(full_run("finetune", start_config=StartConfig("pretrained", "voi")))
    state = {"w": torch.zeros(2, 2)}
    for iteration, voi in [(100, 0.9), (200, 0.3), (300, 0.5), (400, 0.6)]:
        weights.store_weights("pretrained", iteration, state)
        weights.store_validation_scores("pretrained", iteration, {"voi": voi})
    return Registry(args, configs), weights


def test_weights_list_shows_checkpoints_and_what_they_are_best_for(trained):
    registry, _ = trained
    result = registry.run("weights", "list", "pretrained")
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["iteration", "created_at", "created_by", "size", "voi validate", "best for", "damaged"]
    assert [r[0] for r in rows[1:]] == ["100", "200", "300", "400"]
    assert [r[4] for r in rows[1:]] == ["0.9", "0.3", "0.5", "0.6"]
    assert rows[2][5] == "voi"


def test_weights_best_prints_the_iteration(trained):
    registry, _ = trained
    result = registry.run("weights", "best", "pretrained", "voi")
    assert (result.exit_code, result.stdout) == (0, "200\tvoi=0.3\tcomputed best\n")


def test_weights_best_of_an_unknown_criterion_lists_the_known_ones(trained):
    registry, _ = trained
    result = registry.run("weights", "best", "pretrained", "dice")
    assert result.exit_code == 1
    assert "voi" in result.stderr


def test_weights_prune_dry_run_deletes_nothing(trained):
    registry, weights = trained
    result = registry.run("weights", "prune", "pretrained", "--keep-last", "1", "--dry-run")
    assert result.exit_code == 0
    assert "would delete 2 checkpoint(s) of pretrained: 100, 300" in result.stdout
    assert weights.iterations("pretrained") == [100, 200, 300, 400]


def test_weights_prune_keeps_the_last_the_best_and_the_start(trained):
    registry, weights = trained
    result = registry.run("weights", "prune", "pretrained", "--keep-last", "1", "--yes")
    assert result.exit_code == 0
    assert weights.iterations("pretrained") == [200, 400]


def test_weights_prune_without_a_terminal_or_yes_is_refused(trained):
    registry, weights = trained
    result = registry.run("weights", "prune", "pretrained", "--keep-last", "1")
    assert result.exit_code == 2
    assert weights.iterations("pretrained") == [100, 200, 300, 400]
