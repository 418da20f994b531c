"""The strict test double refuses what a real MongoDB server refuses (so the other suites can trust it)."""

from __future__ import annotations

import pytest
from pymongo import ReadPreference
from pymongo.errors import InvalidOperation, OperationFailure
from strict_mongo import StrictMongoClient


def test_same_keys_under_another_name_is_index_options_conflict():
    coll = StrictMongoClient()["db"]["tasks"]
    coll.create_index("name", unique=True, name="name")
    coll.create_index("name", unique=True, name="name")  # the same index again: a no-op
    with pytest.raises(OperationFailure) as info:
        coll.create_index("name", unique=True, name="name_unique")
    assert info.value.code == 85
    with pytest.raises(OperationFailure) as info:
        coll.create_index([("name", 1), ("x", 1)], name="name")
    assert info.value.code == 86
    assert sorted(coll.index_information()) == ["_id_", "name"]


def test_a_read_only_account_can_read_but_not_create_an_existing_index_or_write():
    admin = StrictMongoClient()
    admin["db"]["tasks"].create_index("name", unique=True, name="name")
    admin["db"]["tasks"].insert_one({"name": "a"})
    reader = admin.sibling(read_only=True)
    assert reader["db"]["tasks"].find_one({"name": "a"})["name"] == "a"
    for attempt in (
        lambda: reader["db"]["tasks"].create_index("name", unique=True, name="name"),
        lambda: reader["db"]["tasks"].insert_one({"name": "b"}),
        lambda: reader["db"]["tasks"].delete_one({"name": "a"}),
    ):
        with pytest.raises(OperationFailure) as info:
            attempt()
        assert info.value.code == 13
    assert admin["db"]["tasks"].count_documents({}) == 1


def test_secondary_reads_lag_until_replicated_and_primary_reads_do_not():
    client = StrictMongoClient(read_preference=ReadPreference.SECONDARY_PREFERRED)
    client["db"]["c"].insert_one({"x": 1})
    assert client["db"]["c"].find_one({"x": 1}) is None
    primary = client["db"].get_collection("c", read_preference=ReadPreference.PRIMARY)
    assert primary.find_one({"x": 1})["x"] == 1
    client.replicate()
    assert client["db"]["c"].find_one({"x": 1})["x"] == 1


def test_writes_record_their_write_concern_and_a_standalone_refuses_commit_quorum():
    from pymongo.write_concern import WriteConcern

    client = StrictMongoClient(standalone=True)
    coll = client["db"].get_collection("c", write_concern=WriteConcern("majority", wtimeout=1000))
    coll.insert_one({"x": 1})
    assert client.writes == [("db.c", {"w": "majority", "wtimeout": 1000})]
    with pytest.raises(OperationFailure) as info:
        coll.create_index("x", commitQuorum="majority")
    assert info.value.code == 2


def test_a_closed_client_refuses_use():
    client = StrictMongoClient()
    client.close()
    with pytest.raises(InvalidOperation):
        client["db"]["c"].find_one({})
