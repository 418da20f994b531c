"""Real DaCapo 0.3.5 re-stores every config dacapo_store wrote: a no-op, on files and MongoDB.

Runs when DACAPO_STORE_TEST_DACAPO_PYTHON names a Python that imports DaCapo (build one
with `../shared/tools/dacapo-peer/setup.sh`); DaCapo runs in that Python as a subprocess
(`tests/dacapo_peer/restore_with_dacapo.py`), on mongomock for MongoDB as the fixture pack
was made. Each DaCapo config of the pack is built by DaCapo's own converter and stored with
DaCapo's `store_*_config`, as an experiment script does on every launch.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import mongomock
import pytest
import yaml
from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from test_dacapo_pack import PACK, entries, mongo_documents

from dacapo_store import converter
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.config_store.documents import KIND_CLASSES

DACAPO_PYTHON = os.environ.get("DACAPO_STORE_TEST_DACAPO_PYTHON")
SCRIPT = Path(__file__).parent / "dacapo_peer" / "restore_with_dacapo.py"

pytestmark = pytest.mark.skipif(
    not DACAPO_PYTHON,
    reason="set DACAPO_STORE_TEST_DACAPO_PYTHON to a Python that imports DaCapo 0.3.5 "
    "(../shared/tools/dacapo-peer/setup.sh builds one) to run DaCapo against our documents",
)


def canonical(doc) -> dict:
    """A document as JSON that keeps int vs double (DaCapo's Mongo store compares BSON)."""
    return json.loads(json_util.dumps(doc, json_options=CANONICAL_JSON_OPTIONS))


def run_dacapo(tmp_path: Path, request: dict) -> dict:
    file = tmp_path / "request.json"
    file.write_text(json.dumps(request))
    done = subprocess.run(
        [DACAPO_PYTHON, str(SCRIPT), str(file)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0 and "No module named 'dacapo" in done.stderr:
        pytest.skip(f"{DACAPO_PYTHON} can't import DaCapo: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def dacapo_pack_documents(backend: str) -> list[tuple[str, dict]]:
    """DaCapo's own documents of the configs we write (first repetition of a run name)."""
    out, seen = [], set()
    for entry in entries(backend):
        kind, name = entry["kind"], entry["name"]
        if (kind, name) in seen:
            continue
        seen.add((kind, name))
        if backend == "files":
            doc = yaml.full_load((PACK / "configs" / kind / f"{name}.yaml").read_text())
        else:
            doc = next(d for d in mongo_documents(kind) if d["name"] == name)
        out.append((kind, doc))
    return out


def write_with_dacapo_store(store, documents: list[tuple[str, dict]]) -> None:
    for kind, doc in documents:
        config = converter.structure(doc, KIND_CLASSES[kind])
        assert store.put_document(kind, converter.unstructure(config)) is True


def assert_no_op(report: dict, expected: int) -> None:
    failures = [f"{r['kind']}/{r['name']!r}: {r['result']}" for r in report["results"] if r["result"] != "ok"]
    assert failures == [], "\n".join(failures)
    assert len(report["results"]) == expected
    assert report["changed"] == []


def test_dacapo_re_storing_what_we_wrote_to_a_folder_is_a_no_op(tmp_path):
    documents = dacapo_pack_documents("files")
    store = FileConfigStore(tmp_path / "configs")
    write_with_dacapo_store(store, documents)
    request = {
        "backend": "files",
        "path": str(store.path),
        "documents": [{"kind": kind, "document": canonical(doc)} for kind, doc in documents],
    }
    assert_no_op(run_dacapo(tmp_path, request), 56)
    # Our metadata stayed beside the documents, and DaCapo left it alone.
    assert store.metadata("runs", "lab_lsd_er").created_by


def test_dacapo_re_storing_what_we_wrote_to_mongodb_is_a_no_op(tmp_path):
    documents = dacapo_pack_documents("mongo")
    client = mongomock.MongoClient()
    store = MongoConfigStore(client=client, db_name="ours")
    write_with_dacapo_store(store, documents)
    db = client["ours"]
    # DaCapo's collections only (it creates its own indexes on them), plus our metadata.
    dump = {c: list(db[c].find({}, {"_id": False})) for c in [*KIND_CLASSES, "config_metadata"]}
    (tmp_path / "dump.json").write_text(json_util.dumps(dump, json_options=CANONICAL_JSON_OPTIONS))
    request = {
        "backend": "mongo",
        "dump": str(tmp_path / "dump.json"),
        "documents": [{"kind": kind, "document": canonical(doc)} for kind, doc in documents],
    }
    assert_no_op(run_dacapo(tmp_path, request), 72)


def test_dacapo_re_storing_what_we_copied_from_mongodb_into_a_folder_is_a_no_op(tmp_path):
    # MongoDB gives tuples back as lists: the copy must write DaCapo's tuples again.
    from test_dacapo_pack import load_mongo_pack

    from dacapo_store.config_store.transfer import copy_documents

    client = mongomock.MongoClient()
    load_mongo_pack(client)
    source = MongoConfigStore(client=client, db_name="dacapo_public")
    target = FileConfigStore(tmp_path / "configs")
    report = copy_documents(source, target, [k for k in KIND_CLASSES if k != "datasets"])
    # What a folder can't hold is reported, not copied: names with '/', a second repetition.
    assert {name for _, name, _ in report.failed} | {name for _, name, _ in report.conflicts} == {
        *(d["name"] for d in mongo_documents("arrays") if "/" in d["name"]),
        "lab_inner_mito",
    }
    documents = dacapo_pack_documents("files")
    request = {
        "backend": "files",
        "path": str(target.path),
        "documents": [{"kind": kind, "document": canonical(doc)} for kind, doc in documents],
    }
    assert_no_op(run_dacapo(tmp_path, request), 56)


def test_dacapo_re_storing_the_pack_after_a_migration_to_main_and_back_is_a_no_op(tmp_path):
    """`dacapo-store migrate --to main` then `--to 0.3.5`: DaCapo 0.3.5 finds its own documents."""
    import shutil

    from test_dacapo_pack import load_mongo_pack

    shutil.copytree(PACK / "configs", tmp_path / "configs")
    store = FileConfigStore(tmp_path / "configs")
    assert store.migrate("main", dry_run=False).ok and store.migrate("0.3.5", dry_run=False).ok
    documents = dacapo_pack_documents("files")
    request = {
        "backend": "files",
        "path": str(store.path),
        "documents": [{"kind": kind, "document": canonical(doc)} for kind, doc in documents],
    }
    assert_no_op(run_dacapo(tmp_path, request), 56)

    client = mongomock.MongoClient()
    load_mongo_pack(client)
    mongo = MongoConfigStore(client=client, db_name="dacapo_public")
    assert mongo.migrate("main", dry_run=False).ok and mongo.migrate("0.3.5", dry_run=False).ok
    db = client["dacapo_public"]
    dump = {c: list(db[c].find({}, {"_id": False})) for c in [*KIND_CLASSES, "config_metadata"]}
    (tmp_path / "dump.json").write_text(json_util.dumps(dump, json_options=CANONICAL_JSON_OPTIONS))
    documents = dacapo_pack_documents("mongo")
    request = {
        "backend": "mongo",
        "dump": str(tmp_path / "dump.json"),
        "documents": [{"kind": kind, "document": canonical(doc)} for kind, doc in documents],
    }
    assert_no_op(run_dacapo(tmp_path, request), 72)
