"""import-dacapo: a DaCapo registry copied into ours, converted, idempotent, the source only read."""

from __future__ import annotations

import hashlib
import json

import attrs
import mongomock
import pytest
import torch
from click.testing import CliRunner

from dacapo_store.cli import app
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.legacy.importer import import_dacapo
from dacapo_store.legacy.registry import CONFIG_KINDS, DacapoFiles, DacapoMongo
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore
from dacapo_store.weights.transfer import copy_run_weights

from .conftest import (
    DB_NAME,
    MANIFEST,
    Layout,
    dacapo_files_in,
    expected_scores,
    load_mongo,
    mongo_dump,
    nan_safe,
    open_layout,
    tree_files,
)

RUNS = sorted(MANIFEST["latest_iteration"])


def make_target(kind: str, path):
    """An empty dacapo_store registry of this kind: (config store, weights store, snapshot)."""
    if kind == "files":
        root = path / "registry"
        return FileConfigStore(root / "configs"), LocalWeightsStore(root), lambda: tree_files(root)
    client = mongomock.MongoClient()
    configs = MongoConfigStore(client=client, db_name="registry")
    weights = GridFSWeightsStore(client=client, db_name="registry")

    def snapshot():
        db = client["registry"]
        return {
            name: sorted(
                json.dumps(
                    {k: v for k, v in d.items() if k not in ("_id", "uploadDate")},
                    sort_keys=True,
                    default=str,
                )
                for d in db[name].find({})
            )
            for name in sorted(db.list_collection_names())
        }

    return configs, weights, snapshot


@pytest.fixture
def target(layout, tmp_path):
    """An empty registry of the layout's kind (files for files, mongomock for MongoDB)."""
    return make_target("files" if layout.kind == "files" else "mongomock", tmp_path)


@attrs.define
class Imported:
    layout: Layout
    configs: object
    weights: object
    snapshot: object
    report: object


@pytest.fixture(scope="module", params=["files", "mongomock"])
def imported(request, tmp_path_factory):
    """One import per layout, shared by the tests that only look at its result."""
    layouts = open_layout(request.param, tmp_path_factory.mktemp(request.param))
    layout = next(layouts)
    configs, weights, snapshot = make_target(request.param, tmp_path_factory.mktemp("target"))
    report = import_dacapo(source_of(layout), configs, weights)
    yield Imported(layout, configs, weights, snapshot, report)
    next(layouts, None)  # asserts that DaCapo's data did not change


def source_of(layout) -> DacapoFiles | DacapoMongo:
    if layout.db is None:
        return DacapoFiles(layout.root)
    return DacapoMongo(layout.db, layout.root)


def test_import_copies_every_config_document(imported):
    source = source_of(imported.layout)
    assert imported.report.ok, imported.report.failed
    for kind in CONFIG_KINDS:
        for name, doc in source.config_documents(kind):
            if "/" in name:
                continue  # names with '/' can't be file names; reported as skipped (see below)
            stored = imported.configs.get_document(kind, name)
            if kind == "runs" and imported.layout.db is not None and doc.get("repetition") != 0:
                continue  # a second repetition under the same name: skipped, the first one kept
            assert stored == {k: v for k, v in doc.items() if k != "_id"}, (kind, name)


def test_import_converts_checkpoints_scores_bests_and_stats(imported):
    weights = imported.weights
    for checkpoint in MANIFEST["checkpoints"]:
        run, iteration = checkpoint["run"], checkpoint["iteration"]
        ours = weights.retrieve_weights(run, iteration)
        assert ours.metadata is not None and ours.metadata["blobs"]["model"]["xxh3_128"]
        theirs = imported.layout.store.retrieve_weights(run, iteration)
        assert list(ours.model) == list(theirs.model)
        assert all(torch.equal(ours.model[k], theirs.model[k]) for k in ours.model)
        assert ours.optimizer["param_groups"] == theirs.optimizer["param_groups"]
    for entry in MANIFEST["scores"]:
        assert nan_safe(weights.retrieve_validation_scores(entry["run"])) == nan_safe(expected_scores(entry))
    for best in MANIFEST["store_best"]:
        assert weights.retrieve_best(best["run"], best["criterion"], best["dataset"]) == best["iteration"]
        assert weights.read_index(best["run"]).pins[(best["dataset"], best["criterion"])] == best["iteration"]
    for entry in MANIFEST["training_stats"]:
        assert len(weights.retrieve_training_stats(entry["run"])) == len(entry["stats"])


def test_importing_twice_gives_the_same_registry(imported):
    after_first = imported.snapshot()
    second = import_dacapo(source_of(imported.layout), imported.configs, imported.weights)
    assert second.converted == []
    assert len(second.skipped) == len(imported.report.converted) + len(imported.report.skipped)
    assert imported.snapshot() == after_first


def bests(weights, entry: dict) -> dict:
    """Every criterion of a pack run, over all datasets and on each: its best, or the error."""
    found = {}
    for criterion in entry["criteria"]:
        for dataset in (None, *entry["scores"]):
            try:
                found[criterion, dataset] = weights.retrieve_best(entry["run"], criterion, dataset)
            except Exception as exc:
                found[criterion, dataset] = f"{type(exc).__name__}: {exc}"
    return found


def written_before_xxh3(weights, run: str) -> None:
    """The run's checkpoint entries as versions before xxh3-128 wrote them: a sha256 per blob only."""
    for iteration in weights.iterations(run):
        meta = weights.metadata(run, iteration)
        for record in meta["blobs"].values():
            record["sha256"] = hashlib.sha256(bytes(weights.get_blob(run, record["name"]))).hexdigest()
            del record["xxh3_128"]
        weights.append_index(run, [{"op": "checkpoint", "iteration": iteration, "meta": meta}])


def test_the_imported_pack_copies_whole_once_and_every_best_is_the_same(imported, tmp_path):
    # the pack's runs (63 to 130 criteria, several datasets) through copy: every checkpoint
    # verified on the way, a rerun changes nothing, and each criterion names the same best
    kind = "mongomock" if imported.layout.db is None else "files"
    _, target, _ = make_target(kind, tmp_path / "copy")
    _, older, _ = make_target(kind, tmp_path / "older")
    for entry in MANIFEST["scores"]:
        run = entry["run"]
        first = copy_run_weights(imported.weights, target, run)
        assert first.ok and first.checkpoints_copied == imported.weights.iterations(run), first.failed
        again = copy_run_weights(imported.weights, target, run)
        assert (again.checkpoints_copied, again.checkpoints_unchanged) == ([], first.checkpoints_copied)
        assert again.conflicts == [] and again.scores_copied == 0
        assert bests(target, entry) == bests(imported.weights, entry)
        # a target whose entries an earlier version wrote (sha256 only): compared by its bytes
        copy_run_weights(imported.weights, older, run)
        written_before_xxh3(older, run)
        compared = copy_run_weights(imported.weights, older, run)
        assert compared.checkpoints_unchanged == first.checkpoints_copied
        assert compared.conflicts == [] and compared.failed == []


def test_a_dry_run_writes_nothing_and_says_what_it_would_do(layout, target):
    configs, weights, snapshot = target
    before = snapshot()
    report = import_dacapo(source_of(layout), configs, weights, dry_run=True)
    assert snapshot() == before
    assert {what for what, _, _ in report.converted} >= {
        "checkpoint",
        "scores",
        "best",
        "training stats",
        "run config",
    }
    assert len([c for c in report.converted if c[0] == "checkpoint"]) == len(MANIFEST["checkpoints"])


def test_runs_limits_the_import_to_those_runs_and_their_configs(layout, target):
    configs, weights, _ = target
    run = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"
    import_dacapo(source_of(layout), configs, weights, runs=[run])
    assert configs.names("runs") == [run]
    assert configs.names("tasks") == ["dummy_task_lab"]
    assert weights.iterations(run) == [3, 6, 9]
    assert weights.iterations(RUNS[0]) == []


def test_names_that_do_not_fit_the_target_are_skipped_with_the_reason(mongo_layout, tmp_path):
    root = tmp_path / "registry"
    report = import_dacapo(
        source_of(mongo_layout), FileConfigStore(root / "configs"), LocalWeightsStore(root)
    )
    reasons = {name: why for what, name, why in report.skipped if what == "array config"}
    assert any("/" in name and "invalid" in why for name, why in reasons.items())
    assert report.ok


def test_the_cli_imports_once_then_finds_nothing_new(tmp_path):
    source = dacapo_files_in(tmp_path)
    before = tree_files(source)
    target = tmp_path / "registry"
    runner = CliRunner()
    first = runner.invoke(app, ["--store", f"files:{target}", "import-dacapo", "--from", f"files:{source}"])
    assert first.exit_code == 0, first.output
    assert "converted:" in first.output and "10 checkpoint" in first.output
    after_first = tree_files(target)
    second = runner.invoke(
        app, ["--store", f"files:{target}", "import-dacapo", "--from", f"files:{source}", "--json"]
    )
    assert second.exit_code == 0, second.output
    report = json.loads(second.output)
    assert report["converted"] == [] and "converted" not in report["counts"]
    assert tree_files(target) == after_first
    assert tree_files(source) == before


def test_the_cli_dry_run_writes_nothing(tmp_path):
    source = dacapo_files_in(tmp_path)
    target = tmp_path / "registry"
    result = CliRunner().invoke(
        app, ["import-dacapo", "--from", f"files:{source}", "--to", f"files:{target}", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "would convert" in result.output
    assert not target.exists()


def test_the_cli_refuses_a_missing_source(tmp_path):
    result = CliRunner().invoke(
        app, ["import-dacapo", "--from", f"files:{tmp_path / 'nowhere'}", "--to", f"files:{tmp_path}"]
    )
    assert result.exit_code == 2 and "not a folder" in result.output


def test_weights_best_and_list_open_a_dacapo_run_in_place(tmp_path):
    source = dacapo_files_in(tmp_path)
    before = tree_files(source)
    run = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"
    dataset = "jrc_hela-3_[mito&er]_jrc_hela-3_[mito&er]_mito_er_nuc_8nm_gt_mito&er&nuc_8nm"
    runner = CliRunner()
    best = runner.invoke(
        app, ["--store", f"files:{source}", "weights", "best", run, "mito__dice", "--dataset", dataset]
    )
    assert best.exit_code == 0, best.output
    # the iteration, its score, and whether it is DaCapo's hand-stored best (a pin)
    assert best.output.strip().split("\t") == ["20", "mito__dice=0.805455", "pinned"]
    listed = runner.invoke(app, ["--store", f"files:{source}", "weights", "list", run])
    assert listed.exit_code == 0, listed.output
    assert [line.split("\t")[0] for line in listed.output.splitlines()[1:]] == ["5", "10", "15", "20"]
    assert "legacy DaCapo checkpoint" in listed.output
    assert tree_files(source) == before


def test_the_cli_imports_from_dacapos_mongodb(tmp_path, monkeypatch):
    server = mongomock.MongoClient()
    load_mongo(server)
    monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *args, **kwargs: server)
    runs_dir = dacapo_files_in(tmp_path, with_stats_and_configs=False)
    before = mongo_dump(server[DB_NAME])
    target = tmp_path / "registry"
    args = ["import-dacapo", "--from", "mongodb://lab:secret@db:27017", "--db", DB_NAME]
    args += ["--runs-dir", str(runs_dir), "--to", f"files:{target}"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "10 checkpoint" in first.output and "secret" not in first.output
    weights = LocalWeightsStore(target)
    run = next(r for r in RUNS if r.startswith("finetune_"))
    assert (
        weights.retrieve_best(
            run, "voi", "jrc_hela-2_[mito&er]_jrc_hela-2_[mito&er]_mito_er_nuc_8nm_gt_mito&er&nuc_8nm"
        )
        == 8
    )
    after_first = tree_files(target)
    second = CliRunner().invoke(app, [*args, "--json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.output)["converted"] == []
    assert tree_files(target) == after_first
    assert mongo_dump(server[DB_NAME]) == before


def test_a_damaged_source_checkpoint_fails_alone_and_the_rest_is_imported(tmp_path):
    source = dacapo_files_in(tmp_path)
    run = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"
    damaged = source / run / "checkpoints" / "iterations" / "6"
    damaged.chmod(0o644)
    damaged.write_bytes(damaged.read_bytes()[:-5000])
    target = tmp_path / "registry"
    result = CliRunner().invoke(
        app, ["import-dacapo", "--from", f"files:{source}", "--to", f"files:{target}"]
    )
    assert result.exit_code == 1
    assert f"checkpoint {run}@6" in result.output
    weights = LocalWeightsStore(target)
    assert weights.read_index(run).checkpoints.keys() == {3, 9}
    assert len(weights.read_index(RUNS[0]).checkpoints) == 3


def test_a_mongodb_source_without_its_runs_dir_says_checkpoints_were_not_looked_for(mongo_layout, tmp_path):
    source = DacapoMongo(mongo_layout.db)
    configs, weights, _ = make_target("files", tmp_path)
    report = import_dacapo(source, configs, weights)
    assert ("checkpoints", "*") in [(what, name) for what, name, _ in report.skipped]
    assert "runs_base_dir" in next(d for w, _, d in report.skipped if w == "checkpoints")
    assert weights.iterations(RUNS[0]) == []
    assert len(weights.retrieve_training_stats(RUNS[0])) == 12
