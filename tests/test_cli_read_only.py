"""An account with the `read` role runs every reading command (issue: they crashed on createIndexes)."""

from __future__ import annotations

import logging

import mongomock.gridfs
import pytest
import torch
from click.testing import CliRunner
from conftest import full_run, no_options
from strict_mongo import StrictMongoClient

from dacapo_store.cli import app
from dacapo_store.config_store import MongoConfigStore
from dacapo_store.mongo import shared_clients
from dacapo_store.weights import GridFSWeightsStore

mongomock.gridfs.enable_gridfs_integration()


@pytest.fixture
def read_only_registry(monkeypatch, tmp_path):
    """A registry filled by a readWrite account; the CLI connects as a read-only one."""
    server = StrictMongoClient()
    MongoConfigStore(client=server, db_name="reg").store_run_config(full_run("run", start_config=None))
    weights = GridFSWeightsStore(client=server, db_name="reg")
    weights.store_weights("run", 1, {"w": torch.ones(2)})
    weights.store_validation_scores("run", 1, {"voi": 0.5})
    monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *a, **k: server.sibling(read_only=True))
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    monkeypatch.setenv("DACAPO_WEIGHTS_STORE", "gridfs")
    yield ["--store", "mongodb://reader:pw@db.example.org:27017", "--db", "reg"]
    assert shared_clients() == []


@pytest.mark.parametrize(
    ("command", "shows"),
    [
        (["info"], "answers"),
        (["list", "runs"], "run"),
        (["show", "runs", "run"], "name: run"),
        (["check"], ""),
        (["weights", "list", "run"], "voi"),
        (["weights", "best", "run", "voi"], "1"),
    ],
)
def test_a_read_only_account_runs_reading_commands(read_only_registry, command, shows, caplog):
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(app, [*read_only_registry, *command], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert shows in result.stdout
    assert not [r for r in caplog.records if "index" in r.getMessage()]


def test_a_read_only_account_exports(read_only_registry, tmp_path):
    result = CliRunner().invoke(app, [*read_only_registry, "export", str(tmp_path / "backup")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "backup" / "configs" / "runs").is_dir()
