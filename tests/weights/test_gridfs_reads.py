"""Reading checkpoints back from GridFS: big blobs whole, blobs deleted, replaced or damaged mid-read."""

from __future__ import annotations

import pytest
import torch

from dacapo_store.errors import CorruptWeightsError, WeightsNotFoundError

from .conftest import REAL_MONGO, assert_same_state, build_store, store_reading_with, trained

GRIDFS = ["mongomock", REAL_MONGO]


@pytest.fixture(params=GRIDFS)
def gridfs_spec(request, backend_spec_factory):
    return backend_spec_factory(request.param)


def test_a_64_mib_checkpoint_round_trips_through_gridfs(gridfs_spec):
    store = build_store(gridfs_spec)
    generator = torch.Generator().manual_seed(3)
    state = {f"layer{i}.weight": torch.randn(1024, 1024, generator=generator) for i in range(16)}  # 64 MiB
    store.store_weights("big", 7, state)
    loaded = store.retrieve_weights("big", 7)
    assert_same_state(loaded.model, state)
    assert loaded.metadata["blobs"]["model"]["size"] > 64 * 2**20


def test_a_checkpoint_removed_while_it_is_read_is_not_found(gridfs_spec):
    writer = build_store(gridfs_spec)
    model, _ = trained()
    writer.store_weights("run", 1, model)
    reader = store_reading_with(gridfs_spec, "weights.chunks", lambda: writer.remove("run", 1))
    with pytest.raises(WeightsNotFoundError, match="no weights for run run at iteration 1"):
        reader.retrieve_weights("run", 1)
    assert writer.iterations("run") == []


def test_a_checkpoint_replaced_while_it_is_read_loads_the_new_one(gridfs_spec):
    writer = build_store(gridfs_spec)
    old, _ = trained(seed=0)
    new, _ = trained(seed=1)
    writer.store_weights("run", 1, old)
    reader = store_reading_with(gridfs_spec, "weights.chunks", lambda: writer.store_weights("run", 1, new))
    assert_same_state(reader.retrieve_weights("run", 1).model, new.state_dict())


@pytest.mark.parametrize("damage", ["missing", "short"])
def test_a_damaged_chunk_is_corrupt_weights_and_the_store_keeps_it(gridfs_spec, damage):
    store = build_store(gridfs_spec)
    state = {"w": torch.arange(300_000, dtype=torch.float32)}  # ~1.2 MB: several chunks
    store.store_weights("run", 1, state)
    chunks = store.db["weights.chunks"]
    if damage == "missing":
        chunks.delete_one({"n": 2})
    else:
        chunks.update_one({"n": 2}, {"$set": {"data": b"short"}})
    before = chunks.count_documents({})
    with pytest.raises(CorruptWeightsError, match=r"blob 1-\w+\.model\.safetensors of run run .* damaged: "):
        store.retrieve_weights("run", 1)
    assert store.iterations("run") == [1]
    assert chunks.count_documents({}) == before
