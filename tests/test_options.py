"""Options: DaCapo's options file search order, then DACAPO_* variables, then overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from dacapo_store.options import ENV_VARS, Options


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    for var in [*ENV_VARS.values(), "DACAPO_OPTIONS_FILE"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    return tmp_path


def test_default_is_files_under_home_dacapo(isolated):
    options = Options.instance()
    assert options.type == "files"
    assert options.runs_base_dir == isolated / "home" / "dacapo"
    assert options.weights_backend == "files"


def test_options_file_in_the_working_directory_is_read(isolated):
    (isolated / "dacapo.yaml").write_text(
        "type: mongo\nmongo_db_host: mongodb://db:27017\nmongo_db_name: lab\n"
    )
    options = Options.instance()
    assert (options.type, options.mongo_db_host, options.mongo_db_name) == (
        "mongo",
        "mongodb://db:27017",
        "lab",
    )
    assert options.source == str(isolated / "dacapo.yaml")


def test_dacapo_options_file_variable_wins_over_other_files(isolated, monkeypatch):
    (isolated / "dacapo.yaml").write_text("runs_base_dir: /from/cwd\n")
    (isolated / "explicit.yaml").write_text("runs_base_dir: /from/variable\n")
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(isolated / "explicit.yaml"))
    assert Options.instance().runs_base_dir == Path("/from/variable")


def test_home_config_folder_is_the_last_place_looked(isolated):
    folder = isolated / "home" / ".config" / "dacapo"
    folder.mkdir(parents=True)
    (folder / "dacapo.yaml").write_text("runs_base_dir: /from/config\n")
    assert Options.instance().runs_base_dir == Path("/from/config")
    (isolated / "home" / "dacapo.yaml").write_text("runs_base_dir: /from/home\n")
    assert Options.instance().runs_base_dir == Path("/from/home")


def test_environment_overrides_the_file_and_overrides_win(isolated, monkeypatch):
    (isolated / "dacapo.yaml").write_text("runs_base_dir: /from/file\nweights_store: files\n")
    monkeypatch.setenv("DACAPO_RUNS_BASE_DIR", "/from/env")
    monkeypatch.setenv("DACAPO_WEIGHTS_STORE", "gridfs")
    options = Options.instance()
    assert (options.runs_base_dir, options.weights_backend) == (Path("/from/env"), "gridfs")
    assert Options.instance(runs_base_dir="/from/override").runs_base_dir == Path("/from/override")


def test_a_bad_store_type_is_refused(monkeypatch):
    monkeypatch.setenv("DACAPO_STORE_TYPE", "sqlite")
    with pytest.raises(ValueError, match="'files' or 'mongo'"):
        Options.instance()


def test_mongo_without_a_host_is_refused(monkeypatch):
    monkeypatch.setenv("DACAPO_STORE_TYPE", "mongo")
    with pytest.raises(ValueError, match="mongo_db_host"):
        Options.instance()


def test_configs_dir_is_under_runs_base_dir(isolated):
    assert Options.instance(runs_base_dir="/x").configs_dir == Path("/x/configs")
