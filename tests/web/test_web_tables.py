"""Tables you can take away: CSV twins of the runs table, the leaderboard and a run's scores, and
a run's checkpoint as a safetensors file; on the demo (files and mongomock) and the DaCapo pack."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import attrs
import pytest
import torch
from legacy.conftest import MANIFEST
from safetensors import safe_open
from safetensors.torch import load

from dacapo_store.queries import scores_table

from .conftest import RUNS

BASE, FINETUNE = RUNS
BIG = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"


def rows_of(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.text)))


# ------------------------------------------------------------------ the runs table and leaderboard


def test_the_runs_table_as_csv_holds_the_json_rows(client):
    page = client.get("/api/v1/runs", params={"criterion": "f1_score"}).json()
    response = client.get("/api/v1/runs", params={"criterion": "f1_score", "format": "csv"})
    assert 'filename="runs.csv"' in response.headers["content-disposition"]
    rows = rows_of(response)
    assert [r["name"] for r in rows] == [r["name"] for r in page["rows"]]
    base = next(r for r in rows if r["name"] == BASE)
    best = next(r for r in page["rows"] if r["name"] == BASE)["best"]
    assert base["criterion"] == "f1_score" and base["dataset"] == ""
    assert float(base["best_value"]) == best["value"] and int(base["best_iteration"]) == best["iteration"]
    assert (
        base["best_pinned"] == "false"
        and base["status"] == "finished"
        and base["architecture"] == "tiny_cnn_2"
    )


def test_a_csv_twin_holds_every_run_the_filters_select_unless_paged(client):
    run = client.stores.configs.retrieve_run_config(FINETUNE)
    for i in range(49):
        client.stores.configs.store_run_config(attrs.evolve(run, name=f"blobs_more_{i:02}"))
    assert len(client.get("/api/v1/runs").json()["rows"]) == 50  # a page
    assert len(rows_of(client.get("/api/v1/runs", params={"format": "csv"}))) == 51
    assert len(rows_of(client.get("/api/v1/runs", params={"format": "csv", "name": "more_1"}))) == 10
    assert [r["name"] for r in rows_of(client.get("/api/v1/runs?format=csv&limit=2&offset=1"))] == [
        "blobs_finetune",
        "blobs_more_00",
    ]


def test_the_leaderboard_as_csv_ranks_the_runs(client):
    rows = rows_of(client.get("/api/v1/leaderboard", params={"criterion": "loss", "format": "csv"}))
    assert [(r["rank"], r["name"], r["criterion"]) for r in rows] == [("1", BASE, "loss")]
    assert int(rows[0]["best_iteration"]) == client.stores.weights.retrieve_best(BASE, "loss")


def test_the_html_pages_link_their_csv(client):
    assert (
        'href="/api/v1/runs?sort=name&amp;order=asc&amp;criterion=f1_score&amp;format=csv"'
        in client.get("/").text
    )
    assert "/api/v1/leaderboard?criterion=f1_score&amp;format=csv" in client.get("/leaderboard").text
    assert f'href="/api/v1/runs/{BASE}/scores?format=csv"' in client.get(f"/runs/{BASE}").text


def test_a_csv_cell_never_starts_a_spreadsheet_formula_and_nan_stays_nan(client):
    run = client.stores.configs.retrieve_run_config(FINETUNE)
    client.stores.configs.store_run_config(attrs.evolve(run, name="=HYPERLINK(1)"))
    client.stores.weights.store_validation_scores("=HYPERLINK(1)", 7, {"loss": math.nan, "f1_score": -0.5})
    names = [r["name"] for r in rows_of(client.get("/api/v1/runs", params={"format": "csv"}))]
    assert "'=HYPERLINK(1)" in names
    scores = rows_of(client.get("/api/v1/runs/%3DHYPERLINK(1)/scores", params={"format": "csv"}))
    assert {(r["criterion"], r["value"]) for r in scores} == {("f1_score", "-0.5"), ("loss", "NaN")}
    assert all(r["run"] == "'=HYPERLINK(1)" for r in scores)


@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/leaderboard", f"/api/v1/runs/{BASE}/scores"])
def test_an_unknown_format_is_a_400(client, path):
    response = client.get(path, params={"format": "xlsx"})
    assert response.status_code == 400 and "unknown format 'xlsx'" in response.json()["error"]["message"]


# ------------------------------------------------------------------ a run's scores


def test_a_dacapo_runs_scores_are_what_dacapo_store_scores_prints_as_json_and_csv(pack):
    data = pack.get(f"/api/v1/runs/{BIG}/scores").json()
    expected = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in attrs.asdict(r).items()}
        for r in scores_table(pack.weights, BIG)
    ]
    assert data["run"] == BIG and data["rows"] == expected and len(expected) > 63 * 2 * 3
    csv_rows = rows_of(pack.get(f"/api/v1/runs/{BIG}/scores", params={"format": "csv"}))
    assert [(int(r["iteration"]), r["dataset"], r["criterion"]) for r in csv_rows] == [
        (r["iteration"], r["dataset"], r["criterion"]) for r in expected
    ]
    dice = pack.get(f"/api/v1/runs/{BIG}/scores", params={"criterion": "mito__dice"}).json()["rows"]
    assert {r["criterion"] for r in dice} == {"mito__dice"} and sum(r["best"] for r in dice) == 2


def test_a_runs_scores_match_the_scores_table(client):
    data = client.get(f"/api/v1/runs/{BASE}/scores", params={"dataset": "validate"}).json()
    expected = [attrs.asdict(r) for r in scores_table(client.stores.weights, BASE, dataset="validate")]
    assert data["rows"] == expected and data["dataset"] == "validate"


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/v1/runs/no_such_run/scores", 404, "no run named 'no_such_run'"),
        (f"/api/v1/runs/{BASE}/scores?criterion=no%20such", 400, "invalid criterion"),
        (f"/api/v1/runs/{BASE}/scores?colour=red", 400, "unknown query parameter 'colour'"),
    ],
)
def test_scores_4xx(client, path, status, message):
    response = client.get(path)
    assert response.status_code == status and message in response.json()["error"]["message"]


# ------------------------------------------------------------------ checkpoints as safetensors


def tensors_of(response) -> dict[str, torch.Tensor]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return load(response.content)


@pytest.mark.parametrize(
    ("criterion", "dataset"), [("f1_score", None), ("loss", "validate"), ("latest", None)]
)
def test_a_checkpoint_downloads_as_the_weights_a_start_config_loads(client, criterion, dataset):
    weights = client.stores.weights
    params = {"criterion": criterion, **({"dataset": dataset} if dataset else {})}
    response = client.get(f"/api/v1/runs/{BASE}/checkpoint", params=params)
    if criterion == "latest":
        iteration = weights.latest_iteration(BASE)
    else:
        iteration = weights.retrieve_best(BASE, criterion, dataset)
    expected = weights.retrieve_weights(BASE, iteration).model
    got = tensors_of(response)
    assert set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in expected)
    assert f'filename="{BASE}-{iteration}.safetensors"' in response.headers["content-disposition"]


def test_a_downloaded_checkpoint_names_its_run_and_iteration(client, tmp_path):
    response = client.get(f"/api/v1/runs/{BASE}/checkpoint", params={"criterion": "300"})
    (tmp_path / "w.safetensors").write_bytes(response.content)
    with safe_open(tmp_path / "w.safetensors", "pt") as f:
        assert f.metadata() == {"run": BASE, "iteration": "300"}


def test_a_dacapo_checkpoint_is_converted_through_the_restricted_unpickler(pack):
    response = pack.get(f"/api/v1/runs/{BIG}/checkpoint", params={"criterion": "mito__dice"})
    got = tensors_of(response)
    iteration = pack.weights.retrieve_best(BIG, "mito__dice")
    assert f"-{iteration}.safetensors" in response.headers["content-disposition"]
    entry = next(c for c in MANIFEST["checkpoints"] if c["run"] == BIG and c["iteration"] == iteration)
    shapes = {name: shape for name, shape, _ in entry["model"]["tensors"]}
    assert {name: list(t.shape) for name, t in got.items()} == shapes  # shared-storage aliases too
    sums = {name: float(t.double().sum()) for name, t in got.items()}
    assert sums == pytest.approx(entry["model"]["sum_per_tensor"])


def test_a_dacapo_checkpoint_beyond_the_allow_list_is_refused_with_a_422(client):
    if client.stores.backend != "files":
        pytest.skip("DaCapo's checkpoint files sit in the files layout")
    path = Path(client.stores.weights.basedir) / BASE / "checkpoints" / "iterations" / "9999"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"w": torch.zeros(1)}, "extra": Path("x")}, path)
    response = client.get(f"/api/v1/runs/{BASE}/checkpoint", params={"criterion": "9999"})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "pathlib.PosixPath" in message and "allow_pickle=True" in message


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "name the checkpoint: criterion="),
        ("criterion=latest&dataset=validate", 400, "dataset= goes with a criterion name"),
        ("criterion=no%20such", 400, "invalid criterion"),
        ("criterion=voi", 404, "no validation scores for criterion 'voi'"),
        ("criterion=123456", 404, "no weights for run blobs_baseline at iteration 123456"),
        ("criterion=loss&dataset=train", 404, "no 'loss' scores on dataset 'train'"),
    ],
)
def test_checkpoint_4xx(client, query, status, message):
    response = client.get(f"/api/v1/runs/{BASE}/checkpoint?{query}")
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert client.get("/api/v1/runs/no_such_run/checkpoint?criterion=latest").status_code == 404
