"""What only the files backend must do: DaCapo's folders, atomic writes, many writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import full_run, small_run

from dacapo_store import ConfigValidationError, DuplicateNameError, converter
from dacapo_store.config_store import KINDS, FileConfigStore
from dacapo_store.config_store.documents import KIND_CLASSES
from dacapo_store.configs import Coordinate, DummyArrayConfig, StartConfig

DACAPO_REGISTRY = Path(__file__).parent / "data" / "dacapo_registry" / "configs"


@pytest.fixture
def dacapo_store(tmp_path):
    """A copy of a configs folder written by DaCapo 0.3 (yaml.dump, !!python/tuple tags)."""
    shutil.copytree(DACAPO_REGISTRY, tmp_path / "configs")
    return FileConfigStore(tmp_path / "configs")


def test_a_dacapo_written_folder_opens_and_every_config_structures(dacapo_store):
    counts = {kind: len(dacapo_store.names(kind)) for kind in KINDS}
    assert counts == {
        "runs": 2,
        "tasks": 1,
        "architectures": 1,
        "trainers": 1,
        "datasplits": 1,
        "datasets": 1,
        "arrays": 2,
    }
    for kind in KINDS:
        for name in dacapo_store.names(kind):
            config = dacapo_store.retrieve(kind, name)
            assert isinstance(config, KIND_CLASSES[kind])


def test_dacapo_tuples_come_back_as_coordinates(dacapo_store):
    unet = dacapo_store.retrieve_architecture_config("dacapo_unet")
    assert unet.input_shape == Coordinate(132, 132, 132)
    assert unet.downsample_factors == [Coordinate(2, 2, 2), Coordinate(2, 2, 2)]
    assert dacapo_store.retrieve_run_config("dacapo_run").start_config == StartConfig(
        "dacapo_pretrain", "voi"
    )


def test_run_filters_and_starts_work_on_dacapo_files(dacapo_store):
    assert dacapo_store.retrieve_run_config_names(architecture_names=["dacapo_unet"]) == [
        "dacapo_pretrain",
        "dacapo_run",
    ]
    assert dacapo_store.starts_from("dacapo_pretrain") == [("dacapo_run", "voi")]


def test_storing_the_equal_config_over_a_dacapo_file_is_a_no_op(dacapo_store):
    run = dacapo_store.retrieve_run_config("dacapo_run")
    before = (dacapo_store.path / "runs" / "dacapo_run.yaml").read_bytes()
    dacapo_store.store_run_config(run)
    assert (dacapo_store.path / "runs" / "dacapo_run.yaml").read_bytes() == before


def test_written_files_read_back_the_same_with_dacapo_loaders(tmp_path):
    store = FileConfigStore(tmp_path)
    store.store_run_config(full_run())
    text = (tmp_path / "runs" / "run.yaml").read_text()
    expected = converter.unstructure(full_run())
    # DaCapo's reader, tuples and all: its re-store compares with ==.
    assert yaml.full_load(text) == expected
    assert "!!python/tuple" in text


def test_no_temporary_file_is_left_behind(tmp_path):
    store = FileConfigStore(tmp_path)
    store.store_run_config(full_run())
    with pytest.raises(DuplicateNameError):
        store.store_run_config(full_run(num_iterations=1))
    leftovers = list(tmp_path.rglob(".tmp-*"))
    assert leftovers == []


def test_a_corrupt_file_names_the_file_and_leaves_the_others_readable(tmp_path):
    store = FileConfigStore(tmp_path)
    store.store_run_config(full_run("good"))
    store.store_run_config(small_run("other"))
    (tmp_path / "runs" / "broken.yaml").write_text("name: broken\ntask_config: [unclosed\n")
    with pytest.raises(ConfigValidationError, match=r"broken\.yaml: not a readable YAML document"):
        store.retrieve_run_config("broken")
    assert store.retrieve_run_config("good") == full_run("good")
    assert store.retrieve_run_config_names() == ["broken", "good", "other"]
    assert store.retrieve_run_config_names(task_names=["distances"]) == ["good"]
    failures = {name for name, doc in store.documents("runs") if isinstance(doc, Exception)}
    assert failures == {"broken"}


def test_a_python_object_tag_is_never_constructed(tmp_path):
    store = FileConfigStore(tmp_path)
    (tmp_path / "arrays").mkdir()
    (tmp_path / "arrays" / "evil.yaml").write_text(
        "__type__: DummyArrayConfig\nname: !!python/object/apply:os.getcwd []\n"
    )
    with pytest.raises(ConfigValidationError, match=r"evil\.yaml"):
        store.retrieve_array_config("evil")


def test_a_run_file_added_by_another_tool_is_seen_by_the_filters(tmp_path):
    store = FileConfigStore(tmp_path)
    store.store_run_config(full_run("ours"))
    assert store.retrieve_run_config_names(task_names=["dummy_task"]) == []
    shutil.copy(DACAPO_REGISTRY / "runs" / "dacapo_pretrain.yaml", tmp_path / "runs" / "theirs.yaml")
    text = (tmp_path / "runs" / "theirs.yaml").read_text().replace("name: dacapo_pretrain", "name: theirs")
    (tmp_path / "runs" / "theirs.yaml").write_text(text)
    assert store.retrieve_run_config_names(task_names=["dacapo_affs"]) == ["theirs"]


def test_the_index_is_shared_between_store_objects_in_the_user_cache(tmp_path, user_cache):
    FileConfigStore(tmp_path).store_run_config(full_run("a"))
    other = FileConfigStore(tmp_path)
    assert other.retrieve_run_config_names(trainer_names=["gunpowder"]) == ["a"]
    (index,) = (user_cache / "runs-index").iterdir()
    assert json.loads(index.read_text())["path"] == str(tmp_path)
    assert not (tmp_path / ".dacapo_store" / "runs-index.json").exists()
    # Another folder gets its own index.
    FileConfigStore(tmp_path / "elsewhere").retrieve_run_config_names(trainer_names=["gunpowder"])
    assert len(list((user_cache / "runs-index").iterdir())) in (1, 2)


def test_an_index_made_for_another_folder_is_not_used(tmp_path, user_cache):
    store = FileConfigStore(tmp_path)
    store.store_run_config(full_run("a"))
    assert store.retrieve_run_config_names(trainer_names=["gunpowder"]) == ["a"]
    (index,) = (user_cache / "runs-index").iterdir()
    saved = json.loads(index.read_text())
    saved["path"] = "/somewhere/else"
    saved["entries"]["a"]["refs"]["trainer_config.name"] = "forged"
    index.write_text(json.dumps(saved))
    assert FileConfigStore(tmp_path).retrieve_run_config_names(trainer_names=["gunpowder"]) == ["a"]


def _writer(path: str, batch_size: int, barrier, results) -> None:
    store = FileConfigStore(path)
    run = full_run("contested")
    trainer = run.trainer_config
    import attrs

    run = attrs.evolve(run, trainer_config=attrs.evolve(trainer, batch_size=batch_size))
    barrier.wait()
    try:
        store.store_run_config(run)
        results.put((batch_size, "stored"))
    except DuplicateNameError:
        results.put((batch_size, "duplicate"))


def test_many_writers_of_one_name_leave_exactly_one_whole_document(tmp_path):
    ctx = multiprocessing.get_context("fork")
    sizes = [2, 2, 2, 2, 3, 3, 4, 4]
    barrier = ctx.Barrier(len(sizes))
    results = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s, barrier, results)) for s in sizes]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    winners = {size for size, what in outcomes if what == "stored"}
    assert len(winners) == 1
    (winner,) = winners
    assert sorted(outcomes) == sorted((s, "stored" if s == winner else "duplicate") for s in sizes)
    store = FileConfigStore(tmp_path)
    assert store.retrieve_run_config_names() == ["contested"]
    assert store.retrieve_run_config("contested").trainer_config.batch_size == winner
    for file in tmp_path.rglob("*.yaml"):
        assert isinstance(yaml.full_load(file.read_text()), dict), file
    assert list(tmp_path.rglob(".tmp-*")) == []


def test_a_name_never_leaves_the_folder(tmp_path):
    store = FileConfigStore(tmp_path / "configs")
    with pytest.raises(Exception, match="invalid array name"):
        store.store_array_config(DummyArrayConfig("../../outside"))
    assert sorted(os.listdir(tmp_path)) == []


def test_filters_work_when_the_index_cannot_be_saved(dacapo_store, user_cache):
    # A file where the index folder belongs makes every save fail, even for root.
    user_cache.mkdir(parents=True)
    (user_cache / "runs-index").write_text("not a folder")
    assert dacapo_store.retrieve_run_config_names(task_names=["dacapo_affs"]) == [
        "dacapo_pretrain",
        "dacapo_run",
    ]
    assert FileConfigStore(dacapo_store.path).starts_from("dacapo_pretrain") == [("dacapo_run", "voi")]
