"""The dashboard in real headless Chromium, against `dacapo-store serve` run as a subprocess.

Outside CI these tests skip (with the reason) when Chromium or Playwright is missing; with CI=true
a missing browser fails them. The browser fixtures (conftest.py) fail a test on a console error or
on any request to a host other than 127.0.0.1.
"""

from __future__ import annotations

import shutil

import pytest

from .conftest import RUNS, start_server, stop_server

BASE, FINETUNE = RUNS


@pytest.fixture(scope="module")
def server(browser_ready, demo_dir, tmp_path_factory):
    target = tmp_path_factory.mktemp("browser") / "registry"
    shutil.copytree(demo_dir, target)
    proc, url = start_server(f"files:{target}", cache=tmp_path_factory.mktemp("serve-cache"))
    yield url.rstrip("/")
    stop_server(proc)


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


def test_clicking_a_run_opens_its_page_with_one_chart_per_metric(page, server):
    page.goto(server + "/")
    with page.expect_navigation():
        page.click(f"a.run-link:text('{BASE}')")
    assert page.url.endswith(f"/runs/{BASE}")
    assert BASE in page.locator("h1").inner_text()
    page.wait_for_selector("[data-chart=run-metric][data-metric=loss][data-ready=true]")
    charts = page.locator("[data-chart=run-metric]")
    assert charts.evaluate_all("els => els.map(e => e.dataset.metric)") == ["f1_score", "loss"]
    for metric in ("f1_score", "loss"):  # each on the one dataset 'validate'
        chart = f"[data-chart=run-metric][data-metric={metric}]"
        page.wait_for_selector(chart + "[data-ready=true]")
        assert page.locator(chart + " .scatterlayer .trace").count() == 1
        assert page.locator(chart + " .legendtext").all_text_contents() == [metric]


def test_hovering_a_point_shows_its_iteration_and_value(page, server):
    page.goto(server + f"/runs/{BASE}")
    chart = "[data-chart=run-metric][data-metric=f1_score]"
    page.wait_for_selector(chart + "[data-ready=true]")
    point = page.locator(chart + " .scatterlayer .trace").first.locator("path.point").last
    point.hover(force=True)
    page.wait_for_selector(chart + " .hoverlayer .hovertext")
    text = page.locator(chart + " .hoverlayer").text_content()
    assert "f1_score on validate" in text and "iteration 500" in text and "value" in text


def test_compare_shows_the_fields_that_differ(page, server):
    page.goto(server + "/")
    for run in RUNS:
        page.check(f"input[name=runs][value='{run}']")
    with page.expect_navigation():
        page.click("#compare button")
    assert "/compare?" in page.url
    diff = " ".join(page.locator("table.diff").all_inner_texts())
    assert "architecture_config.name" in diff and "tiny_cnn_2" in diff and "tiny_cnn_3" in diff
    assert "start_config.run" in diff
    # the two runs share no scored criterion (the fine-tune has none): the picker says so
    assert "share no criterion" in page.locator("main").inner_text()


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
    page.wait_for_selector("[data-chart=run-metric][data-metric=loss][data-ready=true]")
