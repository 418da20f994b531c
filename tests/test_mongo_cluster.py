"""The MongoDB backend as a real cluster sees it: DaCapo's indexes, read-only accounts, secondaries,
write concern, index builds, our score collection, Int64 values.

Each test runs on the strict double and, with DACAPO_STORE_TEST_MONGO_URI set, on the real server.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mongomock.gridfs
import pytest
import torch
from bson.int64 import Int64
from conftest import MONGO_URI, full_run, small_run
from strict_mongo import StrictMongoClient

from dacapo_store import DacapoStoreError, DuplicateNameError
from dacapo_store.config_store import MongoConfigStore
from dacapo_store.config_store.mongo import INDEXES as CONFIG_INDEXES
from dacapo_store.weights import GridFSWeightsStore
from dacapo_store.weights.gridfs import INDEXES as WEIGHTS_INDEXES

mongomock.gridfs.enable_gridfs_integration()

DACAPO_INDEXES = json.loads((Path(__file__).parent / "data" / "dacapo_mongo_indexes.json").read_text())


def create_dacapo_indexes(client, db_name: str) -> None:
    """The indexes DaCapo 0.3.5 creates when it opens a database first."""
    for index in DACAPO_INDEXES:
        if index["name"] != "_id_":
            client[db_name][index["collection"]].create_index(
                [tuple(k) for k in index["key"]], name=index["name"], unique=index["unique"]
            )


def indexes_of(client, db_name: str, collection: str) -> dict[str, tuple]:
    return {
        ix["name"]: (tuple((k, int(d)) for k, d in ix["key"].items()), bool(ix.get("unique")))
        for ix in client[db_name][collection].list_indexes()
    }


# -- DaCapo's index names ------------------------------------------------------------------------


def test_our_stores_open_a_database_dacapo_opened_first(mongo_server, caplog):
    client = mongo_server.client()
    create_dacapo_indexes(client, mongo_server.db_name)
    with caplog.at_level(logging.WARNING):
        configs = MongoConfigStore(client=client, db_name=mongo_server.db_name)
        GridFSWeightsStore(client=client, db_name=mongo_server.db_name)
    assert caplog.records == []
    configs.store_run_config(full_run())
    for index in DACAPO_INDEXES:  # DaCapo's indexes are as DaCapo made them
        ours = indexes_of(client, mongo_server.db_name, index["collection"])
        assert ours[index["name"]] == (tuple((k, d) for k, d in index["key"]), index["unique"])


def test_dacapo_opens_a_database_our_stores_opened_first(mongo_server):
    client = mongo_server.client()
    MongoConfigStore(client=client, db_name=mongo_server.db_name)
    GridFSWeightsStore(client=client, db_name=mongo_server.db_name)
    create_dacapo_indexes(client, mongo_server.db_name)  # refused with code 85 if a name differed
    for kind in ("tasks", "architectures", "trainers", "datasplits", "datasets", "arrays"):
        assert indexes_of(client, mongo_server.db_name, kind)["name"] == ((("name", 1),), True)
    assert indexes_of(client, mongo_server.db_name, "runs")["name_rep"] == (
        (("name", 1), ("repetition", 1)),
        True,
    )


def test_opening_creates_only_missing_indexes():
    client = StrictMongoClient()
    MongoConfigStore(client=client, db_name="reg")
    GridFSWeightsStore(client=client, db_name="reg")
    built = [name for _, name, _ in client.index_builds]
    assert len(built) == len(CONFIG_INDEXES) + len(WEIGHTS_INDEXES)
    client.index_builds.clear()
    MongoConfigStore(client=client, db_name="reg")
    GridFSWeightsStore(client=client, db_name="reg")
    assert client.index_builds == []


# -- read-only accounts --------------------------------------------------------------------------


def test_a_read_only_account_opens_and_reads_every_store_without_a_warning(mongo_server, caplog):
    admin = mongo_server.client()
    configs = MongoConfigStore(client=admin, db_name=mongo_server.db_name)
    weights = GridFSWeightsStore(client=admin, db_name=mongo_server.db_name)
    configs.store_run_config(full_run())
    weights.store_weights("run", 1, {"w": torch.ones(3)})
    weights.store_validation_scores("run", 1, {"voi": 0.5})
    reader = mongo_server.read_only_client()
    with caplog.at_level(logging.WARNING):
        read_configs = MongoConfigStore(client=reader, db_name=mongo_server.db_name)
        read_weights = GridFSWeightsStore(client=reader, db_name=mongo_server.db_name)
    assert caplog.records == []
    assert read_configs.retrieve_run_config("run") == full_run()
    assert read_configs.names("runs") == ["run"]
    assert read_weights.iterations("run") == [1]
    assert read_weights.retrieve_best("run", "voi") == 1
    assert torch.equal(read_weights.retrieve_weights("run", 1).model["w"], torch.ones(3))


def test_a_read_only_account_on_a_database_without_our_indexes_warns_once_and_reads(mongo_server, caplog):
    admin = mongo_server.client()
    admin[mongo_server.db_name]["tasks"].insert_one({"name": "t", "__type__": "DummyTaskConfig"})
    reader = mongo_server.read_only_client()
    with caplog.at_level(logging.WARNING):
        store = MongoConfigStore(client=reader, db_name=mongo_server.db_name)
        GridFSWeightsStore(client=reader, db_name=mongo_server.db_name).iterations("run")
    warnings = [r.getMessage() for r in caplog.records if "no right to create indexes" in r.getMessage()]
    assert len(warnings) == 2  # one per store
    assert "tasks.name" in warnings[0] and "ask an admin" in warnings[0]
    assert store.names("tasks") == ["t"]
    assert indexes_of(admin, mongo_server.db_name, "tasks") == {"_id_": ((("_id", 1),), False)}


# -- reads from the primary, bounded retries -------------------------------------------------------


def test_a_store_right_after_a_store_from_another_client_sees_it_whatever_the_read_preference(mongo_server):
    first = MongoConfigStore(client=mongo_server.client(), db_name=mongo_server.db_name)
    second = MongoConfigStore(client=mongo_server.client("secondaryPreferred"), db_name=mongo_server.db_name)
    first.store_run_config(full_run("run"))
    second.store_run_config(full_run("run"))  # equal: a no-op, found on the primary
    with pytest.raises(DuplicateNameError):
        second.store_run_config(small_run("run"))
    assert second.retrieve_run_config("run") == full_run("run")


def test_weights_read_with_secondary_preferred_see_the_latest_checkpoint(mongo_server):
    writer = GridFSWeightsStore(client=mongo_server.client(), db_name=mongo_server.db_name)
    writer.store_weights("run", 1, {"w": torch.zeros(2)})
    mongo_server.replicate()
    writer.store_weights("run", 2, {"w": torch.ones(2)})
    reader = GridFSWeightsStore(
        client=mongo_server.client("secondaryPreferred"), db_name=mongo_server.db_name
    )
    assert reader.latest_iteration("run") == 2
    assert torch.equal(reader.retrieve_weights("run", 2).model["w"], torch.ones(2))


def test_a_reader_during_a_writer_gets_whole_checkpoints(mongo_server):
    writer = GridFSWeightsStore(client=mongo_server.client(), db_name=mongo_server.db_name)
    reader = GridFSWeightsStore(
        client=mongo_server.client("secondaryPreferred"), db_name=mongo_server.db_name
    )
    for iteration in range(1, 6):
        writer.store_weights("run", 1, {"w": torch.full((1000,), float(iteration))})
        loaded = reader.retrieve_weights("run", 1).model["w"]
        assert torch.equal(loaded, torch.full((1000,), float(iteration)))


def test_an_insert_racing_with_deleters_gives_up_after_a_few_attempts():
    client = StrictMongoClient()
    other = client.sibling()  # another process, inserting and deleting the same name
    store = MongoConfigStore(client=client, db_name="reg")
    task = full_run().task_config
    doc = {"name": task.name, "__type__": "DistanceTaskConfig"}
    other["reg"]["tasks"].insert_one(dict(doc))
    # before each of our inserts the other one is there; before each of our reads it is gone
    client.before_write["reg.tasks"] = [lambda: other["reg"]["tasks"].insert_one(dict(doc))] * 2000
    client.before_find["reg.tasks"] = [lambda: other["reg"]["tasks"].delete_many({})] * 2000
    with pytest.raises(DacapoStoreError, match="stored and deleted by others 5 times"):
        store.store_task_config(task)


# -- write concern and index builds ----------------------------------------------------------------


def recording_client(mongo_server):
    """A client of the server and a function listing (namespace, write concern) of its writes so far."""
    if mongo_server.kind == "strict":
        client = mongo_server.client()
        return client, lambda: list(client.writes)
    from pymongo import MongoClient, monitoring

    writes = []

    class Recorder(monitoring.CommandListener):
        def started(self, event):
            if event.command_name in ("insert", "update", "delete"):
                collection = event.command[event.command_name]
                writes.append(
                    (f"{event.database_name}.{collection}", dict(event.command.get("writeConcern", {})))
                )

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    client = MongoClient(MONGO_URI, event_listeners=[Recorder()])
    mongo_server._opened.append(client)
    return client, lambda: list(writes)


def test_every_write_of_the_stores_asks_a_majority_with_a_timeout(mongo_server):
    client, writes = recording_client(mongo_server)
    db = mongo_server.db_name
    configs = MongoConfigStore(client=client, db_name=db)
    weights = GridFSWeightsStore(client=client, db_name=db)
    configs.store_run_config(full_run())
    weights.store_weights("run", 1, {"w": torch.ones(300_000)})
    weights.store_validation_scores("run", 1, {"voi": 0.5})
    weights.store_best("run", 1, None, "voi")
    weights.remove("run", 1)
    namespaces = {ns for ns, _ in writes()}
    assert {f"{db}.runs", f"{db}.weights.files", f"{db}.weights.chunks", f"{db}.weights_runs"} <= namespaces
    for namespace, concern in writes():
        assert concern.get("w") == "majority" and concern.get("wtimeout", 0) > 0, namespace


def test_index_builds_ask_a_majority_commit_quorum_and_fall_back_on_a_standalone():
    replica_set = StrictMongoClient()
    MongoConfigStore(client=replica_set, db_name="reg")
    assert {quorum for _, _, quorum in replica_set.index_builds} == {"majority"}
    standalone = StrictMongoClient(standalone=True)
    MongoConfigStore(client=standalone, db_name="reg")
    assert indexes_of(standalone, "reg", "tasks")["name"] == ((("name", 1),), True)
    assert [quorum for _, _, quorum in standalone.index_builds] == [None] * len(CONFIG_INDEXES)


# -- our scores are ours ----------------------------------------------------------------------------


def test_scores_go_to_weights_runs_and_dacapo_validation_scores_stay_dacapos(mongo_server):
    client = mongo_server.client()
    dacapo_doc = {"run_name": "run", "iteration": 1, "dataset": "validate", "criterion": "voi", "value": 1}
    client[mongo_server.db_name]["validation_scores"].insert_one(dict(dacapo_doc))
    store = GridFSWeightsStore(client=client, db_name=mongo_server.db_name)
    store.store_validation_scores("run", 1, {"voi": 0.25})
    assert store.retrieve_validation_scores("run") == {"voi": {"validate": {1: 0.25}}}
    ours = client[mongo_server.db_name]["weights_runs"].find_one({"_id": "run"})
    assert ours["scores"] == {"validate": {"1": {"voi": 0.25}}}
    theirs = list(client[mongo_server.db_name]["validation_scores"].find({}, projection={"_id": False}))
    assert theirs == [dacapo_doc]


# -- Int64 ----------------------------------------------------------------------------------------------


def test_iterations_stored_as_int64_are_read(mongo_server):
    client = mongo_server.client()
    store = GridFSWeightsStore(client=client, db_name=mongo_server.db_name)
    big = 2**31 + 5
    store.store_weights("run", big, {"w": torch.ones(2)})
    store.store_validation_scores("run", big, {"voi": 0.5})
    store.store_best("run", big, None, "voi")
    db = client[mongo_server.db_name]
    db["weights_runs"].update_one({"_id": "run"}, {"$set": {"pins.%.voi": Int64(big)}})
    # the earlier layout (a document per checkpoint and scored iteration) keeps Int64 iterations
    meta = db["weights_runs"].find_one({"_id": "run"})["checkpoints"][str(big)]
    db["weights_index"].insert_one({"run_name": "old", "iteration": Int64(big), "meta": meta})
    db["weights_scores"].insert_one(
        {"run_name": "old", "iteration": Int64(big), "dataset": "validate", "scores": {"voi": 0.5}}
    )
    assert store.iterations("run") == [big] == store.iterations("old")
    assert store.retrieve_best("run", "voi") == big == store.retrieve_best("old", "voi")
    assert store.pins("run") == [(None, "voi", big)]
    assert torch.equal(store.retrieve_weights("run", Int64(big)).model["w"], torch.ones(2))


def test_a_config_with_int64_fields_reads(mongo_server):
    client = mongo_server.client()
    store = MongoConfigStore(client=client, db_name=mongo_server.db_name)
    store.store_run_config(full_run())
    db = client[mongo_server.db_name]
    db["runs"].update_one({"name": "run"}, {"$set": {"num_iterations": Int64(100_000)}})
    shape = [Int64(v) for v in full_run().architecture_config.input_shape]
    db["runs"].update_one({"name": "run"}, {"$set": {"architecture_config.input_shape": shape}})
    run = store.retrieve_run_config("run")
    assert run == full_run()
    assert type(run.num_iterations) is int
