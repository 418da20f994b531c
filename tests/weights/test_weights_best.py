"""Validation scores, best-iteration selection, pins and pruning on every backend."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import no_options, small_run

from dacapo_store.config_store import FileConfigStore
from dacapo_store.configs import StartConfig
from dacapo_store.errors import CriterionNotFoundError, WeightsNotFoundError


@pytest.fixture
def model():
    """Weights are not the point here: a tiny state dict will do."""
    return {"w": torch.arange(4.0)}


def with_weights(store, model, *iterations, run="run"):
    for iteration in iterations:
        store.store_weights(run, iteration, model)


def test_best_of_a_higher_is_better_criterion_is_the_highest(store, model):
    with_weights(store, model, 1, 2, 3)
    for iteration, dice in [(1, 0.5), (2, 0.9), (3, 0.7)]:
        store.store_validation_scores("run", iteration, {"dice": dice})
    assert store.retrieve_best("run", "dice") == 2


def test_best_of_a_lower_is_better_criterion_is_the_lowest(store, model):
    with_weights(store, model, 1, 2, 3)
    for iteration, voi in [(1, 0.5), (2, 0.9), (3, 0.2)]:
        store.store_validation_scores("run", iteration, {"voi": voi})
    assert store.retrieve_best("run", "voi") == 3


def test_several_datasets_are_averaged_per_iteration(store, model):
    with_weights(store, model, 1, 2)
    store.store_validation_scores("run", 1, {"dice": 0.9}, dataset="a")
    store.store_validation_scores("run", 1, {"dice": 0.1}, dataset="b")  # mean 0.5
    store.store_validation_scores("run", 2, {"dice": 0.6}, dataset="a")
    store.store_validation_scores("run", 2, {"dice": 0.6}, dataset="b")  # mean 0.6
    assert store.retrieve_best("run", "dice") == 2
    assert store.retrieve_best("run", "dice", dataset="a") == 1


def test_mean_covers_only_the_datasets_validated_at_that_iteration(store, model):
    with_weights(store, model, 1, 2)
    store.store_validation_scores("run", 1, {"voi": 0.3}, dataset="a")
    store.store_validation_scores("run", 1, {"voi": 0.5}, dataset="b")  # mean 0.4
    store.store_validation_scores("run", 2, {"voi": 0.35}, dataset="a")  # only a
    assert store.retrieve_best("run", "voi") == 2


def test_ties_go_to_the_earlier_iteration(store, model):
    with_weights(store, model, 1, 2, 3)
    for iteration in (3, 2, 1):
        store.store_validation_scores("run", iteration, {"dice": 0.8})
    assert store.retrieve_best("run", "dice") == 1


def test_a_best_whose_weights_were_removed_is_skipped(store, model):
    with_weights(store, model, 1, 2, 3)
    for iteration, dice in [(1, 0.5), (2, 0.9), (3, 0.7)]:
        store.store_validation_scores("run", iteration, {"dice": dice})
    store.remove("run", 2)
    assert store.retrieve_best("run", "dice") == 3


def test_iterations_scored_without_weights_are_skipped(store, model):
    with_weights(store, model, 1)
    store.store_validation_scores("run", 1, {"dice": 0.5})
    store.store_validation_scores("run", 2, {"dice": 0.9})
    assert store.retrieve_best("run", "dice") == 1


def test_no_scored_iteration_with_weights_raises(store):
    store.store_validation_scores("run", 1, {"dice": 0.5})
    with pytest.raises(WeightsNotFoundError, match="dice"):
        store.retrieve_best("run", "dice")


def test_nan_scores_are_never_best(store, model):
    with_weights(store, model, 1, 2)
    store.store_validation_scores("run", 1, {"voi": math.nan})
    store.store_validation_scores("run", 2, {"voi": 3.0})
    assert store.retrieve_best("run", "voi") == 2


def test_unknown_criterion_lists_the_criteria_the_run_has(store, model):
    with_weights(store, model, 1)
    store.store_validation_scores("run", 1, {"dice": 0.5, "voi": 0.1})
    with pytest.raises(CriterionNotFoundError, match=r"'jaccard'.*it has: dice, voi"):
        store.retrieve_best("run", "jaccard")


def test_unknown_dataset_lists_the_datasets_of_the_criterion(store, model):
    with_weights(store, model, 1)
    store.store_validation_scores("run", 1, {"dice": 0.5}, dataset="val1")
    with pytest.raises(CriterionNotFoundError, match="val1"):
        store.retrieve_best("run", "dice", dataset="val2")


def test_unknown_direction_raises_before_anything_is_written(store):
    with pytest.raises(ValueError, match="my_score"):
        store.store_validation_scores("run", 1, {"dice": 0.5, "my_score": 1.0})
    assert store.criteria("run") == []


def test_direction_can_be_given_for_a_new_criterion(store, model):
    with_weights(store, model, 1, 2)
    store.store_validation_scores("run", 1, {"my_score": 1.0}, higher_is_better={"my_score": False})
    store.store_validation_scores("run", 2, {"my_score": 2.0})  # direction remembered
    assert store.retrieve_best("run", "my_score") == 1


def test_a_given_direction_overrides_the_table_for_a_new_criterion(store, model):
    with_weights(store, model, 1, 2)
    store.store_validation_scores("run", 1, {"loss": 1.0}, higher_is_better={"loss": True})
    store.store_validation_scores("run", 2, {"loss": 2.0})
    assert store.retrieve_best("run", "loss") == 2


def test_a_conflicting_direction_is_refused(store):
    store.store_validation_scores("run", 1, {"voi": 0.3})
    with pytest.raises(ValueError, match="lower-is-better"):
        store.store_validation_scores("run", 2, {"voi": 0.1}, higher_is_better={"voi": True})


@pytest.mark.parametrize("bad", ["a.b", "$where", "123", "latest"])
def test_criteria_that_cant_name_a_start_are_refused(store, bad):
    with pytest.raises(ValueError, match="criterion"):
        store.store_validation_scores("run", 1, {bad: 0.1}, higher_is_better={bad: True})


def test_non_numeric_scores_are_refused(store):
    with pytest.raises(TypeError, match="dice"):
        store.store_validation_scores("run", 1, {"dice": "high"})


def test_scores_of_one_iteration_merge_across_calls(store):
    store.store_validation_scores("run", 1, {"dice": 0.5})
    store.store_validation_scores("run", 1, {"voi": 0.2})
    assert store.retrieve_validation_scores("run") == {
        "dice": {"validate": {1: 0.5}},
        "voi": {"validate": {1: 0.2}},
    }


def test_a_later_score_replaces_an_earlier_one(store, model):
    with_weights(store, model, 1, 2)
    store.store_validation_scores("run", 1, {"dice": 0.9})
    store.store_validation_scores("run", 2, {"dice": 0.5})
    store.store_validation_scores("run", 1, {"dice": 0.1})
    assert store.retrieve_best("run", "dice") == 2


def test_a_pin_wins_over_the_computed_best(store, model):
    with_weights(store, model, 1, 2)
    store.store_validation_scores("run", 1, {"dice": 0.9})
    store.store_validation_scores("run", 2, {"dice": 0.5})
    store.store_best("run", 2, "validate", "dice")
    assert store.retrieve_best("run", "dice", dataset="validate") == 2
    assert store.retrieve_best("run", "dice") == 2  # the only dataset


def test_a_pin_for_one_dataset_leaves_the_mean_over_several_alone(store, model):
    with_weights(store, model, 1, 2)
    for dataset in ("a", "b"):
        store.store_validation_scores("run", 1, {"dice": 0.9}, dataset=dataset)
        store.store_validation_scores("run", 2, {"dice": 0.5}, dataset=dataset)
    store.store_best("run", 2, "a", "dice")
    assert store.retrieve_best("run", "dice", dataset="a") == 2
    assert store.retrieve_best("run", "dice") == 1


def test_a_pin_needs_no_scores(store, model):
    with_weights(store, model, 4)
    store.store_best("run", 4, None, "my_score")
    assert store.retrieve_best("run", "my_score") == 4


def test_pinning_an_iteration_without_weights_raises(store):
    with pytest.raises(WeightsNotFoundError):
        store.store_best("run", 4, "validate", "dice")


def test_a_pin_whose_weights_were_removed_gives_way_to_the_computed_best(store, model):
    with_weights(store, model, 1, 2)
    store.store_validation_scores("run", 1, {"dice": 0.9})
    store.store_validation_scores("run", 2, {"dice": 0.5})
    store.store_best("run", 2, "validate", "dice")
    store.remove("run", 2)
    assert store.retrieve_best("run", "dice") == 1


# ---------------------------------------------------------------- prune


@pytest.fixture
def configs(tmp_path):
    return FileConfigStore(tmp_path / "configs")


def test_prune_keeps_the_last_n_and_returns_what_it_deleted(store, model, configs):
    with_weights(store, model, 1, 2, 3, 4)
    assert store.prune("run", keep_last=2, config_store=configs) == [1, 2]
    assert store.iterations("run") == [3, 4]


def test_prune_keeps_the_best_of_every_criterion_and_dataset(store, model, configs):
    with_weights(store, model, 1, 2, 3, 4, 5)
    store.store_validation_scores("run", 1, {"dice": 0.9, "voi": 0.9}, dataset="a")
    store.store_validation_scores("run", 2, {"dice": 0.1, "voi": 0.1}, dataset="a")
    store.store_validation_scores("run", 3, {"dice": 0.8}, dataset="b")
    store.store_validation_scores("run", 4, {"dice": 0.2}, dataset="b")
    assert store.prune("run", keep_last=1, config_store=configs) == [4]
    assert store.iterations("run") == [1, 2, 3, 5]


def test_prune_keeps_pins(store, model, configs):
    with_weights(store, model, 1, 2, 3)
    store.store_best("run", 1, "validate", "my_score")
    assert store.prune("run", keep_last=1, config_store=configs) == [2]


def test_prune_keeps_what_stored_runs_start_from(store, model, configs):
    with_weights(store, model, 1, 2, 3, 4, 5)
    store.store_validation_scores("run", 2, {"dice": 0.9})
    store.store_validation_scores("run", 3, {"dice": 0.1})
    store.store_validation_scores("run", 2, {"my_score": 1.0}, higher_is_better={"my_score": True})
    configs.store_run_config(small_run("by_iteration", start_config=StartConfig("run", "3")))
    configs.store_run_config(small_run("by_criterion", start_config=StartConfig("run", "dice")))
    assert store.prune("run", keep_last=1, config_store=configs) == [1, 4]
    assert store.iterations("run") == [2, 3, 5]


def test_prune_with_keep_last_zero_still_keeps_a_latest_start(store, model, configs):
    with_weights(store, model, 1, 2)
    configs.store_run_config(small_run("next", start_config=StartConfig("run", "latest")))
    assert store.prune("run", keep_last=0, config_store=configs) == [1]


def test_prune_dry_run_deletes_nothing(store, model, configs):
    with_weights(store, model, 1, 2, 3)
    assert store.prune("run", keep_last=1, config_store=configs, dry_run=True) == [1, 2]
    assert store.iterations("run") == [1, 2, 3]


def test_prune_uses_the_options_config_store_by_default(store, model, tmp_path, monkeypatch):
    monkeypatch.delenv("DACAPO_STORE_TYPE", raising=False)
    monkeypatch.setenv("DACAPO_RUNS_BASE_DIR", str(tmp_path / "base"))
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    monkeypatch.chdir(tmp_path)
    FileConfigStore(tmp_path / "base" / "configs").store_run_config(
        small_run("next", start_config=StartConfig("run", "1"))
    )
    with_weights(store, model, 1, 2, 3)
    assert store.prune("run", keep_last=1) == [2]


def test_dataset_names_may_hold_a_slash_as_dacapos_do(store):
    # datasets name scores and pins, never files: DaCapo's "crop1/mito" style names are fine
    store.store_weights("run", 1, {"w": torch.zeros(1)})
    store.store_validation_scores("run", 1, {"voi": 0.5}, dataset="jrc_hela-2/crop1")
    assert store.retrieve_best("run", "voi", "jrc_hela-2/crop1") == 1
    store.store_best("run", 1, "jrc_hela-2/crop1", "voi")
    assert store.retrieve_best("run", "voi") == 1
    store.unpin("run", "voi", "jrc_hela-2/crop1")  # the pin store_best took is the one unpin takes
    assert store.pins("run") == []


def test_a_run_whose_checkpoints_are_gone_still_ranks_by_its_best_score(store, model):
    with_weights(store, model, 1)
    store.store_validation_scores("run", 1, {"voi": 0.5})
    store.store_validation_scores("gone", 1, {"voi": 0.1})  # scores, never a checkpoint
    store.store_validation_scores("gone", 2, {"voi": 0.3})
    board = store.leaderboard("voi")
    assert [(e.run, e.iteration, e.value, e.loadable) for e in board] == [
        ("gone", 1, 0.1, False),
        ("run", 1, 0.5, True),
    ]
    with pytest.raises(WeightsNotFoundError):
        store.retrieve_best("gone", "voi")  # nothing loads a checkpoint that is not there


def test_prune_never_removes_what_a_best_or_a_pin_names(store, model, configs):
    with_weights(store, model, 1, 2, 3, 4, 5)
    for iteration, (dice, voi) in {1: (0.9, 0.9), 2: (0.1, 0.1), 3: (0.2, 0.8), 4: (0.3, 0.7)}.items():
        store.store_validation_scores("run", iteration, {"dice": dice}, dataset="a")
        store.store_validation_scores("run", iteration, {"dice": 1 - dice, "voi": voi}, dataset="b")
    store.store_best("run", 3, "b", "voi")
    kept = set(range(1, 6)) - set(store.prune("run", keep_last=1, config_store=configs))
    named = {
        store.retrieve_best("run", c, d)
        for c in ("dice", "voi")
        for d in (None, "a", "b")
        if (c, d) != ("voi", "a")
    }
    assert named | {3, 5} <= kept
