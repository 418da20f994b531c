"""What a fresh process finds after an interrupted store: the old or the new checkpoint, whole.

Used in-process by the tests (`check_checkpoint`), and as a script a test runs in a new Python
process (nothing cached from the writer): for each case, load the checkpoint, ask for the best,
run `dacapo-store gc --older-than 0s --yes`, and look again.

    python tests/weights/fresh_check.py CASES.json   # prints one JSON line per case

A case is `{"spec": ..., "allowed": [values], "dump": path?}`: a files spec (`{"backend":
"files", "path": ...}`) or a strict-double one whose data is in `dump` (see `dump_server`).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import torch

RUN = "run"
#: the iteration that is replaced; iteration 1 is a second, older checkpoint
ITERATION = 3


def state(value: float) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A small model and optimizer state holding `value`, two blobs of one checkpoint."""
    return {"w": torch.full((256,), value)}, {"state": {}, "param_groups": [{"v": value}]}


def prepare(store) -> None:
    """The run before the replacement: iterations 1 (0.5) and 3 (1.0), 3 best by voi."""
    store.store_weights(RUN, 1, *state(0.5))
    store.store_weights(RUN, ITERATION, *state(1.0))
    store.store_validation_scores(RUN, 1, {"voi": 0.9})
    store.store_validation_scores(RUN, ITERATION, {"voi": 0.1})


def check_checkpoint(store, allowed) -> float:
    """The value of the replaced checkpoint, which must load whole and be one of `allowed`; the
    best by voi must name a checkpoint that loads."""
    weights = store.retrieve_weights(RUN, ITERATION)
    value = float(weights.model["w"][0])
    assert value in allowed, f"iteration {ITERATION} holds {value}, expected one of {sorted(allowed)}"
    assert bool((weights.model["w"] == value).all())
    assert weights.optimizer["param_groups"][0]["v"] == value, "model and optimizer of two checkpoints"
    best = store.retrieve_best(RUN, "voi")
    store.retrieve_weights(RUN, best)
    return value


def dump_server(client, path: Path) -> None:
    """Every document of every database of a strict double, for a fresh process to load."""
    data = {
        name: {coll: list(client[name][coll].find({})) for coll in client[name].list_collection_names()}
        for name in client.list_database_names()
    }
    path.write_bytes(pickle.dumps(data))


def load_server(path: Path):
    """A new strict double holding what `dump_server` wrote."""
    import mongomock.gridfs
    from strict_mongo import StrictMongoClient

    mongomock.gridfs.enable_gridfs_integration()
    client = StrictMongoClient()
    for name, collections in pickle.loads(path.read_bytes()).items():
        for coll, docs in collections.items():
            if docs:
                client[name][coll].insert_many(docs)
    return client


def _open(case: dict, client) -> Any:
    from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

    spec = case["spec"]
    if spec["backend"] == "files":
        return LocalWeightsStore(spec["path"])
    return GridFSWeightsStore(client=client, db_name=spec["db"])


def _gc(case: dict, client) -> None:
    from click.testing import CliRunner

    from dacapo_store.cli import app

    spec = case["spec"]
    options = os.path.join(os.path.dirname(case.get("dump") or spec["path"]), "no-options.yaml")
    open(options, "a").close()  # an empty options file: nothing of the user's is read
    env = {"DACAPO_OPTIONS_FILE": options}
    if spec["backend"] == "files":
        args = ["--store", f"files:{spec['path']}"]
    else:
        import dacapo_store.mongo

        dacapo_store.mongo.MongoClient = lambda *a, **k: client.sibling()
        env["DACAPO_WEIGHTS_STORE"] = "gridfs"
        args = ["--store", "mongodb://localhost:27017", "--db", spec["db"]]
    result = CliRunner().invoke(app, [*args, "gc", "--older-than", "0s", "--yes"], env=env)
    assert result.exit_code == 0, f"gc failed: {result.output}"


def run_case(case: dict) -> dict:
    """Check one case as the script does; a failure comes back as its message."""
    client = load_server(Path(case["dump"])) if case.get("dump") else None
    try:
        before = check_checkpoint(_open(case, client), set(case["allowed"]))
        _gc(case, client)
        after = check_checkpoint(_open(case, client), set(case["allowed"]))
        assert after == before, f"gc changed iteration {ITERATION} from {before} to {after}"
    except Exception as exc:
        return {"name": case.get("name"), "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"name": case.get("name"), "ok": True, "value": before}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # strict_mongo
    for case in json.loads(Path(sys.argv[1]).read_text()):
        print(json.dumps(run_case(case)), flush=True)
