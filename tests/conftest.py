"""Fixtures shared by the suites: every store backend, and sample configs."""

from __future__ import annotations

import os
import uuid

import attrs
import pytest
from strict_mongo import StrictMongoClient

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

REAL_SERVER = pytest.param("mongodb", marks=pytest.mark.skipif(not MONGO_URI, reason=NO_MONGO))

BACKENDS = [
    "files",
    "mongomock",
    pytest.param("mongodb", marks=pytest.mark.skipif(not MONGO_URI, reason=NO_MONGO)),
]


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """A per-user cache for what runs before any test's own (module- and session-scoped
    fixtures serving a registry), and a config folder for the browser (Chromium keeps its crash
    reports there): never ~/.cache or ~/.config."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache-session")))
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config-session")))
        yield


@pytest.fixture(autouse=True)
def user_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own per-user cache (the run index lives there), never ~/.cache."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder / "dacapo_store"


def no_options(folder):
    """An empty options file in `folder`, for $DACAPO_OPTIONS_FILE: nothing of the user's is read
    (the variable must name a file that exists)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "no-options.yaml"
    path.touch()
    return path


def make_config_store(backend: str, tmp_path):
    from dacapo_store.config_store import FileConfigStore, MongoConfigStore

    if backend == "files":
        return FileConfigStore(tmp_path / "configs")
    if backend == "mongomock":
        return MongoConfigStore(client=StrictMongoClient(), db_name="dacapo_test")
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


class MongoServer:
    """One MongoDB server that tests open several clients of: the strict double, or the real one.

    `client()` is a new admin client; `client("secondaryPreferred")` one whose URI asks for that
    read preference; `read_only_client()` one of an account with the `read` role only.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "strict":
            self.db_name = "dacapo_test"
            self._root = StrictMongoClient()
        else:
            self.db_name = f"dacapo_store_test_{uuid.uuid4().hex[:12]}"
        self._opened: list = []
        self._users: list[str] = []

    def client(self, read_preference: str | None = None):
        if self.kind == "strict":
            from pymongo.read_preferences import read_pref_mode_from_name

            options = {}
            if read_preference:
                options["read_preference"] = _READ_PREFERENCES[read_pref_mode_from_name(read_preference)]
            return self._root.sibling(**options)
        from pymongo import MongoClient

        client = MongoClient(MONGO_URI, **({"readPreference": read_preference} if read_preference else {}))
        self._opened.append(client)
        return client

    def read_only_client(self):
        if self.kind == "strict":
            return self._root.sibling(read_only=True)
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure

        user, password = f"reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        admin = self.client()
        try:
            admin[self.db_name].command("createUser", user, pwd=password, roles=["read"])
        except OperationFailure as exc:
            pytest.skip(f"the test server's account can't create a read-only user: {exc}")
        self._users.append(user)
        client = MongoClient(MONGO_URI, username=user, password=password, authSource=self.db_name)
        self._opened.append(client)
        try:
            client[self.db_name]["access_probe"].insert_one({})
        except OperationFailure:
            return client
        pytest.skip("the test server does not enforce access control (start mongod with --auth)")

    def replicate(self) -> None:
        """Let lagging secondaries catch up (the double's; a real set does so by itself)."""
        if self.kind == "strict":
            self._root.replicate()

    def cleanup(self) -> None:
        if self.kind == "mongodb":
            admin = self.client()
            for user in self._users:
                admin[self.db_name].command("dropUser", user)
            admin.drop_database(self.db_name)
        for client in self._opened:
            client.close()


def _read_preference_table():
    from pymongo import ReadPreference

    return {
        pref.mode: pref
        for pref in (
            ReadPreference.PRIMARY,
            ReadPreference.PRIMARY_PREFERRED,
            ReadPreference.SECONDARY,
            ReadPreference.SECONDARY_PREFERRED,
            ReadPreference.NEAREST,
        )
    }


_READ_PREFERENCES = _read_preference_table()


@pytest.fixture(params=["strict", REAL_SERVER])
def mongo_server(request):
    """A MongoDB server several clients can open: the strict double, and the real one when configured."""
    server = MongoServer(request.param)
    yield server
    server.cleanup()


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
