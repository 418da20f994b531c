"""DaCapo's two dialects (0.3.5 and main): telling them apart, reading both, writing a registry's.

A document is recognised by its fields; one mixing both is an error naming a field of each.
`converter.unstructure` stays DaCapo 0.3.5's document; a registry writes DaCapo 0.3.5's unless
it holds DaCapo main documents or its options say `dacapo_dialect: main`, and refuses what its
dialect can't express, writing nothing.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from conftest import make_config_store

from dacapo_store import (
    CNNectomeUNetConfig,
    ConfigValidationError,
    DialectError,
    DummyArchitectureConfig,
    DummyTaskConfig,
    DummyTrainerConfig,
    GunpowderTrainerConfig,
    InvalidNameError,
    ModelZooConfig,
    NoiseAugmentConfig,
    Options,
    RunConfig,
    TrainerConfig,
    UnknownConfigTypeError,
    WrappedArchitectureConfig,
    ZarrArrayConfig,
    converter,
)
from dacapo_store.config_store import FileConfigStore, create_config_store
from dacapo_store.config_store.dialects import document_dialect
from dacapo_store.errors import OptionsError

UNET_035 = {
    "__type__": "CNNectomeUNetConfig",
    "name": "unet",
    "input_shape": (132, 132, 132),
    "fmaps_out": 12,
    "fmaps_in": 1,
    "num_fmaps": 12,
    "fmap_inc_factor": 6,
    "downsample_factors": [(2, 2, 2)],
    "kernel_size_down": None,
    "kernel_size_up": None,
    "_eval_shape_increase": None,
    "upsample_factors": None,
    "constant_upsample": True,
    "padding": "valid",
    "use_attention": False,
    "batch_norm": False,
}
UNET_MAIN = {("_input_shape" if k == "input_shape" else k): v for k, v in UNET_035.items()}
TRAINER_035 = {
    "__type__": "GunpowderTrainerConfig",
    "name": "gp",
    "batch_size": 2,
    "learning_rate": 0.0001,
    "num_data_fetchers": 5,
    "augments": [],
    "snapshot_interval": None,
    "min_masked": 0.15,
    "clip_raw": False,
    "gt_min_reject": None,
}
TRAINER_MAIN = {
    "__type__": "GunpowderTrainerConfig",
    "name": "gp",
    "augments": [],
    "min_masked": 0.15,
    "clip_raw": False,
    "sample_strategy": None,
}


def main_run() -> RunConfig:
    return RunConfig(
        task_config=DummyTaskConfig(name="task", embedding_dims=3, detection_threshold=0.5),
        architecture_config=WrappedArchitectureConfig(
            name="wrapped", module=Path("/models/net.pt"), fmaps_in=1, fmaps_out=3, input_shape=(8, 8, 8)
        ),
        trainer_config=GunpowderTrainerConfig(name="gp_main", augments=[NoiseAugmentConfig({"var": 0.01})]),
        datasplit_config=None,
        name="main_run",
        repetition=0,
        num_iterations=10,
        batch_size=4,
        learning_rate=0.01,
    )


# --- telling the dialects apart ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "cls", "dialect"),
    [
        (UNET_035, CNNectomeUNetConfig, "0.3.5"),
        (UNET_MAIN, CNNectomeUNetConfig, "main"),
        (TRAINER_035, TrainerConfig, "0.3.5"),
        (TRAINER_MAIN, TrainerConfig, "main"),
        ({"__type__": "TrainerConfig", "name": "base"}, TrainerConfig, "main"),  # no batch_size
        (
            {"__type__": "DummyTaskConfig", "name": "t", "embedding_dims": 1, "detection_threshold": 1.0},
            object,
            None,
        ),
    ],
)
def test_a_documents_dialect_is_told_by_its_fields(doc, cls, dialect):
    assert converter.dialect_of(doc, cls) == dialect


def test_a_document_mixing_both_dialects_is_an_error_naming_a_field_of_each():
    run = converter.unstructure(main_run(), dialect="main")
    run["architecture_config"] = UNET_035  # 0.3.5's `input_shape` in a main run
    with pytest.raises(DialectError, match=r"architecture_config\.input_shape is DaCapo 0\.3\.5's") as info:
        converter.structure(run, RunConfig)
    assert "is DaCapo main's" in str(info.value)
    assert document_dialect(RunConfig, run) == "mixed"


def test_both_dialects_read_into_the_same_classes():
    assert converter.structure(UNET_035, CNNectomeUNetConfig) == converter.structure(
        UNET_MAIN, CNNectomeUNetConfig
    )
    main_trainer = converter.structure(TRAINER_MAIN, TrainerConfig)
    assert type(main_trainer) is GunpowderTrainerConfig
    assert (main_trainer.batch_size, main_trainer.learning_rate) == (None, None)


def test_converter_unstructure_stays_dacapo_035s_document():
    config = converter.structure(UNET_MAIN, CNNectomeUNetConfig)
    assert converter.unstructure(config) == UNET_035
    assert converter.unstructure(config, dialect="main") == UNET_MAIN


@pytest.mark.parametrize(
    "config",
    [
        WrappedArchitectureConfig(name="w", module="/m.pt", fmaps_in=1, fmaps_out=2, input_shape=(4, 4)),
        ModelZooConfig(name="zoo", model_id="affable-shark"),
        GunpowderTrainerConfig(name="gp", batch_size=1, learning_rate=0.1, augments=[NoiseAugmentConfig()]),
    ],
    ids=["wrapped", "zoo", "noise"],
)
def test_a_class_only_main_has_has_no_035_document(config):
    with pytest.raises(
        DialectError, match=r"exists only in DaCapo main; a DaCapo 0\.3\.5 document can't hold it"
    ):
        converter.unstructure(config)
    assert converter.unstructure(config, dialect="main")


def test_a_main_class_read_as_035_names_its_dialect():
    doc = converter.unstructure(ModelZooConfig(name="zoo", model_id="x"), dialect="main")
    with pytest.raises(UnknownConfigTypeError, match="'ModelZooConfig' is a DaCapo main class"):
        converter.structure(doc, ModelZooConfig, dialect="0.3.5")


def test_errors_name_the_key_the_dialect_writes():
    bad = {**UNET_MAIN, "_input_shape": "wide"}
    with pytest.raises(ConfigValidationError, match=r"_input_shape: expected a list of ints"):
        converter.structure(bad, CNNectomeUNetConfig)
    trainer = {k: v for k, v in TRAINER_035.items() if k != "learning_rate"}
    with pytest.raises(ConfigValidationError, match=r"learning_rate: required field missing"):
        converter.structure(trainer, TrainerConfig, dialect="0.3.5")


def test_a_035_run_needs_its_parts_and_a_main_run_may_leave_them_out():
    doc = converter.unstructure(main_run(), dialect="main")
    assert converter.structure(doc, RunConfig).datasplit_config is None
    with pytest.raises(
        ConfigValidationError, match=r"datasplit_config: DaCapo 0\.3\.5 requires a value, got None"
    ):
        converter.structure(doc, RunConfig, dialect="0.3.5")


def test_dacapo_mains_run_keys_come_in_its_order():
    doc = converter.unstructure(main_run(), dialect="main")
    assert list(doc)[:2] == ["architecture_config", "task_config"]
    assert list(doc)[-3:] == ["snapshot_interval", "start_config", "learning_rate"]
    assert list(
        converter.unstructure(
            attrs.evolve(
                main_run(),
                architecture_config=DummyArchitectureConfig(name="a", num_in_channels=1, num_out_channels=1),
                trainer_config=DummyTrainerConfig(
                    name="d", batch_size=1, learning_rate=0.1, mirror_augment=True
                ),
                datasplit_config=None,
            )
        )
    )[:2] == ["task_config", "architecture_config"]


# --- a registry's dialect ------------------------------------------------------------------------


@pytest.fixture(params=["files", "mongomock"])
def backend(request):
    return request.param


def test_an_empty_registry_writes_035(backend, tmp_path):
    assert make_config_store(backend, tmp_path).dialect() == "0.3.5"


def test_a_registry_holding_a_main_document_writes_main(backend, tmp_path):
    writer = make_config_store(backend, tmp_path)
    writer.dialect_option = "main"
    writer.store_trainer_config(GunpowderTrainerConfig(name="gp_main", sample_strategy="reject"))
    if backend == "files":
        reader = FileConfigStore(tmp_path / "configs")
    else:
        reader = type(writer)(client=writer.client, db_name=writer.db.name)
    assert reader.dialect() == "main"


def test_the_options_choose_the_dialect(tmp_path, monkeypatch):
    options_file = tmp_path / "dacapo.yaml"
    options_file.write_text(f"runs_base_dir: {tmp_path}\ndacapo_dialect: main\n")
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(options_file))
    assert Options.instance().dacapo_dialect == "main"
    assert create_config_store().dialect() == "main"


def test_an_unknown_dialect_option_is_refused_naming_the_file(tmp_path, monkeypatch):
    options_file = tmp_path / "dacapo.yaml"
    options_file.write_text("dacapo_dialect: '0.4'\n")
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(options_file))
    with pytest.raises(
        OptionsError, match=rf"dacapo_dialect must be '0\.3\.5' or 'main', got '0\.4' \(in {options_file}"
    ):
        Options.instance()


# --- writing in the registry's dialect -----------------------------------------------------------


def snapshot(store, backend: str, tmp_path: Path):
    if backend == "files":
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    return {c: list(store.db[c].find({}, {"_id": False})) for c in store.db.list_collection_names()}


def test_a_main_run_is_refused_by_a_035_registry_and_nothing_is_written(backend, tmp_path):
    store = make_config_store(backend, tmp_path)
    before = snapshot(store, backend, tmp_path)
    with pytest.raises(
        DialectError, match=r"can't be stored in .*which holds DaCapo 0\.3\.5 documents"
    ) as info:
        store.store_run_config(main_run())
    assert "WrappedArchitectureConfig exists only in DaCapo main" in str(info.value)
    assert "dacapo-store migrate --to main" in str(info.value)
    assert snapshot(store, backend, tmp_path) == before


def test_a_main_trainer_is_refused_by_a_035_registry_naming_what_it_lacks(backend, tmp_path):
    store = make_config_store(backend, tmp_path)
    with pytest.raises(DialectError, match=r"batch_size: DaCapo 0\.3\.5 requires a value, got None"):
        store.store_trainer_config(GunpowderTrainerConfig(name="gp_main", sample_strategy="reject"))
    assert store.names("trainers") == []


def test_a_035_trainer_is_refused_by_a_main_registry_naming_what_it_would_lose(backend, tmp_path):
    store = make_config_store(backend, tmp_path)
    store.dialect_option = "main"
    trainer = converter.structure(TRAINER_035, TrainerConfig)
    with pytest.raises(
        DialectError,
        match=r"DaCapo main has no place for batch_size = 2 "
        r"\(DaCapo main keeps batch_size on the RunConfig\)",
    ):
        store.store_trainer_config(trainer)
    with pytest.raises(DialectError, match="batch_size = 2"):
        store.put_document("trainers", TRAINER_035)
    assert store.names("trainers") == []


def test_what_both_dialects_express_is_written_in_the_registrys(backend, tmp_path):
    store = make_config_store(backend, tmp_path)
    store.dialect_option = "main"
    zarr_035 = converter.unstructure(ZarrArrayConfig(name="raw", file_name="/d/raw.zarr", dataset="s0"))
    assert "ome_metadata" not in zarr_035
    assert store.put_document("arrays", zarr_035) is True
    stored = store.get_document("arrays", "raw")
    assert stored["ome_metadata"] is False
    assert document_dialect(ZarrArrayConfig, stored) == "main"
    unet = converter.structure(UNET_035, CNNectomeUNetConfig)
    store.store_architecture_config(unet)
    assert "_input_shape" in store.get_document("architectures", "unet")


def test_a_document_mixing_both_is_refused(backend, tmp_path):
    store = make_config_store(backend, tmp_path)
    mixed = {**TRAINER_035, "sample_strategy": "reject"}
    with pytest.raises(
        DialectError, match=r"trainers/'gp' can't be stored.*sample_strategy is DaCapo main's"
    ):
        store.put_document("trainers", mixed)
    assert store.names("trainers") == []


def test_a_document_without_a_name_is_refused_saying_so(backend, tmp_path):
    store = make_config_store(backend, tmp_path)
    store.dialect_option = "main"
    doc = {**converter.unstructure(main_run(), dialect="main"), "name": None}
    with pytest.raises(InvalidNameError, match=r"a run document without a name \(name: None.*give it a name"):
        store.put_document("runs", doc)
    assert store.names("runs") == []
