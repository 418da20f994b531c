"""Typed writes that can't be read back, parts in use, the start criterion rule, recorded hashes."""

from __future__ import annotations

import attrs
import pytest
from conftest import full_run, small_run

from dacapo_store.configs import DummyArchitectureConfig, GunpowderTrainerConfig, StartConfig
from dacapo_store.errors import ConfigInUseError, ConfigValidationError


def documents(store) -> dict:
    return {kind: dict(store.documents(kind)) for kind in ("runs", "tasks", "architectures", "trainers")}


def test_a_field_of_the_wrong_type_is_refused_naming_the_field(config_store):
    config = DummyArchitectureConfig(name="x", num_in_channels="1", num_out_channels=2)
    with pytest.raises(ConfigValidationError, match=r"num_in_channels: expected int, got '1'"):
        config_store.store_architecture_config(config)
    assert config_store.names("architectures") == []


def test_a_run_with_a_badly_typed_part_stores_nothing(config_store):
    trainer = GunpowderTrainerConfig("gp", batch_size=2.5, learning_rate=0.1)
    run = attrs.evolve(small_run(), trainer_config=trainer)
    with pytest.raises(ConfigValidationError, match=r"trainer_config\.batch_size"):
        config_store.store_run_config(run)
    assert documents(config_store) == {"runs": {}, "tasks": {}, "architectures": {}, "trainers": {}}


def test_an_int_for_a_float_field_is_stored_and_reads_back(config_store):
    trainer = GunpowderTrainerConfig("gp", batch_size=2, learning_rate=1)
    assert config_store.store_trainer_config(trainer) is True
    assert config_store.retrieve_trainer_config("gp").learning_rate == 1.0


@pytest.mark.parametrize("criterion", ["bogus crit", "a.b", "$where", ""])
def test_a_start_criterion_breaking_the_rule_fails_verify(config_store, criterion):
    start = StartConfig("pretrained", criterion)
    ok, why = start.verify()
    assert not ok and "invalid criterion" in why
    with pytest.raises(ConfigValidationError, match="invalid criterion"):
        config_store.store_run_config(full_run(start_config=start))
    assert config_store.names("runs") == []


@pytest.mark.parametrize("criterion", ["voi", "latest", "5000", "f1_score"])
def test_a_start_criterion_within_the_rule_verifies(criterion):
    assert StartConfig("pretrained", criterion).verify()[0]


@pytest.mark.parametrize(
    ("kind", "name"),
    [("tasks", "distances"), ("architectures", "unet"), ("trainers", "gunpowder"), ("datasplits", "split")],
)
def test_deleting_a_part_stored_runs_use_is_refused_unless_forced(config_store, kind, name):
    config_store.store_run_config(full_run("a"))
    config_store.store_run_config(full_run("b"))
    before = documents(config_store)
    with pytest.raises(ConfigInUseError, match=rf"{kind[:-1]} '{name}' is used by run\(s\) a, b"):
        config_store.delete(kind, name)
    assert documents(config_store) == before
    config_store.delete(kind, name, force=True)
    assert name not in config_store.names(kind)


def test_metadata_keeps_the_hash_recorded_when_stored(config_store):
    config_store.store_run_config(small_run())
    recorded = config_store.metadata("runs", "small").content_hash
    assert recorded.startswith("sha256:")
    raw = config_store.raw_document("runs", "small")
    raw["num_iterations"] = 7  # what a hand edit does, kept with its old metadata
    config_store._delete("runs", "small")
    config_store._insert("runs", "small", raw)
    assert config_store.metadata("runs", "small").content_hash == recorded
