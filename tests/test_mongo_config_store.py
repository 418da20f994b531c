"""What only the MongoDB backend must do: DaCapo's collections, indexes, connection errors."""

from __future__ import annotations

import socket
import time

import bson
import pytest
from conftest import full_run
from strict_mongo import StrictMongoClient

from dacapo_store import StoreConnectionError, converter
from dacapo_store.config_store import KINDS, MongoConfigStore, create_config_store
from dacapo_store.options import Options


@pytest.fixture
def client():
    return StrictMongoClient()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_kind_has_a_unique_name_index(client):
    MongoConfigStore(client=client, db_name="reg")
    for kind in KINDS:
        indexes = client["reg"][kind].index_information()
        assert any(info.get("unique") and info["key"] == [("name", 1)] for info in indexes.values()), kind


def test_documents_are_dacapo_documents_in_dacapo_collections(client):
    MongoConfigStore(client=client, db_name="reg").store_run_config(full_run())
    doc = client["reg"]["runs"].find_one({"name": "run"}, projection={"_id": False})
    # Exactly DaCapo's document, byte for byte; our metadata is in a collection of ours.
    assert bson.encode(doc) == bson.encode(converter.unstructure(full_run()))
    (meta,) = client["reg"]["config_metadata"].find({"kind": "runs", "name": "run"}, {"_id": False})
    assert set(meta) == {"kind", "name", "created_at", "created_by", "content_hash", "checksum"}
    assert client["reg"]["trainers"].count_documents({"name": "gunpowder"}) == 1


def test_a_dacapo_written_document_with_int_floats_and_an_id_reads_and_compares_equal(client):
    doc = converter.unstructure(full_run())
    doc["task_config"]["clip_distance"] = 40  # DaCapo may store a float field as an int
    client["reg"]["runs"].insert_one(dict(doc))
    store = MongoConfigStore(client=client, db_name="reg")
    assert store.retrieve_run_config("run") == full_run()
    store.store_run_config(full_run())  # equal as configs: no DuplicateNameError
    assert client["reg"]["runs"].count_documents({}) == 1


def test_an_unreachable_server_raises_store_connection_error_within_the_timeout():
    uri = f"mongodb://admin:s3cret@127.0.0.1:{closed_port()}/?authSource=admin"
    started = time.monotonic()
    with pytest.raises(StoreConnectionError) as info:
        MongoConfigStore(uri, "reg", timeout=0.3)
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert "127.0.0.1" in message
    assert "s3cret" not in message
    assert "admin" not in message.split("authSource")[0]


def test_a_malformed_uri_is_a_connection_error_without_the_password():
    with pytest.raises(StoreConnectionError) as info:
        MongoConfigStore("mongodb://u:pw@host:notaport/", "reg", timeout=0.3)
    assert "pw" not in str(info.value)


def test_create_config_store_builds_mongo_from_options_and_fails_fast_when_unreachable():
    options = Options(
        type="mongo", mongo_db_host=f"mongodb://127.0.0.1:{closed_port()}", server_selection_timeout=0.3
    )
    with pytest.raises(StoreConnectionError, match="can't reach MongoDB"):
        create_config_store(options)


def test_create_config_store_defaults_to_files(tmp_path):
    store = create_config_store(Options(runs_base_dir=tmp_path))
    assert store.describe() == f"files:{tmp_path / 'configs'}"
