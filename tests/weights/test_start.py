"""Starting a run from another run's weights: by criterion, "latest" or iteration."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import no_options

from dacapo_store.configs import StartConfig
from dacapo_store.errors import CriterionNotFoundError, WeightsNotFoundError
from dacapo_store.start import LoadReport, Start

from .conftest import SmallCNN, assert_same_state, trained


@pytest.fixture
def source(store):
    """Run "source" with iterations 10 (best voi), 20 (latest), each from another seed."""
    models = {10: trained(seed=10)[0], 20: trained(seed=20)[0]}
    for iteration, model in models.items():
        store.store_weights("source", iteration, model)
    store.store_validation_scores("source", 10, {"voi": 0.1})
    store.store_validation_scores("source", 20, {"voi": 0.4})
    return models


def start(store, criterion: str) -> Start:
    return Start(StartConfig("source", criterion), weights_store=store)


def test_a_criterion_starts_from_its_best_iteration(store, source):
    model = SmallCNN()
    report = start(store, "voi").initialize_weights(model)
    assert report.iteration == 10
    assert_same_state(model.state_dict(), source[10].state_dict())


def test_latest_starts_from_the_highest_iteration(store, source):
    model = SmallCNN()
    assert start(store, "latest").initialize_weights(model).iteration == 20
    assert_same_state(model.state_dict(), source[20].state_dict())


def test_digits_start_from_that_iteration(store, source):
    model = SmallCNN()
    assert start(store, "20").initialize_weights(model).iteration == 20
    assert_same_state(model.state_dict(), source[20].state_dict())


def test_start_type_of_a_start_config_is_start(store, source):
    config = StartConfig("source", "voi")
    assert config.start_type(config, store).initialize_weights(SmallCNN()).iteration == 10


def test_a_new_head_is_reported_as_mismatched_while_the_backbone_loads(store, source):
    model = SmallCNN(out_channels=5)
    head_before = model.head.weight.detach().clone()
    report = start(store, "voi").initialize_weights(model)
    assert report.mismatched == ["head.weight", "head.bias"]
    assert report.shapes["head.weight"] == ((2, 8, 1, 1), (5, 8, 1, 1))
    assert set(report.loaded) == {k for k in source[10].state_dict() if k.startswith("backbone.")}
    assert report.missing == [] and report.unexpected == []
    assert torch.equal(model.head.weight, head_before)
    assert torch.equal(model.backbone[0].weight, source[10].backbone[0].weight)


def test_keys_only_in_the_model_or_the_checkpoint_are_reported(store, source):
    model = torch.nn.Sequential()
    model.add_module("backbone", SmallCNN().backbone)
    model.add_module("extra", torch.nn.Linear(2, 2))
    report = start(store, "voi").initialize_weights(model)
    assert report.missing == ["extra.weight", "extra.bias"]
    assert report.unexpected == ["head.weight", "head.bias"]


def test_strict_raises_on_a_mismatch_and_leaves_the_model_alone(store, source):
    model = SmallCNN(out_channels=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"head\.weight"):
        start(store, "voi").initialize_weights(model, strict=True)
    assert_same_state(model.state_dict(), before)


def test_strict_loads_a_matching_model(store, source):
    report = start(store, "voi").initialize_weights(SmallCNN(), strict=True)
    assert isinstance(report, LoadReport) and report.complete


def test_the_report_is_logged(store, source, caplog):
    with caplog.at_level(logging.INFO, logger="dacapo_store.start"):
        start(store, "voi").initialize_weights(SmallCNN(out_channels=5))
    assert "head.weight [2, 8, 1, 1] vs model [5, 8, 1, 1]" in caplog.text


def test_an_unknown_criterion_raises_criterion_not_found(store, source):
    with pytest.raises(CriterionNotFoundError, match="voi"):
        start(store, "dice").initialize_weights(SmallCNN())


def test_latest_of_a_run_without_weights_raises(store):
    with pytest.raises(WeightsNotFoundError):
        start(store, "latest").initialize_weights(SmallCNN())


def test_a_missing_iteration_raises(store, source):
    with pytest.raises(WeightsNotFoundError):
        start(store, "15").initialize_weights(SmallCNN())


def test_without_a_store_the_options_store_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("DACAPO_WEIGHTS_STORE", raising=False)
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    monkeypatch.setenv("DACAPO_RUNS_BASE_DIR", str(tmp_path / "base"))
    monkeypatch.chdir(tmp_path)
    from dacapo_store.weights import LocalWeightsStore

    model, _ = trained(seed=3)
    LocalWeightsStore(tmp_path / "base").store_weights("source", 4, model)
    config = StartConfig("source", "latest")
    assert config.start_type(config).initialize_weights(SmallCNN()).iteration == 4
