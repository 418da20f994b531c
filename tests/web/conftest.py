"""The dashboard's fixtures: the demo registry (built once per session) on files and on mongomock,
and the browser tests' Chromium, whose every tab fails its test on a request that leaves 127.0.0.1."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import mongomock
import mongomock.gridfs
import pytest
from click.testing import CliRunner

from dacapo_store.cli import app as cli
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.config_store.transfer import copy_documents
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

RUNS = ["blobs_baseline", "blobs_finetune"]


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """`dacapo-store demo DIR`, once: two runs, one trained with five scored checkpoints."""
    path = tmp_path_factory.mktemp("demo") / "registry"
    result = CliRunner().invoke(cli, ["demo", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return path


class Stores:
    """A config store and a weights store holding a copy of the demo registry."""

    def __init__(self, backend: str, configs, weights, server=None) -> None:
        self.backend = backend
        self.configs = configs
        self.weights = weights
        self.server = server


def demo_stores(backend: str, demo_dir, tmp_path, server=None) -> Stores:
    if backend == "files":
        target = tmp_path / "registry"
        shutil.copytree(demo_dir, target)
        return Stores(backend, FileConfigStore(target / "configs"), LocalWeightsStore(target))
    mongomock.gridfs.enable_gridfs_integration()
    server = server or mongomock.MongoClient()
    configs = MongoConfigStore(client=server, db_name="dash")
    weights = GridFSWeightsStore(client=server, db_name="dash")
    assert copy_documents(FileConfigStore(demo_dir / "configs"), configs).ok
    source = LocalWeightsStore(demo_dir)
    for run in RUNS:
        for iteration in source.iterations(run):
            w = source.retrieve_weights(run, iteration)
            weights.store_weights(run, iteration, w.model, w.optimizer)
        for criterion, by_dataset in source.retrieve_validation_scores(run).items():
            for dataset, values in by_dataset.items():
                for iteration, value in values.items():
                    weights.store_validation_scores(run, iteration, {criterion: value}, dataset=dataset)
        weights.store_training_stats(run, source.retrieve_training_stats(run))
    return Stores(backend, configs, weights, server)


@pytest.fixture(params=["files", "mongomock"])
def stores(request, demo_dir, tmp_path) -> Stores:
    return demo_stores(request.param, demo_dir, tmp_path)


@pytest.fixture
def client(stores):
    """A test client of the dashboard over the demo registry; it rechecks the stores on every request."""
    from starlette.testclient import TestClient

    from dacapo_store.web import create_app

    with TestClient(create_app(stores.configs, stores.weights, recheck=0)) as c:
        c.stores = stores
        yield c


@pytest.fixture(params=["files", "mongomock"])
def pack(request, tmp_path):
    """A dashboard over a copy of the DaCapo 0.3.5 pack: DaCapo's files layout, or its MongoDB one."""
    import mongomock
    from legacy.conftest import DB_NAME, dacapo_files_in, load_mongo
    from starlette.testclient import TestClient

    from dacapo_store.web import create_app

    if request.param == "files":
        root = dacapo_files_in(tmp_path)
        configs, weights = FileConfigStore(root / "configs"), LocalWeightsStore(root)
    else:
        root = dacapo_files_in(tmp_path, with_stats_and_configs=False)
        client = mongomock.MongoClient()
        load_mongo(client)
        configs = MongoConfigStore(client=client, db_name=DB_NAME)
        weights = GridFSWeightsStore(client=client, db_name=DB_NAME, dacapo_runs_dir=root)
    with TestClient(create_app(configs, weights, recheck=0)) as c:
        c.backend, c.configs, c.weights = request.param, configs, weights
        yield c


# ------------------------------------------------------------------ the browser tests

IN_CI = os.environ.get("CI", "").lower() == "true"


def _browser_missing() -> str | None:
    from dacapo_store.web.browser import CHROMIUM

    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser_ready():
    """Outside CI a missing Chromium or Playwright skips the browser tests; in CI it fails them."""
    reason = _browser_missing()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)


def start_server(store: str, *extra: str, cache: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`dacapo-store serve --port 0` (its per-user cache in `cache`, never ~/.cache); returns once
    it prints the URL it listens on."""
    cache = cache or Path(tempfile.mkdtemp(prefix="serve-cache-"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from dacapo_store.cli import main; main()",
            "--store",
            store,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "XDG_CACHE_HOME": str(cache)},
    )
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    line = ""
    if selector.select(timeout=60):
        line = proc.stdout.readline()
    match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"serve did not start: {line!r} {proc.stderr.read()!r}")
    return proc, match.group(1)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def chromium(browser_ready, tmp_path_factory):
    """One headless Chromium per module. Every request it makes to a host other than 127.0.0.1
    is refused and recorded, and so is every tab a page opens by itself: `page` fails on either."""
    from playwright.sync_api import sync_playwright

    from dacapo_store.web.browser import launch

    with sync_playwright() as p:
        context = launch(
            p,
            tmp_path_factory.mktemp("chromium-profile"),
            viewport={"width": 1400, "height": 900},
            accept_downloads=True,
        )
        context.outside = []

        def guard(route):
            url = route.request.url
            if urlsplit(url).hostname != "127.0.0.1":
                context.outside.append(url)
                route.abort()
            else:
                route.continue_()

        context.route("**/*", guard)
        yield context
        context.close()


@pytest.fixture
def page(chromium):
    """A tab whose console errors (CSP violations included), page errors, requests off the
    machine and opened tabs fail the test."""
    before = list(chromium.pages)
    tab = chromium.new_page()
    errors: list[str] = []
    tab.on(
        "console",
        lambda m: errors.append(f"console: {m.text} {m.location.get('url')}") if m.type == "error" else None,
    )
    tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    yield tab
    popups = [t for t in chromium.pages if t is not tab and t not in before]
    opened = [t.url for t in popups]
    for t in [tab, *popups]:
        t.close()
    outside = list(chromium.outside)
    chromium.outside.clear()
    assert errors == []
    assert outside == [], "requests left 127.0.0.1"
    assert opened == [], "the page opened tabs"
