"""The GridFS store's index layout: one `weights_runs` document per run, the earlier layout read
beside it, and change detection by each document's `updated` time and `writes` count."""

from __future__ import annotations

import logging

import pytest
import torch

from .conftest import REAL_MONGO, build_store

GRIDFS = ["mongomock", REAL_MONGO]


@pytest.fixture(params=GRIDFS)
def gridfs_spec(request, backend_spec_factory):
    return backend_spec_factory(request.param)


@pytest.fixture
def store(gridfs_spec):
    return build_store(gridfs_spec)


def run_document(store, run):
    return store.db["weights_runs"].find_one({"_id": run})


def test_a_run_index_is_one_document_with_escaped_names(store):
    store.store_weights("run", 10, {"w": torch.ones(2)})
    store.store_validation_scores("run", 10, {"f1": 0.5}, dataset="ds.1$x%", higher_is_better={"f1": True})
    store.store_best("run", 10, None, "f1")
    store.store_best("run", 10, "ds.1$x%", "f1")
    doc = run_document(store, "run")
    assert set(doc["checkpoints"]) == {"10"}
    assert doc["scores"] == {"ds%2E1%24x%25": {"10": {"f1": 0.5}}}
    assert doc["pins"] == {"%": {"f1": 10}, "ds%2E1%24x%25": {"f1": 10}}
    assert doc["writes"] == 4
    assert store.db["weights_index"].count_documents({}) == 0  # nothing goes to the earlier layout
    index = store.read_index("run")
    assert index.scores == {"f1": {"ds.1$x%": {10: 0.5}}}
    assert index.pins == {(None, "f1"): 10, ("ds.1$x%", "f1"): 10}


def test_a_score_overwritten_in_place_shows_as_a_change(store):
    store.store_validation_scores("run", 1, {"loss": 1.0})
    store.store_validation_scores("other", 1, {"loss": 1.0})
    token, changed = store.changes_since(None, ["run", "other"])
    assert changed == {"run", "other"}  # a first look names every run there is
    token, changed = store.changes_since(token, ["run", "other"])
    assert changed == set()
    store.store_validation_scores("run", 1, {"loss": 0.5})  # the same iteration and dataset
    token, changed = store.changes_since(token, ["run", "other"])
    assert changed == {"run"}
    assert store.read_index("run").scores == {"loss": {"validate": {1: 0.5}}}


def test_deleting_a_run_leaves_an_empty_document_that_readers_see(store):
    store.store_weights("run", 1, {"w": torch.ones(2)})
    store.store_validation_scores("run", 1, {"loss": 1.0})
    token, _ = store.changes_since(None, ["run"])
    assert store.run_names() == ["run"]
    store.delete_run("run")
    token, changed = store.changes_since(token, ["run"])
    assert changed == {"run"}
    assert store.run_names() == []
    assert store.read_index("run").checkpoints == {}
    assert set(run_document(store, "run")) == {"_id", "updated", "writes"}


def test_removing_the_last_checkpoint_and_pin_leaves_no_empty_maps(store):
    store.store_weights("run", 1, {"w": torch.ones(2)})
    store.store_best("run", 1, "validate", "loss")
    store.unpin("run", "loss", "validate")
    store.remove("run", 1)
    doc = run_document(store, "run")
    assert "checkpoints" not in doc and "pins" not in doc
    assert store.run_names() == []


def test_the_earlier_layout_is_read_under_the_new_one_and_removals_reach_it(store):
    store.store_weights("run", 1, {"w": torch.ones(2)})
    meta = run_document(store, "run")["checkpoints"]["1"]
    db = store.db
    # what dacapo_store 0.1.0 wrote: a document per checkpoint, scored iteration and pin
    db["weights_index"].insert_one({"run_name": "old", "iteration": 5, "meta": meta})
    db["weights_scores"].insert_one(
        {
            "run_name": "old",
            "iteration": 5,
            "dataset": "validate",
            "scores": {"loss": 0.3},
            "higher_is_better": {"loss": False},
        }
    )
    db["weights_pins"].insert_one({"run_name": "old", "dataset": None, "criterion": "loss", "iteration": 5})
    assert store.iterations("old") == [5]
    assert store.retrieve_validation_scores("old") == {"loss": {"validate": {5: 0.3}}}
    assert store.pins("old") == [(None, "loss", 5)]
    assert "old" in store.run_names()
    token, _ = store.changes_since(None, ["old"])
    store.store_validation_scores("old", 5, {"loss": 0.1})  # the new layout wins where both have one
    assert store.retrieve_validation_scores("old") == {"loss": {"validate": {5: 0.1}}}
    store.unpin("old", "loss")
    store.remove("old", 5)
    assert store.iterations("old") == []
    assert store.pins("old") == []
    assert db["weights_index"].count_documents({}) == 0 and db["weights_pins"].count_documents({}) == 0
    _, changed = store.changes_since(token, ["old"])
    assert changed == {"old"}  # every write touches the run's document: its marker names it


def test_a_damaged_mark_needs_the_checkpoint_and_a_new_checkpoint_clears_it(store):
    store.store_weights("run", 1, {"w": torch.ones(2)})
    store.append_index("run", [{"op": "damaged", "iteration": 1, "problem": "short blob"}])
    store.append_index("run", [{"op": "damaged", "iteration": 2, "problem": "no such checkpoint"}])
    assert store.read_index("run").damaged == {1: "short blob"}
    store.store_weights("run", 1, {"w": torch.zeros(2)})
    assert store.read_index("run").damaged == {}


def test_a_hand_edited_document_is_read_as_far_as_it_makes_sense(store, caplog):
    store.store_validation_scores("run", 1, {"loss": 1.0})
    store.db["weights_runs"].update_one(
        {"_id": "run"}, {"$set": {"scores.validate.x1": {"loss": 2.0}, "pins": "not a mapping"}}
    )
    with caplog.at_level(logging.WARNING):
        index = store.read_index("run")
    assert index.scores == {"loss": {"validate": {1: 1.0}}}
    assert "not an iteration" in caplog.text and "not a mapping" in caplog.text


def test_two_writers_of_one_run_keep_each_others_updates(gridfs_spec):
    trainer, validator = build_store(gridfs_spec), build_store(gridfs_spec)
    for it in (1, 2, 3):
        trainer.store_weights("run", it, {"w": torch.full((2,), float(it))})
        validator.store_validation_scores("run", it, {"loss": 1.0 / it})
    index = build_store(gridfs_spec).read_index("run")
    assert sorted(index.checkpoints) == [1, 2, 3]
    assert index.scores == {"loss": {"validate": {1: 1.0, 2: 0.5, 3: 1 / 3}}}


def test_unpinning_one_dataset_keeps_the_pins_of_the_others(store):
    store.store_weights("run", 1, {"w": torch.ones(2)})
    store.store_best("run", 1, "validate", "loss")
    store.store_best("run", 1, "test", "loss")
    store.unpin("run", "loss", "validate")
    assert run_document(store, "run")["pins"] == {"test": {"loss": 1}}
    assert store.pins("run") == [("test", "loss", 1)]
