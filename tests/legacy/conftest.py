"""The DaCapo 0.3.5 fixture pack (tests/data/dacapo-0.3.5) on both of DaCapo's layouts."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import uuid
from pathlib import Path

import attrs
import mongomock
import mongomock.gridfs
import pymongo
import pytest
from bson import json_util
from conftest import MONGO_URI, NO_MONGO

from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

mongomock.gridfs.enable_gridfs_integration()

PACK = Path(__file__).resolve().parents[1] / "data" / "dacapo-0.3.5"
MANIFEST = json.loads((PACK / "manifest.json").read_text())
DB_NAME = MANIFEST["mongo_database"]
DACAPO_COLLECTIONS = [p.stem for p in sorted((PACK / "mongo").glob("*.json")) if p.stem != "indexes"]


def number(value):
    """A manifest number (non-finite ones are strings)."""
    return float(value) if isinstance(value, str) else value


@functools.cache
def _pack_documents(name: str) -> str:
    return (PACK / "mongo" / f"{name}.json").read_text()


def load_mongo(client, db_name: str = DB_NAME) -> None:
    """DaCapo's collections of the pack, documents in stored order, and DaCapo's indexes."""
    db = client[db_name]
    for name in DACAPO_COLLECTIONS:
        docs = json_util.loads(_pack_documents(name))
        if docs:
            db[name].insert_many(docs)
    for index in json.loads((PACK / "mongo" / "indexes.json").read_text()):
        if index["name"] != "_id_":
            db[index["collection"]].create_index(
                [tuple(k) for k in index["key"]], name=index["name"], unique=index.get("unique", False)
            )


def tree_hash(root: Path) -> str:
    """One hash of a folder's names, bytes and symlink targets (links not followed)."""
    return hashlib.sha256(json.dumps(sorted(tree_files(root).items())).encode()).hexdigest()


def tree_files(root: Path) -> dict[str, str]:
    """relative path -> sha256 of bytes (or "link:<target>") for every file and symlink under root."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = "link:" + os.readlink(path)
            else:
                out[rel] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


# where our own files live beside DaCapo's: under a run's checkpoints/
OURS = re.compile(
    r"[^/]+/checkpoints/(blobs/.*|index\.jsonl(\.lock)?|index\.digest\.json|training_stats\.jsonl(\.lock)?)"
)


def assert_dacapo_unchanged(before: dict[str, str], after: dict[str, str]) -> None:
    """Every file DaCapo had is there unchanged; anything new is in our places."""
    assert {k: after.get(k) for k in before} == before, "DaCapo's files changed"
    new = sorted(set(after) - set(before))
    assert all(OURS.fullmatch(k) for k in new), f"files outside our places: {new}"


def mongo_dump(db) -> dict:
    """Every document and index of DaCapo's collections, for before/after comparisons."""
    return {name: (list(db[name].find({})), db[name].index_information()) for name in DACAPO_COLLECTIONS}


def dacapo_files_in(tmp_path: Path, with_stats_and_configs: bool = True) -> Path:
    """A copy of the pack's runs_base_dir (symlinks kept)."""
    root = tmp_path / "dacapo_runs"
    shutil.copytree(PACK / "files", root, symlinks=True)
    if not with_stats_and_configs:
        shutil.rmtree(root / "stats")
        shutil.rmtree(root / "configs")
    return root


@attrs.define
class Layout:
    """One of DaCapo's layouts holding the pack, and our weights store opened on it."""

    kind: str
    root: Path  # runs_base_dir: checkpoints and best files (and, for files, configs and stats)
    store: object
    db: object = None

    def snapshot(self):
        return (tree_files(self.root), mongo_dump(self.db) if self.db is not None else None)


REAL_MONGO = pytest.param("mongodb", marks=pytest.mark.skipif(not MONGO_URI, reason=NO_MONGO))


@pytest.fixture(params=["files", "mongomock", REAL_MONGO])
def layout(request, tmp_path):
    """The pack on DaCapo's files layout or its MongoDB layout; asserts afterwards that none of it changed."""
    yield from open_layout(request.param, tmp_path)


@pytest.fixture
def mongo_layout(tmp_path):
    """The pack on DaCapo's MongoDB layout (mongomock); asserts afterwards that none of it changed."""
    yield from open_layout("mongomock", tmp_path)


def open_layout(kind: str, tmp_path: Path):
    """Yield the pack opened on one layout under tmp_path; on resuming, assert DaCapo's data is unchanged."""
    if kind == "files":
        root = dacapo_files_in(tmp_path)
        found = Layout("files", root, LocalWeightsStore(root))
    else:
        root = dacapo_files_in(tmp_path, with_stats_and_configs=False)
        if kind == "mongodb":
            client = pymongo.MongoClient(MONGO_URI)
            db_name = f"dacapo_store_test_{uuid.uuid4().hex[:12]}"
        else:
            client, db_name = mongomock.MongoClient(), DB_NAME
        load_mongo(client, db_name)
        store = GridFSWeightsStore(client=client, db_name=db_name, dacapo_runs_dir=root)
        found = Layout(kind, root, store, client[db_name])
    files, documents = found.snapshot()
    yield found
    files_after, documents_after = found.snapshot()
    if kind == "mongodb":
        found.db.client.drop_database(found.db.name)
    assert_dacapo_unchanged(files, files_after)
    assert documents_after == documents, "DaCapo's documents changed"


def expected_scores(entry: dict) -> dict:
    """criterion -> dataset -> iteration -> best value over DaCapo's parameter sets (NaN skipped;
    NaN where every parameter set scored NaN: validated, no value)."""
    out: dict = {}
    for dataset, per_parameter in entry["scores"].items():
        for criterion in entry["criteria"]:
            higher = entry["higher_is_better"][criterion]
            for iteration in entry["iterations"]:
                values = [number(per_parameter[p][criterion][str(iteration)]) for p in per_parameter]
                values = [v for v in values if not math.isnan(v)]
                best = (max(values) if higher else min(values)) if values else math.nan
                out.setdefault(criterion, {}).setdefault(dataset, {})[iteration] = best
    return out


def nan_safe(value):
    """`value` with every NaN replaced by the string "NaN", so that == compares NaN as equal."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: nan_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_safe(v) for v in value]
    return value


def expected_best(entry: dict, criterion: str, dataset: str | None) -> int:
    """The best iteration as DaCapo chooses it (mean over datasets when none is given); ties: earlier."""
    scores = expected_scores(entry)[criterion]
    datasets = [dataset] if dataset else list(scores)
    means = {}
    for iteration in entry["iterations"]:
        values = [
            scores[d][iteration] for d in datasets if not math.isnan(scores[d].get(iteration, math.nan))
        ]
        if values:
            means[iteration] = sum(values) / len(values)
    higher = entry["higher_is_better"][criterion]
    return sorted(means, key=lambda it: (-means[it] if higher else means[it], it))[0]


def pins() -> dict:
    """(run, dataset, criterion) -> iteration DaCapo's store_best wrote."""
    return {(b["run"], b["dataset"], b["criterion"]): b["iteration"] for b in MANIFEST["store_best"]}
