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
