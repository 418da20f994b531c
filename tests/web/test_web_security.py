"""The token rules, the login cookie, and a MongoDB password that never shows."""

from __future__ import annotations

import mongomock
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from dacapo_store.cli import app as cli
from dacapo_store.cli.serve import is_loopback
from dacapo_store.config_store import MongoConfigStore
from dacapo_store.web import create_app
from dacapo_store.weights import GridFSWeightsStore

from .conftest import demo_stores

TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def locked(demo_dir, tmp_path):
    stores = demo_stores("files", demo_dir, tmp_path)
    with TestClient(create_app(stores.configs, stores.weights, token=TOKEN, recheck=0)) as c:
        yield c


@pytest.mark.parametrize("path", ["/api/v1/runs", "/healthz", "/api/v1/openapi.json", "/static/charts.js"])
def test_with_a_token_set_every_request_needs_it(locked, path):
    response = locked.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["error"]["message"]


def test_a_wrong_token_gets_a_401_and_the_right_one_gets_in(locked):
    wrong = locked.get("/api/v1/runs", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = locked.get("/api/v1/runs", headers={"authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and right.json()["total"] == 2


def test_a_browser_without_the_token_is_sent_to_the_login_page(locked):
    response = locked.get("/runs/blobs_baseline?x=1", headers={"accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fruns%2Fblobs_baseline%3Fx%3D1"
    login = locked.get(response.headers["location"])
    assert login.status_code == 200 and 'name="token"' in login.text


def test_logging_in_sets_an_httponly_strict_cookie_that_is_not_the_token(locked):
    bad = locked.post("/login?next=/leaderboard", data={"token": "guess"}, follow_redirects=False)
    assert bad.status_code == 401 and "wrong token" in bad.text and "set-cookie" not in bad.headers
    good = locked.post("/login?next=/leaderboard", data={"token": TOKEN}, follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/leaderboard"
    cookie = good.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert TOKEN not in cookie
    assert locked.get("/api/v1/runs").status_code == 200  # the client keeps the cookie


def test_login_never_redirects_off_site(locked):
    response = locked.post("/login?next=//evil.example/x", data={"token": TOKEN}, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_serve_refuses_a_non_loopback_address_without_a_token(monkeypatch, demo_dir):
    monkeypatch.delenv("DACAPO_STORE_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["--store", f"files:{demo_dir}", "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "give a --token" in result.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_a_mongodb_password_never_appears_in_a_page_a_header_or_a_log(monkeypatch, caplog):
    server = mongomock.MongoClient()
    monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *a, **k: server)
    mongomock.gridfs.enable_gridfs_integration()
    uri = "mongodb://admin:hunter2@db.example:27017/?authSource=admin"
    configs, weights = MongoConfigStore(uri, "dash"), GridFSWeightsStore(uri, "dash")
    caplog.set_level("DEBUG")
    with TestClient(create_app(configs, weights, recheck=0)) as c:
        seen = []
        for path in (
            "/",
            "/healthz",
            "/api/v1/runs",
            "/runs/nope",
            "/api/v1/runs/nope",
            "/leaderboard",
            "/configs/tasks",
            "/api/v1/compare?runs=a,b",
        ):
            response = c.get(path)
            seen += [response.text, str(response.headers)]
        assert "db.example" in "".join(seen)  # the store is named ...
        assert "hunter2" not in "".join(seen) + caplog.text  # ... without its password
