"""The dashboard over a registry DaCapo 0.3.5 wrote: its scores, bests and training stats show.

DaCapo keeps validation scores in its own places (stats/validation_scores/ on files, the
`validation_scores` collection in MongoDB); the dashboard lays them under ours exactly as
`retrieve_best` and a StartConfig do.
"""

from __future__ import annotations

import pytest
from legacy.conftest import MANIFEST, expected_best, expected_scores

SCORES = {entry["run"]: entry for entry in MANIFEST["scores"]}
RUN = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"
CRITERION = "mito__dice"


def test_the_runs_table_ranks_dacapo_runs_by_dacapos_scores(pack):
    page = pack.get("/api/v1/runs", params={"criterion": CRITERION, "sort": "best", "limit": 50}).json()
    rows = {row["name"]: row for row in page["rows"]}
    assert rows[RUN]["best"]["iteration"] == expected_best(SCORES[RUN], CRITERION, None)
    assert CRITERION in rows[RUN]["criteria"]
    assert page["rows"][0]["best"] is not None  # runs with a best first
    assert CRITERION in pack.get("/api/v1/leaderboard", params={"criterion": CRITERION}).text


def test_a_dacapo_run_page_has_its_curves_best_marks_and_training_loss(pack):
    detail = pack.get(f"/api/v1/runs/{RUN}").json()
    expected = expected_scores(SCORES[RUN])
    curves = {(c["criterion"], c["dataset"]): c for c in detail["curves"]}
    assert {(c, d) for c, by_d in expected.items() for d in by_d} == set(curves)
    dataset = next(iter(expected[CRITERION]))
    curve = curves[(CRITERION, dataset)]
    assert dict(zip(curve["iterations"], curve["values"], strict=True)) == pytest.approx(
        expected[CRITERION][dataset], nan_ok=True
    )
    assert curve["best"]["iteration"] == expected_best(SCORES[RUN], CRITERION, dataset)
    marked = [row for row in detail["checkpoints"] if f"{CRITERION}/all" in row["best_for"]]
    assert [row["iteration"] for row in marked] == [expected_best(SCORES[RUN], CRITERION, None)]
    assert detail["training"]["iterations"]  # DaCapo's training stats
    assert pack.get(f"/runs/{RUN}").status_code == 200


def test_compare_overlays_dacapos_curves(pack):
    others = [name for name in SCORES if name != RUN]
    data = pack.get("/api/v1/compare", params={"runs": ",".join([RUN, *others])}).json()
    runs_by_criterion = {c["criterion"]: {s["run"] for s in c["series"]} for c in data["curves"]}
    for name, entry in SCORES.items():
        for criterion in entry["criteria"]:
            assert name in runs_by_criterion[criterion]


def test_what_dacapo_writes_into_mongodb_shows_on_the_next_request(tmp_path):
    import mongomock
    from legacy.conftest import DB_NAME, dacapo_files_in, load_mongo
    from starlette.testclient import TestClient

    from dacapo_store.config_store import MongoConfigStore
    from dacapo_store.web import create_app
    from dacapo_store.weights import GridFSWeightsStore

    client = mongomock.MongoClient()
    load_mongo(client)
    configs = MongoConfigStore(client=client, db_name=DB_NAME)
    root = dacapo_files_in(tmp_path, with_stats_and_configs=False)
    weights = GridFSWeightsStore(client=client, db_name=DB_NAME, dacapo_runs_dir=root)
    with TestClient(create_app(configs, weights, recheck=0)) as c:
        before = c.get(f"/api/v1/runs/{RUN}").json()
        assert 25 not in before["curves"][0]["iterations"]
        db = client[DB_NAME]
        # DaCapo validates iteration 25 and trains on to 30, as it writes them
        scores = db["validation_scores"].find_one(
            {"run_name": RUN, "iteration": 20}, projection={"_id": False}
        )
        db["validation_scores"].insert_one({**scores, "iteration": 25})
        db["training_stats"].insert_one({"iteration": 30, "loss": 0.5, "time": 0.1, "run_name": RUN})
        after = c.get(f"/api/v1/runs/{RUN}").json()
        assert all(25 in curve["iterations"] for curve in after["curves"])
        assert after["training"]["iterations"][-1] == 30
        row = next(r for r in c.get("/api/v1/runs", params={"limit": 50}).json()["rows"] if r["name"] == RUN)
        assert row["iterations_trained"] == 30
