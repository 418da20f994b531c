"""A config document and its metadata are one outcome; damaged metadata is damage; writers cut
short leave nothing `gc` does not collect; names a layout can't hold are refused up front."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from pathlib import Path

import mongomock.gridfs
import pytest
import strict_mongo
from click.testing import CliRunner
from conftest import no_options, small_run
from pymongo.errors import AutoReconnect
from strict_mongo import StrictMongoClient

from dacapo_store.cli import app
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.configs import DummyTrainerConfig
from dacapo_store.errors import DuplicateNameError, InvalidNameError, StoreConnectionError
from dacapo_store.fsutil import write_temp
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

mongomock.gridfs.enable_gridfs_integration()
TRAINER = DummyTrainerConfig(name="trainer", batch_size=2, learning_rate=0.1, mirror_augment=True)


def cli(path: Path, *args: str) -> tuple[int, str, str]:
    (path / "configs").mkdir(parents=True, exist_ok=True)
    result = CliRunner().invoke(
        app,
        ["--store", f"files:{path}", *args],
        env={"DACAPO_OPTIONS_FILE": str(no_options(path.parent / "options"))},
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def outcome(store, kind: str, name: str) -> str:
    """ "none", or "whole" (the document with its own metadata); anything else is a broken outcome."""
    try:
        doc = store.get_document(kind, name)
    except KeyError:
        return "none"
    meta = store.metadata(kind, name)
    return "whole" if meta.created_by is not None else f"document without metadata: {doc['name']}"


# ---------------------------------------------------------------- one outcome


def test_an_fsync_fault_at_any_point_of_a_config_store_leaves_it_whole_or_absent_and_a_retry_completes(
    tmp_path, monkeypatch
):
    real, calls = os.fsync, [0]

    def counting(fd: int) -> None:
        calls[0] += 1
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    FileConfigStore(tmp_path / "count").store(TRAINER)
    fsyncs = calls[0]
    assert fsyncs >= 3  # the metadata, the document, their folders
    for call in range(1, fsyncs + 1):
        store = FileConfigStore(tmp_path / f"at-{call}")
        count = [0]

        def failing(fd: int, _count=count, _call=call) -> None:
            _count[0] += 1
            if _count[0] == _call:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real(fd)

        monkeypatch.setattr(os, "fsync", failing)
        with pytest.raises(OSError):
            store.store(TRAINER)
        monkeypatch.setattr(os, "fsync", real)
        assert outcome(store, "trainers", "trainer") in ("none", "whole"), call
        store.store(TRAINER)  # the retry
        assert outcome(store, "trainers", "trainer") == "whole", call


def test_an_autoreconnect_at_any_write_of_a_config_store_leaves_it_whole_or_absent_and_a_retry_completes(
    monkeypatch,
):
    for write in range(1, 4):
        for after in (False, True):
            client = StrictMongoClient()
            store = MongoConfigStore(client=client, db_name="dacapo")
            done = []
            with monkeypatch.context() as patch:
                for method in ("insert_one", "replace_one", "delete_one"):
                    original = getattr(strict_mongo.StrictCollection, method)

                    def wrapper(self, *args, _original=original, _at=(done, write, after), **kwargs):
                        calls, at, late = _at
                        calls.append(self.name)
                        if len(calls) == at and not late:
                            raise AutoReconnect("connection reset")
                        result = _original(self, *args, **kwargs)
                        if len(calls) == at:
                            raise AutoReconnect("connection reset")
                        return result

                    patch.setattr(strict_mongo.StrictCollection, method, wrapper)
                with contextlib.suppress(StoreConnectionError):
                    store.store(TRAINER)
            assert outcome(store, "trainers", "trainer") in ("none", "whole"), (write, after, done)
            store.store(TRAINER)
            assert outcome(store, "trainers", "trainer") == "whole", (write, after)


# ---------------------------------------------------------------- damaged metadata


def damage_metadata(store, kind: str, name: str) -> None:
    """Change one character of the recorded author, behind the store's back."""
    if isinstance(store, FileConfigStore):
        file = store.path / ".dacapo_store" / "metadata" / kind / f"{name}.json"
        text = file.read_text()
        file.write_text(text.replace('"created_by": "', '"created_by": "X', 1))
        return
    store.db["config_metadata"].update_one(
        {"kind": kind, "name": name}, {"$set": {"created_by": "mallory@x"}}
    )


def test_damaged_metadata_names_no_author_and_check_reports_it(config_store):
    config_store.store(TRAINER)
    damage_metadata(config_store, "trainers", "trainer")
    meta = config_store.metadata("trainers", "trainer")
    assert (meta.created_by, meta.created_at) == (None, None)
    assert config_store.raw_document("trainers", "trainer") == config_store.get_document(
        "trainers", "trainer"
    )
    problems, unchecked = config_store.metadata_problems("trainers")
    assert problems == [("trainer", "its metadata fails its checksum (damaged: its author is unknown)")]
    assert unchecked == []


def test_check_reports_damaged_metadata_and_notes_documents_without_any(tmp_path):
    store = FileConfigStore(tmp_path / "configs")
    store.store(TRAINER)
    store.put_document(
        "trainers", {**store.get_document("trainers", "trainer"), "name": "dacapos"}, metadata={}
    )
    code, out, _ = cli(tmp_path, "check", "--json")
    assert code == 0
    notes = json.loads(out)["notes"]
    assert [n["note"].split(" (")[0] for n in notes] == ["1 document(s) without metadata"]
    assert "dacapos" in notes[0]["note"]
    damage_metadata(store, "trainers", "trainer")
    code, out, _ = cli(tmp_path, "check", "--json")
    assert code == 1
    assert [(p["name"], "fails its checksum" in p["problem"]) for p in json.loads(out)["problems"]] == [
        ("trainer", True)
    ]


def test_metadata_written_before_checksums_still_names_its_author_and_is_noted(tmp_path):
    store = FileConfigStore(tmp_path / "configs")
    store.store(TRAINER)
    file = store.path / ".dacapo_store" / "metadata" / "trainers" / "trainer.json"
    record = json.loads(file.read_text())
    del record["checksum"]  # as dacapo_store wrote it before
    file.write_text(json.dumps(record))
    assert store.metadata("trainers", "trainer").created_by == record["created_by"]
    code, out, _ = cli(tmp_path, "check", "--json")
    assert code == 0
    assert "1 metadata record(s) without a checksum" in json.dumps(json.loads(out)["notes"])


# ---------------------------------------------------------------- gc of configs


def test_gc_collects_old_config_temp_files_and_leaves_young_ones(tmp_path):
    store = FileConfigStore(tmp_path / "configs")
    store.store(TRAINER)
    old = time.time() - 7200
    leftovers = []
    for folder in (store.path / "trainers", store.path / ".dacapo_store" / "metadata" / "trainers"):
        for age in (old, None):
            tmp = write_temp(folder, "killed.yaml", [b"half a docu"])  # what a killed writer leaves
            if age:
                os.utime(tmp, (age, age))
            leftovers.append(tmp)
    code, out, _ = cli(tmp_path, "gc", "--yes")
    assert code == 0, out
    assert "removed 2 leftover(s), 22 bytes" in out
    assert [t.exists() for t in leftovers] == [False, True, False, True]
    assert outcome(store, "trainers", "trainer") == "whole"


def orphan_parts(store, run) -> None:
    """Store `run` as a writer killed between its parts and its own document would."""
    real_insert = type(store)._insert

    def insert(self, kind, name, doc):
        if kind == "runs":
            raise KeyboardInterrupt
        return real_insert(self, kind, name, doc)

    type(store)._insert = insert
    try:
        with pytest.raises(KeyboardInterrupt):
            store.store(run)
    finally:
        type(store)._insert = real_insert


def test_gc_collects_the_parts_of_a_run_that_never_landed_unless_something_uses_them(config_store):
    run = small_run("lost")
    kept = small_run(
        "kept",
        trainer_config=DummyTrainerConfig(
            name="other", batch_size=2, learning_rate=0.1, mirror_augment=False
        ),
    )
    orphan_parts(config_store, run)
    assert config_store.names("runs") == []
    parts = {k: config_store.names(k) for k in ("tasks", "architectures", "trainers", "datasplits")}
    assert all(len(v) == 1 for v in parts.values())
    config_store.store(kept)  # uses the lost run's task, architecture and datasplit
    assert {i.name for i in config_store.gc(older_than=3600, dry_run=True)} == set()  # too young
    found = config_store.gc(older_than=0)
    assert {(i.kind, i.run, i.name) for i in found} == {
        ("orphan part", "lost", f"trainers/{run.trainer_config.name}"),
        ("orphan metadata", None, "runs/lost"),  # what the run's own store claimed first
    }
    assert run.trainer_config.name not in config_store.names("trainers")
    assert config_store.retrieve_run_config("kept") == kept


def test_a_part_stored_again_on_its_own_is_no_orphan(config_store):
    run = small_run("lost")
    orphan_parts(config_store, run)
    config_store.store(run.trainer_config)  # the user stores it by hand: it is theirs now
    assert {i.name for i in config_store.gc(older_than=0)} == {
        f"architectures/{run.architecture_config.name}",
        f"datasplits/{run.datasplit_config.name}",
        f"tasks/{run.task_config.name}",
        "runs/lost",
    }
    assert config_store.names("trainers") == [run.trainer_config.name]


def test_parts_of_a_deleted_run_stay_configs_of_their_own(config_store):
    run = small_run("gone")
    config_store.store(run)
    config_store.delete("runs", "gone")
    assert config_store.gc(older_than=0) == []
    assert config_store.names("trainers") == [run.trainer_config.name]


def test_a_copy_carries_no_part_of_mark(config_store, tmp_path):
    run = small_run("run")
    config_store.store(run)
    target = FileConfigStore(tmp_path / "copy")
    for _, doc in config_store.documents("trainers", with_metadata=True):
        target.put_document("trainers", doc)
    assert "part_of" not in target.raw_document("trainers", run.trainer_config.name)["__dacapo_store__"]
    assert target.gc(older_than=0) == []  # its run was not copied: still no orphan


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["configs", "stats"])
def test_a_run_named_as_a_top_folder_of_the_files_layout_is_refused_there(tmp_path, name):
    configs = FileConfigStore(tmp_path / "configs")
    with pytest.raises(InvalidNameError, match=f"keeps its {name}/ folder at the top of a registry"):
        configs.store(small_run(name))
    assert configs.names("runs") == configs.names("tasks") == []
    weights = LocalWeightsStore(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(InvalidNameError, match=f"keeps its {name}/ folder"):
        weights.store_weights(name, 1, {"w": __import__("torch").zeros(2)})
    with pytest.raises(InvalidNameError):
        weights.store_validation_scores(name, 1, {"voi": 0.5})
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    MongoConfigStore(client=StrictMongoClient(), db_name="d").store(small_run(name))  # a MongoDB name


def test_a_250_byte_run_name_works_on_files_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)  # e.g. some network file systems: the lock path
    name = "r" * 246 + "_é_"  # 250 bytes in UTF-8
    assert len(name.encode()) == 250
    configs = FileConfigStore(tmp_path / "configs")
    assert configs.store(small_run(name)) is True
    assert configs.retrieve_run_config(name).name == name
    weights = LocalWeightsStore(tmp_path)
    weights.store_weights(name, 1, {"w": __import__("torch").zeros(2)})
    weights.store_validation_scores(name, 1, {"voi": 0.5})
    assert weights.retrieve_best(name, "voi") == 1
    code, out, err = cli(tmp_path, "check", "--weights")
    assert code == 0, (out, err)


def test_a_run_name_with_a_slash_is_refused_for_configs_and_weights_alike_on_mongodb():
    client = StrictMongoClient()
    configs = MongoConfigStore(client=client, db_name="d")
    weights = GridFSWeightsStore(client=client, db_name="d")
    with pytest.raises(InvalidNameError, match="can't hold '/' on any backend"):
        configs.store(small_run("lab/run"))
    with pytest.raises(InvalidNameError, match="can't hold '/' on any backend"):
        weights.store_validation_scores("lab/run", 1, {"voi": 0.5})
    assert configs.names("runs") == configs.names("tasks") == []
    configs.put_document("datasets", {"__type__": "RawGTDatasetConfig", "name": "jrc/crop"})  # still fine


def test_a_writer_that_loses_the_race_for_a_name_leaves_the_winner_its_metadata(tmp_path, monkeypatch):
    other = DummyTrainerConfig(name="trainer", batch_size=4, learning_rate=0.1, mirror_augment=True)
    ours, theirs = FileConfigStore(tmp_path), FileConfigStore(tmp_path)
    real_link, raced = os.link, []

    def link(src, dst, *args, **kwargs):
        if str(dst).endswith("trainers/trainer.yaml") and not raced:
            raced.append(True)
            theirs.store(other)  # lands between our claim of the metadata and our document
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(DuplicateNameError):
        ours.store(TRAINER)
    assert ours.get_document("trainers", "trainer")["batch_size"] == 4
    assert ours.metadata("trainers", "trainer").created_by is not None  # theirs, whole


def test_a_mongodb_writer_that_loses_the_race_for_a_name_leaves_the_winner_its_metadata():
    client = StrictMongoClient()
    other = DummyTrainerConfig(name="trainer", batch_size=4, learning_rate=0.1, mirror_augment=True)
    ours = MongoConfigStore(client=client, db_name="d")
    theirs = MongoConfigStore(client=client.sibling(), db_name="d")
    client.before_write.setdefault("d.trainers", []).append(lambda: theirs.store(other))
    with pytest.raises(DuplicateNameError):
        ours.store(TRAINER)
    assert ours.get_document("trainers", "trainer")["batch_size"] == 4
    assert ours.metadata("trainers", "trainer").created_by is not None
