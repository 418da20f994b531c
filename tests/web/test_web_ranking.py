"""Pages that rank runs, on what DaCapo 0.3.5 wrote (files and MongoDB): the default criterion is
one the listed runs have, every ranking page takes criterion= and dataset=, metric columns (col=),
and search by config values (where=)."""

from __future__ import annotations

import csv
import io
from urllib.parse import quote

BIG = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"
FINETUNE = (
    "finetune_hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0_"
    "hela_semantic_mito&er&nuc_8nm_affs_lab_tiny_unet_lab_gp_plain_lab__0"
)
DUMMY = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"
SPLIT = "/api/v1/configs/datasplits/" + quote("hela_semantic_mito&er&nuc_8nm", safe="")


def test_the_default_columns_show_a_best_for_every_run_with_scores(pack):
    page = pack.get("/api/v1/runs").json()
    columns = [c["criterion"] for c in page["columns"]]
    assert page["criterion"] == columns[0] == "er__dice"  # a dice before a dummy's blipp_score
    scored = {r["name"]: r for r in page["rows"] if r["criteria"]}
    assert set(scored) >= {BIG, FINETUNE, DUMMY}
    for name, row in scored.items():
        assert any(row["bests"][c] is not None for c in columns), name
    assert scored[BIG]["best"]["value"] is not None
    html = pack.get("/").text
    assert "best er__dice" in html and "best blipp_score" in html


def test_the_default_criterion_is_the_most_common_among_the_listed_runs(pack):
    page = pack.get("/api/v1/runs", params={"name": DUMMY}).json()
    assert page["criterion"] == "blipp_score"  # the dummy run's own, as common as frizz_level
    assert page["rows"][0]["best"] is not None
    board = pack.get("/api/v1/leaderboard").json()
    assert board["criterion"] == "er__dice" and [r["name"] for r in board["rows"]] == [BIG]


def test_a_config_page_ranks_its_runs_by_the_criterion_asked_for(pack):
    default = pack.get(SPLIT).json()["runs"]
    assert default["criterion"] == "er__dice"
    chosen = pack.get(SPLIT, params={"criterion": "mito__f1_score"}).json()["runs"]
    assert chosen["criterion"] == "mito__f1_score"
    assert chosen["rows"][0]["name"] == BIG and chosen["rows"][0]["best"]["value"] is not None
    dataset = pack.get("/api/v1/runs").json()["criteria"]["mito__f1_score"][0]
    on = pack.get(SPLIT, params={"criterion": "mito__f1_score", "dataset": dataset}).json()["runs"]
    assert on["dataset"] == dataset and on["rows"][0]["best"]["value"] is not None
    missing = pack.get(SPLIT, params={"criterion": "no_such_criterion"})
    assert missing.status_code == 404 and "no_such_criterion" in missing.json()["error"]["message"]
    html = pack.get(SPLIT.replace("/api/v1", ""), params={"criterion": "mito__f1_score"})
    assert html.status_code == 200 and "by best mito__f1_score" in html.text
    assert "<option selected>mito__f1_score</option>" in html.text


def test_metric_columns_are_chosen_in_the_url(pack):
    params = [("col", "mito__dice"), ("col", "mito__hausdorff"), ("col", "voi")]
    page = pack.get("/api/v1/runs", params=params).json()
    assert [c["criterion"] for c in page["columns"]] == ["mito__dice", "mito__hausdorff", "voi"]
    assert [c["higher_is_better"] for c in page["columns"]] == [True, False, False]
    assert page["criterion"] == "mito__dice"
    rows = {r["name"]: r for r in page["rows"]}
    assert rows[BIG]["bests"]["mito__hausdorff"]["value"] is not None
    assert rows[FINETUNE]["bests"]["voi"]["value"] is not None
    assert rows[FINETUNE]["bests"]["mito__dice"] is None
    table = list(
        csv.DictReader(io.StringIO(pack.get("/api/v1/runs", params=[*params, ("format", "csv")]).text))
    )
    big = next(r for r in table if r["name"] == BIG)
    assert float(big["mito__hausdorff_value"]) == rows[BIG]["bests"]["mito__hausdorff"]["value"]
    html = pack.get("/", params=params).text
    assert 'title="best mito__hausdorff (lower is better)"' in html
    unknown = pack.get("/api/v1/runs", params=[("col", "nope")])
    assert unknown.status_code == 404 and "'nope'" in unknown.json()["error"]["message"]
    too_many = pack.get("/api/v1/runs", params=[("col", f"c{i}") for i in range(13)])
    assert too_many.status_code == 400


def test_runs_are_searched_by_config_values(pack):
    names = pack.configs.names("runs")
    found = pack.get(
        "/api/v1/runs", params=[("where", "task_config.channels ~ mito"), ("where", "num_iterations > 15")]
    ).json()
    assert [r["name"] for r in found["rows"]] == [
        n
        for n in pack.configs.retrieve_run_config_names(
            where=["task_config.channels ~ mito", "num_iterations > 15"]
        )
    ]
    assert BIG in [r["name"] for r in found["rows"]] and "lab_dist_mito_ints" not in str(found["rows"])
    assert found["filters"]["where"] == ["task_config.channels ~ mito", "num_iterations > 15"]
    board = pack.get("/api/v1/leaderboard", params={"where": "architecture_config.fmaps_out == 4"}).json()
    assert [r["name"] for r in board["rows"]] == [BIG]
    html = pack.get("/", params={"where": "task_config.channels ~ mito"}).text
    assert 'value="task_config.channels ~ mito"' in html
    exact = pack.get("/api/v1/runs", params={"where": 'task_config.channels == ["mito"]'}).json()
    assert [r["name"] for r in exact["rows"]] == ["lab_dist_mito_ints", "lab_inner_mito"]
    bad = pack.get("/api/v1/runs", params={"where": "num_iterations >> 3"})
    assert bad.status_code == 400 and "num_iterations >> 3" in bad.json()["error"]["message"]
    assert pack.configs.names("runs") == names


def test_a_search_after_a_restart_reads_the_documents_the_saved_catalog_lacks(tmp_path, user_cache):
    """The catalog's saved copy keeps fields, not documents: a restarted dashboard reads them once."""
    from legacy.conftest import dacapo_files_in
    from starlette.testclient import TestClient

    from dacapo_store.config_store import FileConfigStore
    from dacapo_store.web import create_app
    from dacapo_store.weights import LocalWeightsStore

    root = dacapo_files_in(tmp_path)
    for started in range(2):
        app = create_app(FileConfigStore(root / "configs"), LocalWeightsStore(root), recheck=0)
        with TestClient(app) as client:
            assert client.get("/api/v1/runs").json()["total"] == 10
            page = client.get("/api/v1/runs", params={"where": "architecture_config.fmaps_out == 72"}).json()
            assert page["total"] == 3, started
        assert len(list((user_cache / "run-catalog").glob("*.json"))) == 1


def test_a_run_writing_only_scores_is_training_dated_by_its_scores(pack):
    """No checkpoint and no training stats yet: its scores date it, and its best is marked."""
    from datetime import datetime, timedelta, timezone

    run = "lab_lsd_er"
    assert pack.get("/api/v1/runs", params={"name": run}).json()["rows"][0]["status"] == "new"
    pack.weights.store_validation_scores(run, 100, {"voi": 0.3}, dataset="lab_dvid_dataset")
    pack.weights.store_validation_scores(run, 200, {"voi": 0.2}, dataset="lab_dvid_dataset")
    row = pack.get("/api/v1/runs", params={"name": run, "criterion": "voi"}).json()["rows"][0]
    assert row["status"] == "training" and row["iterations_trained"] == 200
    updated = datetime.fromisoformat(row["updated_at"])
    assert datetime.now(timezone.utc) - updated < timedelta(minutes=5)
    assert row["best"] == {"iteration": 200, "value": 0.2, "pinned": False, "loadable": False}
    html = pack.get("/", params={"name": run, "criterion": "voi"}).text
    assert "no checkpoint" in html and "status-training" in html and "status-stalled" not in html


def test_a_run_stored_after_a_search_is_found_by_the_next(pack):
    import attrs

    search = {"where": "num_iterations == 12345"}
    assert pack.get("/api/v1/runs", params=search).json()["total"] == 0
    config = pack.configs.retrieve_run_config(DUMMY)
    pack.configs.store_run_config(attrs.evolve(config, name="lab_searched_later", num_iterations=12345))
    assert [r["name"] for r in pack.get("/api/v1/runs", params=search).json()["rows"]] == [
        "lab_searched_later"
    ]
