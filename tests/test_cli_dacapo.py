"""The command line on the registry DaCapo 0.3.5 wrote: its names, repetitions, lenient reading."""

from __future__ import annotations

import json
import shutil

import mongomock
import pytest
import yaml
from click.testing import CliRunner
from conftest import no_options
from test_dacapo_pack import PACK, load_mongo_pack, tree_digest

from dacapo_store.cli import app
from dacapo_store.config_store import FileConfigStore

LONG_RUN = (
    "finetune_hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0_"
    "hela_semantic_mito&er&nuc_8nm_affs_lab_tiny_unet_lab_gp_plain_lab__0"
)
BRACKETED = "jrc_hela-2_[mito&er]_mito_er_nuc_8nm_gt"
SLASHED = "raw_jrc_hela-2_recon-1/em/fibsem-uint8_s1_uint8"


def invoke(*argv: str):
    return CliRunner().invoke(app, list(argv), catch_exceptions=False)


@pytest.fixture
def files_pack(tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    shutil.copytree(PACK / "configs", tmp_path / "reg" / "configs")
    return tmp_path / "reg"


@pytest.fixture
def mongo_pack(monkeypatch, tmp_path):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    server = mongomock.MongoClient()
    load_mongo_pack(server)
    monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *args, **kwargs: server)
    return ["--store", "mongodb://localhost:27017", "--db", "dacapo_public"]


def test_long_names_and_dacapo_characters_are_listed_and_shown(files_pack):
    store = ["--store", f"files:{files_pack}"]
    listed = invoke(*store, "list", "runs").stdout.splitlines()
    assert LONG_RUN in listed
    shown = invoke(*store, "show", "runs", LONG_RUN, "--format", "json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["name"] == LONG_RUN
    assert yaml.safe_load(invoke(*store, "show", "arrays", BRACKETED).stdout)["name"] == BRACKETED


def test_a_missing_name_is_quoted_in_the_message(files_pack):
    result = invoke("--store", f"files:{files_pack}", "show", "arrays", "x & [y]")
    assert result.exit_code == 1
    assert "'x & [y]'" in result.stderr


def test_a_slash_name_on_the_files_backend_says_why(files_pack):
    result = invoke("--store", f"files:{files_pack}", "show", "arrays", SLASHED)
    assert result.exit_code == 2  # an invalid name is a usage error
    assert "holds '/'" in result.stderr


def test_list_runs_shows_a_shared_name_once_with_a_note(mongo_pack):
    result = invoke(*mongo_pack, "list", "runs")
    assert result.exit_code == 0
    assert result.stdout.splitlines().count("lab_inner_mito") == 1
    assert "'lab_inner_mito' (2 runs share this name: DaCapo repetitions 0, 1" in result.stderr
    as_json = invoke(*mongo_pack, "list", "runs", "--json")
    assert json.loads(as_json.stdout).count("lab_inner_mito") == 1


def test_show_of_a_shared_run_name_names_the_repetitions(mongo_pack):
    result = invoke(*mongo_pack, "show", "runs", "lab_inner_mito")
    assert result.exit_code == 1
    assert "repetitions 0, 1" in result.stderr
    picked = invoke(*mongo_pack, "show", "runs", "lab_inner_mito", "--repetition", "1", "--format", "json")
    assert json.loads(picked.stdout)["repetition"] == 1


def test_check_of_dacapos_registry_passes_and_reports_the_shared_name(mongo_pack):
    result = invoke(*mongo_pack, "check")
    assert result.exit_code == 0, result.output
    assert "lab_inner_mito" in result.stdout
    assert "repetitions 0, 1" in result.stdout
    assert "all 73 documents check out" in result.stdout


def test_check_reports_lenient_reads_with_their_field_path(files_pack):
    file = files_pack / "configs" / "runs" / "lab_dist_mito_ints.yaml"
    doc = yaml.full_load(file.read_text())
    doc["num_iterations"] = float(doc["num_iterations"])
    doc["task_config"]["mask_distances"] = 1
    doc["trainer_config"]["from_a_newer_dacapo"] = "x"
    file.write_text(yaml.dump(doc))
    result = invoke("--store", f"files:{files_pack}", "check", "--kinds", "runs")
    assert result.exit_code == 0, result.output
    assert "num_iterations: 10.0 read as 10" in result.stdout
    assert "task_config.mask_distances: 1 read as True" in result.stdout
    assert "trainer_config.from_a_newer_dacapo: unknown key ignored" in result.stdout


def test_check_fails_on_a_lossy_number_naming_the_field(files_pack):
    file = files_pack / "configs" / "runs" / "lab_dist_mito_ints.yaml"
    before = file.read_text()
    file.write_text(before.replace("num_iterations: 10\n", "num_iterations: 10.5\n"))
    result = invoke("--store", f"files:{files_pack}", "check", "--kinds", "runs")
    assert result.exit_code == 1
    assert "num_iterations: expected int, got 10.5" in result.stdout
    store = FileConfigStore(files_pack / "configs")
    with pytest.raises(Exception, match="num_iterations"):
        store.retrieve_run_config("lab_dist_mito_ints")


def test_copy_of_mongo_names_with_a_slash_to_a_folder_reports_them(mongo_pack, tmp_path):
    result = invoke(*mongo_pack, "copy", "--from", mongo_pack[1], "--db-from", "dacapo_public",
                    "--to", f"files:{tmp_path / 'out'}", "--kinds", "arrays")  # fmt: skip
    assert result.exit_code == 1
    assert f"failed arrays/{SLASHED!r}" in result.stderr
    assert "holds '/'" in result.stderr
    copied = FileConfigStore(tmp_path / "out" / "configs").names("arrays")
    assert BRACKETED in copied
    assert all("/" not in n for n in copied)


READ_COMMANDS = [
    ["info"],
    *[["list", kind] for kind in ("runs", "tasks", "architectures", "trainers", "datasplits", "arrays")],
    ["list", "runs", "--task", "hot_er", "--json"],
    ["show", "runs", LONG_RUN, "--meta"],
    ["show", "arrays", BRACKETED, "--format", "json"],
    ["diff", "tasks", "dist_mito&er&nuc", "dist_mito_ints"],
    ["check"],
    ["lineage", "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"],
]


def test_read_commands_write_nothing_into_the_registry(files_pack, tmp_path):
    store = ["--store", f"files:{files_pack}"]
    before = tree_digest(files_pack)
    for argv in READ_COMMANDS:
        result = invoke(*store, *argv)
        assert result.exit_code in (0, 1), (argv, result.output)
    assert invoke(*store, "export", str(tmp_path / "exported")).exit_code == 0
    assert tree_digest(files_pack) == before


def test_export_and_import_carry_metadata_and_dacapo_documents(files_pack, tmp_path):
    store = FileConfigStore(files_pack / "configs")
    from dacapo_store.configs import DummyArrayConfig

    store.store_array_config(DummyArrayConfig("ours"))
    assert invoke("--store", f"files:{files_pack}", "export", str(tmp_path / "x")).exit_code == 0
    exported = FileConfigStore(tmp_path / "x" / "configs")
    assert exported.metadata("arrays", "ours") == store.metadata("arrays", "ours")
    assert exported.metadata("arrays", BRACKETED).created_by is None
    assert exported.get_document("arrays", BRACKETED) == store.get_document("arrays", BRACKETED)
