"""Both DaCapo dialects on the command line: `migrate`, `show --meta`, `check` and `list`, on the
DaCapo 0.3.5 and DaCapo main packs, files and MongoDB (strict mongomock).

`migrate` is a dry run without --yes (writes nothing), loses nothing (what the target can't
express is kept beside the document and comes back), replaces each document atomically, and
a second run writes nothing; the 0.3.5 pack goes to main and back to equal documents.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import bson
import pytest
import yaml
from click.testing import CliRunner
from conftest import no_options
from test_cli import shared_mongo  # noqa: F401 -- a fixture
from test_dacapo_main_pack import PACK as MAIN_PACK
from test_dacapo_main_pack import load_mongo_pack as load_main_mongo_pack
from test_dacapo_pack import PACK as PACK_035
from test_dacapo_pack import load_mongo_pack as load_035_mongo_pack

from dacapo_store.cli import app
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.config_store.documents import KINDS, META_KEY

RUN_035 = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"


class Pack:
    """A DaCapo-written registry reached through --store, and the same store from Python."""

    def __init__(self, args: list[str], store, backend: str) -> None:
        self.args, self.store, self.backend = args, store, backend

    def run(self, *argv: str):
        return CliRunner().invoke(app, [*self.args, *argv], catch_exceptions=False)

    def documents(self) -> dict:
        """Every config document as DaCapo reads it back: full_load of each file, or its BSON."""
        if self.backend == "files":
            return {
                str(p.relative_to(self.store.path)): yaml.full_load(p.read_text())
                for p in sorted(self.store.path.glob("*/*.yaml"))
                if p.stem != "wrapped_main_module"
            }
        db = self.store.db
        return {kind: [bson.encode(d) for d in db[kind].find({}, {"_id": False})] for kind in KINDS}


def open_pack(which: str, backend: str, tmp_path: Path, request) -> Pack:
    os.environ["DACAPO_OPTIONS_FILE"] = str(no_options(tmp_path))
    if backend == "files":
        source = PACK_035 / "configs" if which == "0.3.5" else MAIN_PACK / "files" / "configs"
        shutil.copytree(source, tmp_path / "reg" / "configs")
        store = FileConfigStore(tmp_path / "reg" / "configs")
        return Pack(["--store", f"files:{tmp_path / 'reg'}"], store, backend)
    server = request.getfixturevalue("shared_mongo")
    if which == "0.3.5":
        load_035_mongo_pack(server, "reg")
    else:
        client = server.sibling()
        load_main_mongo_pack(client)
        for kind in KINDS:
            docs = list(client["dacapo_main_public"][kind].find({}, {"_id": False}))
            if docs:
                server["reg"][kind].insert_many(docs)
    store = MongoConfigStore(client=server, db_name="reg")
    return Pack(["--store", "mongodb://localhost:27017", "--db", "reg"], store, backend)


@pytest.fixture(params=["files", "mongomock"])
def pack_035(request, tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    return open_pack("0.3.5", request.param, tmp_path, request)


@pytest.fixture(params=["files", "mongomock"])
def pack_main(request, tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    return open_pack("main", request.param, tmp_path, request)


# --- migrate -------------------------------------------------------------------------------------


def test_migrate_without_yes_lists_the_changes_and_writes_nothing(pack_035):
    before = pack_035.documents()
    result = pack_035.run("migrate", "--to", "main")
    assert result.exit_code == 0, result.stderr
    run = result.output.split(f"would migrate runs/'{RUN_035}' (repetition 0): DaCapo 0.3.5 -> main\n")[1]
    run = run.split("would migrate")[0]
    assert "    architecture_config.num_in_channels -> _num_in_channels\n" in run
    assert "    trainer_config.mirror_augment -> dummy_attr\n" in run
    assert "    - trainer_config.batch_size: 1 (moved to batch_size)\n" in run
    assert "    + batch_size: 1\n" in run
    assert "    - trainer_config.gt_min_reject: null (a default, dropped)\n" in result.output
    assert "    - trainer_config.num_data_fetchers: 11 (kept beside the document)\n" in result.output
    assert "nothing written (dry run: add --yes to rewrite them)" in result.output
    assert pack_035.documents() == before


def test_migrate_the_035_pack_to_main_and_back_gives_equal_documents(pack_035):
    before = pack_035.documents()
    result = pack_035.run("migrate", "--to", "main", "--yes")
    assert result.exit_code == 0, result.stderr
    migrated = pack_035.documents()
    assert migrated != before
    assert pack_035.store.retrieve_run_config(RUN_035).learning_rate == 0.0001  # the trainer's
    assert pack_035.run("migrate", "--to", "main", "--json").exit_code == 0
    again = json.loads(pack_035.run("migrate", "--to", "main", "--yes", "--json").stdout)
    assert (again["migrate"], again["refused"], again["documents"]) == (0, 0, [])
    assert pack_035.documents() == migrated  # a second run writes nothing
    result = pack_035.run("migrate", "--to", "0.3.5", "--yes")
    assert result.exit_code == 0, result.stderr
    assert pack_035.documents() == before


def test_migrated_documents_are_dacapo_mains_and_the_registry_writes_main(pack_035):
    pack_035.run("migrate", "--to", "main", "--yes")
    store = type(pack_035.store)(pack_035.store.path) if pack_035.backend == "files" else pack_035.store
    store._forget_dialect()
    assert store.dialect() == "main"
    shown = json.loads(pack_035.run("show", "runs", RUN_035, "--meta", "--json").stdout)
    assert shown[META_KEY]["dialect"] == "main"
    assert next(iter(shown)) == "architecture_config"
    assert shown["trainer_config"] == {
        "__type__": "DummyTrainerConfig",
        "name": "dummy_trainer_lab",
        "dummy_attr": True,
    }


def test_what_main_cant_express_is_kept_beside_the_document_with_its_metadata(pack_035, tmp_path):
    pack_035.run("migrate", "--to", "main", "--yes")
    raw = pack_035.store.raw_document("trainers", "gp_aug_lab")
    (stash,) = raw[META_KEY]["dialect_stash"].values()
    kept = {tuple(item["path"]): item["value"] for item in stash["kept"]}
    assert kept[("batch_size",)] == 1 and kept[("num_data_fetchers",)] == 11
    assert (stash["from"], stash["to"]) == ("0.3.5", "main")
    assert "batch_size" not in {k for k in raw if k != META_KEY}
    shown = json.loads(pack_035.run("show", "trainers", "gp_aug_lab", "--meta", "--json").stdout)
    assert shown[META_KEY]["dialect_stash"] == raw[META_KEY]["dialect_stash"]
    # An export carries the stash; migrating the copy back gives DaCapo 0.3.5's document.
    assert pack_035.run("export", str(tmp_path / "b"), "--configs-only", "--kinds", "trainers").exit_code == 0
    copy = FileConfigStore(tmp_path / "b" / "configs")
    assert copy.migrate("0.3.5", dry_run=False).ok
    original = yaml.full_load((PACK_035 / "configs" / "trainers" / "gp_aug_lab.yaml").read_text())
    assert (
        yaml.full_load((tmp_path / "b" / "configs" / "trainers" / "gp_aug_lab.yaml").read_text()) == original
    )


def test_migrate_to_035_leaves_what_035_cant_hold_and_says_why(pack_main):
    before = pack_main.documents()
    result = pack_main.run("migrate", "--to", "0.3.5", "--yes")
    assert result.exit_code == 1
    assert (
        "architectures/'wrapped_main_jit' can't be migrated: DaCapo 0.3.5 can't express it: "
        "WrappedArchitectureConfig exists only in DaCapo main" in result.stderr
    )
    assert "runs/'None' can't be migrated" in result.stderr
    assert "task_config: DaCapo 0.3.5 requires a value, got None" in result.stderr
    after = pack_main.documents()
    for key in (
        "architectures/wrapped_main_jit.yaml",
        "architectures/zoo_affable-shark.yaml",
        "runs/None.yaml",
    ):
        if pack_main.backend == "files":
            assert after[key] == before[key]
    result = pack_main.run("migrate", "--to", "main", "--yes")
    if pack_main.backend == "files":  # the file with a dumped torch module can't be read
        assert result.exit_code == 1
        assert result.stderr.count("can't be migrated") == 1 and "wrapped_main_module" in result.stderr
    else:
        assert result.exit_code == 0, result.stderr
    assert pack_main.documents() == before


def test_a_migration_killed_midway_leaves_each_document_whole_and_a_rerun_finishes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    shutil.copytree(PACK_035 / "configs", tmp_path / "reg" / "configs")
    store = FileConfigStore(tmp_path / "reg" / "configs")
    before = {p.name: yaml.full_load(p.read_text()) for p in store.path.glob("*/*.yaml")}
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if str(dst).endswith(".yaml") and len([c for c in calls if str(c).endswith(".yaml")]) == 6:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr("dacapo_store.config_store.files.os.replace", replace)
    result = CliRunner().invoke(
        app, ["--store", f"files:{tmp_path / 'reg'}", "migrate", "--to", "main", "--yes"]
    )
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    monkeypatch.setattr("dacapo_store.config_store.files.os.replace", real_replace)
    dialects = {}
    for path in store.path.glob("*/*.yaml"):
        doc = store._read(path)  # every document is whole: the old one or the new one
        from dacapo_store.config_store.dialects import document_dialect
        from dacapo_store.config_store.documents import KIND_CLASSES

        dialects[path.name] = document_dialect(KIND_CLASSES[path.parent.name], doc)
    assert {"main", "0.3.5"} <= set(dialects.values())
    assert store.migrate("main", dry_run=False).ok
    assert store.migrate("0.3.5", dry_run=False).ok
    assert {p.name: yaml.full_load(p.read_text()) for p in store.path.glob("*/*.yaml")} == before


# --- reading and reporting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "kind", "name", "dialect"),
    [
        ("0.3.5", "architectures", "tiny_unet_lab", "0.3.5"),
        ("0.3.5", "tasks", "hot_er", "either"),
        ("main", "architectures", "unet_main_132", "main"),
        ("main", "runs", "main_inner_mito", "main"),
    ],
)
@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_show_meta_says_which_dialect_a_document_is_in(
    which, kind, name, dialect, backend, tmp_path, request
):
    pack = open_pack(which, backend, tmp_path, request)
    args = ["--repetition", "0"] if backend != "files" and name == "main_inner_mito" else []
    result = pack.run("show", kind, name, "--meta", "--json", *args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[META_KEY]["dialect"] == dialect


def test_list_and_check_report_a_nameless_run_and_the_dialects(pack_main):
    listed = json.loads(pack_main.run("list", "runs", "--json").stdout)
    assert "None" in listed
    result = pack_main.run("check", "--json")
    report = json.loads(result.stdout)
    notes = {(n["kind"], n["name"]): n["note"] for n in report["notes"]}
    assert "stored without a name" in notes[("runs", "None")]
    registry_note = next(n["note"] for n in report["notes"] if n["kind"] == "registry")
    assert (
        registry_note.startswith("holds DaCapo main documents") and "it writes DaCapo main's" in registry_note
    )
    problems = {(p["kind"], p["name"]): p["problem"] for p in report["problems"]}
    assert all(name != "None" for _, name in problems)
    if pack_main.backend == "files":
        assert (
            "Python tag !!python/object:torch.nn.modules.conv.Conv3d"
            in problems[("architectures", "wrapped_main_module")]
        )


def test_check_notes_a_registry_mixing_both_dialects(pack_035):
    pack_035.store.dialect_option = "main"
    from test_dialects import TRAINER_MAIN

    pack_035.store.put_document("trainers", {**TRAINER_MAIN, "name": "gp_main"})
    report = json.loads(pack_035.run("check", "--json").stdout)
    registry_note = next(n["note"] for n in report["notes"] if n["kind"] == "registry")
    assert registry_note.startswith("mixes DaCapo dialects: ")
    assert "`dacapo-store migrate --to main` rewrites them into one" in registry_note
    assert {
        "kind": "trainers",
        "name": "gp_aug_lab",
        "note": "a DaCapo 0.3.5 document (the registry writes main's)",
    } in report["notes"]


def test_check_of_a_035_registry_adds_no_dialect_note(pack_035):
    report = json.loads(pack_035.run("check", "--json").stdout)
    assert not [n for n in report["notes"] if n["kind"] == "registry"]


# --- add ---------------------------------------------------------------------------------------


def test_add_stores_dacapo_main_documents_in_a_main_registry_and_refuses_them_in_a_035_one(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    run = "main_scratch_cos7_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_wrapped_main_jit_gp_noise_main__0"
    source = MAIN_PACK / "files" / "configs" / "runs" / f"{run}.yaml"
    (tmp_path / "old" / "configs").mkdir(parents=True)
    refused = CliRunner().invoke(app, ["--store", f"files:{tmp_path / 'old'}", "add", str(source)])
    assert refused.exit_code == 1
    assert "WrappedArchitectureConfig exists only in DaCapo main" in refused.stderr
    assert "nothing stored: 1 problem(s)" in refused.stderr
    assert not any((tmp_path / "old" / "configs").rglob("*.yaml"))
    options = tmp_path / "dacapo.yaml"
    options.write_text("dacapo_dialect: main\n")
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(options))
    (tmp_path / "new" / "configs").mkdir(parents=True)
    added = CliRunner().invoke(app, ["--store", f"files:{tmp_path / 'new'}", "add", str(source)])
    assert added.exit_code == 0, added.stderr
    stored = tmp_path / "new" / "configs" / "runs" / f"{run}.yaml"
    assert yaml.full_load(stored.read_text()) == yaml.full_load(source.read_text())


@pytest.mark.parametrize("which", ["0.3.5", "main"])
@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_every_document_of_both_packs_is_listed_and_shown(which, backend, tmp_path, request):
    pack = open_pack(which, backend, tmp_path, request)
    info = json.loads(pack.run("info", "--json").stdout)
    assert info["answers"] and sum(info["counts"].values()) > 50
    shown = 0
    for kind in KINDS:
        names = json.loads(pack.run("list", kind, "--json").stdout)
        assert names == pack.store.names(kind)
        shared = pack.store.shared_run_names() if kind == "runs" else {}
        for name in names:
            if backend == "files" and name == "wrapped_main_module":
                continue  # refused: see test_dacapo_main_pack
            args = ["--repetition", str(shared[name][0])] if name in shared else []
            result = pack.run("show", kind, name, "--meta", "--json", *args)
            assert result.exit_code == 0, (kind, name, result.stderr)
            assert json.loads(result.stdout)[META_KEY]["dialect"] in ("0.3.5", "main", "either")
            shown += 1
    assert shown >= 56
