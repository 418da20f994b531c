"""Real DaCapo 0.3.5 against dacapo_store, on files and MongoDB: it re-stores every config we wrote
(a no-op), and it trains, validates, resumes, starts and applies through the adapter.

Runs when DACAPO_STORE_TEST_DACAPO_PYTHON names a Python that imports DaCapo (build one
with `../shared/tools/dacapo-peer/setup.sh`); DaCapo runs in that Python as a subprocess
(`tests/dacapo_peer/restore_with_dacapo.py`), on mongomock for MongoDB as the fixture pack
was made. Each DaCapo config of the pack is built by DaCapo's own converter and stored with
DaCapo's `store_*_config`, as an experiment script does on every launch.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import mongomock
import mongomock.gridfs
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


# ------------------------------------------------------------------ DaCapo writing through the adapter

SESSION = Path(__file__).parent / "dacapo_peer" / "adapter_session.py"
CHECKOUT = Path(__file__).parent.parent
#: DaCapo-style generated names: `&`, `[`, `]`, over 128 characters.
RUN = (
    "jrc_hela-2_[mito&er&nuc]_semantic_8nm_dist_mito&er&nuc_dummy_arch_1_3_dummy_trainer__0_"
    "a_long_generated_name_as_DataSplitGenerator_makes_them_with_more_than_128_characters__0"
)
DATASETS = [
    "jrc_hela-2_[mito&er]_jrc_hela-2_[mito&er]_mito_er_nuc_8nm_gt_mito&er&nuc_8nm",
    "jrc_hela-3_crop17_[nuc]_8nm",
]
START_RUN = "finetune_from_best_mito__f1_score__0"
CRITERION = "mito__f1_score"


@pytest.fixture(scope="module", params=["files", "mongo"])
def session(request, tmp_path_factory):
    """One DaCapo session through the adapter (see `dacapo_peer/adapter_session.py`): its report,
    and our stores over the registry it wrote (MongoDB: its dump loaded into mongomock)."""
    tmp = tmp_path_factory.mktemp(f"adapter-{request.param}")
    base = tmp / "registry"
    req = {
        "backend": request.param,
        "base": str(base),
        "dummy_run": "dummy_dacapo_train",
        "run": RUN,
        "datasets": DATASETS,
        "start_run": START_RUN,
        "dump": str(tmp / "dump.json"),
    }
    (tmp / "request.json").write_text(json.dumps(req))
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT), "XDG_CACHE_HOME": str(tmp / "xdg-cache")}
    done = subprocess.run(
        [DACAPO_PYTHON, str(SESSION), str(tmp / "request.json")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env=env,
    )
    if done.returncode != 0 and "No module named 'dacapo'" in done.stderr:
        pytest.skip(f"{DACAPO_PYTHON} can't import DaCapo: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if request.param == "files":
        return SimpleNamespace(backend="files", base=base, report=report, client=None)
    mongomock.gridfs.enable_gridfs_integration()
    client = mongomock.MongoClient()
    for collection, docs in json_util.loads((tmp / "dump.json").read_text()).items():
        if docs:
            client["dacapo_live"][collection].insert_many(docs)
    return SimpleNamespace(backend="mongo", base=base, report=report, client=client)


def our_stores(session):
    from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

    if session.client is None:
        return FileConfigStore(session.base / "configs"), LocalWeightsStore(session.base)
    return (
        MongoConfigStore(client=session.client, db_name="dacapo_live"),
        GridFSWeightsStore(client=session.client, db_name="dacapo_live"),
    )


def cli(session, monkeypatch, *argv: str):
    from click.testing import CliRunner

    from dacapo_store.cli import app

    # the registry DaCapo wrote to: the options file the session used (files, or MongoDB + GridFS)
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(session.base / "dacapo.yaml"))
    if session.client is not None:
        monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *args, **kwargs: session.client)
    result = CliRunner().invoke(app, list(argv), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_dacapo_trains_validates_resumes_starts_and_applies_through_the_adapter(session):
    checks = session.report["checks"]
    assert [c["name"] for c in checks if not c["ok"]] == [], [c for c in checks if not c["ok"]]
    assert len(checks) == 37


def is_pickle(data: bytes) -> bool:
    """A pickle stream (protocol 2 and later begin with PROTO), or torch's zip around one."""
    if data[:1] == b"\x80":
        return True
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return any(name.endswith(".pkl") for name in z.namelist())
    return False


def test_no_pickle_anywhere_under_the_registry(session):
    # DaCapo's own pickled checkpoints, put there on purpose (they load through the restricted unpickler)
    legacy = [session.base / path for path in session.report["expected"]["legacy_checkpoints"]]
    files = [p for p in session.base.rglob("*") if p.is_file() and p not in legacy]
    assert files and all(is_pickle(p.read_bytes()) for p in legacy)
    assert [str(p) for p in files if is_pickle(p.read_bytes())] == []
    assert not (session.base / "stats").exists()  # DaCapo's stats store never wrote
    if session.client is not None:
        db = session.client["dacapo_live"]
        blobs = list(db["weights.files"].find())
        assert len(blobs) >= 6  # model and optimizer of the checkpoints at 200, 400, 600
        for blob in blobs:
            chunks = db["weights.chunks"].find({"files_id": blob["_id"]}, sort=[("n", 1)])
            assert not is_pickle(b"".join(bytes(c["data"]) for c in chunks)), blob["filename"]
        assert db["validation_scores"].count_documents({}) == 0  # DaCapo's collections: DaCapo's only
        assert db["training_stats"].count_documents({}) == 0
        assert db["weights_validation_arrays"].count_documents({"run_name": RUN}) == 3


def test_our_command_line_shows_the_run_its_scores_and_its_best(session, monkeypatch):
    expected = session.report["expected"]["run"]
    assert {RUN, START_RUN, "dummy_dacapo_train"} <= set(cli(session, monkeypatch, "list", "runs", "--json"))
    checkpoints = cli(session, monkeypatch, "weights", "list", RUN, "--json")
    assert sorted(c["iteration"] for c in checkpoints) == expected["checkpoints"] == [200, 400, 600]
    for dataset in DATASETS:
        best = cli(session, monkeypatch, "weights", "best", RUN, CRITERION, "--dataset", dataset, "--json")
        assert best["iteration"] == expected["best"][f"{dataset}/{CRITERION}"]
        assert best["value"] == expected["scores"][f"{best['iteration']}/{dataset}"]
    assert (
        cli(session, monkeypatch, "weights", "best", RUN, CRITERION, "--json")["iteration"]
        == expected["best_by_mean"]
    )
    scores = cli(session, monkeypatch, "scores", RUN, "--criterion", CRITERION, "--format", "json")
    assert {f"{s['iteration']}/{s['dataset']}": s["value"] for s in scores} == expected["scores"]
    board = cli(session, monkeypatch, "leaderboard", CRITERION, "--json")
    assert [(e["run"], e["iteration"]) for e in board] == [(RUN, expected["best_by_mean"])]
    shown = cli(session, monkeypatch, "show", "runs", RUN, "--meta", "--format", "json")
    assert shown["name"] == RUN and shown["__dacapo_store__"]["created_by"]  # metadata beside it
    lineage = cli(session, monkeypatch, "lineage", START_RUN, "--json")
    assert [(a["run"], a["criterion"]) for a in lineage["ancestors"]] == [(RUN, CRITERION)]


def test_our_dashboard_shows_the_run_its_scores_its_best_and_its_training_loss(session):
    from starlette.testclient import TestClient

    from dacapo_store.web import create_app

    expected = session.report["expected"]["run"]
    configs, weights = our_stores(session)
    with TestClient(create_app(configs, weights, recheck=0)) as client:
        data = client.get(f"/api/v1/runs/{RUN}").json()
        assert data["config"]["name"] == RUN and data["summary"]["status"] == "finished"
        assert [c["iteration"] for c in data["checkpoints"]] == [600, 400, 200]
        curves = {(c["criterion"], c["dataset"]): c for c in data["curves"]}
        assert {c for c, _ in curves} == set(expected["criteria"])  # all 63 of the task's criteria
        for dataset in DATASETS:
            curve = curves[(CRITERION, dataset)]
            assert curve["best"]["iteration"] == expected["best"][f"{dataset}/{CRITERION}"]
        training = [(i, loss) for i, loss, _ in expected["training"]]
        assert data["training"]["iterations"] == [i for i, _ in training]
        assert data["training"]["loss"] == [loss for _, loss in training]
        rows = client.get("/api/v1/runs", params={"criterion": CRITERION}).json()["rows"]
        assert {r["name"]: (r["best"] or {}).get("iteration") for r in rows}[RUN] == expected["best_by_mean"]
        board = client.get("/api/v1/leaderboard", params={"criterion": CRITERION}).json()
        assert RUN in json.dumps(board)
