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
        # DaCapo's files store has no datasets: a dataset only inside datasplits has no page
        assert pack.get("/api/v1/configs/datasets/lab_dummy_dataset").status_code == 404
        pack.configs.store(pack.configs.retrieve_run_config(DUMMY_RUNS[0]).datasplit_config.train_configs[0])
    assert runs_of(pack, "datasets", "lab_dummy_dataset") == DUMMY_RUNS


def test_an_array_named_with_slashes_has_a_page_where_the_store_can_hold_it(pack):
    name = "jrc_hela-2_recon-1/labels/groundtruth/crop1/[mito&er]_mito_er_nuc_8nm_gt"
    if pack.backend == "files":  # DaCapo's files store refused it; so do we, with a message
        response = pack.get(f"/api/v1/configs/arrays/{quote(name, safe='')}")
        assert response.status_code == 400 and "'/'" in response.json()["error"]["message"]
        return
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
