"""Optimizer state as safetensors: no pickle in a checkpoint, every state tree round trips, old
weights-only torch blobs still load."""

from __future__ import annotations

import copy
import hashlib
import math

import pytest
import torch
import xxhash
from safetensors import safe_open

from dacapo_store.weights.serialization import (
    FormatError,
    load_optimizer,
    optimizer_chunks,
    torch_bytes,
)

from .conftest import assert_same_state, trained


def blob(state) -> bytes:
    return b"".join(bytes(chunk) for chunk in optimizer_chunks(state))


def test_the_optimizer_blob_is_safetensors_not_a_pickle(tmp_path):
    from dacapo_store.weights import LocalWeightsStore

    model, optimizer = trained()
    store = LocalWeightsStore(tmp_path)
    store.store_weights("run", 7, model, optimizer)
    files = sorted((tmp_path / "run" / "checkpoints" / "blobs").iterdir())
    (opt,) = [f for f in files if ".optimizer." in f.name]
    assert opt.name.endswith(".optimizer.safetensors")
    data = opt.read_bytes()
    assert not data.startswith(b"PK") and b"\x80\x02" not in data[:16]  # neither torch's zip nor a pickle
    with safe_open(str(opt), framework="pt") as f:  # the reference reader opens it
        assert len(list(f.keys())) == sum(len(s) for s in optimizer.state_dict()["state"].values())
    assert_same_state(store.retrieve_weights("run", 7).optimizer, optimizer.state_dict())


@pytest.mark.parametrize(
    "state",
    [
        {"state": {}, "param_groups": [{"lr": 0.1, "params": []}]},
        {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}, 5: {"m": torch.zeros(0)}},
            "param_groups": [
                {"lr": 1e-3, "betas": (0.9, 0.999), "eps": math.inf, "foreach": None, "params": [0, 5]}
            ],
        },
        # keys and values that look like the tree's own tags, NaN, nested tuples, string keys
        {"__tensor__": "t0", "x": {"__tuple__": [1]}, "nan": math.nan, "deep": ((1, [2.5, "a"]), {})},
        {"__pairs__": {1: True, "1": False, None: (torch.ones(2, dtype=torch.int64),)}},
    ],
)
def test_optimizer_state_trees_round_trip_exactly(state):
    back = load_optimizer(bytearray(blob(state)))
    assert repr(_shape(back)) == repr(_shape(state))


def _shape(value):
    """The tree with tensors as (dtype, shape, values), types kept: what must survive."""
    if isinstance(value, torch.Tensor):
        return ("tensor", value.dtype, tuple(value.shape), value.tolist())
    if isinstance(value, dict):
        return ("dict", [(type(k).__name__, k, _shape(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_shape(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return (type(value).__name__, value)


def test_a_value_that_needs_pickle_is_refused_before_anything_is_written(store):
    model, optimizer = trained()
    state = optimizer.state_dict()
    state["param_groups"][0]["scheduler"] = object()
    with pytest.raises(TypeError, match=r"optimizer\.param_groups\[0\]\.scheduler is a object"):
        store.store_weights("run", 1, model, state)
    assert store.iterations("run") == []
    assert store.list_blobs("run") == []


def test_an_optimizer_stored_as_weights_only_torch_data_still_loads(store):
    # what dacapo_store wrote before optimizers were safetensors: `<it>-<token>.optimizer.pt`
    model, optimizer = trained()
    store.store_weights("run", 3, model)
    data = torch_bytes(optimizer.state_dict())
    store.put_blob("run", "3-old.optimizer.pt", [data])
    meta = copy.deepcopy(store.metadata("run", 3))
    meta["blobs"]["optimizer"] = {
        "name": "3-old.optimizer.pt",
        "sha256": hashlib.sha256(data).hexdigest(),  # what entries of that time carried
        "size": len(data),
    }
    store.append_index("run", [{"op": "checkpoint", "iteration": 3, "meta": meta}])
    assert_same_state(store.retrieve_weights("run", 3).optimizer, optimizer.state_dict())


def test_safetensors_without_an_optimizer_tree_is_a_format_error():
    from dacapo_store.weights.serialization import safetensors_chunks

    data = b"".join(bytes(c) for c in safetensors_chunks({"w": torch.zeros(2)}))
    with pytest.raises(FormatError, match="without an optimizer state tree"):
        load_optimizer(bytearray(data))


def test_the_recorded_checksums_are_those_of_the_written_blobs_and_no_hashing_thread_stays(tmp_path):
    # the checksum is fed by a worker thread while the blob is written: the same bytes, in order
    import threading

    from dacapo_store.weights import LocalWeightsStore

    model, optimizer = trained()
    store = LocalWeightsStore(tmp_path)
    store.store_weights("run", 1, model, optimizer)
    for record in store.metadata("run", 1)["blobs"].values():
        data = (tmp_path / "run" / "checkpoints" / "blobs" / record["name"]).read_bytes()
        assert record["size"] == len(data)
        assert "sha256" not in record  # xxh3-128 alone, since it keeps stores off sha256's pace
        assert record["xxh3_128"] == xxhash.xxh3_128(data).hexdigest()
    assert not [t for t in threading.enumerate() if t.name.startswith("dacapo_store-hash")]
