"""One answer everywhere (issue 17): what four faces disagreed on, each as it was reported.

DaCapo 0.3.5's registry in place (its files layout and its MongoDB layout), the demo registry,
and small registries of our own; every face asked the same question.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from click.testing import CliRunner
from legacy.conftest import MANIFEST, expected_best, expected_scores, open_layout
from strict_mongo import StrictMongoClient

from dacapo_store.cli import app as cli
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.queries import scores_table
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

SCORES = {entry["run"]: entry for entry in MANIFEST["scores"]}
HELA = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(params=["files", "mongomock"])
def layout(request, tmp_path):
    yield from open_layout(request.param, tmp_path)


# -- 1. the leaderboard of DaCapo's runs in place ---------------------------------------------------


@pytest.mark.parametrize("criterion", ["mito__dice", "mito__voi", "nuc__dice"])
def test_the_cli_leaderboard_ranks_dacapos_runs_in_place(layout, criterion):
    if layout.kind != "files":
        pytest.skip("the command line reaches a MongoDB by URI; mongomock is in-process")
    result = run_cli("--store", f"files:{layout.root}", "leaderboard", criterion, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["run"] for r in rows][:1] and HELA in [r["run"] for r in rows]
    hela = next(r for r in rows if r["run"] == HELA)
    assert hela["iteration"] == layout.store.retrieve_best(HELA, criterion)
    assert hela["iteration"] == expected_best(SCORES[HELA], criterion, None)


def test_weights_store_leaderboard_lists_dacapos_runs_on_both_layouts(layout):
    entries = layout.store.leaderboard("mito__dice")
    assert HELA in [e.run for e in entries]
    (hela,) = [e for e in entries if e.run == HELA]
    assert hela.iteration == layout.store.retrieve_best(HELA, "mito__dice")


# -- 2. DaCapo's checkpoints count as weights in `scores` -------------------------------------------


def test_scores_sees_dacapos_checkpoints(layout):
    checkpoints = set(layout.store.iterations(HELA))
    rows = scores_table(layout.store, HELA)
    assert rows and {r.iteration for r in rows} <= checkpoints
    assert all(r.has_weights for r in rows)
    if layout.kind == "files":
        result = run_cli("--store", f"files:{layout.root}", "scores", HELA, "--json")
        assert all(row["has_weights"] for row in json.loads(result.stdout))


# -- 3. a pin moves every view ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "registry"
    assert run_cli("demo", str(path)).exit_code == 0
    return path


@pytest.fixture
def demo(demo_source, tmp_path):
    """A copy of the demo registry (made once per module)."""
    path = tmp_path / "demo"
    shutil.copytree(demo_source, path)
    return path


def views_of(registry, run: str, criterion: str) -> dict:
    """What each face says is the run's best by the criterion (over all datasets)."""
    store = f"files:{registry}"
    best = json.loads(run_cli("--store", store, "weights", "best", run, criterion, "--json").stdout)
    board = json.loads(run_cli("--store", store, "leaderboard", criterion, "--json").stdout)
    listing = json.loads(run_cli("--store", store, "weights", "list", run, "--json").stdout)
    scores = json.loads(run_cli("--store", store, "scores", run, "--criterion", criterion, "--json").stdout)
    return {
        "weights best": best["iteration"],
        "leaderboard": next(r["iteration"] for r in board if r["run"] == run),
        "weights list": [
            e["iteration"] for e in listing if any(b.startswith(criterion) for b in e["best_for"])
        ],
        "scores": sorted({r["iteration"] for r in scores if r["best"]}),
    }


def test_a_run_wide_pin_moves_every_view(demo):
    assert (
        run_cli("--store", f"files:{demo}", "weights", "pin", "blobs_baseline", "300", "f1_score").exit_code
        == 0
    )
    assert views_of(demo, "blobs_baseline", "f1_score") == {
        "weights best": 300,
        "leaderboard": 300,
        "weights list": [300],
        "scores": [300],  # one dataset: its best is the run-wide one
    }


def test_a_line_damaged_in_place_moves_every_view_at_once(demo):
    """A byte flipped in the best iteration's scores line (its size kept: only the mtime moves)
    drops that line on every face together, after they all answered once from their caches."""
    before = views_of(demo, "blobs_baseline", "f1_score")
    best = before["weights best"]
    assert before == {"weights best": best, "leaderboard": best, "weights list": [best], "scores": [best]}
    journal = demo / "blobs_baseline" / "checkpoints" / "index.jsonl"
    lines = journal.read_bytes().split(b"\n")
    (i,) = [
        n
        for n, line in enumerate(lines)
        if b'"op":"scores"' in line and b'"iteration":%d,' % best in line and b"f1_score" in line
    ]
    at = lines[i].index(b'"f1_score":') + len(b'"f1_score":') + 2  # a digit of the value
    lines[i] = lines[i][:at] + (b"1" if lines[i][at : at + 1] != b"1" else b"2") + lines[i][at + 1 :]
    journal.write_bytes(b"\n".join(lines))
    after = views_of(demo, "blobs_baseline", "f1_score")
    moved = after["weights best"]
    assert moved != best
    assert after == {"weights best": moved, "leaderboard": moved, "weights list": [moved], "scores": [moved]}
    check = run_cli("--store", f"files:{demo}", "check", "--json")
    assert check.exit_code == 1
    problems = [p["problem"] for p in json.loads(check.stdout)["problems"]]
    assert any(f"line {i + 1}: fails its checksum" in p for p in problems)


def test_a_dataset_pin_shows_in_weights_list_where_a_run_has_two_datasets(tmp_path):
    store = LocalWeightsStore(tmp_path)
    for iteration, (a, b) in {100: (0.9, 0.1), 200: (0.2, 0.8), 300: (0.5, 0.5)}.items():
        store.store_weights("run", iteration, {"w": torch.ones(1)})
        store.store_validation_scores("run", iteration, {"f1_score": a}, dataset="a")
        store.store_validation_scores("run", iteration, {"f1_score": b}, dataset="b")
    (tmp_path / "configs").mkdir()
    store.store_best("run", 300, "a", "f1_score")
    listing = json.loads(run_cli("--store", f"files:{tmp_path}", "weights", "list", "run", "--json").stdout)
    marks = {e["iteration"]: e["best_for"] for e in listing}
    assert "f1_score on a (pinned)" in marks[300]
    assert "f1_score on b" in marks[200]
    scores = scores_table(store, "run", criterion="f1_score")
    assert {(r.dataset, r.iteration) for r in scores if r.best} == {("a", 300), ("b", 200)}


# -- 4. DaCapo's NaN scores are rows too ----------------------------------------------------------------


def test_scores_keeps_dacapos_nan_scores(layout):
    expected = expected_scores(SCORES[HELA])
    count = sum(len(values) for by_dataset in expected.values() for values in by_dataset.values())
    nans = sum(math.isnan(v) for by_d in expected.values() for vs in by_d.values() for v in vs.values())
    assert nans > 0
    rows = scores_table(layout.store, HELA)
    assert len(rows) == count and sum(math.isnan(r.value) for r in rows) == nans
    if layout.kind == "files":
        printed = json.loads(run_cli("--store", f"files:{layout.root}", "scores", HELA, "--json").stdout)
        assert len(printed) == count and sum(r["value"] is None for r in printed) == nans


# -- 5. a slower writer never leaves a stale best behind -------------------------------------------------


def test_a_slower_writer_never_replaces_a_newer_best_on_mongodb():
    server = StrictMongoClient()
    a = GridFSWeightsStore(client=server, db_name="db")
    b = GridFSWeightsStore(client=server.sibling(), db_name="db")
    for iteration in (100, 200):
        a.store_weights("run", iteration, {"w": torch.ones(1)})
    a.store_validation_scores("run", 100, {"voi": 0.5})
    namespaces = ("db.weights_runs", "db.weights_bests")
    done = []

    def b_writes() -> None:
        if not done:
            done.append(True)
            b.store_validation_scores("run", 200, {"voi": 0.1})  # better, written meanwhile

    def after_a_reads() -> None:
        # b writes between a's read of the run and a's next write: a's view is older than b's
        for namespace in namespaces:
            server.before_write.setdefault(namespace, []).append(b_writes)

    # a's first read of the run is for its directions, before its write; the second is after it
    server.before_find["db.weights_runs"] = [lambda: None, after_a_reads]
    a.store_validation_scores("run", 100, {"voi": 0.4})
    assert done
    server.before_write.clear()
    fresh = GridFSWeightsStore(client=server.sibling(), db_name="db")
    assert fresh.retrieve_best("run", "voi") == 200
    assert [(e.run, e.iteration) for e in fresh.leaderboard("voi")] == [("run", 200)]


# -- 6. one damaged journal stays with its run -----------------------------------------------------------


@pytest.fixture
def damaged_demo(demo, tmp_path):
    registry = tmp_path / "copy"
    shutil.copytree(demo, registry)
    journal = registry / "blobs_baseline" / "checkpoints" / "index.jsonl"
    journal.write_bytes(b"not a journal header\n" + journal.read_bytes().split(b"\n", 1)[1])
    (journal.parent / "index.digest.json").unlink(missing_ok=True)
    return registry


def test_a_damaged_journal_is_listed_as_damaged_and_the_dashboard_keeps_serving(damaged_demo):
    from starlette.testclient import TestClient

    from dacapo_store.web import create_app

    app = create_app(FileConfigStore(damaged_demo / "configs"), LocalWeightsStore(damaged_demo), recheck=0)
    with TestClient(app) as client:
        for path in ("/api/v1/runs", "/api/v1/leaderboard", "/api/v1/configs/tasks/blobs_fg", "/"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            if path.startswith("/api/"):  # (a page's header names the store it shows)
                assert str(damaged_demo) not in response.text
        rows = {r["name"]: r for r in client.get("/api/v1/runs").json()["rows"]}
        assert rows["blobs_baseline"]["status"] == "damaged"
        assert "index line 1 (the header)" in rows["blobs_baseline"]["damage"]
        assert rows["blobs_finetune"]["status"] != "damaged"
        page = client.get("/api/v1/runs/blobs_baseline")
        assert page.status_code == 200 and page.json()["damage"] and str(damaged_demo) not in page.text
        assert client.get("/api/v1/runs/blobs_finetune").status_code == 200


def test_a_store_fault_is_a_5xx_naming_no_server_path(demo, monkeypatch):
    import os

    from starlette.testclient import TestClient

    from dacapo_store.web import create_app

    app = create_app(FileConfigStore(demo / "configs"), LocalWeightsStore(demo), recheck=0)
    real = os.scandir

    def failing(path=".", *args, **kwargs):
        if str(path).startswith(str(demo)):
            raise OSError(5, "Input/output error", str(path))
        return real(path, *args, **kwargs)

    with TestClient(app) as client:
        monkeypatch.setattr(os, "scandir", failing)
        response = client.get("/api/v1/runs")
        assert 500 <= response.status_code < 600
        assert str(demo) not in response.text and "error" in response.json()
        assert client.get("/api/v1/runs?limit=nope").status_code == 400  # a bad request stays a 400


def test_the_dashboard_answers_a_damaged_mongodb_run_too():
    from starlette.testclient import TestClient

    from dacapo_store.web import create_app

    server = StrictMongoClient()
    configs = MongoConfigStore(client=server, db_name="db")
    weights = GridFSWeightsStore(client=server, db_name="db")
    weights.store_weights("good", 1, {"w": torch.ones(1)})
    weights.store_validation_scores("good", 1, {"voi": 0.2})
    server["db"]["weights_runs"].insert_one({"_id": "odd", "scores": "not a mapping", "writes": 1})
    with TestClient(create_app(configs, weights, recheck=0)) as client:
        page = client.get("/api/v1/leaderboard", params={"criterion": "voi"})
        assert page.status_code == 200 and [r["name"] for r in page.json()["rows"]] == ["good"]
