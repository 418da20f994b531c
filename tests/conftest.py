"""Fixtures shared by the suites: every store backend, and sample configs."""

from __future__ import annotations

import os
import uuid

import attrs
import mongomock
import pytest

from dacapo_store.configs import (
    CNNectomeUNetConfig,
    DistanceTaskConfig,
    DummyArchitectureConfig,
    DummyTaskConfig,
    ElasticAugmentConfig,
    GammaAugmentConfig,
    GunpowderTrainerConfig,
    IntensityAugmentConfig,
    RawGTDatasetConfig,
    RunConfig,
    SimpleAugmentConfig,
    StartConfig,
    TrainValidateDataSplitConfig,
    ZarrArrayConfig,
)

MONGO_URI = os.environ.get("DACAPO_STORE_TEST_MONGO_URI")
NO_MONGO = "set DACAPO_STORE_TEST_MONGO_URI=mongodb://... to run against a real MongoDB server"

BACKENDS = [
    "files",
    "mongomock",
    pytest.param("mongodb", marks=pytest.mark.skipif(not MONGO_URI, reason=NO_MONGO)),
]


@pytest.fixture(autouse=True)
def user_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own per-user cache (the run index lives there), never ~/.cache."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder / "dacapo_store"


def make_config_store(backend: str, tmp_path):
    from dacapo_store.config_store import FileConfigStore, MongoConfigStore

    if backend == "files":
        return FileConfigStore(tmp_path / "configs")
    if backend == "mongomock":
        return MongoConfigStore(client=mongomock.MongoClient(), db_name="dacapo_test")
    db_name = f"dacapo_store_test_{uuid.uuid4().hex[:12]}"
    store = MongoConfigStore(MONGO_URI, db_name)
    store._test_cleanup = lambda: store.client.drop_database(db_name)
    return store


@pytest.fixture(params=BACKENDS)
def config_store(request, tmp_path):
    """A fresh, empty config store of each backend."""
    store = make_config_store(request.param, tmp_path)
    yield store
    getattr(store, "_test_cleanup", lambda: None)()
    store.close()


def full_run(name: str = "run", **changes) -> RunConfig:
    """A RunConfig with every family present."""
    zarr = ZarrArrayConfig("raw", "/data/sample.zarr", "volumes/raw", snap_to_grid=[4, 4, 4])
    gt = ZarrArrayConfig("gt", "/data/sample.zarr", "volumes/labels", axes=["z", "y", "x"])
    run = RunConfig(
        task_config=DistanceTaskConfig("distances", ["mito", "er"], clip_distance=40.0, tol_distance=40.0),
        architecture_config=CNNectomeUNetConfig(
            "unet",
            input_shape=[132, 132, 132],
            fmaps_out=12,
            fmaps_in=1,
            num_fmaps=12,
            fmap_inc_factor=6,
            downsample_factors=[[2, 2, 2], [2, 2, 2]],
            eval_shape_increase=[72, 72, 72],
        ),
        trainer_config=GunpowderTrainerConfig(
            "gunpowder",
            batch_size=2,
            learning_rate=1e-5,
            augments=[
                SimpleAugmentConfig(),
                ElasticAugmentConfig([100, 100, 100], [10.0, 10.0, 10.0], (0.0, 1.57)),
                IntensityAugmentConfig((0.25, 1.75), (-0.5, 0.35)),
                GammaAugmentConfig((0.5, 2.0)),
            ],
        ),
        datasplit_config=TrainValidateDataSplitConfig(
            "split",
            train_configs=[RawGTDatasetConfig("train", raw_config=zarr, gt_config=gt)],
            validate_configs=[RawGTDatasetConfig("validate", raw_config=zarr, gt_config=gt)],
        ),
        name=name,
        repetition=0,
        num_iterations=100_000,
        validation_interval=5000,
        start_config=StartConfig("pretrained", "voi"),
    )
    return attrs.evolve(run, **changes)


def small_run(name: str = "small", **changes) -> RunConfig:
    """A RunConfig with small Dummy-free parts that differ from full_run's names."""
    run = full_run(name, start_config=None)
    run = attrs.evolve(
        run,
        task_config=DummyTaskConfig("dummy_task", embedding_dims=3, detection_threshold=0.5),
        architecture_config=DummyArchitectureConfig("dummy_arch", num_in_channels=1, num_out_channels=2),
    )
    return attrs.evolve(run, **changes)


def as_lists(value):
    """A document with its tuples as lists: what MongoDB and JSON give back."""
    if isinstance(value, dict):
        return {k: as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_lists(v) for v in value]
    return value


def pytest_terminal_summary(terminalreporter):
    if not MONGO_URI:
        terminalreporter.write_line(f"real-MongoDB tests skipped: {NO_MONGO}")
