"""Fixtures of the weights suites: every weights backend, a small CNN trained a few steps."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path

import mongomock
import mongomock.gridfs
import pytest
import torch
from bson import ObjectId
from conftest import MONGO_URI, NO_MONGO
from strict_mongo import StrictMongoClient
from torch import nn

from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

mongomock.gridfs.enable_gridfs_integration()
# tiny models: one thread avoids thread-pool contention on small, busy machines
torch.set_num_threads(1)

REAL_MONGO = pytest.param("mongodb", marks=pytest.mark.skipif(not MONGO_URI, reason=NO_MONGO))
BACKENDS = ["files", "mongomock", REAL_MONGO]
#: backends another process can reach (mongomock lives in this process only)
SHARED_BACKENDS = ["files", REAL_MONGO]


def store_spec(backend: str, tmp_path) -> dict:
    """How to build a store of `backend`, as plain data a child process can use too."""
    if backend == "files":
        return {"backend": "files", "path": str(tmp_path / "runs")}
    if backend == "mongodb":
        return {"backend": "mongodb", "uri": MONGO_URI, "db": f"dacapo_store_test_{uuid.uuid4().hex[:12]}"}
    return {"backend": "mongomock", "client": StrictMongoClient(), "db": "dacapo_test"}


def build_store(spec: dict):
    """The store a spec describes."""
    if spec["backend"] == "files":
        return LocalWeightsStore(spec["path"])
    if spec["backend"] == "mongodb":
        return GridFSWeightsStore(spec["uri"], spec["db"])
    return GridFSWeightsStore(client=spec["client"], db_name=spec["db"])


def _cleanup(spec: dict) -> None:
    if spec["backend"] == "mongodb":
        store = build_store(spec)
        store.client.drop_database(spec["db"])
        store.close()


@pytest.fixture(params=BACKENDS)
def backend_spec(request, tmp_path):
    """A spec of a fresh, empty weights store of each backend."""
    spec = store_spec(request.param, tmp_path)
    yield spec
    _cleanup(spec)


@pytest.fixture
def backend_spec_factory(tmp_path):
    """Make specs of fresh stores of given backends; real-server databases are dropped afterwards."""
    made = []

    def make(backend: str) -> dict:
        made.append(store_spec(backend, tmp_path))
        return made[-1]

    yield make
    for spec in made:
        _cleanup(spec)


@pytest.fixture
def store(backend_spec):
    """A fresh, empty weights store of each backend."""
    return build_store(backend_spec)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_spec(request, tmp_path):
    """A spec of a fresh weights store that child processes can open too."""
    spec = store_spec(request.param, tmp_path)
    yield spec
    _cleanup(spec)


class SmallCNN(nn.Module):
    """A backbone of two conv layers with batch norm, and a 1x1 conv head."""

    def __init__(self, out_channels: int = 2) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Conv2d(8, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def trained(seed: int = 0, out_channels: int = 2, steps: int = 3) -> tuple[SmallCNN, torch.optim.Optimizer]:
    """A SmallCNN and its Adam optimizer after a few steps (so the optimizer has state)."""
    torch.manual_seed(seed)
    model = SmallCNN(out_channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(2, 1, 16, 16)).square().mean().backward()
        optimizer.step()
    return model, optimizer


def _bytes(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


def assert_same_state(actual, expected) -> None:
    """Equal keys in order, every tensor equal bit for bit (dtype, shape, bytes) and on the CPU."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor)
        assert actual.device.type == "cpu"
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape)
        assert torch.equal(_bytes(actual), _bytes(expected))
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_same_state(actual[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_same_state(a, e)
    else:
        assert actual == expected


def store_reading_with(spec: dict, namespace: str, action) -> GridFSWeightsStore:
    """A GridFS store of `spec` whose next find on `namespace` (e.g. "weights.chunks") runs `action` first.

    On the strict double this is its `before_find` hook; on a real server, a command listener of
    a client of our own (the action uses another client, as another process would).
    """
    if spec["backend"] == "mongomock":
        client = spec["client"]
        client.before_find.setdefault(f"{spec['db']}.{namespace}", []).append(action)
        return GridFSWeightsStore(client=client, db_name=spec["db"])
    from pymongo import MongoClient, monitoring

    pending = [action]

    class Listener(monitoring.CommandListener):
        def started(self, event):
            if event.command_name == "find" and event.command.get("find") == namespace and pending:
                pending.pop()()

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    client = MongoClient(spec["uri"], event_listeners=[Listener()])
    return GridFSWeightsStore(client=client, db_name=spec["db"])


#: a stats file DaCapo 0.3.5 wrote (a pickled list of dicts)
DACAPO_STATS = next(
    (Path(__file__).parents[1] / "data" / "dacapo-0.3.5" / "files" / "stats" / "training_stats").iterdir()
)


def age_our_stats(store, run: str, when: datetime) -> None:
    """Make our stats of `run` look written at `when`: the journal's mtime, or its newest document
    (the highest iteration) stored again under an ObjectId of that time."""
    if isinstance(store, LocalWeightsStore):
        journal = store.basedir / run / "checkpoints" / "training_stats.jsonl"
        os.utime(journal, (when.timestamp(), when.timestamp()))
        return
    collection = store.db["weights_training_stats"]
    newest = collection.find_one({"run_name": run}, sort=[("iteration", -1)])
    collection.delete_one({"_id": newest["_id"]})
    collection.insert_one({**newest, "_id": ObjectId.from_datetime(when)})


def dacapo_stats_written_at(store, run: str, when: datetime) -> None:
    """DaCapo's own training stats of `run`, written at `when`: its stats file, or its collection."""
    if isinstance(store, LocalWeightsStore):
        path = store.basedir / "stats" / "training_stats" / run
        path.parent.mkdir(parents=True)
        shutil.copyfile(DACAPO_STATS, path)
        os.utime(path, (when.timestamp(), when.timestamp()))
    else:
        store.db["training_stats"].insert_one(
            {"_id": ObjectId.from_datetime(when), "run_name": run, "iteration": 3, "loss": 0.5, "time": 0.2}
        )
