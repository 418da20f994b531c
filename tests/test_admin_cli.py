"""The admin command line of issue 11, on the files backend and mongomock: missing registries,
exit codes, batch-checked add, delete consequences, full copies, deep checks, scores, leaderboards,
JSON output; every refused operation leaves the store as it was."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import as_lists, full_run, no_options, small_run
from test_cli import UNKNOWN, Registry, registry, shared_mongo, trained, write_yaml  # noqa: F401

from dacapo_store import converter
from dacapo_store.cli import app
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.configs import StartConfig
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

REPO = Path(__file__).resolve().parents[1]


def invoke(*argv: str, input: str | None = None):
    return CliRunner().invoke(app, list(argv), input=input, catch_exceptions=False)


def snapshot(store) -> dict:
    """Everything a store holds, to compare before and after a refused operation."""
    if isinstance(store, FileConfigStore):
        root = store.path.parent
        out = {}
        for path in sorted(root.rglob("*")):
            if path.is_file() and ".dacapo_store" not in path.parts and not path.name.endswith(".lock"):
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out
    db = store.db
    return {
        name: sorted(
            json.dumps({k: v for k, v in d.items() if k != "_id"}, sort_keys=True, default=str)
            for d in db[name].find()
        )
        for name in sorted(db.list_collection_names())
    }


def cli_where(weights) -> str:
    """How the command line names the weights store of the `trained` fixture."""
    return (
        "mongodb:mongodb://localhost:27017/cli" if isinstance(weights, GridFSWeightsStore) else weights.where
    )


# -- 2. a path without a registry ------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["info"],
        ["list", "runs"],
        ["show", "runs", "x"],
        ["check"],
        ["lineage", "x"],
        ["weights", "list", "x"],
    ],
)
def test_a_path_without_a_registry_is_exit_2_and_says_how_to_make_one(tmp_path, argv):
    missing = tmp_path / "nonexistent" / "x"
    result = invoke("--store", f"files:{missing}", *argv)
    assert result.exit_code == 2
    assert f"no registry at {missing}" in result.stderr or f"no weights store at {missing}" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not missing.exists()


def test_add_to_a_path_without_a_registry_creates_nothing(tmp_path):
    file = write_yaml(tmp_path / "run.yaml", converter.unstructure(small_run()))
    result = invoke("--store", f"files:{tmp_path / 'reg'}", "add", str(file))
    assert result.exit_code == 2
    assert f"dacapo-store init {tmp_path / 'reg'}" in result.stderr
    assert not (tmp_path / "reg").exists()


def test_copy_from_a_typo_is_exit_2_and_copies_nothing(tmp_path):
    result = invoke("copy", "--from", f"files:{tmp_path / 'typo'}", "--to", f"files:{tmp_path / 'b'}")
    assert result.exit_code == 2
    assert "no registry at" in result.stderr
    assert not (tmp_path / "b").exists()


def test_pointing_at_the_configs_folder_itself_says_so(tmp_path):
    FileConfigStore(tmp_path / "reg" / "configs").store_run_config(small_run())
    result = invoke("--store", f"files:{tmp_path / 'reg' / 'configs'}", "list", "runs")
    assert result.exit_code == 2
    assert "looks like the configs/ folder itself" in result.stderr
    assert f"--store files:{tmp_path / 'reg'}" in result.stderr


def test_init_creates_an_empty_registry_once(tmp_path):
    first = invoke("init", str(tmp_path / "new"))
    assert first.exit_code == 0
    assert (tmp_path / "new" / "configs").is_dir()
    info = invoke("--store", f"files:{tmp_path / 'new'}", "info", "--json")
    assert info.exit_code == 0
    assert json.loads(info.stdout)["counts"]["runs"] == 0
    again = invoke("init", str(tmp_path / "new"))
    assert (again.exit_code, again.stdout.strip()) == (0, f"{tmp_path / 'new'} already holds a registry")


# -- 3. exit codes and which weights store --------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["list", "nope"], ["prune", "nope", "--keep-last", "1"], ["best", "nope", "voi"]]
)
def test_weights_commands_on_an_unknown_run_exit_1_naming_the_weights_store(trained, argv):
    registry, weights = trained
    result = registry.run("weights", *argv)
    assert result.exit_code == 1
    assert f"run nope not found: nothing in weights store {cli_where(weights)}" in result.stderr


@pytest.mark.parametrize("argv", [["list", "../x"], ["best", "a/../b", "voi"], ["verify", ".hidden"]])
def test_weights_commands_with_an_invalid_run_name_are_usage_errors(trained, argv):
    registry, _ = trained
    result = registry.run("weights", *argv)
    assert result.exit_code == 2
    assert "invalid" in result.stderr


def test_info_says_which_weights_store_is_used(trained):
    registry, weights = trained
    result = registry.run("info", "--json")
    shown = json.loads(result.stdout)["weights_store"]
    assert shown.startswith(
        "gridfs: " if isinstance(weights, GridFSWeightsStore) else f"files: {weights.where}"
    )


def test_a_mongodb_registry_without_a_weights_option_names_the_files_store_it_looks_in(
    tmp_path, shared_mongo, monkeypatch
):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    monkeypatch.setenv("DACAPO_RUNS_BASE_DIR", str(tmp_path / "runs"))
    (tmp_path / "runs").mkdir()
    MongoConfigStore(client=shared_mongo, db_name="cli").store_run_config(small_run())
    result = invoke("--store", "mongodb://localhost", "--db", "cli", "weights", "list", "nope")
    assert result.exit_code == 1
    assert f"weights store {tmp_path / 'runs'}" in result.stderr


# -- 4. add checks the whole batch --------------------------------------------------------------------


def test_add_of_files_clashing_with_each_other_stores_nothing(registry, tmp_path):
    a = write_yaml(tmp_path / "a.yaml", converter.unstructure(small_run("one")))
    b = write_yaml(tmp_path / "b.yaml", converter.unstructure(small_run("two", num_iterations=5)))
    clash = converter.unstructure(small_run("three"))
    clash["trainer_config"]["batch_size"] = 64
    c = write_yaml(tmp_path / "c.yaml", clash)
    before = snapshot(registry.store)
    result = registry.run("add", str(a), str(b), str(c))
    assert result.exit_code == 1
    assert f"{c}: 'three': trainers/gunpowder differs from the one in {a}: 'one'" in result.stderr
    assert "nothing stored" in result.stderr
    assert snapshot(registry.store) == before


def test_add_with_a_later_file_clashing_with_the_store_stores_nothing(registry, tmp_path):
    registry.store.store_run_config(small_run("stored"))
    before = snapshot(registry.store)
    good = write_yaml(tmp_path / "good.yaml", converter.unstructure(full_run("new", start_config=None)))
    bad = write_yaml(tmp_path / "bad.yaml", converter.unstructure(small_run("stored", num_iterations=1)))
    result = registry.run("add", str(good), str(bad))
    assert result.exit_code == 1
    assert "num_iterations: stored 100000, given 1" in result.stderr
    assert snapshot(registry.store) == before


# -- 7. deletes say what they leave --------------------------------------------------------------------


def test_deleting_a_part_runs_use_is_refused_unless_forced(registry):
    registry.store.store_run_config(small_run("a"))
    before = snapshot(registry.store)
    refused = registry.run("delete", "tasks", "dummy_task", "--yes")
    assert refused.exit_code == 1
    assert "task 'dummy_task' is used by run(s) a" in refused.stderr
    assert snapshot(registry.store) == before
    assert registry.run("delete", "tasks", "dummy_task", "--yes", "--force").exit_code == 0
    assert registry.store.names("tasks") == []


def test_deleting_a_run_says_its_weights_remain_and_with_weights_removes_them(trained):
    registry, weights = trained
    registry.store.delete("runs", "finetune")
    kept = registry.run("delete", "runs", "pretrained", "--yes")
    assert kept.exit_code == 0
    assert f"the checkpoints and scores of run pretrained remain in {cli_where(weights)}" in kept.stdout
    assert weights.iterations("pretrained") == [100, 200, 300, 400]
    registry.store.store_run_config(small_run("pretrained"))
    gone = registry.run("delete", "runs", "pretrained", "--with-weights", "--yes")
    assert gone.exit_code == 0
    assert "deleted 4 checkpoint(s) and the scores of run pretrained" in gone.stdout
    assert (weights.iterations("pretrained"), weights.criteria("pretrained")) == ([], [])


def test_with_weights_on_a_part_is_a_usage_error(registry):
    registry.store.store_run_config(small_run())
    assert registry.run("delete", "tasks", "dummy_task", "--with-weights", "--yes").exit_code == 2


# -- 8. small but visible ------------------------------------------------------------------------


def test_a_closed_pipe_is_silent(tmp_path):
    store = FileConfigStore(tmp_path / "configs")
    for i in range(3):
        store.store_run_config(small_run(f"run{i}"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "DACAPO_OPTIONS_FILE": str(no_options(tmp_path))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from dacapo_store.cli import main; main()",
            "--store",
            f"files:{tmp_path}",
            "list",
            "runs",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()  # the reader went away, as `| head` does
    stderr = proc.stderr.read().decode()
    assert (proc.wait(timeout=120), stderr) == (0, "")


def test_a_malformed_options_file_is_one_line_with_file_and_line(tmp_path, monkeypatch):
    options = tmp_path / "dacapo.yaml"
    options.write_text("type: files\nruns_base_dir: [unclosed\n")
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(options))
    result = invoke("info")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: options file {options} line ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_an_option_of_the_wrong_type_names_the_key(tmp_path, monkeypatch):
    options = tmp_path / "dacapo.yaml"
    options.write_text("runs_base_dir: [1, 2]\n")
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(options))
    result = invoke("list", "runs")
    assert result.exit_code == 2
    assert "option runs_base_dir must be a string, got [1, 2]" in result.stderr


def test_lineage_prints_data_that_looks_like_markup(registry):
    registry.store.store_run_config(full_run("finetune", start_config=StartConfig("[bold]x", "voi")))
    result = registry.run("lineage", "finetune")
    assert "<- [bold]x (by voi)  [not in this store]" in result.stdout


def test_a_yaml_syntax_error_gives_line_and_column(registry, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n__type__: DummyArrayConfig\n  oops: [\n")
    before = snapshot(registry.store)
    result = registry.run("add", str(bad))
    assert result.exit_code == 1
    assert f"{bad}: not valid YAML at line 3, column " in result.stderr
    assert snapshot(registry.store) == before


def test_a_json_syntax_error_gives_line_and_column(registry, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x",\n "__type__": }\n')
    result = registry.run("add", str(bad))
    assert result.exit_code == 1
    assert f"{bad}: not valid JSON at line 2, column 14" in result.stderr


def test_add_of_an_empty_file_says_so(registry, tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = registry.run("add", str(empty))
    assert result.exit_code == 1
    assert f"{empty}: holds no config documents" in result.stderr


def test_add_kind_refuses_a_document_without_type(registry, tmp_path):
    file = write_yaml(tmp_path / "t.yaml", {"name": "typeless", "channels": ["a"]})
    before = snapshot(registry.store)
    result = registry.run("add", "--kind", "tasks", str(file))
    assert result.exit_code == 1
    assert "has no __type__" in result.stderr
    assert snapshot(registry.store) == before


def test_add_refuses_a_run_starting_by_an_invalid_criterion(registry, tmp_path):
    file = write_yaml(
        tmp_path / "r.yaml", converter.unstructure(full_run(start_config=StartConfig("p", "bogus crit")))
    )
    before = snapshot(registry.store)
    result = registry.run("add", str(file))
    assert result.exit_code == 1
    assert "invalid criterion 'bogus crit'" in result.stderr
    assert snapshot(registry.store) == before


# -- 6. check and verify ---------------------------------------------------------------------------


def test_check_finds_a_hand_edit_by_its_recorded_hash(registry):
    registry.store.store_run_config(small_run())
    if isinstance(registry.store, FileConfigStore):
        file = registry.store.path / "runs" / "small.yaml"
        file.write_text(file.read_text().replace('"num_iterations": 100000', '"num_iterations": 5'))
    else:
        registry.store.db["runs"].update_one({"name": "small"}, {"$set": {"num_iterations": 5}})
    result = registry.run("check", "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert [(p["kind"], p["name"]) for p in problems] == [("runs", "small")]
    assert "content hash changed" in problems[0]["problem"]


def test_check_finds_a_name_differing_from_the_file_name_and_twins(tmp_path):
    store = FileConfigStore(tmp_path / "configs")
    store.store_run_config(small_run("a"))
    (store.path / "runs" / "b.yaml").write_text((store.path / "runs" / "a.yaml").read_text())
    result = invoke("--store", f"files:{tmp_path}", "check", "--kinds", "runs", "--json")
    assert result.exit_code == 1
    problems = [(p["name"], p["problem"]) for p in json.loads(result.stdout)["problems"]]
    assert ("b", "its name field is 'a', not 'b' (the name it is stored under)") in problems
    assert ("a", "2 documents share this name") in problems


def test_check_finds_runs_sharing_a_name_in_mongodb(shared_mongo, tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    store = MongoConfigStore(client=shared_mongo, db_name="cli")
    store.store_run_config(small_run("a"))
    store.db["runs"].drop_index("name")  # our unique name index on runs
    store.db["runs"].drop_index("name_rep")  # and DaCapo's on (name, repetition)
    store.db["runs"].insert_one(converter.unstructure(small_run("a", num_iterations=7)))  # same repetition
    result = invoke("--store", "mongodb://localhost", "--db", "cli", "check", "--kinds", "runs", "--json")
    assert result.exit_code == 1
    assert ("a", "2 documents share this name") in [
        (p["name"], p["problem"]) for p in json.loads(result.stdout)["problems"]
    ]


def test_check_finds_missing_parts_and_starts(registry):
    registry.store.store_run_config(full_run("child", start_config=StartConfig("ghost", "voi")))
    registry.store.delete("trainers", "gunpowder", force=True)
    result = registry.run("check", "--json")
    assert result.exit_code == 1
    problems = {p["problem"] for p in json.loads(result.stdout)["problems"] if p["name"] == "child"}
    assert problems == {
        "its trainer_config 'gunpowder' is not stored in trainers",
        "it starts from run 'ghost', which is not in this store",
    }


def test_check_finds_a_start_criterion_no_score_uses(trained):
    registry, _ = trained
    registry.store.store_run_config(full_run("by_dice", start_config=StartConfig("pretrained", "dice")))
    result = registry.run("check", "--json")
    assert result.exit_code == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["name"] == "by_dice"
    assert "no score of 'pretrained' uses that criterion" in problem["problem"]
    assert "(it has: voi)" in problem["problem"]


def damage(weights, iteration: int) -> None:
    weights.delete_blob("pretrained", weights.metadata("pretrained", iteration)["blobs"]["model"]["name"])


def test_weights_verify_and_check_weights_exit_1_on_a_missing_blob(trained):
    registry, weights = trained
    ok = registry.run("weights", "verify", "--json")
    assert (ok.exit_code, json.loads(ok.stdout)) == (0, {"runs": 1, "checkpoints": 4, "problems": []})
    damage(weights, 200)
    bad = registry.run("weights", "verify", "pretrained", "--json")
    assert bad.exit_code == 1
    [problem] = json.loads(bad.stdout)["problems"]
    assert (problem["run"], problem["iteration"]) == ("pretrained", 200)
    assert problem["problem"].endswith("is missing")
    checked = registry.run("check", "--weights")
    assert checked.exit_code == 1
    assert "pretrained@200" in checked.stdout


def test_weights_best_never_names_a_checkpoint_known_damaged(trained):
    registry, weights = trained
    damage(weights, 200)
    registry.run("weights", "verify")
    result = registry.run("weights", "best", "pretrained", "voi")
    assert result.stdout.split("\t")[0] == "300"


# -- 9. scores, bests, pins --------------------------------------------------------------------


def test_scores_as_table_csv_and_json(trained):
    registry, weights = trained
    weights.store_validation_scores("pretrained", 200, {"voi": 0.2}, dataset="test")
    table = registry.run("scores", "pretrained")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[:3] == [
        "iteration\tdataset\tvoi\tweights",
        "100\tvalidate\t0.9\tyes",
        "200\ttest\t0.2 *\tyes",
    ]
    as_csv = registry.run("scores", "pretrained", "--dataset", "validate", "--format", "csv")
    assert as_csv.stdout.splitlines()[:3] == [
        "iteration,dataset,criterion,value,best,has_weights",
        "100,validate,voi,0.9,False,True",
        "200,validate,voi,0.3,True,True",
    ]
    rows = json.loads(registry.run("scores", "pretrained", "--criterion", "voi", "--json").stdout)
    assert rows[0] == {
        "iteration": 100,
        "dataset": "validate",
        "criterion": "voi",
        "value": 0.9,
        "best": False,
        "has_weights": True,
    }
    assert len(rows) == 5


def test_scores_of_a_run_without_any_is_exit_1(registry):
    registry.store.store_run_config(small_run())
    if not isinstance(registry.store, FileConfigStore):
        pytest.skip("needs a weights store beside the registry")
    result = registry.run("scores", "small")
    assert result.exit_code == 1
    assert "run small has no validation scores" in result.stderr


def test_pin_unpin_and_best_with_value_and_pin_status(trained):
    registry, weights = trained
    assert registry.run("weights", "pin", "pretrained", "400", "voi").exit_code == 0
    pinned = json.loads(registry.run("weights", "best", "pretrained", "voi", "--json").stdout)
    assert pinned == {
        "run": "pretrained",
        "criterion": "voi",
        "dataset": None,
        "iteration": 400,
        "value": 0.6,
        "pinned": True,
    }
    assert registry.run("weights", "best", "pretrained", "voi").stdout == "400\tvoi=0.6\tpinned\n"
    assert registry.run("weights", "unpin", "pretrained", "voi").exit_code == 0
    assert weights.retrieve_best("pretrained", "voi") == 200
    again = registry.run("weights", "unpin", "pretrained", "voi")
    assert (again.exit_code, "no pin for 'voi'" in again.stderr) == (1, True)


def test_pin_of_an_iteration_without_weights_is_refused(trained):
    registry, weights = trained
    result = registry.run("weights", "pin", "pretrained", "150", "voi")
    assert result.exit_code == 1
    assert weights.pins("pretrained") == []


def test_weights_remove_deletes_one_checkpoint(trained):
    registry, weights = trained
    refused = registry.run("weights", "remove", "pretrained", "300")
    assert refused.exit_code == 2
    assert weights.iterations("pretrained") == [100, 200, 300, 400]
    missing = registry.run("weights", "remove", "pretrained", "350", "--yes")
    assert missing.exit_code == 1
    assert registry.run("weights", "remove", "pretrained", "300", "--yes").exit_code == 0
    assert weights.iterations("pretrained") == [100, 200, 400]


def test_weights_list_json(trained):
    registry, _ = trained
    rows = json.loads(registry.run("weights", "list", "pretrained", "--json").stdout)
    assert [r["iteration"] for r in rows] == [100, 200, 300, 400]
    assert rows[1]["scores"] == {"voi": {"validate": 0.3}}
    assert rows[1]["best_for"] == ["voi"]
    assert rows[1]["damaged"] is None and rows[1]["size"] > 0


# -- 10. the leaderboard ---------------------------------------------------------------------------


def test_leaderboard_ranks_runs_and_filters_by_parts(trained):
    registry, weights = trained
    registry.store.store_run_config(full_run("other", start_config=None))
    weights.store_weights("other", 10, {"w": torch.ones(1)})
    weights.store_validation_scores("other", 10, {"voi": 0.1})
    weights.store_weights("finetune", 10, {"w": torch.ones(1)})
    weights.store_validation_scores("finetune", 10, {"voi": 0.4})
    rows = json.loads(registry.run("leaderboard", "voi", "--json").stdout)
    assert rows == [
        {"rank": 1, "run": "other", "iteration": 10, "value": 0.1, "pinned": False, "loadable": True},
        {"rank": 2, "run": "pretrained", "iteration": 200, "value": 0.3, "pinned": False, "loadable": True},
        {"rank": 3, "run": "finetune", "iteration": 10, "value": 0.4, "pinned": False, "loadable": True},
    ]
    top = registry.run("leaderboard", "voi", "--top", "1", "--format", "csv")
    assert top.stdout.splitlines() == [
        "rank,run,iteration,value,pinned,loadable",
        "1,other,10,0.1,False,True",
    ]
    unet = json.loads(registry.run("leaderboard", "voi", "--architecture", "unet", "--json").stdout)
    assert [r["run"] for r in unet] == ["other", "finetune"]
    table = registry.run("leaderboard", "voi", "--task", "dummy_task")
    assert table.stdout.splitlines() == [
        "rank\trun\titeration\tvoi\tpinned\tcheckpoint",
        "1\tpretrained\t200\t0.3\t\t",
    ]


# -- 5. copy, export and import carry everything ---------------------------------------------------


def registry_contents(configs, weights) -> dict:
    """Configs with metadata, and per run: checkpoint entries, blob bytes, scores, pins, training
    stats. Tuples are compared as lists: MongoDB has none (a folder gets them back, as DaCapo
    writes them)."""
    out: dict = {"configs": {}, "weights": {}}
    for kind in ("runs", "tasks", "architectures", "trainers", "datasplits", "datasets", "arrays"):
        for name, doc in configs.documents(kind):
            out["configs"][(kind, name)] = (as_lists(doc), configs.metadata(kind, name))
    for run in configs.names("runs"):
        index = weights.read_index(run)
        blobs = {
            r["name"]: hashlib.sha256(bytes(weights.get_blob(run, r["name"]))).hexdigest()
            for meta in index.checkpoints.values()
            for r in meta["blobs"].values()
        }
        out["weights"][run] = (
            index.checkpoints,
            blobs,
            weights.retrieve_validation_scores(run),
            weights.pins(run),
            weights.retrieve_training_stats(run),
        )
    return out


def test_copy_files_to_mongo_and_back_gives_the_same_registry(tmp_path, shared_mongo, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    configs, weights = FileConfigStore(tmp_path / "src" / "configs"), LocalWeightsStore(tmp_path / "src")
    configs.store_run_config(small_run("pretrained"))
    configs.store_run_config(full_run("finetune", start_config=StartConfig("pretrained", "voi")))
    configs.put_document("tasks", UNKNOWN)
    for iteration, voi in [(100, 0.9), (200, 0.3)]:
        weights.store_weights(
            "pretrained",
            iteration,
            {"w": torch.full((3,), float(iteration))},
            {"state": {}, "param_groups": []},
        )
        weights.store_validation_scores("pretrained", iteration, {"voi": voi, "f1_score": 1 - voi})
    weights.store_validation_scores("pretrained", 100, {"voi": 0.8}, dataset="test")
    weights.store_best("pretrained", 100, "test", "voi")
    weights.store_training_stats("pretrained", {i: {"loss": 1.0 / i, "time": 0.1} for i in range(1, 201)})
    to_mongo = [
        "copy",
        "--from",
        f"files:{tmp_path / 'src'}",
        "--to",
        "mongodb://localhost",
        "--db-to",
        "shared",
    ]
    first = invoke(*to_mongo, "--json")
    assert first.exit_code == 0
    summary = json.loads(first.stdout)
    assert summary["ok"] is True
    assert summary["documents"]["copied"] == 9
    [pre] = [r for r in summary["runs"] if r["run"] == "pretrained"]
    assert (pre["checkpoints_copied"], pre["scores_copied"], pre["pins_copied"]) == ([100, 200], 5, 1)
    again = invoke(*to_mongo)
    assert again.exit_code == 0
    assert "0 copied, 9 already there" in again.stdout
    assert "0 checkpoint(s) copied" in again.stdout
    back = invoke(
        "copy", "--from", "mongodb://localhost", "--db-from", "shared", "--to", f"files:{tmp_path / 'back'}"
    )
    assert back.exit_code == 0
    original = registry_contents(configs, weights)
    mongo = registry_contents(
        MongoConfigStore(client=shared_mongo, db_name="shared"),
        GridFSWeightsStore(client=shared_mongo, db_name="shared"),
    )
    returned = registry_contents(
        FileConfigStore(tmp_path / "back" / "configs"), LocalWeightsStore(tmp_path / "back")
    )
    assert mongo == original
    assert returned == original


def test_configs_only_copies_no_weights(trained, tmp_path):
    registry, _ = trained
    result = registry.run("export", str(tmp_path / "backup"), "--configs-only")
    assert result.exit_code == 0
    assert LocalWeightsStore(tmp_path / "backup").own_run_names() == []
    assert FileConfigStore(tmp_path / "backup" / "configs").names("runs") == ["finetune", "pretrained"]


def test_export_then_import_carries_the_weights(trained, tmp_path, monkeypatch):
    registry, weights = trained
    weights.store_best("pretrained", 300, None, "voi")
    exported = registry.run("export", str(tmp_path / "backup"))
    assert exported.exit_code == 0
    backup = LocalWeightsStore(tmp_path / "backup")
    assert backup.iterations("pretrained") == [100, 200, 300, 400]
    assert backup.retrieve_best("pretrained", "voi") == 300
    monkeypatch.delenv("DACAPO_WEIGHTS_STORE", raising=False)  # the fresh registry keeps its own
    imported = invoke("--store", f"files:{tmp_path / 'fresh'}", "import", str(tmp_path / "backup"))
    assert imported.exit_code == 0
    fresh = LocalWeightsStore(tmp_path / "fresh")
    assert fresh.retrieve_validation_scores("pretrained") == weights.retrieve_validation_scores("pretrained")
    assert torch.equal(fresh.retrieve_weights("pretrained", 200).model["w"], torch.zeros(2, 2))


def test_a_damaged_checkpoint_is_not_copied_and_the_copy_exits_1(trained, tmp_path):
    registry, weights = trained
    damage(weights, 100)
    result = registry.run("export", str(tmp_path / "backup"))
    assert result.exit_code == 1
    assert "failed in the weights of run 'pretrained': checkpoint 100" in result.stderr
    assert LocalWeightsStore(tmp_path / "backup").iterations("pretrained") == [200, 300, 400]


# -- 11. JSON on every read command, and help -------------------------------------------------------


def test_json_of_show_diff_and_lineage_parse(registry):
    registry.store.store_run_config(small_run("pretrained"))
    registry.store.store_run_config(full_run("finetune", start_config=StartConfig("pretrained", "voi")))
    registry.store.store_run_config(full_run("b", num_iterations=5, start_config=None))
    assert json.loads(registry.run("show", "runs", "b", "--json").stdout)["num_iterations"] == 5
    diff = registry.run("diff", "runs", "finetune", "b", "--json")
    assert diff.exit_code == 1
    assert json.loads(diff.stdout)["differences"][0] == {"field": "num_iterations", "a": 100000, "b": 5}
    lineage = json.loads(registry.run("lineage", "finetune", "--json").stdout)
    assert lineage == {
        "run": "finetune",
        "ancestors": [{"run": "pretrained", "criterion": "voi", "depth": 1, "in_store": True}],
        "cycle": False,
        "descendants": [],
    }
    info = json.loads(registry.run("info", "--json").stdout)
    assert (info["answers"], info["counts"]["runs"]) == (True, 3)


NEW_COMMANDS = [
    ["init"],
    ["scores"],
    ["leaderboard"],
    ["weights", "verify"],
    ["weights", "pin"],
    ["weights", "unpin"],
    ["weights", "remove"],
    ["gc"],
    ["import-dacapo"],
    ["serve"],
]


@pytest.mark.parametrize("command", NEW_COMMANDS, ids=" ".join)
def test_new_commands_have_help_with_an_example(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example: dacapo-store" in result.output


def test_root_help_lists_the_new_commands_with_examples():
    result = invoke("--help")
    for example in [
        "dacapo-store init",
        "dacapo-store scores",
        "dacapo-store leaderboard",
        "dacapo-store weights verify",
        "dacapo-store gc",
        "dacapo-store import-dacapo",
        "dacapo-store serve",
    ]:
        assert example in result.output
