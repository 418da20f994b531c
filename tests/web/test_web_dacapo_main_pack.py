"""The dashboard over the registry DaCapo's main branch wrote, on files and mongomock: every run and
config has its page and JSON twin, each config says its DaCapo dialect, and main's odd documents
(a run without a name, a torch module dumped into YAML) are shown or refused, never a crash."""

from __future__ import annotations

import shutil
from urllib.parse import quote

import mongomock
import mongomock.gridfs
import pytest
from starlette.testclient import TestClient
from test_dacapo_main_pack import DB, MANIFEST, MODULE_DUMP, PACK, load_mongo_pack

from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.web import create_app
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore


@pytest.fixture(params=["files", "mongomock"])
def main_site(request, tmp_path):
    if request.param == "files":
        shutil.copytree(PACK / "files" / "configs", tmp_path / "configs")
        configs, weights = FileConfigStore(tmp_path / "configs"), LocalWeightsStore(tmp_path)
    else:
        mongomock.gridfs.enable_gridfs_integration()
        client = mongomock.MongoClient()
        load_mongo_pack(client)
        configs = MongoConfigStore(client=client, db_name=DB)
        weights = GridFSWeightsStore(client=client, db_name=DB)
    with TestClient(create_app(configs, weights, recheck=0)) as c:
        c.backend, c.configs = request.param, configs
        yield c


def url(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


def test_every_run_is_listed_and_has_a_page(main_site):
    listed = main_site.get("/api/v1/runs?limit=500")
    assert listed.status_code == 200, listed.text
    names = {row["name"] for row in listed.json()["rows"]}
    expected = {e["name"] or "None" for e in MANIFEST["configs"] if e["kind"] == "runs"}
    assert names == expected
    for name in names:
        if main_site.backend != "files" and name in MANIFEST["same_name_runs"]:
            continue  # two documents under one name: a 400 saying so, as for DaCapo 0.3.5's
        page = main_site.get(url("api", "v1", "runs", name))
        assert page.status_code == 200, (name, page.text)
        assert main_site.get(url("runs", name)).status_code == 200, name


def test_every_config_page_says_its_dialect(main_site):
    seen = {}
    for kind in ("runs", "tasks", "architectures", "trainers", "datasplits", "datasets", "arrays"):
        for name in main_site.configs.names(kind):
            if main_site.backend == "files" and name == MODULE_DUMP:
                continue
            if main_site.backend != "files" and name in MANIFEST["same_name_runs"]:
                continue  # two documents under one name: no page picks one (as for DaCapo 0.3.5's)
            response = main_site.get(url("api", "v1", "configs", kind, name))
            assert response.status_code == 200, (kind, name, response.text)
            seen[(kind, name)] = response.json()["dialect"]
    assert set(seen.values()) == {"main", "either"}
    assert seen[("architectures", "unet_main_132")] == "main"
    assert seen[("tasks", "hot_er")] == "either"
    page = main_site.get("/configs/architectures/wrapped_main_jit")
    assert page.status_code == 200 and "a DaCapo main document" in page.text


def test_a_file_holding_a_dumped_torch_module_is_an_error_page_naming_it(main_site):
    if main_site.backend != "files":
        pytest.skip("MongoDB refused to store the module (bson can't encode it)")
    response = main_site.get(url("api", "v1", "configs", "architectures", MODULE_DUMP))
    assert 400 <= response.status_code < 500
    assert f"{MODULE_DUMP}.yaml: holds the Python tag" in response.json()["error"]["message"]


def test_main_runs_compare_with_0_3_5_style_ones_and_runs_without_parts(main_site):
    runs = [
        "main_architecture_only",
        "main_scratch_main_dummy_train_validate_dummy_task_main_dummy_arch_main_dummy_trainer_main__0",
        "main_scratch_cos7_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_wrapped_main_jit_gp_noise_main__0",
    ]
    response = main_site.get("/api/v1/compare?runs=" + ",".join(quote(r, safe="") for r in runs))
    assert response.status_code == 200, response.text
    fields = {row["field"] for row in response.json()["differences"]}
    assert "task_config.name" in fields or "task_config" in fields


def test_a_where_search_answers_as_the_config_store_does(main_site):
    """The dashboard's search (the catalog) and the store's (a MongoDB query, a files pass) agree
    on DaCapo main's runs."""
    for expression in ("learning_rate < 0.001", "task_config == null", "architecture_config.name ~ main"):
        found = main_site.get("/api/v1/runs", params={"where": expression, "limit": 500})
        assert found.status_code == 200, found.text
        names = sorted(row["name"] for row in found.json()["rows"])
        assert names and names == sorted(main_site.configs.retrieve_run_config_names(where=[expression]))
