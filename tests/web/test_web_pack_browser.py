"""The dashboard in Chromium on what DaCapo 0.3.5 wrote: runs with 63 criteria, long generated
names and several validation datasets (a copy of tests/data/dacapo-0.3.5/files).

One server for the module. The browser fixtures (conftest.py) fail a test on a console error, on
a tab the page opens, and on any request to a host other than 127.0.0.1.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

import attrs
import pytest
from legacy.conftest import dacapo_files_in

from dacapo_store.config_store import FileConfigStore
from dacapo_store.weights import LocalWeightsStore

from .conftest import start_server, stop_server

BIG = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"
FINETUNE = (
    "finetune_hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0_"
    "hela_semantic_mito&er&nuc_8nm_affs_lab_tiny_unet_lab_gp_plain_lab__0"
)
DUMMY = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"
BOLD, LINK = "<b>ds</b>", '<a href="https://example.com/x">click</a>'
MARKUP_RUN = "<b>run"
MANY = [f"extra_dataset_{i:02}" for i in range(14)]  # blipp_score on 17 datasets: more than 12 lines
PAGES = {
    "runs": "/",
    "run": f"/runs/{quote(BIG, safe='')}",
    "compare": "/compare?" + urlencode([("runs", BIG), ("runs", FINETUNE), ("runs", DUMMY)]),
    "config": "/configs/datasplits/" + quote("hela_semantic_mito&er&nuc_8nm", safe=""),
    "leaderboard": "/leaderboard",
    "runs with six metric columns": "/?"
    + urlencode(
        [
            ("col", c)
            for c in (
                "mito__false_negative_rate_with_tolerance",
                "nuc__mean_false_positive_distance_clipped",
                "er__precision_with_tolerance",
                "mito__dice",
                "voi",
                "blipp_score",
            )
        ]
        + [("where", "datasplit_config.validate_configs.name ~ hela")]
    ),
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """The pack, plus registry strings holding markup and a chart with more than 12 lines."""
    root = dacapo_files_in(tmp_path_factory.mktemp("pack"))
    configs, weights = FileConfigStore(root / "configs"), LocalWeightsStore(root)
    for i, dataset in enumerate([BOLD, LINK, *MANY]):
        weights.store_validation_scores(DUMMY, 3, {"blipp_score": 0.1 + i / 100}, dataset=dataset)
        weights.store_validation_scores(DUMMY, 6, {"blipp_score": 0.2 + i / 100}, dataset=dataset)
    configs.store_run_config(attrs.evolve(configs.retrieve_run_config(DUMMY), name=MARKUP_RUN))
    weights.store_validation_scores(MARKUP_RUN, 1, {"blipp_score": 0.5}, dataset=BOLD)
    return root


@pytest.fixture(scope="module")
def server(browser_ready, registry, tmp_path_factory):
    proc, url = start_server(
        f"files:{registry}", "--live", "0.3", cache=tmp_path_factory.mktemp("serve-cache")
    )
    yield url.rstrip("/")
    stop_server(proc)


CHARTS_FIT = """() => [...document.querySelectorAll('.js-plotly-plot')].every(p =>
    p.querySelector('svg.main-svg').getBoundingClientRect().width <= p.getBoundingClientRect().width + 1)"""


def charts_ready(page) -> None:
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-chart]')].every(e => e.dataset.ready === 'true')"
    )


def drawn_lines(page) -> list[int]:
    return page.locator(".js-plotly-plot").evaluate_all(
        "plots => plots.map(p => p.querySelectorAll('.scatterlayer .trace').length)"
    )


def test_no_page_scrolls_sideways_at_1400_or_800_px(page, server):
    for name, path in PAGES.items():
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(server + path)
        charts_ready(page)
        for width in (1400, 800):
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_function(CHARTS_FIT)  # plotly redraws a chart for its new width
            scroll, client = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            assert scroll <= client, f"{name} at {width} px is {scroll} px wide"


def test_a_run_page_with_every_metric_stays_short_with_at_most_12_lines_a_chart(page, server):
    page.goto(server + PAGES["run"])
    charts_ready(page)  # by default: one metric (dice), its three channels on two datasets
    assert page.locator("[data-chart=run-metric]").evaluate_all("e => e.map(c => c.dataset.metric)") == [
        "dice"
    ]
    assert drawn_lines(page)[0] == 6
    every = [
        f"metric={m}"
        for m in page.locator("input[data-toggle=metric]").evaluate_all("e => e.map(i => i.value)")
    ]
    page.goto(server + PAGES["run"] + "?" + "&".join(every))
    charts_ready(page)
    assert len(every) == 21 and page.locator("[data-chart=run-metric]").count() == 21
    assert max(drawn_lines(page)) <= 12
    height = page.evaluate("() => document.documentElement.scrollHeight")
    assert height < 8000, f"the run page is {height} px tall"
    # the checkpoints table shows the chosen criteria; the best table has one row each
    assert page.locator("#bests-table tbody tr").count() == 63


def test_a_chart_shows_12_lines_and_the_rest_one_click_away(page, server):
    page.goto(server + f"/runs/{quote(DUMMY, safe='')}")  # two criteria: both charted
    charts_ready(page)
    chart = "[data-chart=run-metric][data-metric=blipp_score]"
    assert page.locator(chart + " .scatterlayer .trace").count() == 12
    assert page.locator(chart + " .legendtext").count() == 17  # the hidden ones are in the legend
    page.click("button.more")
    page.wait_for_function(f"() => document.querySelectorAll('{chart} .scatterlayer .trace').length === 17")


def test_the_picker_keeps_its_choice_in_the_url(page, server):
    page.goto(server + PAGES["run"])
    charts_ready(page)
    page.click("details.picker summary")
    page.check("input[data-toggle=metric][value=hausdorff]")
    page.uncheck("input[name=criterion][value=er__dice]")
    with page.expect_navigation():
        page.click("form[data-picker] button[type=submit]")
    assert "metric=hausdorff" in page.url and "criterion=mito__dice" in page.url
    charts_ready(page)
    assert page.locator("[data-chart=run-metric]").evaluate_all("e => e.map(c => c.dataset.metric)") == [
        "dice",
        "hausdorff",
    ]
    header = page.locator("#checkpoints-table thead").inner_text()
    assert "nuc__hausdorff" in header and "mito__dice" in header and "er__dice" not in header
    page.reload()
    assert page.locator("input[name=criterion][value=er__hausdorff]").is_checked()
    assert not page.locator("input[name=criterion][value=er__dice]").is_checked()


def test_no_request_leaves_the_machine_whatever_modebar_button_is_clicked(page, server):
    page.goto(server + PAGES["run"])
    charts_ready(page)
    chart = page.locator(".js-plotly-plot").first
    chart.hover()
    buttons = chart.locator(".modebar-btn")
    titles = buttons.evaluate_all("bs => bs.map(b => b.getAttribute('data-title'))")
    assert len(titles) == 7 and not any("Share" in t or "Chart Studio" in t for t in titles), titles
    assert chart.locator("a.modebar-btn[href], .modebar a[href]").count() == 0  # no plotly logo
    for i, title in enumerate(titles):
        chart.hover()
        if title.startswith("Download"):
            with page.expect_download():
                buttons.nth(i).click()
        else:
            buttons.nth(i).click()
    # the page fixture fails the test on any request to a host other than 127.0.0.1


def test_markup_in_registry_strings_stays_text_in_legends_and_hover(page, server):
    page.goto(server + f"/runs/{quote(DUMMY, safe='')}")  # its datasets include BOLD and LINK
    charts_ready(page)
    plots = ".js-plotly-plot"
    legend = page.locator(f"{plots} .legendtext").all_text_contents()
    assert any(BOLD in text for text in legend), legend
    assert any('<a href="https:/' in text and text.endswith(">click</a>") for text in legend), legend
    assert page.locator(f"{plots} svg a, {plots} .legendtext tspan[style*=bold]").count() == 0
    chart = page.locator(plots).first
    chart.evaluate(  # hover the first point of the LINK dataset's line
        "el => Plotly.Fx.hover(el, [{pointNumber: 0, "
        "curveNumber: el.data.findIndex(t => (t.meta || t.name).includes('href'))}])"
    )
    page.wait_for_selector(f"{plots} .hoverlayer .hovertext")
    hover = chart.locator(".hoverlayer").text_content()
    assert LINK in hover and "blipp_score" in hover
    assert chart.locator(".hoverlayer a").count() == 0
    # a run named with markup: a compare chart's legend shows its name as text
    page.goto(server + "/compare?" + urlencode([("runs", DUMMY), ("runs", MARKUP_RUN)]))
    charts_ready(page)
    legend = page.locator("[data-chart=compare] .legendtext").all_text_contents()
    assert any(text.startswith(MARKUP_RUN) for text in legend), legend
    assert page.locator("[data-chart=compare] svg b").count() == 0


def test_a_compare_of_real_runs_charts_the_chosen_criteria_and_names_runs_without_scores(page, server):
    page.goto(server + PAGES["compare"])
    assert page.locator("[data-chart=compare]").count() == 0  # they share no criterion
    assert "share no criterion" in page.locator("main").inner_text()
    page.goto(server + PAGES["compare"] + "&metric=voi")
    charts_ready(page)
    criteria = page.locator("[data-chart=compare]").evaluate_all("e => e.map(c => c.dataset.criterion)")
    assert criteria == ["er__voi", "mito__voi", "nuc__voi", "voi"]
    missing = page.locator("figure:has([data-criterion=mito__voi]) .no-scores").inner_text()
    assert missing.startswith("No scores:") and "lab_dummy_train" in missing
    assert page.locator("#compare-bests tbody tr").count() == 4
    assert page.locator("#compare-bests td.winner").count() == 4


def test_the_runs_table_updates_itself_when_the_registry_changes(page, server, registry):
    polls: list[int] = []
    page.on("response", lambda r: polls.append(r.status) if r.url == server + "/" else None)
    page.goto(server + "/")
    page.evaluate("() => { window.notReloaded = true; }")
    for _ in range(2):  # while nothing changes, the page asks and gets a 304 without a body
        with page.expect_response(lambda r: r.url == server + "/" and r.status == 304):
            pass
    assert polls[0] == 200 and set(polls[1:]) == {304}
    configs = FileConfigStore(registry / "configs")
    configs.store_run_config(attrs.evolve(configs.retrieve_run_config(DUMMY), name="lab_live_new_run"))
    page.wait_for_selector("tr[data-run=lab_live_new_run]", timeout=15000)
    assert page.evaluate("() => window.notReloaded") is True


def test_dark_mode_follows_the_system_setting(page, server):
    page.emulate_media(color_scheme="dark")
    page.goto(server + PAGES["runs"])
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 24, 31)"
    page.emulate_media(color_scheme="light")
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"


def test_the_runs_table_shows_a_best_for_every_finished_run_by_default(page, server):
    page.goto(server + "/")
    headers = page.locator("#runs-table th.best-col").all_inner_texts()
    # blipp_score: two runs here have it (the dummy run and MARKUP_RUN); then one column for each
    # run of another task
    assert [h.split()[1].rstrip("↑↓") for h in headers] == ["blipp_score", "er__dice", "voi"]
    assert "(lower is better)" in page.locator("#runs-table th.best-col").first.get_attribute("title")
    finished = page.locator("#runs-table tbody tr:has(.status-finished)")
    assert finished.count() >= 3
    for i in range(finished.count()):
        cells = finished.nth(i).locator("td.best-col").all_inner_texts()
        assert any(c.strip() != "\u2013" for c in cells), finished.nth(i).get_attribute("data-run")


def test_long_metric_columns_are_cut_with_the_full_name_on_hover_and_the_search_box_searches(page, server):
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(server + PAGES["runs with six metric columns"])
    header = page.locator("#runs-table th.best-col").first
    assert header.get_attribute("title").startswith("best mito__false_negative_rate_with_tolerance")
    assert "col=mito__false_negative_rate_with_tolerance" in header.locator("a").get_attribute("href")
    clip = header.locator(".clip")
    assert clip.evaluate("e => e.scrollWidth > e.clientWidth")  # cut, with an ellipsis
    rows = page.locator("#runs-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.run)")
    assert BIG in rows and DUMMY not in rows
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(server + "/")
    page.fill("input.where >> nth=-1", "architecture_config.fmaps_out == 72")
    with page.expect_navigation():
        page.press("input.where >> nth=-1", "Enter")
    assert page.locator("#runs-table tbody tr").count() == 3
    assert page.locator("input.where >> nth=0").input_value() == "architecture_config.fmaps_out == 72"
