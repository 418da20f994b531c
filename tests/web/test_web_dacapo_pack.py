"""Config pages of datasets and arrays over the registry DaCapo 0.3.5 wrote, on files and mongomock.

DaCapo's files layout has no datasets folder (they only exist inside datasplits); its MongoDB
layout stores them in their own collection. Arrays are stored on both.
"""

from __future__ import annotations

from urllib.parse import quote

from dacapo_store.configs import DummyArrayConfig, DummyDatasetConfig

DUMMY_RUNS = [  # the runs whose datasplit holds lab_dummy_dataset (and its lab_dummy_array)
    "lab_dist_mito_ints",
    "lab_dummy_split_onehot_lab_unet2d_lab_dummy_trainer_lab__2",
    "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0",
]
TIFF_RUNS = [  # lab_tiff_raw sits in lab_jrc_hela-2_split, wrapped by other arrays
    "lab_inner_mito",  # on MongoDB two documents (repetitions 0 and 1), one run name
    "lab_jrc_hela-2_split_pretrained_lab_unet_lab_132_gp_simple_lab__0",
    "lab_lsd_er",
]


def runs_of(client, kind: str, name: str) -> list[str]:
    response = client.get(f"/api/v1/configs/{kind}/{quote(name, safe='')}")
    assert response.status_code == 200, response.text
    page = response.json()["runs"]
    assert page["total"] == len(page["rows"])
    return sorted(row["name"] for row in page["rows"])


def test_an_array_used_by_several_runs_lists_them_all(pack):
    assert runs_of(pack, "arrays", "lab_dummy_array") == DUMMY_RUNS
    assert runs_of(pack, "arrays", "lab_tiff_raw") == TIFF_RUNS  # nested two arrays deep


def test_a_dataset_used_by_several_runs_lists_them_all(pack):
    if pack.backend == "files":
        # DaCapo's files store has no datasets: a dataset only inside datasplits has a page all
        # the same (issue 18 item 6), its document as the first run holding it has it
        page = pack.get("/api/v1/configs/datasets/lab_dummy_dataset").json()
        assert page["held_by"] == DUMMY_RUNS[0] and page["metadata"] is None
        assert page["document"]["name"] == "lab_dummy_dataset"
        assert runs_of(pack, "datasets", "lab_dummy_dataset") == DUMMY_RUNS
        pack.configs.store(pack.configs.retrieve_run_config(DUMMY_RUNS[0]).datasplit_config.train_configs[0])
        assert pack.get("/api/v1/configs/datasets/lab_dummy_dataset").json()["held_by"] is None
    assert runs_of(pack, "datasets", "lab_dummy_dataset") == DUMMY_RUNS


def test_an_array_named_with_slashes_has_a_page(pack):
    name = "jrc_hela-2_recon-1/labels/groundtruth/crop1/[mito&er]_mito_er_nuc_8nm_gt"
    response = pack.get(f"/api/v1/configs/arrays/{quote(name, safe='')}")
    assert response.status_code == 200
    # DaCapo's files store refused to store it on its own: its page shows it inside a run
    assert (response.json()["held_by"] is not None) is (pack.backend == "files")
    assert len(runs_of(pack, "arrays", name)) == 3
    assert pack.get(f"/configs/arrays/{quote(name, safe='')}").status_code == 200


def test_the_html_page_lists_the_runs(pack):
    page = pack.get("/configs/arrays/lab_tiff_raw")
    assert page.status_code == 200
    for run in TIFF_RUNS:
        assert f'href="/runs/{quote(run, safe="")}"' in page.text
    assert "No stored run uses it." not in page.text


def test_a_dataset_no_run_uses_shows_an_empty_list_and_an_unknown_one_is_a_404(pack):
    pack.configs.store(DummyDatasetConfig("lab_unused_dataset", DummyArrayConfig("lab_unused_array")))
    assert runs_of(pack, "datasets", "lab_unused_dataset") == []
    pack.configs.store(DummyArrayConfig("lab_unused_array"))
    assert runs_of(pack, "arrays", "lab_unused_array") == []
    assert "No stored run uses it." in pack.get("/configs/datasets/lab_unused_dataset").text
    unknown = pack.get("/api/v1/configs/datasets/lab_no_such_dataset")
    assert unknown.status_code == 404 and "lab_no_such_dataset" in unknown.json()["error"]["message"]
    assert pack.get("/configs/arrays/lab_no_such_array").status_code == 404


def test_the_datasets_tab_lists_the_datasets_inside_the_runs_datasplits(pack):
    """DaCapo's files layout has no datasets folder: the tab lists those the runs hold (issue 18)."""
    page = pack.get("/api/v1/configs/datasets", params={"limit": 500}).json()
    assert page["total"] == 10  # the pack's datasets, on both layouts
    assert "lab_dummy_dataset" in page["names"]
    assert ("lab_dummy_dataset" in page["nested_only"]) is (pack.backend == "files")
    html = pack.get("/configs/datasets").text
    assert 'href="/configs/datasets/lab_dummy_dataset"' in html
    unknown = pack.get("/api/v1/configs/datasets/lab_nowhere")
    assert unknown.status_code == 404 and "inside a run" in unknown.json()["error"]["message"]


def test_a_dacapo_start_by_dataset_and_criterion_shows_its_iteration(pack):
    run = "lab_jrc_hela-2_split_pretrained_lab_unet_lab_132_gp_simple_lab__0"
    (up,) = pack.get(f"/api/v1/runs/{quote(run, safe='')}").json()["lineage"]["up"]
    assert up["criterion"].endswith("/mito__dice")
    dataset = up["criterion"].rsplit("/", 1)[0]
    assert up["iteration"] == pack.weights.retrieve_best(up["run"], "mito__dice", dataset) == 10


def test_dacapo_best_files_are_labelled_as_dacapos_with_the_computed_best_beside(pack):
    run = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"
    page = pack.get(f"/api/v1/runs/{quote(run, safe='')}").json()
    blipp = next(b for b in page["bests"] if b["criterion"] == "blipp_score")
    assert blipp["higher_is_better"] is False
    assert blipp["all"]["pinned"] and blipp["all"]["pinned_by"] == "dacapo"
    assert blipp["all"]["iteration"] == 6 and blipp["all"]["computed"]["iteration"] == 3
    html = pack.get(f"/runs/{quote(run, safe='')}").text
    assert "DaCapo best</span>" in html and "computed 0.03323 @3" in html
    assert "pinned by hand" not in html
    # a pin of ours is a pin
    pack.weights.store_best(run, 9, "lab_dummy_dataset_b", "blipp_score")
    blipp = next(
        b
        for b in pack.get(f"/api/v1/runs/{quote(run, safe='')}").json()["bests"]
        if b["criterion"] == "blipp_score"
    )
    assert blipp["all"]["iteration"] == 9 and blipp["all"]["pinned_by"] == "pin"


def test_an_array_a_demo_run_lists_resolves(client):
    """`/configs/arrays/train_raw` was a 404 on the demo although the run lists it (issue 18)."""
    run = client.get("/api/v1/runs/blobs_baseline").json()
    assert "train_raw" in run["summary"]["uses"]["arrays"]
    page = client.get("/configs/arrays/train_raw")
    assert page.status_code == 200 and "blobs_baseline" in page.text
    assert client.get("/api/v1/configs/arrays/train_raw").json()["document"]["name"] == "train_raw"
