"""The converter: DaCapo documents, round trips, precise errors, plugin registration."""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import types
import typing
from pathlib import Path

import attrs
import pytest
import yaml
from conftest import as_lists
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dacapo_store
import dacapo_store.conversion
from dacapo_store.configs import (
    AffinitiesTaskConfig,
    ArchitectureConfig,
    ArrayConfig,
    AugmentConfig,
    CNNectomeUNetConfig,
    Coordinate,
    DatasetConfig,
    DataSplitConfig,
    DistanceTaskConfig,
    DummyArchitectureConfig,
    DummyArrayConfig,
    DummyDatasetConfig,
    DummyDataSplitConfig,
    DummyTaskConfig,
    DummyTrainerConfig,
    ElasticAugmentConfig,
    GammaAugmentConfig,
    GunpowderTrainerConfig,
    IntensityAugmentConfig,
    ModelZooConfig,
    NoiseAugmentConfig,
    OneHotTaskConfig,
    RawGTDatasetConfig,
    ResampledArrayConfig,
    RunConfig,
    SimpleAugmentConfig,
    StartConfig,
    TaskConfig,
    TrainerConfig,
    TrainValidateDataSplitConfig,
    WrappedArchitectureConfig,
    ZarrArrayConfig,
    register_config,
)
from dacapo_store.configs._base import DIALECTS, dialects_of, document_key, required_in
from dacapo_store.conversion import converter
from dacapo_store.errors import ConfigValidationError, UnknownConfigTypeError

# --- hypothesis strategies built from the attrs fields ---------------------------------------

#: The concrete classes of DACAPO_FORMAT.md per family, and those DaCapo main added; fixed
#: here, not read from the live registry, since plugin tests below add classes to it.
CONCRETE: dict[type, tuple[type, ...]] = {
    TaskConfig: (DistanceTaskConfig, AffinitiesTaskConfig, OneHotTaskConfig, DummyTaskConfig),
    ArchitectureConfig: (
        CNNectomeUNetConfig,
        DummyArchitectureConfig,
        WrappedArchitectureConfig,
        ModelZooConfig,
    ),
    TrainerConfig: (GunpowderTrainerConfig, DummyTrainerConfig),
    AugmentConfig: (
        SimpleAugmentConfig,
        ElasticAugmentConfig,
        IntensityAugmentConfig,
        GammaAugmentConfig,
        NoiseAugmentConfig,
    ),
    DataSplitConfig: (TrainValidateDataSplitConfig, DummyDataSplitConfig),
    DatasetConfig: (RawGTDatasetConfig, DummyDatasetConfig),
    ArrayConfig: (ZarrArrayConfig, DummyArrayConfig, ResampledArrayConfig),
    StartConfig: (StartConfig,),
}
FAMILY_OF = {cls: family for family, members in CONCRETE.items() for cls in members}

SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
names = st.text(SAFE, min_size=1, max_size=8)
ints = st.integers(-(2**31), 2**31)
floats = st.floats(allow_nan=False)
coordinates = st.lists(st.integers(0, 512), min_size=1, max_size=4).map(Coordinate)
plain_values = st.one_of(st.none(), st.booleans(), ints, floats, names)

HYPOTHESIS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def strategy_for(tp: typing.Any, dialect: str) -> st.SearchStrategy:
    """A strategy for values of the (resolved) field type `tp` that `dialect` can write."""
    if tp in CONCRETE:
        members = [c for c in CONCRETE[tp] if dialect in dialects_of(c)]
        return st.one_of([st.deferred(lambda c=c: configs_of(c, dialect)) for c in members])
    simple = {int: ints, float: floats, bool: st.booleans(), str: names, Coordinate: coordinates}
    if tp in simple:
        return simple[tp]
    if tp is Path:
        return st.lists(names, min_size=1, max_size=3).map(lambda parts: Path(*parts))
    if tp is typing.Any:
        return plain_values
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(a, dialect) for a in args])
    if tp is type(None):
        return st.none()
    if origin is list:
        # Nested configs multiply: two of them per list is enough to show the order is kept.
        return st.lists(strategy_for(args[0], dialect), max_size=2 if attrs.has(args[0]) else 3)
    if origin is tuple:
        return st.tuples(*(strategy_for(a, dialect) for a in args))
    if origin is dict:
        return st.dictionaries(names, strategy_for(args[1], dialect), max_size=3)
    raise NotImplementedError(f"no strategy for {tp!r}")


def _not_none(tp: typing.Any) -> typing.Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if len(args) == 1 and len(typing.get_args(tp)) == 2 else tp


@functools.cache
def configs_of(cls: type, dialect: str = "0.3.5") -> st.SearchStrategy:
    """Instances of the attrs class `cls` that `dialect` writes: every field of that dialect
    drawn from its type (never None where it requires a value), the others left at default."""
    fields = attrs.fields(attrs.resolve_types(cls))
    drawn = {}
    for f in fields:
        if document_key(f, dialect) is None:
            continue
        drawn[f.alias] = strategy_for(_not_none(f.type) if required_in(f, dialect) else f.type, dialect)
    return st.builds(cls, **drawn)


ROUND_TRIP_CLASSES = sorted(FAMILY_OF, key=lambda c: c.__name__)
CLASS_DIALECTS = [(c, d) for c in ROUND_TRIP_CLASSES for d in DIALECTS if d in dialects_of(c)]


def _ids(value: typing.Any) -> str:
    return value.__name__ if isinstance(value, type) else str(value)


@pytest.mark.parametrize(("cls", "dialect"), CLASS_DIALECTS, ids=_ids)
@HYPOTHESIS
@given(data=st.data())
def test_concrete_config_round_trips(cls, dialect, data):
    config = data.draw(configs_of(cls, dialect))
    doc = converter.unstructure(config, dialect=dialect)
    assert converter.structure(doc, cls, dialect=dialect) == config
    assert converter.structure(doc, cls) == config  # its dialect found in its fields


@pytest.mark.parametrize(("cls", "dialect"), CLASS_DIALECTS, ids=_ids)
@HYPOTHESIS
@given(data=st.data())
def test_concrete_config_round_trips_through_its_family_base(cls, dialect, data):
    config = data.draw(configs_of(cls, dialect))
    restored = converter.structure(converter.unstructure(config, dialect=dialect), FAMILY_OF[cls])
    assert type(restored) is cls
    assert restored == config


@pytest.mark.parametrize("dialect", DIALECTS)
@HYPOTHESIS
@given(data=st.data())
def test_run_config_round_trips(dialect, data):
    config = data.draw(configs_of(RunConfig, dialect))
    doc = converter.unstructure(config, dialect=dialect)
    assert converter.structure(doc, RunConfig, dialect=dialect) == config
    assert converter.structure(doc, RunConfig) == config


@pytest.mark.parametrize("dialect", DIALECTS)
@HYPOTHESIS
@given(data=st.data())
def test_run_document_is_plain_json(dialect, data):
    doc = converter.unstructure(data.draw(configs_of(RunConfig, dialect)), dialect=dialect)
    # JSON and BSON have arrays only: DaCapo's tuples arrive as lists.
    assert json.loads(json.dumps(doc)) == as_lists(doc)


@pytest.mark.parametrize("dialect", DIALECTS)
@HYPOTHESIS
@given(data=st.data())
def test_run_document_is_plain_yaml(dialect, data):
    doc = converter.unstructure(data.draw(configs_of(RunConfig, dialect)), dialect=dialect)
    # What DaCapo's yaml.dump writes (tuples tagged) and its full_load reads back.
    dumper = getattr(yaml, "CDumper", yaml.Dumper)
    loader = getattr(yaml, "CFullLoader", yaml.FullLoader)
    assert yaml.load(yaml.dump(doc, Dumper=dumper), Loader=loader) == doc


@pytest.mark.parametrize("family", sorted(CONCRETE, key=lambda c: c.__name__), ids=lambda c: c.__name__)
@pytest.mark.parametrize("dialect", DIALECTS)
@HYPOTHESIS
@given(data=st.data())
def test_family_base_instance_round_trips(family, dialect, data):
    config = data.draw(configs_of(family, dialect))
    doc = converter.unstructure(config, dialect=dialect)
    assert doc["__type__"] == family.__name__
    assert converter.structure(doc, family) == config


# --- documents in DaCapo's format ------------------------------------------------------------


def zarr(name: str, dataset: str) -> ZarrArrayConfig:
    return ZarrArrayConfig(name=name, file_name=Path("/data/crop.zarr"), dataset=dataset)


def zarr_doc(name: str, dataset: str) -> dict:
    return {
        "__type__": "ZarrArrayConfig",
        "name": name,
        "file_name": "/data/crop.zarr",
        "dataset": dataset,
        "snap_to_grid": None,
        "_axes": None,
        "mode": "a",
    }


def unet() -> CNNectomeUNetConfig:
    return CNNectomeUNetConfig(
        name="unet",
        input_shape=(132, 132, 132),
        fmaps_out=12,
        fmaps_in=1,
        num_fmaps=12,
        fmap_inc_factor=6,
        downsample_factors=[(2, 2, 2), (3, 3, 3)],
        kernel_size_down=[[(3, 3, 3), (3, 3, 3)]],
        eval_shape_increase=(72, 72, 72),
    )


UNET_DOC = {
    "__type__": "CNNectomeUNetConfig",
    "name": "unet",
    # Coordinates are tuples in DaCapo's documents (`!!python/tuple` in its YAML).
    "input_shape": (132, 132, 132),
    "fmaps_out": 12,
    "fmaps_in": 1,
    "num_fmaps": 12,
    "fmap_inc_factor": 6,
    "downsample_factors": [(2, 2, 2), (3, 3, 3)],
    "kernel_size_down": [[(3, 3, 3), (3, 3, 3)]],
    "kernel_size_up": None,
    "_eval_shape_increase": (72, 72, 72),
    "upsample_factors": None,
    "constant_upsample": True,
    "padding": "valid",
    "use_attention": False,
    "batch_norm": False,
}


def gunpowder() -> GunpowderTrainerConfig:
    return GunpowderTrainerConfig(
        name="gp",
        batch_size=2,
        learning_rate=1e-4,
        augments=[
            SimpleAugmentConfig(),
            ElasticAugmentConfig(
                control_point_spacing=[100, 100, 100],
                control_point_displacement_sigma=[10.0, 10.0, 10.0],
                rotation_interval=(0.0, 1.5),
            ),
            IntensityAugmentConfig(scale=(0.25, 1.75), shift=(-0.5, 0.35)),
            GammaAugmentConfig(gamma_range=(0.5, 2.0)),
        ],
    )


GUNPOWDER_DOC = {
    "__type__": "GunpowderTrainerConfig",
    "name": "gp",
    "batch_size": 2,
    "learning_rate": 1e-4,
    "num_data_fetchers": 5,
    "augments": [
        {"__type__": "SimpleAugmentConfig", "augmentation_probability": 1.0},
        {
            "__type__": "ElasticAugmentConfig",
            "control_point_spacing": [100, 100, 100],
            "control_point_displacement_sigma": [10.0, 10.0, 10.0],
            "rotation_interval": [0.0, 1.5],
            "subsample": 1,
            "uniform_3d_rotation": False,
            "augmentation_probability": 1.0,
        },
        {
            "__type__": "IntensityAugmentConfig",
            "scale": [0.25, 1.75],
            "shift": [-0.5, 0.35],
            "clip": True,
            "augmentation_probability": 1.0,
        },
        {"__type__": "GammaAugmentConfig", "gamma_range": [0.5, 2.0]},
    ],
    "snapshot_interval": None,
    "min_masked": 0.15,
    "clip_raw": False,
    "gt_min_reject": None,
}


def datasplit() -> TrainValidateDataSplitConfig:
    return TrainValidateDataSplitConfig(
        name="split",
        train_configs=[
            RawGTDatasetConfig(
                name="train",
                raw_config=zarr("raw", "volumes/raw"),
                gt_config=zarr("gt", "volumes/gt"),
                sample_points=[(1, 2, 3)],
            )
        ],
        validate_configs=[
            RawGTDatasetConfig(name="val", weight=2, raw_config=zarr("val_raw", "volumes/raw"))
        ],
    )


DATASPLIT_DOC = {
    "__type__": "TrainValidateDataSplitConfig",
    "name": "split",
    "train_configs": [
        {
            "__type__": "RawGTDatasetConfig",
            "name": "train",
            "weight": 1,
            "raw_config": zarr_doc("raw", "volumes/raw"),
            "gt_config": zarr_doc("gt", "volumes/gt"),
            "mask_config": None,
            "sample_points": [[1, 2, 3]],
        }
    ],
    "validate_configs": [
        {
            "__type__": "RawGTDatasetConfig",
            "name": "val",
            "weight": 2,
            "raw_config": zarr_doc("val_raw", "volumes/raw"),
            "gt_config": None,
            "mask_config": None,
            "sample_points": None,
        }
    ],
}


def full_run() -> RunConfig:
    return RunConfig(
        task_config=DummyTaskConfig(name="task", embedding_dims=3, detection_threshold=0.5),
        architecture_config=unet(),
        trainer_config=gunpowder(),
        datasplit_config=datasplit(),
        name="run",
        repetition=1,
        num_iterations=1000,
        start_config=StartConfig(run="pretrained", criterion="f1_score"),
    )


RUN_DOC = {
    "task_config": {
        "__type__": "DummyTaskConfig",
        "name": "task",
        "embedding_dims": 3,
        "detection_threshold": 0.5,
    },
    "architecture_config": UNET_DOC,
    "trainer_config": GUNPOWDER_DOC,
    "datasplit_config": DATASPLIT_DOC,
    "name": "run",
    "repetition": 1,
    "num_iterations": 1000,
    "validation_interval": 1000,
    "start_config": {"__type__": "StartConfig", "run": "pretrained", "criterion": "f1_score"},
}


def test_dummy_architecture_document():
    config = DummyArchitectureConfig(name="arch", num_in_channels=1, num_out_channels=12)
    assert converter.unstructure(config) == {
        "__type__": "DummyArchitectureConfig",
        "name": "arch",
        "num_in_channels": 1,
        "num_out_channels": 12,
    }


def test_unet_document_has_tuples_and_the_private_field_with_its_underscore():
    doc = converter.unstructure(unet())
    assert doc == UNET_DOC
    assert list(doc) == list(UNET_DOC)  # DaCapo's key order: __type__ first, then the fields
    assert type(doc["input_shape"]) is tuple and type(doc["downsample_factors"]) is list


# The documents below are written with lists; where DaCapo has tuples is checked above and
# over every document of a real DaCapo registry in test_dacapo_pack.py.


def test_gunpowder_trainer_document_tags_each_augment():
    assert as_lists(converter.unstructure(gunpowder())) == GUNPOWDER_DOC


def test_datasplit_document_nests_tagged_datasets_and_arrays():
    assert as_lists(converter.unstructure(datasplit())) == DATASPLIT_DOC


def test_run_document_is_dacapos():
    assert as_lists(converter.unstructure(full_run())) == as_lists(RUN_DOC)


def test_run_document_has_no_type_at_top_level():
    assert "__type__" not in converter.unstructure(full_run())


def test_run_without_start_keeps_none():
    config = attrs.evolve(full_run(), start_config=None)
    assert converter.unstructure(config)["start_config"] is None


def test_dacapo_run_document_structures_to_the_config():
    assert converter.structure(RUN_DOC, RunConfig) == full_run()


def test_document_holds_only_plain_types():
    def walk(value):
        if isinstance(value, dict):
            assert all(type(k) is str for k in value)
            for v in value.values():
                walk(v)
        elif type(value) in (list, tuple):
            for v in value:
                walk(v)
        else:
            assert value is None or type(value) in (str, int, float, bool), repr(value)

    walk(converter.unstructure(full_run()))


def test_full_run_document_dumps_to_json_and_dacapo_yaml():
    doc = converter.unstructure(full_run())
    assert json.loads(json.dumps(doc)) == as_lists(doc)
    assert yaml.full_load(yaml.dump(doc)) == doc


def test_structured_coordinates_and_paths_have_their_types():
    run = converter.structure(RUN_DOC, RunConfig)
    raw = run.datasplit_config.train_configs[0].raw_config
    assert type(run.architecture_config.input_shape) is Coordinate
    assert type(run.architecture_config._eval_shape_increase) is Coordinate
    assert isinstance(raw.file_name, Path)


def test_top_level_converter_is_the_conversion_converter():
    assert dacapo_store.converter is converter


# --- malformed documents ---------------------------------------------------------------------


DELETE = object()


def run_doc(changes: dict[str, object] | None = None, /, **top_level: object) -> dict:
    """A deep copy of RUN_DOC with changes at slash paths (`"trainer_config/batch_size"`).

    A value of DELETE removes the key; keyword arguments change top-level keys.
    """
    doc = json.loads(json.dumps(RUN_DOC))
    for path, value in {**(changes or {}), **top_level}.items():
        *parents, last = path.split("/")
        target = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        key = int(last) if isinstance(target, list) else last
        if value is DELETE:
            del target[key]
        else:
            target[key] = value
    return doc


def structure_error(doc, cls=RunConfig) -> ConfigValidationError:
    with pytest.raises(ConfigValidationError) as info:
        converter.structure(doc, cls)
    return info.value


def test_wrong_type_is_named_by_path():
    error = structure_error(run_doc({"trainer_config/batch_size": "x"}))
    assert "trainer_config.batch_size: expected int, got 'x'" in str(error)


def test_wrong_type_is_not_an_unknown_type_error():
    error = structure_error(run_doc({"trainer_config/batch_size": "x"}))
    assert not isinstance(error, UnknownConfigTypeError)


def test_error_lists_each_problem_separately():
    error = structure_error(run_doc({"trainer_config/batch_size": "x"}))
    assert error.errors == ["trainer_config.batch_size: expected int, got 'x'"]


def test_missing_required_field_is_named_by_path():
    error = structure_error(run_doc({"task_config/embedding_dims": DELETE}))
    assert "task_config.embedding_dims" in str(error)


def test_missing_required_top_level_field_is_named():
    error = structure_error(run_doc(num_iterations=DELETE))
    assert "num_iterations" in str(error)


def test_every_bad_field_is_named_at_once():
    doc = run_doc(
        {
            "trainer_config/batch_size": "x",
            "num_iterations": "many",
            "task_config/embedding_dims": DELETE,
            "architecture_config/input_shape": [1.5, 2, 3],
        }
    )
    message = str(structure_error(doc))
    for path in (
        "trainer_config.batch_size",
        "num_iterations",
        "task_config.embedding_dims",
        "architecture_config.input_shape",
    ):
        assert path in message


def test_bad_field_deep_in_a_list_is_named_by_its_index():
    doc = run_doc({"datasplit_config/train_configs/0/raw_config/snap_to_grid": ["a"]})
    assert "datasplit_config.train_configs[0].raw_config.snap_to_grid" in str(structure_error(doc))


def test_unknown_type_names_the_type_and_the_registered_ones():
    with pytest.raises(UnknownConfigTypeError) as info:
        converter.structure(run_doc({"task_config/__type__": "NoSuchTaskConfig"}), RunConfig)
    message = str(info.value)
    assert "NoSuchTaskConfig" in message
    assert "task_config" in message
    for registered in ("AffinitiesTaskConfig", "DistanceTaskConfig", "DummyTaskConfig", "OneHotTaskConfig"):
        assert registered in message


def test_unknown_type_of_a_config_structured_alone_is_refused():
    with pytest.raises(UnknownConfigTypeError, match="NoSuchTaskConfig"):
        converter.structure({"__type__": "NoSuchTaskConfig", "name": "t"}, TaskConfig)


def test_type_of_another_family_is_unknown():
    doc = run_doc(task_config=RUN_DOC["architecture_config"])
    with pytest.raises(UnknownConfigTypeError, match="CNNectomeUNetConfig"):
        converter.structure(doc, RunConfig)


def test_other_member_of_the_family_is_refused_for_a_concrete_class():
    with pytest.raises(UnknownConfigTypeError):
        converter.structure(RUN_DOC["task_config"], OneHotTaskConfig)


def test_missing_type_in_a_family_is_refused():
    with pytest.raises(UnknownConfigTypeError, match="task_config"):
        converter.structure(run_doc({"task_config/__type__": DELETE}), RunConfig)


def test_dotted_type_is_neither_imported_nor_evaluated(monkeypatch):
    converter.unstructure(full_run())  # build any pending hooks before watching
    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(("os.system", a, k)))
    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda *a, **k: calls.append(a) or real_import(*a, **k))
    doc = run_doc(task_config={"__type__": "os.system", "command": "echo pwned"})
    with pytest.raises(UnknownConfigTypeError, match=r"os\.system"):
        converter.structure(doc, RunConfig)
    assert calls == []


def test_non_mapping_where_a_config_belongs_is_named_by_path():
    error = structure_error(run_doc({"datasplit_config/train_configs/0": "train"}))
    assert "datasplit_config.train_configs[0]" in str(error)


def test_non_mapping_start_config_is_named():
    error = structure_error(run_doc(start_config="pretrained"))
    assert "start_config" in str(error)


@pytest.mark.parametrize("doc", [["run"], "run", None, 3])
def test_non_mapping_document_is_refused(doc):
    error = structure_error(doc)
    assert "RunConfig" in str(error)


def test_non_mapping_document_for_a_family_is_refused():
    structure_error("task", TaskConfig)


def test_extra_key_in_a_nested_config_is_named():
    error = structure_error(run_doc({"trainer_config/momentum": 0.9}))
    assert "trainer_config" in str(error)
    assert "momentum" in str(error)


def test_extra_key_at_top_level_is_named():
    assert "owner" in str(structure_error(run_doc(owner="me")))


@pytest.mark.parametrize("value", [[0.0, 1.0, 2.0], [0.0]])
def test_wrong_length_tuple_is_named(value):
    error = structure_error(run_doc({"trainer_config/augments/1/rotation_interval": value}))
    assert "trainer_config.augments[1].rotation_interval" in str(error)


def test_bool_for_an_int_field_is_refused():
    error = structure_error(run_doc(repetition=True))
    assert "repetition: expected int, got True" in str(error)


def test_bool_for_a_float_field_is_refused():
    error = structure_error(run_doc({"trainer_config/learning_rate": False}))
    assert "trainer_config.learning_rate" in str(error)


def test_int_for_a_float_field_stays_an_int():
    # DaCapo writes the int 1 into float fields whose default is 1: read back, the config
    # must unstructure to the same document (BSON tells an int from a double).
    doc = run_doc({"trainer_config/learning_rate": 1})
    run = converter.structure(doc, RunConfig)
    assert type(run.trainer_config.learning_rate) is int
    assert as_lists(converter.unstructure(run)) == as_lists(doc)


def test_int_for_a_str_field_is_refused():
    assert "name" in str(structure_error(run_doc(name=5)))


def test_non_int_in_a_coordinate_is_refused():
    error = structure_error(run_doc({"architecture_config/input_shape": ["132", 132, 132]}))
    assert "architecture_config.input_shape" in str(error)


def test_non_string_path_is_refused():
    error = structure_error(run_doc({"datasplit_config/train_configs/0/raw_config/file_name": 5}))
    assert "datasplit_config.train_configs[0].raw_config.file_name" in str(error)


# --- plugin registration ---------------------------------------------------------------------


@register_config
@attrs.define
class PluginRegisteredTaskConfig(TaskConfig):
    """A user's task, registered the way a plugin does."""

    sigma: float = attrs.field(default=1.0, metadata={"help_text": "Smoothing."})
    offsets: list[Coordinate] = attrs.field(factory=list, metadata={"help_text": "Offsets."})


def test_registered_plugin_task_round_trips_inside_a_run():
    task = PluginRegisteredTaskConfig(name="mine", sigma=2.5, offsets=[Coordinate(1, 0, 0)])
    run = attrs.evolve(full_run(), task_config=task)
    doc = converter.unstructure(run)
    assert doc["task_config"] == {
        "__type__": "PluginRegisteredTaskConfig",
        "name": "mine",
        "sigma": 2.5,
        "offsets": [(1, 0, 0)],
    }
    assert converter.structure(doc, RunConfig) == run


def test_registering_the_same_class_twice_is_a_no_op():
    assert register_config(PluginRegisteredTaskConfig) is PluginRegisteredTaskConfig
    doc = converter.unstructure(PluginRegisteredTaskConfig(name="again"))
    assert converter.structure(doc, TaskConfig) == PluginRegisteredTaskConfig(name="again")


def test_registering_a_different_class_with_a_taken_name_in_the_family_is_refused():
    @register_config
    @attrs.define
    class PluginClashTaskConfig(TaskConfig):
        pass

    @attrs.define
    class PluginClashTaskConfig(TaskConfig):  # noqa: F811 -- the clash is the point
        extra: int = 0

    with pytest.raises(ValueError, match="PluginClashTaskConfig"):
        register_config(PluginClashTaskConfig)


def test_registering_a_class_that_clashes_with_a_builtin_config_is_refused():
    @attrs.define
    class DummyTaskConfig(TaskConfig):
        pass

    with pytest.raises(ValueError, match="DummyTaskConfig"):
        register_config(DummyTaskConfig)


def test_refused_registration_leaves_the_first_class_in_place():
    @register_config
    @attrs.define
    class PluginKeptTaskConfig(TaskConfig):
        pass

    first = PluginKeptTaskConfig

    @attrs.define
    class PluginKeptTaskConfig(TaskConfig):
        pass

    with pytest.raises(ValueError):
        register_config(PluginKeptTaskConfig)
    assert type(converter.structure({"__type__": "PluginKeptTaskConfig", "name": "k"}, TaskConfig)) is first


def test_same_class_name_in_another_family_is_fine():
    def make(family):
        return attrs.define(type("PluginSharedNameConfig", (family,), {"__annotations__": {}}))

    task_cls = register_config(make(TaskConfig))
    array_cls = register_config(make(ArrayConfig))
    doc = {"__type__": "PluginSharedNameConfig", "name": "x"}
    assert type(converter.structure(doc, TaskConfig)) is task_cls
    assert type(converter.structure(doc, ArrayConfig)) is array_cls


def test_registering_a_non_attrs_class_is_a_type_error():
    class PluginPlainTaskConfig(TaskConfig):
        pass

    with pytest.raises(TypeError):
        register_config(PluginPlainTaskConfig)


def test_registering_a_class_outside_the_families_is_a_type_error():
    @attrs.define
    class PluginStrayConfig:
        name: str

    with pytest.raises(TypeError):
        register_config(PluginStrayConfig)


def test_registering_a_run_config_subclass_is_a_type_error():
    @attrs.define
    class PluginRunConfig(RunConfig):
        pass

    with pytest.raises(TypeError):
        register_config(PluginRunConfig)


def test_unstructuring_an_unregistered_subclass_says_to_register_it():
    @attrs.define
    class PluginUnregisteredTaskConfig(TaskConfig):
        pass

    with pytest.raises(UnknownConfigTypeError, match="register_config"):
        converter.unstructure(PluginUnregisteredTaskConfig(name="u"))


def test_unstructuring_a_run_holding_an_unregistered_subclass_says_to_register_it():
    @attrs.define
    class PluginUnregisteredInRunTaskConfig(TaskConfig):
        pass

    run = attrs.evolve(full_run(), task_config=PluginUnregisteredInRunTaskConfig(name="u"))
    with pytest.raises(UnknownConfigTypeError, match="register_config"):
        converter.unstructure(run)


def test_unstructuring_a_run_starting_with_an_unregistered_start_subclass_says_to_register_it():
    @attrs.define
    class PluginUnregisteredStartConfig(StartConfig):
        warmup: int = 0

    run = attrs.evolve(
        full_run(), start_config=PluginUnregisteredStartConfig(run="other", criterion="latest")
    )
    with pytest.raises(UnknownConfigTypeError, match="register_config"):
        converter.unstructure(run)


def test_unregistered_subclass_type_in_a_document_is_unknown():
    @attrs.define
    class PluginNeverRegisteredTaskConfig(TaskConfig):
        pass

    with pytest.raises(UnknownConfigTypeError, match="PluginNeverRegisteredTaskConfig"):
        converter.structure({"__type__": "PluginNeverRegisteredTaskConfig", "name": "n"}, TaskConfig)


# --- entry points --------------------------------------------------------------------------


@attrs.define
class FakeEntryPoint:
    """Enough of importlib.metadata.EntryPoint for load_plugins."""

    name: str
    value: str
    loader: typing.Callable[[], object]

    def load(self) -> object:
        return self.loader()


def fake_entry_points(monkeypatch, *eps: FakeEntryPoint) -> list[str]:
    groups: list[str] = []

    def entry_points(*, group: str):
        groups.append(group)
        return list(eps) if group == "dacapo_store.configs" else []

    monkeypatch.setattr(dacapo_store.conversion, "entry_points", entry_points)
    return groups


def test_entry_point_plugins_are_loaded_from_the_dacapo_store_group(monkeypatch):
    groups = fake_entry_points(monkeypatch)
    dacapo_store.conversion.load_plugins()
    assert groups == ["dacapo_store.configs"]


def test_entry_point_plugin_class_is_registered(monkeypatch):
    @attrs.define
    class EntryPointTaskConfig(TaskConfig):
        depth: int = 3

    fake_entry_points(
        monkeypatch, FakeEntryPoint("ep_task", "pkg.tasks:EntryPointTaskConfig", lambda: EntryPointTaskConfig)
    )
    loaded = dacapo_store.conversion.load_plugins()
    assert loaded == ["ep_task"]
    doc = {"__type__": "EntryPointTaskConfig", "name": "ep", "depth": 4}
    assert converter.structure(doc, TaskConfig) == EntryPointTaskConfig(name="ep", depth=4)


def test_broken_entry_point_plugin_is_logged_and_skipped(monkeypatch, caplog):
    @attrs.define
    class EntryPointAfterBrokenTaskConfig(TaskConfig):
        pass

    def broken():
        raise ImportError("no module named 'missing_dependency'")

    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("broken", "pkg.broken:Thing", broken),
        FakeEntryPoint("good", "pkg.good:Thing", lambda: EntryPointAfterBrokenTaskConfig),
    )
    with caplog.at_level(logging.ERROR, logger="dacapo_store.conversion"):
        loaded = dacapo_store.conversion.load_plugins()
    assert loaded == ["good"]
    assert any("broken" in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records)
    doc = {"__type__": "EntryPointAfterBrokenTaskConfig", "name": "ok"}
    assert type(converter.structure(doc, TaskConfig)) is EntryPointAfterBrokenTaskConfig


class _Label(str):
    """A value type of a user's own, with a hook of its own on the converter."""


def test_a_users_hook_survives_a_class_registered_later():
    converter.register_unstructure_hook(_Label, lambda label: f"label:{label}")
    converter.register_structure_hook(_Label, lambda value, _: _Label(value.removeprefix("label:")))
    assert converter.unstructure(_Label("a")) == "label:a"

    @register_config
    @attrs.define
    class LateRegisteredArchitectureConfig(ArchitectureConfig):  # rebuilds the converter
        depth: int = 1

    assert converter.unstructure(_Label("b")) == "label:b"
    assert converter.structure("label:c", _Label) == _Label("c")
    doc = converter.unstructure(LateRegisteredArchitectureConfig("late"))
    assert converter.structure(doc, ArchitectureConfig) == LateRegisteredArchitectureConfig("late")
