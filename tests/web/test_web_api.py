"""The JSON API and its HTML twins over the demo registry, on files and on mongomock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
import pytest
import torch
from weights.conftest import age_our_stats

from dacapo_store.configs import StartConfig

from .conftest import RUNS

BASE, FINETUNE = RUNS


def snapshot(stores):
    """What the registry holds, to show a request changed nothing."""
    return (
        {kind: stores.configs.names(kind) for kind in ("runs", "tasks", "architectures")},
        {run: stores.weights.iterations(run) for run in RUNS},
        {run: stores.weights.retrieve_validation_scores(run) for run in RUNS},
    )


# ------------------------------------------------------------------ runs table


def test_runs_lists_every_demo_run_with_its_parts_and_status(client):
    data = client.get("/api/v1/runs").json()
    assert data["total"] == 2
    rows = {r["name"]: r for r in data["rows"]}
    assert set(rows) == set(RUNS)
    assert rows[BASE]["architecture"] == "tiny_cnn_2" and rows[FINETUNE]["architecture"] == "tiny_cnn_3"
    assert (rows[BASE]["status"], rows[FINETUNE]["status"]) == ("finished", "new")
    assert rows[BASE]["latest_checkpoint"] == 500 and rows[BASE]["iterations_trained"] == 500
    assert rows[FINETUNE]["start_run"] == BASE


def test_the_best_column_is_what_retrieve_best_chooses(client):
    weights = client.stores.weights
    for criterion in ("f1_score", "loss"):
        data = client.get("/api/v1/runs", params={"criterion": criterion}).json()
        best = {r["name"]: r["best"] for r in data["rows"]}
        iteration = weights.retrieve_best(BASE, criterion)
        value = weights.retrieve_validation_scores(BASE)[criterion]["validate"][iteration]
        assert best[BASE] == {"iteration": iteration, "value": value, "pinned": False, "loadable": True}
        assert best[FINETUNE] is None


def test_a_pin_shows_in_the_best_column(client):
    client.stores.weights.store_best(BASE, 200, None, "loss")
    row = client.get("/api/v1/runs", params={"criterion": "loss", "name": "baseline"}).json()["rows"][0]
    assert row["best"]["iteration"] == 200 and row["best"]["pinned"] is True


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"architecture": "tiny_cnn_3"}, [FINETUNE]),
        ({"architecture": "tiny_cnn_2,tiny_cnn_3"}, [BASE, FINETUNE]),
        ({"task": "blobs_fg"}, [BASE, FINETUNE]),
        ({"name": "FINE"}, [FINETUNE]),
        ({"status": "finished"}, [BASE]),
        ({"status": "new"}, [FINETUNE]),
        ({"datasplit": "blobs", "name": "base"}, [BASE]),
    ],
)
def test_filters_narrow_the_runs(client, params, expected):
    data = client.get("/api/v1/runs", params=params).json()
    assert [r["name"] for r in data["rows"]] == expected
    assert data["total"] == len(expected)


def test_a_run_writing_stats_before_its_first_checkpoint_shows_as_training(client):
    client.stores.weights.store_training_stats(FINETUNE, {1: {"loss": 1.0, "time": 0.1}})
    data = client.get("/api/v1/runs", params={"status": "training"}).json()
    assert [r["name"] for r in data["rows"]] == [FINETUNE]
    assert data["rows"][0]["latest_checkpoint"] is None and data["rows"][0]["updated_at"] is not None
    assert '<span class="status status-training">training</span>' in client.get("/").text


def test_a_run_whose_stats_stopped_long_ago_shows_as_stalled(client):
    client.stores.weights.store_training_stats(FINETUNE, {1: {"loss": 1.0, "time": 0.1}})
    age_our_stats(client.stores.weights, FINETUNE, datetime.now(timezone.utc) - timedelta(hours=2))
    data = client.get("/api/v1/runs", params={"status": "stalled"}).json()
    assert [r["name"] for r in data["rows"]] == [FINETUNE]
    assert client.get(f"/api/v1/runs/{FINETUNE}").json()["summary"]["status"] == "stalled"


def test_sorting_by_best_puts_the_best_first_and_runs_without_a_score_last(client):
    for order in ("asc", "desc"):
        data = client.get("/api/v1/runs", params={"sort": "best", "order": order}).json()
        assert [r["name"] for r in data["rows"]] == [BASE, FINETUNE]


def test_sorting_by_name_descending(client):
    data = client.get("/api/v1/runs", params={"sort": "name", "order": "desc"}).json()
    assert [r["name"] for r in data["rows"]] == [FINETUNE, BASE]


def test_paging_happens_on_the_server(client):
    first = client.get("/api/v1/runs", params={"limit": 1}).json()
    second = client.get("/api/v1/runs", params={"limit": 1, "offset": 1}).json()
    past = client.get("/api/v1/runs", params={"limit": 1, "offset": 5}).json()
    assert [r["name"] for r in first["rows"]] == [BASE] and first["total"] == 2
    assert [r["name"] for r in second["rows"]] == [FINETUNE]
    assert past["rows"] == [] and past["total"] == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"offset": "-1"}, "offset must be a non-negative integer"),
        ({"offset": "abc"}, "offset must be a non-negative integer"),
        ({"limit": "0"}, "limit must be at least 1"),
        ({"limit": "100000"}, "at most 500"),
        ({"limit": "1.5"}, "limit must be a non-negative integer"),
        ({"sort": "colour"}, "unknown sort 'colour'"),
        ({"order": "sideways"}, "unknown order"),
        ({"status": "running"}, "unknown status 'running'"),
        ({"colour": "red"}, "unknown query parameter 'colour'"),
        ({"task": "../etc"}, "invalid task name"),
        ({"criterion": "no such"}, "invalid criterion"),
        ({"criterion": "voi"}, "no run has scores for criterion 'voi'"),
        ({"criterion": "loss", "dataset": "train"}, "no run has 'loss' scores on dataset 'train'"),
        ({"task": "nope"}, "unknown task 'nope': no run uses it and the store has no such task"),
        ({"trainer": "no_such_trainer"}, "unknown trainer 'no_such_trainer'"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message_and_changes_nothing(client, params, message):
    before = snapshot(client.stores)
    response = client.get("/api/v1/runs", params=params)
    # what the store lacks (a criterion, a dataset, a part) is a 404; a malformed request a 400
    assert response.status_code == (
        404 if "no run has" in message or "unknown task" in message or "unknown trainer" in message else 400
    )
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]["message"]
    assert snapshot(client.stores) == before


def test_the_html_runs_page_shows_the_runs_and_an_html_error_for_bad_input(client):
    page = client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert BASE in page.text and FINETUNE in page.text
    bad = client.get("/?limit=-3", headers={"accept": "text/html"})
    assert bad.status_code == 400 and "limit must be a non-negative integer" in bad.text


def test_new_runs_and_scores_appear_on_the_next_request_without_a_restart(client):
    stores = client.stores
    assert client.get("/api/v1/runs").json()["total"] == 2
    run = stores.configs.retrieve_run_config(FINETUNE)
    stores.configs.store_run_config(attrs.evolve(run, name="blobs_third"))
    stores.weights.store_weights(FINETUNE, 100, {"w": torch.zeros(2)})
    stores.weights.store_validation_scores(FINETUNE, 100, {"f1_score": 0.99, "loss": 0.01})
    data = client.get("/api/v1/runs", params={"sort": "best"}).json()
    assert data["total"] == 3
    assert data["rows"][0]["name"] == FINETUNE
    assert data["rows"][0]["best"] == {"iteration": 100, "value": 0.99, "pinned": False, "loadable": True}


def test_a_deleted_run_disappears(client):
    client.get("/api/v1/runs")
    client.stores.configs.delete("runs", FINETUNE, force=True)
    assert [r["name"] for r in client.get("/api/v1/runs").json()["rows"]] == [BASE]


# ------------------------------------------------------------------ one run


def test_a_run_has_its_config_checkpoints_curves_and_lineage(client):
    data = client.get(f"/api/v1/runs/{BASE}").json()
    weights = client.stores.weights
    assert data["config"]["name"] == BASE and data["summary"]["status"] == "finished"
    assert data["parts"]["task_config"] == {"kind": "tasks", "name": "blobs_fg"}
    assert [c["iteration"] for c in data["checkpoints"]] == [500, 400, 300, 200, 100]
    assert all(c["size"] > 0 for c in data["checkpoints"])
    assert {(c["criterion"], c["dataset"]) for c in data["curves"]} == {
        ("f1_score", "validate"),
        ("loss", "validate"),
    }
    for curve in data["curves"]:
        assert curve["iterations"] == [100, 200, 300, 400, 500]
        assert curve["best"]["iteration"] == weights.retrieve_best(BASE, curve["criterion"], "validate")
    best_f1 = weights.retrieve_best(BASE, "f1_score")
    marked = next(c for c in data["checkpoints"] if c["iteration"] == best_f1)
    assert "f1_score/validate" in marked["best_for"]
    stats = weights.retrieve_training_stats(BASE)  # the demo stores training stats
    assert data["training"]["iterations"] == [s.iteration for s in stats] != []
    assert data["training"]["loss"] == [s.loss for s in stats]
    assert data["lineage"]["up"] == []
    assert data["lineage"]["down"] == [{"run": FINETUNE, "from": BASE, "criterion": "f1_score", "depth": 1}]


def test_lineage_up_names_the_iteration_a_start_takes(client):
    data = client.get(f"/api/v1/runs/{FINETUNE}").json()
    (link,) = data["lineage"]["up"]
    assert link["run"] == BASE and link["criterion"] == "f1_score"
    assert link["iteration"] == client.stores.weights.retrieve_best(BASE, "f1_score")
    assert data["checkpoints"] == [] and data["curves"] == []


def test_the_run_page_links_its_parts_and_lineage_and_shows_empty_states(client):
    page = client.get(f"/runs/{BASE}").text
    assert 'href="/configs/tasks/blobs_fg"' in page
    assert f'href="/runs/{FINETUNE}"' in page
    assert "No training stats stored for this run." not in page
    assert 'data-chart="run-metric"' in page
    empty = client.get(f"/runs/{FINETUNE}").text
    assert "No training stats stored for this run." in empty
    assert "No validation scores stored for this run yet." in empty
    assert "No checkpoints stored for this run." in empty


@pytest.mark.parametrize(("name", "status"), [("no_such_run", 404), ("bad%5Cname", 400), (".hidden", 400)])
def test_an_unknown_or_bad_run_name_is_a_4xx(client, name, status):
    response = client.get(f"/api/v1/runs/{name}")
    assert response.status_code == status
    assert response.json()["error"]["status"] == status
    page = client.get(f"/runs/{name}", headers={"accept": "text/html"})
    assert page.status_code == status and "<h1>" in page.text


# ------------------------------------------------------------------ compare


def test_compare_shows_the_fields_that_differ_and_curves_per_criterion(client):
    data = client.get("/api/v1/compare", params={"runs": f"{BASE},{FINETUNE}"}).json()
    diff = {row["field"]: row["values"] for row in data["differences"]}
    assert diff["architecture_config.name"] == ["tiny_cnn_2", "tiny_cnn_3"]
    assert diff["architecture_config.num_out_channels"] == [2, 3]
    assert diff["start_config.run"] == [None, BASE]
    assert "task_config.name" not in diff and "start_config" not in diff
    assert [c["criterion"] for c in data["curves"]] == ["f1_score", "loss"]
    assert [s["run"] for s in data["curves"][0]["series"]] == [BASE]


def test_compare_takes_repeated_runs_parameters_too(client):
    data = client.get(f"/api/v1/compare?runs={BASE}&runs={FINETUNE}").json()
    assert data["runs"] == RUNS


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "compare takes 2 to 20 runs, got 0"),
        (f"runs={BASE}", 400, "compare takes 2 to 20 runs, got 1"),
        (f"runs={BASE},{BASE}", 400, "named twice"),
        ("runs=" + ",".join(f"r{i}" for i in range(21)), 400, "got 21"),
        (f"runs={BASE},nope", 404, "no run config named 'nope'"),
        (f"runs={BASE},a/../b", 400, "invalid run name"),
    ],
)
def test_compare_refuses_bad_selections(client, query, status, message):
    response = client.get(f"/api/v1/compare?{query}")
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


# ------------------------------------------------------------------ leaderboard


def test_the_leaderboard_ranks_runs_with_a_best_by_the_criterion(client):
    stores = client.stores
    run = stores.configs.retrieve_run_config(FINETUNE)
    stores.configs.store_run_config(attrs.evolve(run, name="blobs_third", start_config=None))
    stores.weights.store_weights("blobs_third", 100, {"w": torch.zeros(2)})
    stores.weights.store_validation_scores("blobs_third", 100, {"f1_score": 0.5, "loss": 0.001})
    data = client.get("/api/v1/leaderboard", params={"criterion": "loss"}).json()
    assert [(r["rank"], r["name"]) for r in data["rows"]] == [(1, "blobs_third"), (2, BASE)]
    data = client.get("/api/v1/leaderboard", params={"criterion": "f1_score"}).json()
    assert [r["name"] for r in data["rows"]] == [BASE, "blobs_third"]
    narrowed = client.get(
        "/api/v1/leaderboard", params={"criterion": "f1_score", "architecture": "tiny_cnn_3"}
    )
    assert [r["name"] for r in narrowed.json()["rows"]] == ["blobs_third"]


def test_the_leaderboard_refuses_an_unknown_criterion_and_a_sort(client):
    assert client.get("/api/v1/leaderboard", params={"criterion": "voi"}).status_code == 404
    assert client.get("/api/v1/leaderboard", params={"sort": "name"}).status_code == 400


# ------------------------------------------------------------------ configs


def test_configs_list_a_kind_and_show_a_document_with_the_runs_that_use_it(client):
    assert client.get("/api/v1/configs/architectures").json()["names"] == ["tiny_cnn_2", "tiny_cnn_3"]
    data = client.get("/api/v1/configs/tasks/blobs_fg").json()
    assert data["document"]["__type__"] == "DistanceTaskConfig"
    assert [r["name"] for r in data["runs"]["rows"]] == RUNS  # best first
    arch = client.get("/api/v1/configs/architectures/tiny_cnn_3").json()
    assert [r["name"] for r in arch["runs"]["rows"]] == [FINETUNE]
    assert client.get("/api/v1/configs/datasets").json()["total"] >= 0
    assert "tiny_cnn_2" in client.get("/configs/architectures").text


def store_nested_parts(stores):
    """Store the demo's validate dataset and its raw array in their own kinds, plus a dataset no run
    uses, and a third run whose own datasplit wraps that raw array in another array."""
    from dacapo_store.configs import IntensitiesArrayConfig

    run = stores.configs.retrieve_run_config(BASE)
    validate = run.datasplit_config.validate_configs[0]
    stores.configs.store(validate)
    stores.configs.store(validate.raw_config)
    stores.configs.store(attrs.evolve(validate, name="spare"))
    wrapped = IntensitiesArrayConfig("validate_norm", validate.raw_config, min=0.0, max=255.0)
    split = attrs.evolve(
        run.datasplit_config,
        name="blobs_norm",
        validate_configs=[attrs.evolve(validate, name="validate_norm", raw_config=wrapped)],
    )
    stores.configs.store_run_config(attrs.evolve(run, name="blobs_third", datasplit_config=split))


def test_dataset_and_array_pages_list_the_runs_whose_datasplit_holds_them(client):
    store_nested_parts(client.stores)
    dataset = client.get("/api/v1/configs/datasets/validate").json()
    assert dataset["document"]["__type__"] == "RawGTDatasetConfig"
    assert sorted(r["name"] for r in dataset["runs"]["rows"]) == RUNS  # not blobs_third: its own split
    assert dataset["runs"]["total"] == 2 and dataset["runs"]["rows"][0]["best"] is not None
    array = client.get("/api/v1/configs/arrays/validate_raw").json()  # in blobs_third, wrapped
    assert sorted(r["name"] for r in array["runs"]["rows"]) == [BASE, FINETUNE, "blobs_third"]
    rows = {r["name"]: r for r in client.get("/api/v1/runs").json()["rows"]}
    assert rows["blobs_third"]["uses"] == {
        "datasets": ["train", "validate_norm"],
        "arrays": ["train_gt", "train_raw", "validate_gt", "validate_norm", "validate_raw"],
    }


def test_a_dataset_no_run_uses_lists_no_runs_and_an_unknown_one_is_a_404(client):
    store_nested_parts(client.stores)
    spare = client.get("/api/v1/configs/datasets/spare")
    assert spare.status_code == 200 and spare.json()["runs"]["rows"] == []
    assert spare.json()["runs"]["total"] == 0
    assert "No stored run uses it." in client.get("/configs/datasets/spare").text
    for path in ("/api/v1/configs/datasets/nope", "/api/v1/configs/arrays/nope"):
        response = client.get(path)
        assert response.status_code == 404 and "nope" in response.json()["error"]["message"]
    assert client.get("/configs/datasets/nope", headers={"accept": "text/html"}).status_code == 404


def test_the_dataset_page_shows_its_runs_with_their_best_and_pages_them(client):
    store_nested_parts(client.stores)
    page = client.get("/configs/arrays/validate_raw").text
    for run in (BASE, FINETUNE, "blobs_third"):
        assert f'href="/runs/{run}"' in page
    assert "No stored run uses it." not in page
    first = client.get("/api/v1/configs/arrays/validate_raw", params={"limit": 2}).json()["runs"]
    rest = client.get("/api/v1/configs/arrays/validate_raw", params={"limit": 2, "offset": 2}).json()["runs"]
    assert first["total"] == rest["total"] == 3
    assert first["rows"][0]["name"] == BASE  # best first: the only run with scores
    assert len(first["rows"]) == 2 and len(rest["rows"]) == 1
    assert (
        'rel="next" href="?offset=2&amp;limit=2"'
        in client.get("/configs/arrays/validate_raw", params={"limit": 2}).text
    )
    bad = client.get("/api/v1/configs/arrays/validate_raw", params={"limit": 0})
    assert bad.status_code == 400 and "limit" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/configs/widgets", 404),
        ("/api/v1/configs/tasks/nope", 404),
        ("/api/v1/configs/tasks/bad%5Cname", 400),
        ("/api/v1/configs/tasks?offset=-1", 400),
        ("/api/v1/configs/tasks/blobs_fg?offset=-1", 400),
        (f"/api/v1/configs/runs/{BASE}?offset=1", 400),  # a run's page lists no runs to page
        ("/api/v1/nothing/here", 404),
    ],
)
def test_configs_4xx(client, path, status):
    response = client.get(path)
    assert response.status_code == status and response.json()["error"]["message"]


# ------------------------------------------------------------------ health, read-only, headers


def test_healthz_says_the_store_answers(client):
    data = client.get("/healthz").json()
    assert data["ok"] is True and data["runs"] == 2


def test_nothing_writes(client):
    before = snapshot(client.stores)
    for path in ("/api/v1/runs", f"/api/v1/runs/{BASE}", "/", "/api/v1/compare"):
        for method in ("post", "put", "delete", "patch"):
            response = getattr(client, method)(path)
            assert response.status_code == 405, (method, path)
    assert snapshot(client.stores) == before


def test_every_response_carries_the_security_headers(client):
    for path in ("/", "/api/v1/runs", "/static/app.css", "/api/v1/runs/nope"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_the_openapi_document_names_every_endpoint(client):
    doc = client.get("/api/v1/openapi.json").json()
    assert set(doc["paths"]) == {
        "/api/v1/runs",
        "/api/v1/runs/{name}",
        "/api/v1/runs/{name}/scores",
        "/api/v1/runs/{name}/checkpoint",
        "/api/v1/compare",
        "/api/v1/leaderboard",
        "/api/v1/configs/{kind}",
        "/api/v1/configs/{kind}/{name}",
        "/healthz",
    }


def test_assets_are_served_by_the_package(client):
    assert client.get("/static/charts.js").status_code == 200
    plotly = client.get("/static/vendor/plotly.min.js")
    assert plotly.status_code == 200 and b"plotly.js" in plotly.content[:200]
    page = client.get(f"/runs/{BASE}").text
    assert "http://" not in page.split("<main>")[0] and "https://" not in page


# ------------------------------------------------------------------ escaping


SCRIPT = "<script>alert('x')</script>"


def test_registry_values_are_escaped_everywhere(client):
    stores = client.stores
    run = stores.configs.retrieve_run_config(FINETUNE)
    datasplit = run.datasplit_config
    dataset = datasplit.validate_configs[0]
    raw = attrs.evolve(dataset.raw_config, name="evil_raw", dataset=SCRIPT)
    evil_split = attrs.evolve(
        datasplit, name="evil_split", validate_configs=[attrs.evolve(dataset, raw_config=raw)]
    )
    evil = attrs.evolve(run, name="evil", datasplit_config=evil_split, start_config=StartConfig(BASE, "loss"))
    stores.configs.store_run_config(evil)
    pages = ["/runs/evil", f"/compare?runs=evil,{BASE}", "/configs/datasplits/evil_split", "/?name=" + SCRIPT]
    for path in pages:
        text = client.get(path).text
        assert SCRIPT not in text, path
        assert "&lt;script&gt;" in text, path
    api = client.get("/api/v1/runs/evil").json()
    assert SCRIPT in str(api["config"])  # the API returns the value as it is, as JSON


def test_a_run_name_holding_markup_shows_as_text(client):
    from dacapo_store.names import check_name

    name = "<script>"
    try:
        check_name(name)
    except ValueError:
        # names are letters, digits, _ - . on this branch; the field test above covers markup
        response = client.get("/runs/%3Cscript%3E", headers={"accept": "text/html"})
        assert response.status_code == 400
        assert "<script>" not in response.text.split("<main>")[1]
        assert "&lt;script&gt;" in response.text
        return
    stores = client.stores
    run = stores.configs.retrieve_run_config(FINETUNE)
    stores.configs.store_run_config(attrs.evolve(run, name=name))
    for path in ("/", "/runs/%3Cscript%3E", "/leaderboard"):
        text = client.get(path).text
        assert "<script>" not in text.split("<main>")[1].split("</main>")[0], path
    assert "&lt;script&gt;" in client.get("/").text


def test_training_stats_show_as_a_loss_curve_and_in_the_summary(client):
    stats = {i: {"loss": 1.0 / i, "time": 0.25} for i in (1, 2, 3)}
    client.stores.weights.store_training_stats(FINETUNE, stats)
    data = client.get(f"/api/v1/runs/{FINETUNE}").json()
    assert data["training"] == {"iterations": [1, 2, 3], "loss": [1.0, 0.5, 1.0 / 3]}
    assert data["summary"]["has_stats"] is True and data["summary"]["iterations_trained"] == 3
    assert 'data-chart="run-loss"' in client.get(f"/runs/{FINETUNE}").text
