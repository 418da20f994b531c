"""HTTP details: strict parameters, 404/405/414, ETags and 304s, compression and caching, the
login's rate limit and expiring cookies, compare's run names, the picker over the API."""

from __future__ import annotations

import gzip
import re
import shutil
import socket
import time

import attrs
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from dacapo_store.cli import app as cli
from dacapo_store.web import create_app
from dacapo_store.web.app import SESSION_MAX_AGE, LoginAttempts

from .conftest import RUNS, demo_stores, start_server, stop_server

BASE, FINETUNE = RUNS
BIG = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"
TOKEN = "a-token-of-22-chars-ok"


# ------------------------------------------------------------------ parameters and statuses


@pytest.mark.parametrize(
    "path", ["/healthz", "/api/v1/openapi.json", "/api/v1", "/login", "/static/app.css", "/favicon.ico"]
)
def test_an_unknown_parameter_is_a_400_everywhere(client, path):
    response = client.get(path, params={"x": "1"})
    assert response.status_code == 400
    assert "unknown query parameter 'x'" in response.json()["error"]["message"]


def test_an_unknown_task_is_a_404_naming_it_on_the_page_too(client):
    response = client.get("/?task=nope", headers={"accept": "text/html"})
    assert response.status_code == 404 and "unknown task &#39;nope&#39;" in response.text
    assert "blobs_fg" in response.text  # the tasks the runs use


def test_a_stored_task_no_run_uses_gives_an_empty_table(client):
    task = client.stores.configs.retrieve_run_config(BASE).task_config
    client.stores.configs.store(attrs.evolve(task, name="unused_task"))
    data = client.get("/api/v1/runs", params={"task": "unused_task"}).json()
    assert data["total"] == 0 and data["rows"] == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("post", "/api/v1/runs", "GET, HEAD"),
        ("delete", f"/runs/{BASE}", "GET, HEAD"),
        ("put", "/static/app.css", "GET, HEAD"),
        ("delete", "/login", "GET, HEAD, POST"),
    ],
)
def test_a_405_says_what_is_allowed(client, method, path, allow):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert sorted(response.headers["allow"].split(", ")) == sorted(allow.split(", "))


def test_the_pager_says_where_an_offset_past_the_end_is(client):
    page = client.get("/?offset=100000000000").text
    assert "none at offset 100000000000: there are 2" in page
    assert 'rel="first"' in page and "100000000001" not in page
    assert "1\u20132 of 2" in client.get("/").text


# ------------------------------------------------------------------ ETags, compression, caching


@pytest.mark.parametrize(
    "path", ["/api/v1/runs", "/", f"/runs/{BASE}", f"/api/v1/runs/{BASE}/scores?format=csv"]
)
def test_a_page_that_did_not_change_is_a_304_without_a_body(client, path):
    first = client.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and first.headers["cache-control"] == "no-cache"
    again = client.get(path, headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    if path in ("/", f"/runs/{BASE}"):  # the page carries its ETag for live.js
        assert f'<meta name="dacapo-etag" content="{etag}">'.replace('"W/', '"W/') in first.text.replace(
            "&#34;", '"'
        )
    client.stores.weights.store_validation_scores(BASE, 500, {"f1_score": 0.5}, dataset="other")
    changed = client.get(path, headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_plotly_is_served_gzipped_with_a_years_cache_under_its_versioned_url(client):
    page = client.get(f"/runs/{BASE}").text
    url = re.search(r'src="(/static/vendor/plotly\.min\.js\?v=[0-9a-f]+)"', page).group(1)
    with client.stream("GET", url, headers={"accept-encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert len(raw) < 2_000_000 and gzip.decompress(raw)[:200].find(b"plotly.js") >= 0
    unversioned = client.get("/static/vendor/plotly.min.js", headers={"accept-encoding": "identity"})
    assert (
        unversioned.headers["cache-control"] == "no-cache" and "content-encoding" not in unversioned.headers
    )
    assert client.get(url, headers={"if-none-match": response.headers["etag"]}).status_code == 304


def test_large_json_is_gzipped(pack):
    with pack.stream("GET", f"/api/v1/runs/{BIG}", headers={"accept-encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip" and len(raw) * 5 < len(gzip.decompress(raw))


# ------------------------------------------------------------------ tokens, login, cookies


def test_a_short_token_is_refused(demo_dir, tmp_path):
    stores = demo_stores("files", demo_dir, tmp_path)
    with pytest.raises(ValueError, match="the token has 5 characters; use at least 16"):
        create_app(stores.configs, stores.weights, token="short")
    result = CliRunner().invoke(cli, ["--store", f"files:{demo_dir}", "serve", "--token", "short"])
    assert result.exit_code == 2 and "at least 16" in result.output


@pytest.fixture
def locked(demo_dir, tmp_path):
    stores = demo_stores("files", demo_dir, tmp_path)
    app = create_app(stores.configs, stores.weights, token=TOKEN, recheck=0)
    with TestClient(app) as c:
        c.guard = app
        yield c


def test_login_answers_429_after_five_wrong_tokens_even_to_the_right_one(locked):
    for _ in range(5):
        assert locked.post("/login", data={"token": "wrong-wrong-wrong"}).status_code == 401
    limited = locked.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "too many wrong tokens" in limited.json()["error"]["message"]


def test_the_login_limit_lifts_once_the_window_has_passed():
    now = [1000.0]
    attempts = LoginAttempts(attempts=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert attempts.wait("1.2.3.4") == 0
        attempts.failed("1.2.3.4")
    assert attempts.wait("1.2.3.4") == 60 and attempts.wait("5.6.7.8") == 0
    now[0] += 59.5
    assert attempts.wait("1.2.3.4") == 1
    now[0] += 0.5
    assert attempts.wait("1.2.3.4") == 0


def test_a_login_cookie_expires_and_is_replaced_while_in_use(locked):
    login = locked.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert f"Max-Age={SESSION_MAX_AGE}" in login.headers["set-cookie"]
    locked.cookies.clear()
    now = int(time.time())

    def get(cookie: str):
        return locked.get("/api/v1/runs", headers={"cookie": f"dacapo_store_session={cookie}"})

    fresh = get(locked.guard.session_cookie(now - 600))
    assert fresh.status_code == 200 and "set-cookie" not in fresh.headers
    older = get(locked.guard.session_cookie(now - 7200))
    assert older.status_code == 200
    renewed = re.search(r"dacapo_store_session=([0-9]+)\.", older.headers["set-cookie"]).group(1)
    assert abs(int(renewed) - now) < 60
    assert get(locked.guard.session_cookie(now - SESSION_MAX_AGE - 60)).status_code == 401
    issued, mac = locked.guard.session_cookie(now).split(".")
    assert get(f"{int(issued) + 1}.{mac}").status_code == 401  # a changed time breaks the MAC


# ------------------------------------------------------------------ compare's run names


def test_compare_takes_run_names_holding_commas_as_repeated_parameters(client):
    run = client.stores.configs.retrieve_run_config(FINETUNE)
    client.stores.configs.store_run_config(attrs.evolve(run, name="a,b"))
    data = client.get("/api/v1/compare", params=[("runs", "a,b"), ("runs", BASE)]).json()
    assert data["runs"] == ["a,b", BASE]
    old = client.get("/api/v1/compare", params={"runs": f"a,b,{BASE}"})  # one value: split on commas
    assert old.status_code == 404
    assert "give each run its own runs= parameter" in old.json()["error"]["message"]


def test_a_pasted_trailing_space_finds_the_stored_run(client):
    data = client.get("/api/v1/compare", params=[("runs", f"{BASE} "), ("runs", f" {FINETUNE}")]).json()
    assert data["runs"] == [BASE, FINETUNE]
    assert client.get(f"/api/v1/runs/{BASE}%20").json()["name"] == BASE
    assert client.get(f"/runs/{BASE}%20").status_code == 200


def test_a_stored_name_with_a_trailing_space_is_its_own_run(client):
    run = client.stores.configs.retrieve_run_config(FINETUNE)
    client.stores.configs.store_run_config(attrs.evolve(run, name=f"{BASE} "))
    assert client.get(f"/api/v1/runs/{BASE}%20").json()["config"]["name"] == f"{BASE} "


# ------------------------------------------------------------------ the picker over the API


def test_a_dacapo_run_shows_one_metric_by_default_with_its_bests(pack):
    data = pack.get(f"/api/v1/runs/{BIG}").json()
    assert (
        data["picker"]["chosen"] == ["er__dice", "mito__dice", "nuc__dice"] and data["picker"]["total"] == 63
    )
    assert [c["metric"] for c in data["charts"]] == ["dice"] and len(data["columns"]) == 6
    mito = next(row for row in data["bests"] if row["criterion"] == "mito__dice")
    choice = pack.weights.best_choice(BIG, "mito__dice")
    assert mito["higher_is_better"] is True
    assert mito["all"] == {
        "iteration": choice.iteration,
        "value": pytest.approx(choice.value),
        "pinned": choice.pinned,
        "loadable": True,
    }
    assert set(mito["datasets"]) == set(data["datasets"]) and len(data["datasets"]) == 2


def test_the_run_page_shows_the_chosen_criteria_only(pack):
    page = pack.get(f"/runs/{BIG}", params={"metric": "voi", "channel": "mito"}).text
    assert 'data-chart="run-metric" data-metric="voi"' in page
    assert 'data-chart="run-metric" data-metric="dice"' not in page
    header = page.split('id="checkpoints-table"')[1].split("</thead>")[0]
    assert "mito__voi" in header and "nuc__voi" not in header and "dice" not in header
    assert pack.get(f"/api/v1/runs/{BIG}", params={"metric": "nope"}).status_code == 404


def test_compare_charts_the_shared_criteria_and_names_runs_without_scores(pack):
    finetune = (
        "finetune_hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0_"
        "hela_semantic_mito&er&nuc_8nm_affs_lab_tiny_unet_lab_gp_plain_lab__0"
    )
    twin = BIG[:-1] + "1"  # the same config, repetition 1: no scores
    shared = pack.get("/api/v1/compare", params=[("runs", BIG), ("runs", twin)]).json()
    assert shared["picker"]["chosen"] == []  # the twin has no scores: nothing is shared
    picked = pack.get("/api/v1/compare", params=[("runs", BIG), ("runs", finetune), ("metric", "voi")]).json()
    assert picked["picker"]["chosen"] == ["er__voi", "mito__voi", "nuc__voi", "voi"]
    assert picked["missing"] == {
        "er__voi": [finetune],
        "mito__voi": [finetune],
        "nuc__voi": [finetune],
        "voi": [BIG],
    }
    voi = next(row for row in picked["bests"] if row["criterion"] == "voi")
    assert voi["runs"][0] is None and voi["runs"][1]["iteration"] == pack.weights.retrieve_best(
        finetune, "voi"
    )
    assert voi["winner"] == 1 and voi["higher_is_better"] is False
    assert picked["groups"][0]["part"] == "run"


# ------------------------------------------------------------------ a real server: 414


@pytest.fixture(scope="module")
def served(demo_dir, tmp_path_factory):
    target = tmp_path_factory.mktemp("served") / "registry"
    shutil.copytree(demo_dir, target)
    proc, url = start_server(f"files:{target}", cache=tmp_path_factory.mktemp("serve-cache"))
    yield url
    stop_server(proc)


def test_a_100_kb_url_gets_a_414_not_a_reset(served):
    host, port = re.match(r"http://([\d.]+):(\d+)/", served).groups()
    request = b"GET /?name=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as s:
        for i in range(0, len(request), 4096):  # as a client sends it: in pieces
            s.sendall(request[i : i + 4096])
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 414 ")
    assert b"longer than 32 KiB" in answer
