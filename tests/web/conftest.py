"""The dashboard's fixtures: the demo registry (built once per session) on files and on mongomock."""

from __future__ import annotations

import shutil

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
        c.backend, c.configs = request.param, configs
        yield c
