"""The dashboard in real headless Chromium, against `dacapo-store serve` run as a subprocess.

Outside CI these tests skip (with the reason) when Chromium or Playwright is missing; with CI=true
a missing browser fails them.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dacapo_store.web.browser import CHROMIUM, launch

from .conftest import RUNS

BASE, FINETUNE = RUNS
IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser_ready():
    reason = _missing()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)


def start_server(store: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """`dacapo-store serve --port 0`; returns once it prints the URL it listens on."""
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
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
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


@pytest.fixture(scope="module")
def server(browser_ready, demo_dir, tmp_path_factory):
    target = tmp_path_factory.mktemp("browser") / "registry"
    shutil.copytree(demo_dir, target)
    proc, url = start_server(f"files:{target}")
    yield url.rstrip("/")
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def chromium(browser_ready, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = launch(
            p, tmp_path_factory.mktemp("chromium-profile"), viewport={"width": 1400, "height": 900}
        )
        yield context
        context.close()


@pytest.fixture
def page(chromium):
    """A tab whose console errors (CSP violations included) and page errors fail the test."""
    tab = chromium.new_page()
    errors: list[str] = []
    tab.on(
        "console",
        lambda m: errors.append(f"console: {m.text} {m.location.get('url')}") if m.type == "error" else None,
    )
    tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    yield tab
    tab.close()
    assert errors == []


def run_rows(page) -> list[str]:
    return page.locator("#runs-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")


def test_the_runs_table_shows_the_demo_runs(page, server):
    page.goto(server + "/")
    assert run_rows(page) == RUNS
    assert page.locator("#runs-table").is_visible()


def test_a_name_filter_narrows_the_table(page, server):
    page.goto(server + "/")
    page.fill("input[name=name]", "finetune")
    with page.expect_navigation():
        page.press("input[name=name]", "Enter")
    assert run_rows(page) == [FINETUNE]
    assert "name=finetune" in page.url


def test_choosing_an_architecture_narrows_the_table_at_once(page, server):
    page.goto(server + "/")
    with page.expect_navigation():
        page.select_option("select[name=architecture]", "tiny_cnn_2")
    assert run_rows(page) == [BASE]


def test_clicking_a_run_opens_its_page_with_one_series_per_criterion(page, server):
    page.goto(server + "/")
    with page.expect_navigation():
        page.click(f"a.run-link:text('{BASE}')")
    assert page.url.endswith(f"/runs/{BASE}")
    assert BASE in page.locator("h1").inner_text()
    page.wait_for_selector("#scores-chart[data-ready=true]")
    series = page.locator("#scores-chart .scatterlayer .trace").count()
    assert series == 2  # f1_score and loss, each on the one dataset 'validate'
    legend = page.locator("#scores-chart .legendtext").evaluate_all("els => els.map(e => e.textContent)")
    assert sorted(legend) == ["f1_score / validate", "loss / validate"]


def test_hovering_a_point_shows_its_iteration_and_value(page, server):
    page.goto(server + f"/runs/{BASE}")
    page.wait_for_selector("#scores-chart[data-ready=true]")
    point = page.locator("#scores-chart .scatterlayer .trace").first.locator("path.point").last
    point.hover(force=True)
    page.wait_for_selector("#scores-chart .hoverlayer .hovertext")
    text = page.locator("#scores-chart .hoverlayer").text_content()
    assert "iteration 500" in text and "value" in text


def test_compare_shows_the_fields_that_differ(page, server):
    page.goto(server + "/")
    for run in RUNS:
        page.check(f"input[name=runs][value='{run}']")
    with page.expect_navigation():
        page.click("button[form=compare]")
    assert "/compare?" in page.url
    diff = page.locator("#diff-table").inner_text()
    assert "architecture_config.name" in diff and "tiny_cnn_2" in diff and "tiny_cnn_3" in diff
    assert "start_config.run" in diff
    page.wait_for_selector(".chart[data-criterion=f1_score][data-ready=true]")
    assert page.locator(".chart[data-ready=true]").count() == 2  # one overlay per criterion


def test_every_page_loads_without_a_console_error(page, server):
    for path in (
        "/leaderboard",
        "/configs/tasks",
        "/configs/tasks/blobs_fg",
        f"/runs/{FINETUNE}",
        "/api/v1/runs",
        "/login",
    ):
        page.goto(server + path)
    page.goto(server + f"/runs/{BASE}")
    page.wait_for_selector("#scores-chart[data-ready=true]")
