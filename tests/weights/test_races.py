"""Races between writers of one run: a verify against a re-store, and two first directions.

On files, real processes started together at a barrier, many times over; on the strict double
(which lives in one process), the other writer runs at the exact moment that loses data: from
the double's hook just before our read or write, as another client would.
"""

from __future__ import annotations

import multiprocessing

import pytest
import torch

from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

from .conftest import build_store, store_reading_with
from .test_weights_faults import flip_a_byte

TRIALS = 30


def _fork():
    return multiprocessing.get_context("fork")


def _in_turn(work, spec: dict, trials: int, *roles) -> list[list]:
    """Run `work(store, trial, role, done)` for each trial in one process per role, all roles of a
    trial released together by a barrier (`done` is a second one they may meet at); the results,
    by trial, in role order."""
    ctx = _fork()
    barrier = ctx.Barrier(len(roles))
    queue = ctx.Queue()

    done = ctx.Barrier(len(roles))

    def worker(role: str) -> None:
        store = LocalWeightsStore(spec["path"])
        for trial in range(trials):
            barrier.wait(timeout=60)
            try:
                queue.put((trial, role, work(store, trial, role, done)))
            except Exception as exc:
                queue.put((trial, role, f"{type(exc).__name__}: {exc}"))

    processes = [ctx.Process(target=worker, args=(role,)) for role in roles]
    for process in processes:
        process.start()
    found: dict[tuple[int, str], object] = {}
    for _ in range(trials * len(roles)):
        trial, role, result = queue.get(timeout=120)
        found[(trial, role)] = result
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return [[found[(t, r)] for r in roles] for t in range(trials)]


# ---------------------------------------------------------------- opposite first directions


def _first_direction(store, trial: int, role: str, done) -> str:
    store.store_validation_scores(
        f"run{trial}", 1, {"custom": 0.5}, higher_is_better={"custom": role == "up"}
    )
    return "stored"


def test_two_racing_first_directions_of_a_criterion_one_is_refused_on_files(tmp_path):
    spec = {"backend": "files", "path": str(tmp_path)}
    results = _in_turn(_first_direction, spec, TRIALS, "up", "down")
    store = LocalWeightsStore(tmp_path)
    for trial, (up, down) in enumerate(results):
        assert sorted([up == "stored", down == "stored"]) == [False, True], (trial, up, down)
        refused = down if up == "stored" else up
        assert "stores 'custom' as" in refused and "use another criterion name" in refused
        winner = up == "stored"
        assert store.read_index(f"run{trial}").directions == {"custom": winner}


def test_two_racing_first_directions_of_a_criterion_one_is_refused_on_gridfs():
    spec = {"backend": "mongomock", "client": _strict(), "db": "dacapo"}
    first = GridFSWeightsStore(client=spec["client"], db_name="dacapo")
    second = GridFSWeightsStore(client=spec["client"].sibling(), db_name="dacapo")

    def the_other_writer() -> None:  # between our check of the directions and our write
        second.store_validation_scores("run", 1, {"custom": 0.5}, higher_is_better={"custom": False})

    spec["client"].before_write.setdefault("dacapo.weights_runs", []).append(the_other_writer)
    with pytest.raises(ValueError, match="stores 'custom' as lower-is-better, not higher-is-better"):
        first.store_validation_scores("run", 2, {"custom": 0.9}, higher_is_better={"custom": True})
    assert first.read_index("run").directions == {"custom": False}
    assert first.retrieve_validation_scores("run") == {"custom": {"validate": {1: 0.5}}}


# ---------------------------------------------------------------- verify against a re-store


def _verify_or_restore(store, trial: int, role: str, done) -> object:
    if role == "verify":
        problems = [p.problem for p in store.verify("run")]
        done.wait(timeout=60)  # the re-store is over: what is recorded now is what stays
        return problems, store.read_index("run").damaged, store.retrieve_best("run", "voi")
    store.store_weights("run", 9, {"w": torch.full((16,), float(trial))})
    done.wait(timeout=60)
    return "stored"


def test_verify_racing_a_re_store_never_marks_the_new_checkpoint_on_files(tmp_path):
    store = LocalWeightsStore(tmp_path)
    for iteration in range(1, 10):  # verify reads 1-8 first (64 MiB, as long as a small store
        # takes here), while 9 is stored again: whether it reaches 9 before or after the old
        # blobs go varies from trial to trial
        store.store_weights("run", iteration, {"w": torch.full((2048, 1024), -1.0)})
        store.store_validation_scores("run", iteration, {"voi": 1 / iteration})
    spec = {"backend": "files", "path": str(tmp_path)}
    results = _in_turn(_verify_or_restore, spec, TRIALS, "verify", "restore")
    for trial, (verified, stored) in enumerate(results):
        assert stored == "stored"
        # what it checked was replaced, not damaged: nothing reported, nothing marked
        assert verified == ([], {}, 9), trial


def test_verify_racing_a_re_store_never_marks_the_new_checkpoint_on_gridfs():
    spec = {"backend": "mongomock", "client": _strict(), "db": "dacapo"}
    writer = build_store(spec)
    writer.store_weights("run", 9, {"w": torch.zeros(8)})
    writer.store_validation_scores("run", 9, {"voi": 0.1})

    def re_store() -> None:  # after verify read the index and the blob's file document
        writer.store_weights("run", 9, {"w": torch.ones(8)})

    verifier = store_reading_with(spec, "weights.chunks", re_store)
    assert verifier.verify("run") == []
    assert writer.read_index("run").damaged == {}
    assert writer.retrieve_best("run", "voi") == 9


def test_verify_clears_the_mark_of_a_checkpoint_it_finds_sound_again(store):
    store.store_weights("run", 9, {"w": torch.zeros(8)})
    store.store_validation_scores("run", 9, {"voi": 0.1})
    blob = store.metadata("run", 9)["blobs"]["model"]["name"]
    flip_a_byte(store, "run", blob)
    assert [p.iteration for p in store.verify("run")] == [9]
    assert store.read_index("run").damaged.keys() == {9}
    flip_a_byte(store, "run", blob)  # the same byte back: a disk that came back, a file restored
    assert store.verify("run") == []
    assert store.read_index("run").damaged == {}
    assert store.retrieve_best("run", "voi") == 9


def _strict():
    from strict_mongo import StrictMongoClient

    return StrictMongoClient()


def test_a_first_score_racing_the_first_write_of_the_runs_document_is_stored(monkeypatch):
    """On a server, two upserts creating one document race for its `_id`: the loser gets E11000
    (retried by the server only when the filter is the key alone, which a direction check is not)."""
    import strict_mongo
    from pymongo.errors import DuplicateKeyError

    client = _strict()
    store = GridFSWeightsStore(client=client, db_name="dacapo")
    other = GridFSWeightsStore(client=client.sibling(), db_name="dacapo")
    original = strict_mongo.StrictCollection.update_one
    lost = []

    def update_one(self, filter, update, *args, **kwargs):
        if self.name == "weights_runs" and "directions.voi" in filter and not lost:
            lost.append(True)
            # the other writer's upsert creates the document first
            other.append_index("run", [{"op": "pin", "dataset": None, "criterion": "dice", "iteration": 1}])
            raise DuplicateKeyError("E11000 duplicate key error collection: weights_runs index: _id_")
        return original(self, filter, update, *args, **kwargs)

    monkeypatch.setattr(strict_mongo.StrictCollection, "update_one", update_one)
    store.store_validation_scores("run", 1, {"voi": 0.5})
    monkeypatch.undo()
    index = store.read_index("run")
    assert index.scores == {"voi": {"validate": {1: 0.5}}}
    assert index.pins == {(None, "dice"): 1}
