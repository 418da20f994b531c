"""The config classes: exactly DaCapo 0.3.5's fields and defaults, and DaCapo main's; help texts,
verify()."""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path

import attrs
import pytest

import dacapo_store
import dacapo_store.configs as configs
from dacapo_store.configs import (
    ArchitectureConfig,
    ArrayConfig,
    AugmentConfig,
    CNNectomeUNetConfig,
    Coordinate,
    DatasetConfig,
    DataSplitConfig,
    DummyArchitectureConfig,
    DummyArrayConfig,
    DummyDatasetConfig,
    DummyDataSplitConfig,
    DummyTaskConfig,
    DummyTrainerConfig,
    GunpowderTrainerConfig,
    RawGTDatasetConfig,
    RunConfig,
    StartConfig,
    TaskConfig,
    TrainValidateDataSplitConfig,
    ZarrArrayConfig,
)
from dacapo_store.configs._base import dialects_of, document_key, required_in

REQUIRED = object()
"""Marks a field without a default in the table below."""

# DACAPO_FORMAT.md, "Config classes of DaCapo 0.3.5": class -> (family base, fields in
# order with their defaults). A list default stands for a factory making that list.
NAME = {"name": REQUIRED}
TRAINER = {**NAME, "batch_size": REQUIRED, "learning_rate": REQUIRED}
DATASET = {**NAME, "weight": 1}
CLASSES: dict[str, tuple[str | None, dict[str, object]]] = {
    "RunConfig": (
        None,
        {
            "task_config": REQUIRED,
            "architecture_config": REQUIRED,
            "trainer_config": REQUIRED,
            "datasplit_config": REQUIRED,
            "name": REQUIRED,
            "repetition": REQUIRED,
            "num_iterations": REQUIRED,
            "validation_interval": 1000,
            "start_config": None,
        },
    ),
    "StartConfig": ("StartConfig", {"run": REQUIRED, "criterion": REQUIRED}),
    "TrainerConfig": ("TrainerConfig", TRAINER),
    "GunpowderTrainerConfig": (
        "TrainerConfig",
        {
            **TRAINER,
            "num_data_fetchers": 5,
            "augments": [],
            "snapshot_interval": None,
            "min_masked": 0.15,
            "clip_raw": False,
            "gt_min_reject": None,
        },
    ),
    "DummyTrainerConfig": ("TrainerConfig", {**TRAINER, "mirror_augment": REQUIRED}),
    "AugmentConfig": ("AugmentConfig", {}),
    "SimpleAugmentConfig": ("AugmentConfig", {"augmentation_probability": 1.0}),
    "ElasticAugmentConfig": (
        "AugmentConfig",
        {
            "control_point_spacing": REQUIRED,
            "control_point_displacement_sigma": REQUIRED,
            "rotation_interval": REQUIRED,
            "subsample": 1,
            "uniform_3d_rotation": False,
            "augmentation_probability": 1.0,
        },
    ),
    "IntensityAugmentConfig": (
        "AugmentConfig",
        {"scale": REQUIRED, "shift": REQUIRED, "clip": True, "augmentation_probability": 1.0},
    ),
    "GammaAugmentConfig": ("AugmentConfig", {"gamma_range": REQUIRED}),
    "ArchitectureConfig": ("ArchitectureConfig", NAME),
    "CNNectomeUNetConfig": (
        "ArchitectureConfig",
        {
            **NAME,
            "input_shape": REQUIRED,
            "fmaps_out": REQUIRED,
            "fmaps_in": REQUIRED,
            "num_fmaps": REQUIRED,
            "fmap_inc_factor": REQUIRED,
            "downsample_factors": REQUIRED,
            "kernel_size_down": None,
            "kernel_size_up": None,
            "_eval_shape_increase": None,
            "upsample_factors": None,
            "constant_upsample": True,
            "padding": "valid",
            "use_attention": False,
            "batch_norm": False,
        },
    ),
    "DummyArchitectureConfig": (
        "ArchitectureConfig",
        {**NAME, "num_in_channels": REQUIRED, "num_out_channels": REQUIRED},
    ),
    "TaskConfig": ("TaskConfig", NAME),
    "DistanceTaskConfig": (
        "TaskConfig",
        {
            **NAME,
            "channels": REQUIRED,
            "clip_distance": REQUIRED,
            "tol_distance": REQUIRED,
            "scale_factor": 1,
            "mask_distances": True,
            "clipmin": 0.05,
            "clipmax": 0.95,
        },
    ),
    "AffinitiesTaskConfig": (
        "TaskConfig",
        {
            **NAME,
            "neighborhood": REQUIRED,
            "lsds": False,
            "num_lsd_voxels": 10,
            "downsample_lsds": 1,
            "lsds_to_affs_weight_ratio": 1,
            "affs_weight_clipmin": 0.05,
            "affs_weight_clipmax": 0.95,
            "lsd_weight_clipmin": 0.05,
            "lsd_weight_clipmax": 0.95,
            "background_as_object": False,
        },
    ),
    "OneHotTaskConfig": ("TaskConfig", {**NAME, "classes": REQUIRED, "kernel_size": None}),
    "DummyTaskConfig": (
        "TaskConfig",
        {**NAME, "embedding_dims": REQUIRED, "detection_threshold": REQUIRED},
    ),
    "DataSplitConfig": ("DataSplitConfig", NAME),
    "TrainValidateDataSplitConfig": (
        "DataSplitConfig",
        {**NAME, "train_configs": REQUIRED, "validate_configs": REQUIRED},
    ),
    "DummyDataSplitConfig": ("DataSplitConfig", {**NAME, "train_config": REQUIRED}),
    "DatasetConfig": ("DatasetConfig", DATASET),
    "RawGTDatasetConfig": (
        "DatasetConfig",
        {
            **DATASET,
            "raw_config": None,
            "gt_config": None,
            "mask_config": None,
            "sample_points": None,
        },
    ),
    "DummyDatasetConfig": ("DatasetConfig", {**DATASET, "raw_config": REQUIRED}),
    "ArrayConfig": ("ArrayConfig", NAME),
    "ZarrArrayConfig": (
        "ArrayConfig",
        {
            **NAME,
            "file_name": REQUIRED,
            "dataset": REQUIRED,
            "snap_to_grid": None,
            "_axes": None,
            "mode": "a",
        },
    ),
    "DummyArrayConfig": ("ArrayConfig", NAME),
    # The rest of DaCapo 0.3.5's classes, fields in DaCapo's order (its documents' order).
    "TiffArrayConfig": (
        "ArrayConfig",
        {
            **NAME,
            "file_name": REQUIRED,
            "offset": REQUIRED,
            "voxel_size": REQUIRED,
            "axis_names": REQUIRED,
            "units": REQUIRED,
        },
    ),
    "DVIDArrayConfig": ("ArrayConfig", {**NAME, "source": REQUIRED}),
    "BinarizeArrayConfig": (
        "ArrayConfig",
        {**NAME, "source_array_config": REQUIRED, "groupings": REQUIRED, "background": 0},
    ),
    "ConcatArrayConfig": (
        "ArrayConfig",
        {**NAME, "channels": REQUIRED, "source_array_configs": REQUIRED, "default_config": None},
    ),
    "ConstantArrayConfig": ("ArrayConfig", {**NAME, "source_array_config": REQUIRED, "constant": 1}),
    "CropArrayConfig": ("ArrayConfig", {**NAME, "source_array_config": REQUIRED, "roi": REQUIRED}),
    "IntensitiesArrayConfig": (
        "ArrayConfig",
        {**NAME, "source_array_config": REQUIRED, "min": REQUIRED, "max": REQUIRED},
    ),
    "LogicalOrArrayConfig": ("ArrayConfig", {**NAME, "source_array_config": REQUIRED}),
    "MergeInstancesArrayConfig": ("ArrayConfig", {**NAME, "source_array_configs": REQUIRED}),
    "MissingAnnotationsMaskConfig": (
        "ArrayConfig",
        {**NAME, "source_array_config": REQUIRED, "groupings": REQUIRED},
    ),
    "OnesArrayConfig": ("ArrayConfig", {**NAME, "source_array_config": REQUIRED}),
    "ResampledArrayConfig": (
        "ArrayConfig",
        {
            **NAME,
            "source_array_config": REQUIRED,
            "upsample": REQUIRED,
            "downsample": REQUIRED,
            "interp_order": REQUIRED,
        },
    ),
    "SumArrayConfig": ("ArrayConfig", {**NAME, "source_array_configs": REQUIRED}),
    "SimpleDataset": (
        "DatasetConfig",
        {**NAME, "path": REQUIRED, "weight": 1, "raw_name": "raw", "gt_name": "labels", "mask_name": "mask"},
    ),
    "SimpleDataSplitConfig": (
        "DataSplitConfig",
        {
            "path": REQUIRED,
            **NAME,
            "train_group_name": "train",
            "validate_group_name": "test",
            "raw_name": "raw",
            "gt_name": "labels",
            "mask_name": "mask",
        },
    ),
    "HotDistanceTaskConfig": (
        "TaskConfig",
        {
            **NAME,
            "channels": REQUIRED,
            "clip_distance": REQUIRED,
            "tol_distance": REQUIRED,
            "scale_factor": 1,
            "mask_distances": False,
            "kernel_size": None,
        },
    ),
    "InnerDistanceTaskConfig": (
        "TaskConfig",
        {
            **NAME,
            "channels": REQUIRED,
            "clip_distance": REQUIRED,
            "tol_distance": REQUIRED,
            "scale_factor": 1,
        },
    ),
    "PretrainedTaskConfig": ("TaskConfig", {**NAME, "sub_task_config": REQUIRED, "weights": REQUIRED}),
    "IntensityScaleShiftAugmentConfig": ("AugmentConfig", {"scale": REQUIRED, "shift": REQUIRED}),
    "CosemStartConfig": ("StartConfig", {"run": REQUIRED, "criterion": REQUIRED}),
}


#: DaCapo main's classes and defaults where they differ from 0.3.5's (the fields and their
#: order are in the main pack's manifest, `classes`).
MAIN_MANIFEST = json.loads((Path(__file__).parent / "data" / "dacapo-main" / "manifest.json").read_text())
MAIN_NEW_CLASSES = {
    "WrappedArchitectureConfig": (
        "ArchitectureConfig",
        {"_scale": None, "trainable_parameters": None},
    ),
    "ModelZooConfig": ("ArchitectureConfig", {"trainable_layers": None}),
    "NoiseAugmentConfig": ("AugmentConfig", {"kwargs": {}}),
}
MAIN_DEFAULTS = {
    "RunConfig": {
        "batch_size": 1,
        "num_workers": 0,
        "snapshot_interval": None,
        "learning_rate": 1e-3,
        "validation_interval": 1000,
        "start_config": None,
    },
    "GunpowderTrainerConfig": {
        "augments": [],
        "min_masked": 0.15,
        "clip_raw": False,
        "sample_strategy": None,
    },
    "ZarrArrayConfig": {"snap_to_grid": None, "_axes": None, "mode": "a", "ome_metadata": False},
    **{name: defaults for name, (_, defaults) in MAIN_NEW_CLASSES.items()},
}


def main_classes() -> list[str]:
    return sorted(n for n, c in MAIN_MANIFEST["classes"].items() if c["in_pack"] or n in MAIN_NEW_CLASSES)


def default_of(field: attrs.Attribute, dialect: str = "0.3.5") -> object:
    if field.default is attrs.NOTHING or required_in(field, dialect):
        return REQUIRED
    if isinstance(field.default, attrs.Factory):
        return field.default.factory()
    return field.default


# --- the classes and their fields ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_is_an_attrs_class_in_configs_and_at_top_level(name):
    cls = getattr(configs, name)
    assert attrs.has(cls)
    assert getattr(dacapo_store, name) is cls


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_belongs_to_its_family(name):
    family, _ = CLASSES[name]
    cls = getattr(configs, name)
    if family is None:
        assert not any(issubclass(cls, getattr(configs, base)) for base, _ in CLASSES.values() if base)
    else:
        assert issubclass(cls, getattr(configs, family))


def dialect_fields(cls: type, dialect: str) -> list[attrs.Attribute]:
    return [f for f in attrs.fields(cls) if document_key(f, dialect) is not None]


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_has_exactly_the_dacapo_fields_in_order(name):
    _, expected = CLASSES[name]
    assert [f.name for f in dialect_fields(getattr(configs, name), "0.3.5")] == list(expected)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_field_defaults_are_dacapos(name):
    _, expected = CLASSES[name]
    actual = {f.name: default_of(f) for f in dialect_fields(getattr(configs, name), "0.3.5")}
    assert actual == expected


@pytest.mark.parametrize("name", main_classes())
def test_class_has_exactly_dacapo_mains_fields_in_its_order(name):
    cls = getattr(configs, name)
    keys = {document_key(f, "main"): f for f in dialect_fields(cls, "main")}
    order = getattr(cls, "__dacapo_key_order__", {}).get("main", list(keys))
    assert list(order) == MAIN_MANIFEST["classes"][name]["attrs_fields"]
    assert set(keys) == set(order)


@pytest.mark.parametrize("name", sorted(MAIN_DEFAULTS))
def test_field_defaults_are_dacapo_mains(name):
    cls = getattr(configs, name)
    actual = {f.name: default_of(f, "main") for f in dialect_fields(cls, "main")}
    assert {k: actual[k] for k in MAIN_DEFAULTS[name]} == MAIN_DEFAULTS[name]
    optional = {"task_config", "trainer_config", "datasplit_config", "name", "repetition", "num_iterations"}
    if name == "RunConfig":  # DaCapo main allows None for every part but the architecture
        fields = attrs.fields(attrs.resolve_types(cls))
        assert all(type(None) in typing.get_args(f.type) for f in fields if f.name in optional)


@pytest.mark.parametrize("name", sorted(MAIN_NEW_CLASSES))
def test_dacapo_mains_new_classes_are_main_only(name):
    family, _ = MAIN_NEW_CLASSES[name]
    cls = getattr(configs, name)
    assert issubclass(cls, getattr(configs, family))
    assert getattr(dacapo_store, name) is cls
    assert dialects_of(cls) == ("main",)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_field_has_a_help_text(name):
    for field in attrs.fields(getattr(configs, name)):
        help_text = field.metadata.get("help_text")
        assert isinstance(help_text, str) and help_text.strip(), f"{name}.{field.name}"


def test_list_default_is_not_shared_between_instances():
    a = GunpowderTrainerConfig(name="a", batch_size=1, learning_rate=0.1)
    b = GunpowderTrainerConfig(name="b", batch_size=1, learning_rate=0.1)
    a.augments.append(configs.SimpleAugmentConfig())
    assert b.augments == []


def test_private_fields_are_set_by_their_public_names():
    unet = unet_config(eval_shape_increase=[8, 8, 8])
    zarr = ZarrArrayConfig(name="z", file_name="a.zarr", dataset="raw", axes=["z", "y", "x"])
    assert unet._eval_shape_increase == (8, 8, 8)
    assert zarr._axes == ["z", "y", "x"]


# --- Coordinate --------------------------------------------------------------------------


def test_coordinate_accepts_a_list_and_is_a_tuple_of_ints():
    c = Coordinate([1, 2, 3])
    assert isinstance(c, tuple)
    assert c == (1, 2, 3)
    assert all(type(v) is int for v in c)


def test_coordinate_accepts_separate_ints():
    assert Coordinate(4, 5) == (4, 5)


@pytest.mark.parametrize("bad", [[1.5, 2], ["1", 2], [True, 2]])
def test_coordinate_refuses_what_is_not_an_int(bad):
    with pytest.raises(TypeError):
        Coordinate(bad)


def test_coordinate_fields_turn_lists_into_coordinates():
    unet = unet_config(
        input_shape=[10, 20, 30], downsample_factors=[[2, 2, 2]], eval_shape_increase=[4, 4, 4]
    )
    assert type(unet.input_shape) is Coordinate
    assert all(type(f) is Coordinate for f in unet.downsample_factors)
    assert type(unet._eval_shape_increase) is Coordinate


def test_nested_coordinate_lists_turn_into_coordinates():
    unet = unet_config(kernel_size_down=[[[3, 3, 3], [3, 3, 3]]])
    assert all(type(k) is Coordinate for level in unet.kernel_size_down for k in level)


def test_coordinate_list_fields_of_tasks_datasets_and_arrays_turn_into_coordinates():
    affs = configs.AffinitiesTaskConfig(name="affs", neighborhood=[[1, 0, 0], [0, 1, 0]])
    raw_gt = RawGTDatasetConfig(name="d", sample_points=[[1, 2, 3]])
    zarr = ZarrArrayConfig(name="z", file_name="a.zarr", dataset="raw", snap_to_grid=[2, 2, 2])
    assert all(type(c) is Coordinate for c in affs.neighborhood)
    assert all(type(c) is Coordinate for c in raw_gt.sample_points)
    assert type(zarr.snap_to_grid) is Coordinate


# --- verify() ------------------------------------------------------------------------------


def unet_config(**overrides) -> CNNectomeUNetConfig:
    fields = dict(
        name="unet",
        input_shape=[132, 132, 132],
        fmaps_out=12,
        fmaps_in=1,
        num_fmaps=12,
        fmap_inc_factor=6,
        downsample_factors=[[2, 2, 2], [2, 2, 2]],
    )
    return CNNectomeUNetConfig(**{**fields, **overrides})


def zarr_config(file_name: str | Path = "/data/crop.zarr") -> ZarrArrayConfig:
    return ZarrArrayConfig(name="raw", file_name=file_name, dataset="volumes/raw")


def trainer_config(**overrides) -> DummyTrainerConfig:
    return DummyTrainerConfig(
        **{"name": "trainer", "batch_size": 2, "learning_rate": 1e-4, "mirror_augment": True, **overrides}
    )


def run_config(**overrides) -> RunConfig:
    fields = dict(
        task_config=DummyTaskConfig(name="task", embedding_dims=3, detection_threshold=0.5),
        architecture_config=DummyArchitectureConfig(name="arch", num_in_channels=1, num_out_channels=2),
        trainer_config=trainer_config(),
        datasplit_config=DummyDataSplitConfig(
            name="split", train_config=RawGTDatasetConfig(name="ds", raw_config=zarr_config())
        ),
        name="run",
        repetition=0,
        num_iterations=100,
    )
    return RunConfig(**{**fields, **overrides})


def test_valid_trainer_verifies():
    assert trainer_config().verify()[0] is True


@pytest.mark.parametrize("batch_size", [0, -1])
def test_trainer_with_batch_size_not_positive_fails_verify(batch_size):
    ok, why = trainer_config(batch_size=batch_size).verify()
    assert ok is False
    assert "batch_size" in why


@pytest.mark.parametrize("learning_rate", [0.0, -0.1])
def test_trainer_with_learning_rate_not_positive_fails_verify(learning_rate):
    ok, why = trainer_config(learning_rate=learning_rate).verify()
    assert ok is False
    assert "learning_rate" in why


def test_gunpowder_trainer_inherits_the_trainer_checks():
    trainer = GunpowderTrainerConfig(name="gp", batch_size=0, learning_rate=0.1)
    assert trainer.verify()[0] is False


def test_valid_run_verifies():
    assert run_config().verify()[0] is True


def test_run_with_a_bad_trainer_fails_verify():
    ok, why = run_config(trainer_config=trainer_config(batch_size=0)).verify()
    assert ok is False
    assert "batch_size" in why


def test_run_with_a_bad_array_deep_in_its_datasplit_fails_verify():
    bad_split = TrainValidateDataSplitConfig(
        name="split",
        train_configs=[RawGTDatasetConfig(name="ds", raw_config=zarr_config())],
        validate_configs=[RawGTDatasetConfig(name="val", gt_config=zarr_config("/data/crop.h5"))],
    )
    ok, why = run_config(datasplit_config=bad_split).verify()
    assert ok is False
    assert "crop.h5" in why


def test_run_with_a_bad_architecture_fails_verify():
    ok, _ = run_config(architecture_config=unet_config(padding="full")).verify()
    assert ok is False


@pytest.mark.parametrize("num_iterations", [0, -5])
def test_run_with_num_iterations_not_positive_fails_verify(num_iterations):
    ok, why = run_config(num_iterations=num_iterations).verify()
    assert ok is False
    assert "num_iterations" in why


@pytest.mark.parametrize("validation_interval", [0, -5])
def test_run_with_validation_interval_not_positive_fails_verify(validation_interval):
    ok, why = run_config(validation_interval=validation_interval).verify()
    assert ok is False
    assert "validation_interval" in why


def test_run_starting_from_itself_fails_verify():
    ok, _ = run_config(start_config=StartConfig(run="run", criterion="latest")).verify()
    assert ok is False


def test_run_starting_from_another_run_verifies():
    assert run_config(start_config=StartConfig(run="other", criterion="f1_score")).verify()[0] is True


@pytest.mark.parametrize(
    "file_name", ["/data/crop.zarr", "/data/crop.n5", "relative/crop.zarr", "/data/c.zarr/inner"]
)
def test_zarr_array_in_a_zarr_or_n5_container_verifies(file_name):
    assert zarr_config(file_name).verify()[0] is True


@pytest.mark.parametrize("file_name", ["/data/crop.h5", "/data/crop", "/data/zarr"])
def test_zarr_array_outside_a_zarr_or_n5_container_fails_verify(file_name):
    ok, why = zarr_config(file_name).verify()
    assert ok is False
    assert str(Path(file_name)) in why


def test_zarr_verify_does_not_touch_the_disk(monkeypatch, tmp_path):
    touched = []

    def record(*args, **kwargs):
        touched.append(args)
        raise AssertionError("verify() touched the disk")

    config = zarr_config(tmp_path / "missing.zarr")
    with monkeypatch.context() as m:
        for name in ("stat", "lstat", "listdir", "scandir", "open"):
            m.setattr(os, name, record)
        m.setattr(Path, "exists", record)
        m.setattr(Path, "stat", record)
        result = config.verify()
    assert result[0] is True
    assert touched == []


def test_base_configs_answer_no_validation():
    for config in (
        DummyArrayConfig(name="a"),
        DatasetConfig(name="d"),
        ArrayConfig(name="a"),
        TaskConfig(name="t"),
        ArchitectureConfig(name="a"),
        DataSplitConfig(name="s"),
        AugmentConfig(),
    ):
        assert config.verify() == (True, f"No validation for this {type(config).__name__}")


def test_dummy_configs_are_valid():
    array = DummyArrayConfig(name="a")
    for config in (
        array,
        DummyDatasetConfig(name="d", raw_config=array),
        DummyDataSplitConfig(name="s", train_config=DummyDatasetConfig(name="d", raw_config=array)),
        DummyTaskConfig(name="t", embedding_dims=2, detection_threshold=0.5),
        DummyArchitectureConfig(name="a", num_in_channels=1, num_out_channels=1),
        trainer_config(),
    ):
        assert config.verify()[0] is True, type(config).__name__


# --- StartConfig ---------------------------------------------------------------------------


def test_start_type_is_the_start_class():
    from dacapo_store.start import Start

    assert StartConfig(run="other", criterion="latest").start_type is Start
