"""Checkpoints on every backend: round trips, listing, removal, names."""

from __future__ import annotations

import pytest
import torch
from conftest import small_run
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from dacapo_store.errors import InvalidNameError, WeightsNotFoundError
from dacapo_store.options import Options
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore, create_weights_store
from dacapo_store.weights.serialization import load_safetensors

from .conftest import assert_same_state, trained


def test_model_and_optimizer_round_trip_bit_for_bit(store):
    model, optimizer = trained()
    store.store_weights("run", 100, model, optimizer)
    weights = store.retrieve_weights("run", 100)
    assert_same_state(weights.model, model.state_dict())
    assert_same_state(weights.optimizer, optimizer.state_dict())


def test_restored_optimizer_continues_like_the_original(store):
    model, optimizer = trained()
    store.store_weights("run", 1, model, optimizer)
    weights = store.retrieve_weights("run", 1)
    twin, twin_optimizer = trained(seed=1)
    twin.load_state_dict(weights.model)
    twin_optimizer.load_state_dict(weights.optimizer)
    torch.manual_seed(5)
    batch = torch.randn(2, 1, 16, 16)
    for m, o in [(model, optimizer), (twin, twin_optimizer)]:
        o.zero_grad()
        m(batch).square().mean().backward()
        o.step()
    assert_same_state(twin.state_dict(), model.state_dict())


def test_state_dicts_are_accepted_as_well_as_modules(store):
    model, optimizer = trained()
    store.store_weights("run", 1, model.state_dict(), optimizer.state_dict())
    assert_same_state(store.retrieve_weights("run", 1).model, model.state_dict())


def test_without_optimizer_weights_have_none(store):
    model, _ = trained()
    store.store_weights("run", 1, model)
    assert store.retrieve_weights("run", 1).optimizer is None


def test_unusual_dtypes_and_shapes_round_trip(store):
    state = {
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "empty": torch.zeros(0, 4),
        "half": torch.randn(3, 5).half(),
        "bf16": torch.randn(7).bfloat16(),
        "mask": torch.tensor([True, False, True]),
        "count": torch.tensor(7, dtype=torch.int64),
        "bytes": torch.arange(5, dtype=torch.uint8),
        "transposed": torch.randn(4, 6).t(),
    }
    store.store_weights("run", 1, state)
    assert_same_state(store.retrieve_weights("run", 1).model, state)


def test_loaded_tensors_are_writable_and_independent_of_the_store(store):
    model, _ = trained()
    store.store_weights("run", 1, model)
    first = store.retrieve_weights("run", 1).model
    first["head.bias"].add_(1.0)
    assert_same_state(store.retrieve_weights("run", 1).model, model.state_dict())


def test_metadata_records_checksums_sizes_creation(store):
    model, optimizer = trained()
    store.store_weights("run", 1, model, optimizer)
    meta = store.retrieve_weights("run", 1).metadata
    assert meta["created_at"] and "@" in meta["created_by"]
    for part in ("model", "optimizer"):
        assert len(meta["blobs"][part]["xxh3_128"]) == 32
        assert meta["blobs"][part]["size"] > 0


def test_storing_again_replaces_the_checkpoint(store):
    first, _ = trained(seed=0)
    second, _ = trained(seed=1)
    store.store_weights("run", 1, first)
    store.store_weights("run", 1, second)
    assert_same_state(store.retrieve_weights("run", 1).model, second.state_dict())
    assert len(store.list_blobs("run")) == 1


def test_iterations_are_sorted_and_latest_is_the_highest(store):
    model, _ = trained()
    for iteration in (30, 10, 20):
        store.store_weights("run", iteration, model)
    assert store.iterations("run") == [10, 20, 30]
    assert store.latest_iteration("run") == 30


def test_unknown_run_has_no_iterations(store):
    assert store.iterations("nothing") == []
    assert store.latest_iteration("nothing") is None


def test_runs_are_kept_apart(store):
    a, _ = trained(seed=0)
    b, _ = trained(seed=1)
    store.store_weights("a", 1, a)
    store.store_weights("b", 1, b)
    assert_same_state(store.retrieve_weights("a", 1).model, a.state_dict())
    assert store.iterations("b") == [1]


def test_remove_deletes_the_checkpoint_and_its_blobs(store):
    model, optimizer = trained()
    store.store_weights("run", 1, model, optimizer)
    store.store_weights("run", 2, model, optimizer)
    store.remove("run", 1)
    assert store.iterations("run") == [2]
    assert all(not blob.startswith("1-") for blob in store.list_blobs("run"))
    with pytest.raises(WeightsNotFoundError):
        store.retrieve_weights("run", 1)


def test_remove_of_a_missing_checkpoint_raises(store):
    with pytest.raises(WeightsNotFoundError, match="iteration 3"):
        store.remove("run", 3)


def test_missing_weights_raise_naming_run_and_iteration(store):
    model, _ = trained()
    store.store_weights("run", 1, model)
    with pytest.raises(WeightsNotFoundError, match=r"run run at iteration 2.*stored iterations: 1"):
        store.retrieve_weights("run", 2)


def test_a_run_config_stands_for_its_name(store):
    model, _ = trained()
    store.store_weights(small_run("cfg_run"), 1, model)
    assert store.iterations("cfg_run") == [1]


@pytest.mark.parametrize("bad", ["../escape", ".hidden", "a/b", ""])
def test_invalid_run_names_are_refused_before_any_io(store, bad):
    model, _ = trained()
    with pytest.raises(InvalidNameError):
        store.store_weights(bad, 1, model)


def test_a_dict_as_run_name_is_refused(store):
    with pytest.raises(TypeError):
        store.iterations({"$ne": None})


@pytest.mark.parametrize("bad", [-1, 1.0, "1", True])
def test_iteration_must_be_a_non_negative_int(store, bad):
    model, _ = trained()
    with pytest.raises(ValueError, match="iteration"):
        store.store_weights("run", bad, model)


def test_non_tensor_model_state_is_refused(store):
    with pytest.raises(TypeError, match="not a tensor"):
        store.store_weights("run", 1, {"w": [1, 2]})
    assert store.iterations("run") == []


def test_model_blob_is_standard_safetensors():
    state = {"b": torch.randn(3, 2), "a": torch.arange(4)}
    from dacapo_store.weights.serialization import safetensors_chunks

    blob = b"".join(bytes(c) for c in safetensors_chunks(state))
    assert_same_state(dict(sorted(safetensors_load(blob).items())), dict(sorted(state.items())))


def test_safetensors_written_elsewhere_are_read():
    state = {"w": torch.randn(3, 2), "i": torch.arange(4)}
    loaded = load_safetensors(bytearray(safetensors_save(state)))
    assert_same_state(dict(sorted(loaded.items())), dict(sorted(state.items())))


def test_options_name_the_files_backend_by_default(tmp_path):
    store = create_weights_store(Options(runs_base_dir=tmp_path))
    assert isinstance(store, LocalWeightsStore) and store.basedir == tmp_path.absolute()


def test_options_name_the_gridfs_backend(monkeypatch):
    import mongomock

    monkeypatch.setattr("dacapo_store.mongo.MongoClient", mongomock.MongoClient)
    options = Options(mongo_db_host="mongodb://example:27017", weights_store="gridfs")
    with create_weights_store(options) as store:
        assert isinstance(store, GridFSWeightsStore)


def test_files_checkpoints_live_under_the_run_folder(tmp_path):
    store = LocalWeightsStore(tmp_path)
    model, _ = trained()
    store.store_weights("run", 1, model)
    assert (tmp_path / "run" / "checkpoints" / "index.jsonl").is_file()
    assert len(list((tmp_path / "run" / "checkpoints" / "blobs").iterdir())) == 1
