"""A DaCapo 0.3.5 registry opens in place: checkpoints, scores, bests, training stats, starts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
import torch

from dacapo_store import StartConfig, TrainingIterationStats
from dacapo_store.criteria import known_direction
from dacapo_store.errors import CriterionNotFoundError
from dacapo_store.legacy.registry import DacapoFiles
from dacapo_store.legacy.validation import task_criteria
from dacapo_store.start import Start

from .conftest import MANIFEST, PACK, expected_best, expected_scores, nan_safe, number, pins

RUNS = sorted(MANIFEST["latest_iteration"])
SCORES = {entry["run"]: entry for entry in MANIFEST["scores"]}


def test_every_dacapo_checkpoint_loads_with_its_tensors(layout):
    for checkpoint in MANIFEST["checkpoints"]:
        weights = layout.store.retrieve_weights(checkpoint["run"], checkpoint["iteration"])
        model = weights.model
        assert sorted(model) == [name for name, _, _ in checkpoint["model"]["tensors"]]
        for name, shape, dtype in checkpoint["model"]["tensors"]:
            tensor = model[name]
            assert list(tensor.shape) == shape and tensor.dtype == getattr(torch, dtype), name
            total = float(tensor.double().sum())
            expected = checkpoint["model"]["sum_per_tensor"][name]
            assert math.isclose(total, expected, rel_tol=1e-9, abs_tol=1e-9), name
        assert weights.metadata is None


def test_shared_storage_aliases_stay_one_storage(layout):
    checkpoint = MANIFEST["checkpoints"][0]
    model = layout.store.retrieve_weights(checkpoint["run"], checkpoint["iteration"]).model
    aliases = checkpoint["model_shared_storage_aliases"]
    assert aliases
    for group in aliases:
        assert len({model[name].untyped_storage().data_ptr() for name in group}) == 1


def test_the_optimizer_state_of_every_checkpoint_loads(layout):
    for checkpoint in MANIFEST["checkpoints"]:
        optimizer = layout.store.retrieve_weights(checkpoint["run"], checkpoint["iteration"]).optimizer
        expected = checkpoint["optimizer"]
        groups = optimizer["param_groups"]
        assert [g["params"] for g in groups] == [g["params"] for g in expected["param_groups"]]
        assert [g["lr"] for g in groups] == [g["lr"] for g in expected["param_groups"]]
        assert sorted(optimizer["state"]) == expected["state_param_ids"]
        assert sorted(next(iter(optimizer["state"].values()))) == sorted(expected["state_keys"])


@pytest.mark.parametrize("run", RUNS)
def test_iterations_and_latest_are_dacapos(layout, run):
    expected = sorted(c["iteration"] for c in MANIFEST["checkpoints"] if c["run"] == run)
    assert layout.store.iterations(run) == expected
    assert layout.store.latest_iteration(run) == MANIFEST["latest_iteration"][run]


@pytest.mark.parametrize("run", RUNS)
def test_validation_scores_are_dacapos_best_over_parameter_sets(layout, run):
    expected = expected_scores(SCORES[run])
    assert nan_safe(layout.store.retrieve_validation_scores(run)) == nan_safe(expected)
    assert layout.store.criteria(run) == sorted(expected)


def test_every_criterion_dacapo_reports_has_dacapos_direction():
    for entry in MANIFEST["scores"]:
        for criterion, higher in entry["higher_is_better"].items():
            assert known_direction(criterion) is higher, criterion


def test_channel_prefixed_criteria_take_their_criterion_direction():
    assert known_direction("mito__dice") is True
    assert known_direction("er__voi") is False
    assert known_direction("my__channel__f1_score") is True
    assert known_direction("mito__unknown") is None


def test_task_criteria_are_the_evaluators_in_order():
    registry = DacapoFiles(PACK / "files")
    for run, entry in SCORES.items():
        assert task_criteria(registry.run_document(run)["task_config"]) == entry["criteria"], run
    assert task_criteria({"__type__": "DistanceTaskConfig", "channels": ["a"]})[0] == "a__dice"
    assert task_criteria(
        {"__type__": "PretrainedTaskConfig", "sub_task_config": {"__type__": "AffinitiesTaskConfig"}}
    ) == [
        "voi_split",
        "voi_merge",
        "voi",
    ]
    assert task_criteria({"__type__": "SomethingNew"}) is None


@pytest.mark.parametrize("run", RUNS)
def test_retrieve_best_per_dataset_and_criterion(layout, run):
    entry = SCORES[run]
    pinned = pins()
    for criterion in layout.store.criteria(run):
        for dataset in entry["datasets"]:
            expected = pinned.get((run, dataset, criterion), expected_best(entry, criterion, dataset))
            assert layout.store.retrieve_best(run, criterion, dataset) == expected, (criterion, dataset)


def test_dacapos_store_best_choices_are_pins(layout):
    for best in MANIFEST["store_best"]:
        returns = best["retrieve_best(run, criterion, dataset)"]["returns"]
        assert layout.store.retrieve_best(best["run"], best["criterion"], best["dataset"]) == returns


def test_a_pin_on_a_single_dataset_run_is_its_best_over_all_datasets(layout):
    run = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"
    assert layout.store.retrieve_best(run, "frizz_level") == 9  # DaCapo's store_best, not the computed 6
    assert expected_best(SCORES[run], "frizz_level", None) == 6


def test_an_unknown_criterion_lists_dacapos(layout):
    run = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"
    with pytest.raises(CriterionNotFoundError, match="mito__dice"):
        layout.store.retrieve_best(run, "no_such_criterion")


@pytest.mark.parametrize("entry", MANIFEST["training_stats"], ids=lambda e: e["run"][:20])
def test_training_stats_are_dacapos(layout, entry):
    expected = [
        TrainingIterationStats(int(it), number(v["loss"]), number(v["time"]))
        for it, v in sorted(entry["stats"].items(), key=lambda kv: int(kv[0]))
    ]
    assert layout.store.retrieve_training_stats(entry["run"]) == expected


def test_dacapos_training_stats_are_dated_where_dacapo_keeps_them(layout):
    """Files: the stats file's mtime (the pack's copy keeps it); MongoDB: the ObjectId of the
    newest document (given when the pack was loaded, just now)."""
    for entry in MANIFEST["training_stats"]:
        written = layout.store.training_stats_updated(entry["run"])
        last = max(int(iteration) for iteration in entry["stats"])
        assert layout.store.training_stats_extent(entry["run"]) == (last, written)
        if layout.kind == "files":
            mtime = (layout.root / "stats" / "training_stats" / entry["run"]).stat().st_mtime
            assert written == datetime.fromtimestamp(mtime, timezone.utc)
        else:
            assert datetime.now(timezone.utc) - written < timedelta(minutes=5)
    assert layout.store.training_stats_updated(RUNS[0] + "_no_such_run") is None


def _module_like(state: dict) -> torch.nn.Module:
    """A fresh module with the checkpoint's keys and shapes, filled with zeros."""
    root = torch.nn.Module()
    for key, tensor in state.items():
        *path, leaf = key.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_buffer(leaf, torch.zeros_like(tensor))
    return root


@pytest.mark.parametrize("criterion", ["mito__dice", "mito__voi", "latest", "10"])
def test_a_start_from_a_dacapo_run_loads_the_right_iteration(layout, criterion):
    run = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"
    expected = {"latest": 20, "10": 10}.get(criterion) or expected_best(SCORES[run], criterion, None)
    source = layout.store.retrieve_weights(run, expected).model
    model = _module_like(source)
    report = Start(StartConfig(run, criterion), weights_store=layout.store).initialize_weights(
        model, strict=True
    )
    assert report.iteration == expected
    state = model.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in source)
