"""Run summaries, derived status, compare diffs and the catalog's change tracking, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
import pytest
import torch
from weights.conftest import age_our_stats, dacapo_stats_written_at

from dacapo_store.queries import RunCatalog, RunQuery
from dacapo_store.queries.runs import RunSummary, differing_fields, weights_fields
from dacapo_store.queries.uses import nested_configs
from dacapo_store.weights.digest import digest_of
from dacapo_store.weights.index import RunIndex

from .conftest import RUNS

BASE, FINETUNE = RUNS
NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def summary(**changes) -> RunSummary:
    fields = dict(
        name="r",
        task="t",
        architecture="a",
        trainer="tr",
        datasplit="d",
        repetition=0,
        num_iterations=1000,
        start_run=None,
        start_criterion=None,
        created_by=None,
        created_at=None,
        iterations_trained=0,
        latest_checkpoint=None,
        checkpoints=0,
        has_stats=False,
        updated_at=None,
        criteria=(),
        datasets=(),
    )
    return RunSummary(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, "new"),
        (
            {"latest_checkpoint": 100, "iterations_trained": 100, "updated_at": NOW - timedelta(minutes=5)},
            "training",
        ),
        (
            {"latest_checkpoint": 100, "iterations_trained": 100, "updated_at": NOW - timedelta(hours=2)},
            "stalled",
        ),
        ({"has_stats": True, "iterations_trained": 50}, "stalled"),
        ({"latest_checkpoint": 1000, "iterations_trained": 1000, "updated_at": NOW}, "finished"),
        (
            {"criteria": ("voi",), "iterations_trained": 1200, "updated_at": NOW - timedelta(days=9)},
            "finished",
        ),
    ],
)
def test_status_is_derived_from_what_is_stored(changes, status):
    assert summary(**changes).status(NOW, timedelta(minutes=30)) == status


def test_a_run_uses_the_datasets_and_arrays_its_document_holds_by_their_type_at_any_depth():
    zarr = {"__type__": "ZarrArrayConfig", "name": "z"}
    concat = {"__type__": "ConcatArrayConfig", "name": "c", "source_array_configs": {"mito": zarr}}
    dataset = {"__type__": "RawGTDatasetConfig", "name": "d", "raw_config": concat, "gt_config": zarr}
    doc = {
        "name": "r",
        "datasplit_config": {
            "__type__": "TrainValidateDataSplitConfig",
            "name": "s",
            "train_configs": [dataset],
        },
        # a class we don't have, and a mapping shaped like an array but without a type: not counted
        "trainer_config": {"__type__": "PluginArrayConfig", "name": "p", "raw_config": {"name": "untyped"}},
    }
    assert nested_configs(doc) == (("arrays", "c"), ("arrays", "z"), ("datasets", "d"))
    assert nested_configs({"datasplit_config": [1, None, "x", {"__type__": 3}]}) == ()


def test_a_summary_read_back_from_plain_lists_keeps_its_uses_as_pairs():
    assert summary(uses=[["arrays", "z"], ("datasets", "d")]).uses == (("arrays", "z"), ("datasets", "d"))


def test_differing_fields_name_paths_and_keep_absent_values_apart_from_equal_ones():
    a = {"name": "a", "x": {"y": 1, "z": [1, 2]}, "s": None, "t": True}
    b = {"name": "b", "x": {"y": 1, "z": [1, 3]}, "s": {"run": "a"}, "t": 1}
    rows = {r["field"]: r["values"] for r in differing_fields([a, b])}
    assert rows == {"name": ["a", "b"], "x.z[1]": [2, 3], "s.run": [None, "a"], "t": [True, 1]}


@pytest.fixture
def catalog(stores):
    return RunCatalog(stores.configs, stores.weights, recheck=0), stores


def fresh_summary(stores, run: str):
    """The run's summary as a catalog reading the stores now has it."""
    return RunCatalog(stores.configs, stores.weights, recheck=0).summary(run)


def test_a_run_writing_stats_before_its_first_checkpoint_is_training(stores):
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    stores.weights.store_training_stats(FINETUNE, {1: {"loss": 1.0, "time": 0.1}})
    found = fresh_summary(stores, FINETUNE)
    assert found.latest_checkpoint is None and found.updated_at >= before
    assert found.status() == "training"


def test_a_run_whose_stats_stopped_long_ago_is_stalled(stores):
    stores.weights.store_training_stats(FINETUNE, {1: {"loss": 1.0, "time": 0.1}})
    long_ago = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    age_our_stats(stores.weights, FINETUNE, long_ago)
    found = fresh_summary(stores, FINETUNE)
    assert found.updated_at == long_ago and found.status() == "stalled"


def test_dacapos_own_stats_date_a_run_too(stores):
    dacapo_stats_written_at(stores.weights, FINETUNE, datetime.now(timezone.utc))
    assert fresh_summary(stores, FINETUNE).status() == "training"


def test_a_finished_run_stays_finished_whatever_its_stats_say(stores):
    assert fresh_summary(stores, BASE).status() == "finished"  # the demo's stats: just written
    age_our_stats(stores.weights, BASE, datetime.now(timezone.utc) - timedelta(days=3))
    assert fresh_summary(stores, BASE).status() == "finished"


def test_fresh_stats_date_a_run_whose_last_checkpoint_is_old():
    old = (NOW - timedelta(days=2)).isoformat()
    index = RunIndex().with_events(
        [{"op": "checkpoint", "iteration": 100, "meta": {"created_at": old, "blobs": {}}}]
    )
    written = (NOW - timedelta(minutes=1)).timestamp()
    fields = weights_fields(attrs.evolve(digest_of(index), trained_until=150, stats_written=written))
    assert fields["updated_at"] == NOW - timedelta(minutes=1) and fields["iterations_trained"] == 150
    assert summary(**fields).status(NOW) == "training"
    alone = weights_fields(attrs.evolve(digest_of(index), trained_until=150))
    assert summary(**alone).status(NOW) == "stalled"  # checkpoint alone


def test_the_catalog_sees_new_scores_checkpoints_and_pins_of_a_known_run(catalog):
    cat, stores = catalog
    assert cat.summary(FINETUNE).latest_checkpoint is None
    stores.weights.store_weights(FINETUNE, 100, {"w": torch.zeros(2)})
    assert cat.summary(FINETUNE).latest_checkpoint == 100
    stores.weights.store_validation_scores(FINETUNE, 100, {"loss": 0.5})
    cat.refresh()
    assert cat.best(FINETUNE, "loss").value == 0.5
    stores.weights.store_best(BASE, 100, None, "loss")
    cat.refresh()
    assert cat.best(BASE, "loss").iteration == 100 and cat.best(BASE, "loss").pinned


def test_the_catalog_sees_a_removed_checkpoint(catalog):
    cat, stores = catalog
    assert cat.summary(BASE).latest_checkpoint == 500
    stores.weights.remove(BASE, 500)
    assert cat.summary(BASE).latest_checkpoint == 400
    assert cat.best(BASE, "f1_score").iteration != 500


def test_the_catalog_sees_runs_added_and_deleted(catalog):
    cat, stores = catalog
    run = stores.configs.retrieve_run_config(FINETUNE)
    stores.configs.store_run_config(attrs.evolve(run, name="third"))
    assert cat.names() == [BASE, FINETUNE, "third"]
    stores.configs.delete("runs", "third")
    assert cat.names() == RUNS


def test_a_run_deleted_and_another_stored_between_two_checks_both_show(catalog):
    cat, stores = catalog
    run = stores.configs.retrieve_run_config(FINETUNE)
    stores.configs.store_run_config(attrs.evolve(run, name="third"))
    assert cat.names() == [BASE, FINETUNE, "third"]
    stores.configs.delete("runs", "third")  # the count of runs stays the same
    stores.configs.store_run_config(attrs.evolve(run, name="fourth"))
    assert cat.names() == [BASE, FINETUNE, "fourth"]


def test_the_catalog_asks_the_stores_at_most_every_recheck_seconds(stores):
    cat = RunCatalog(stores.configs, stores.weights, recheck=3600)
    assert cat.names() == RUNS
    run = stores.configs.retrieve_run_config(FINETUNE)
    stores.configs.store_run_config(attrs.evolve(run, name="third"))
    assert cat.names() == RUNS
    cat.refresh(force=True)
    assert "third" in cat.names()


def test_a_page_is_cut_from_the_filtered_sorted_runs(catalog):
    cat, _ = catalog
    page = cat.query(RunQuery(sort="best", criterion="loss", limit=1, offset=0))
    assert page["total"] == 2 and [r["name"] for r in page["rows"]] == [BASE]
    assert page["rows"][0]["best"]["value"] is not None


@pytest.mark.parametrize(
    "changes",
    [{"sort": "nope"}, {"offset": -1}, {"limit": 0}, {"limit": 501}, {"status": ("running",)}],
)
def test_a_bad_query_is_refused(changes):
    with pytest.raises(ValueError):
        RunQuery(**changes)


def test_changes_since_names_the_runs_whose_index_changed(stores):
    weights = stores.weights
    token, changed = weights.changes_since(None, RUNS)
    assert changed is None or set(RUNS) <= changed  # a first token: everything (or all it has)
    token, changed = weights.changes_since(token, RUNS)
    assert changed == set()
    weights.store_validation_scores(FINETUNE, 7, {"loss": 1.0})
    token, changed = weights.changes_since(token, RUNS)
    assert changed == {FINETUNE}


def test_read_indexes_reads_many_runs_at_once(stores):
    indexes = stores.weights.read_indexes(RUNS)
    assert sorted(indexes[BASE].checkpoints) == [100, 200, 300, 400, 500]
    assert indexes[FINETUNE].scores == {}
    assert set(stores.weights.read_indexes(None)) >= {BASE}


def test_when_checking_is_expensive_it_runs_in_the_background_and_requests_do_not_wait(stores):
    cat = RunCatalog(stores.configs, stores.weights, recheck=0, budget=0.0)
    cat.names()
    cat.names()  # an incremental check, timed: above the zero budget
    cat._checked = -float("inf")  # as if the last check were long ago (not within 5x its cost)
    run = stores.configs.retrieve_run_config(FINETUNE)
    stores.configs.store_run_config(attrs.evolve(run, name="third"))
    cat.refresh()  # starts the check in a thread and returns with the summaries at hand
    cat._worker.join(timeout=60)
    assert "third" in cat.stored()


def test_the_catalog_sees_a_pin_moved_to_another_iteration(catalog):
    cat, stores = catalog
    stores.weights.store_best(BASE, 100, None, "loss")
    assert cat.summary(BASE) and cat.best(BASE, "loss").iteration == 100
    stores.weights.store_best(BASE, 300, None, "loss")
    cat.refresh()
    assert cat.best(BASE, "loss").iteration == 300
