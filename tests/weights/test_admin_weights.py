"""Admin operations of the weights store on every backend: verify, damaged checkpoints, pins,
leaderboards, deleting a run's weights, and copying a run's weights between stores."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from dacapo_store.errors import CriterionNotFoundError
from dacapo_store.weights import LocalWeightsStore, TrainingIterationStats
from dacapo_store.weights.gridfs import _field, _unfield
from dacapo_store.weights.transfer import copy_run_weights

from .conftest import build_store, store_spec
from .test_weights_faults import flip_a_byte

STATE = {"w": torch.arange(4.0).reshape(2, 2)}


def scored(store, run: str = "run", vois=((100, 0.9), (200, 0.3), (300, 0.5))) -> None:
    for iteration, voi in vois:
        store.store_weights(run, iteration, STATE)
        store.store_validation_scores(run, iteration, {"voi": voi, "dice": 1 - voi})


def test_verify_of_sound_checkpoints_finds_nothing(store):
    scored(store)
    assert store.verify("run") == []


def test_verify_names_a_damaged_blob_and_best_then_skips_it(store):
    scored(store)
    assert store.retrieve_best("run", "voi") == 200
    flip_a_byte(store, "run", store.metadata("run", 200)["blobs"]["model"]["name"])
    problems = store.verify("run")
    assert [(p.run, p.iteration) for p in problems] == [("run", 200)]
    assert "checksum" in problems[0].problem
    assert store.retrieve_best("run", "voi") == 300
    assert store.best_choice("run", "voi").value == 0.5


def test_verify_names_a_missing_blob(store):
    scored(store)
    store.delete_blob("run", store.metadata("run", 300)["blobs"]["model"]["name"])
    problems = store.verify("run")
    assert [(p.iteration, p.problem.endswith("is missing")) for p in problems] == [(300, True)]
    assert "run" in [e.run for e in store.leaderboard("voi")]


def test_storing_the_checkpoint_again_clears_the_damage(store):
    scored(store)
    store.delete_blob("run", store.metadata("run", 200)["blobs"]["model"]["name"])
    store.verify("run")
    assert store.retrieve_best("run", "voi") == 300
    store.store_weights("run", 200, STATE)
    assert store.verify("run") == []
    assert store.retrieve_best("run", "voi") == 200


def test_best_choice_says_whether_it_is_a_pin(store):
    scored(store)
    assert store.best_choice("run", "voi").pinned is False
    store.store_best("run", 300, None, "voi")
    choice = store.best_choice("run", "voi")
    assert (choice.iteration, choice.value, choice.pinned) == (300, 0.5, True)


def test_unpin_brings_back_the_computed_best(store):
    scored(store)
    store.store_best("run", 300, None, "voi")
    store.unpin("run", "voi")
    assert store.retrieve_best("run", "voi") == 200
    assert store.pins("run") == []
    with pytest.raises(CriterionNotFoundError, match="no pin for 'voi'"):
        store.unpin("run", "voi")


def test_a_dacapo_order_call_of_retrieve_best_says_so(store):
    scored(store)
    with pytest.raises(CriterionNotFoundError, match=r"DaCapo's \(run, dataset, criterion\)"):
        store.retrieve_best("run", "validate", "voi")


def test_leaderboard_sorts_runs_by_the_criterion_direction(store):
    scored(store, "a", [(100, 0.5)])
    scored(store, "b", [(100, 0.2), (200, 0.4)])
    scored(store, "c", [(100, 0.7)])
    voi = store.leaderboard("voi")
    assert [(e.run, e.iteration, e.value, e.pinned) for e in voi] == [
        ("b", 100, 0.2, False),
        ("a", 100, 0.5, False),
        ("c", 100, 0.7, False),
    ]
    assert [e.run for e in store.leaderboard("dice")] == ["b", "a", "c"]  # higher is better
    assert [e.run for e in store.leaderboard("voi", runs=["c", "a"])] == ["a", "c"]


def test_leaderboard_follows_pins_datasets_and_new_scores(store):
    scored(store, "a", [(100, 0.5)])
    scored(store, "b", [(100, 0.2), (200, 0.4)])
    store.store_best("b", 200, None, "voi")
    assert [(e.run, e.value, e.pinned) for e in store.leaderboard("voi")] == [
        ("b", 0.4, True),
        ("a", 0.5, False),
    ]
    store.store_validation_scores("a", 100, {"voi": 0.1}, dataset="test")
    assert [e.run for e in store.leaderboard("voi", dataset="test")] == ["a"]
    assert store.leaderboard("voi", dataset="test")[0].value == 0.1
    store.store_validation_scores("a", 100, {"voi": 0.05})
    assert [e.run for e in store.leaderboard("voi")] == ["a", "b"]
    assert store.leaderboard("nope") == []


def test_delete_run_removes_checkpoints_scores_and_pins(store):
    scored(store, "gone")
    scored(store, "kept")
    store.store_best("gone", 100, None, "voi")
    assert store.delete_run("gone") == [100, 200, 300]
    assert store.iterations("gone") == []
    assert store.criteria("gone") == []
    assert store.list_blobs("gone") == []
    assert store.run_names() == ["kept"]
    assert [e.run for e in store.leaderboard("voi")] == ["kept"]


@pytest.mark.parametrize("target_backend", ["files", "mongomock"])
def test_copy_run_weights_carries_blobs_scores_pins_and_is_idempotent(store, target_backend, tmp_path):
    scored(store)
    store.store_validation_scores("run", 100, {"f1_score": 0.5}, dataset="test")
    store.store_best("run", 300, "validate", "voi")
    target = build_store(store_spec(target_backend, tmp_path / "target"))
    first = copy_run_weights(store, target, "run")
    assert (first.checkpoints_copied, first.ok) == ([100, 200, 300], True)
    assert (first.scores_copied, first.pins_copied) == (7, 1)
    assert target.read_index("run").checkpoints == store.read_index("run").checkpoints
    assert target.retrieve_validation_scores("run") == store.retrieve_validation_scores("run")
    assert target.pins("run") == store.pins("run")
    for iteration in (100, 200, 300):
        for record in store.metadata("run", iteration)["blobs"].values():
            assert bytes(target.get_blob("run", record["name"])) == bytes(
                store.get_blob("run", record["name"])
            )
    again = copy_run_weights(store, target, "run")
    assert (again.checkpoints_copied, again.checkpoints_unchanged, again.scores_copied, again.ok) == (
        [],
        [100, 200, 300],
        0,
        True,
    )


def as_written_before_xxh3(store, run: str, iteration: int) -> None:
    """Rewrite a checkpoint's entry as versions before xxh3-128 wrote it: a sha256 per blob only."""
    meta = store.metadata(run, iteration)
    for record in meta["blobs"].values():
        record["sha256"] = hashlib.sha256(bytes(store.get_blob(run, record["name"]))).hexdigest()
        del record["xxh3_128"]
    store.append_index(run, [{"op": "checkpoint", "iteration": iteration, "meta": meta}])


def test_a_copy_compares_an_entry_of_an_earlier_version_by_its_bytes(store, tmp_path):
    # the target's checkpoints carry only a sha256, the source's only an xxh3-128: no checksum to
    # compare, so the target's blob is checked against the source's checksum
    scored(store)
    target = LocalWeightsStore(tmp_path / "target")
    target.store_weights("run", 100, STATE)
    target.store_weights("run", 200, {"w": torch.zeros(2, 2)})
    for iteration in (100, 200):
        as_written_before_xxh3(target, "run", iteration)
    report = copy_run_weights(store, target, "run")
    assert report.checkpoints_unchanged == [100]
    assert report.checkpoints_copied == [300]
    assert report.conflicts == ["checkpoint 200: the target holds another one"]
    assert "xxh3_128" not in target.metadata("run", 200)["blobs"]["model"]  # left as it was
    # a damaged blob at the target is a failure to compare, and nothing is changed
    flip_a_byte(target, "run", target.metadata("run", 100)["blobs"]["model"]["name"])
    before = target.read_index("run").checkpoints
    again = copy_run_weights(store, target, "run")
    assert len(again.failed) == 1 and "checkpoint 100: can't compare" in again.failed[0]
    assert "sha256" in again.failed[0]
    assert target.read_index("run").checkpoints == before


def test_copy_run_weights_refuses_a_damaged_blob_and_reports_conflicts(store, tmp_path):
    scored(store)
    flip_a_byte(store, "run", store.metadata("run", 100)["blobs"]["model"]["name"])
    target = LocalWeightsStore(tmp_path / "target")
    target.store_validation_scores("run", 200, {"voi": 0.25})
    report = copy_run_weights(store, target, "run")
    assert report.checkpoints_copied == [200, 300]
    assert len(report.failed) == 1 and "checkpoint 100" in report.failed[0]
    assert any("score voi on validate at 200" in c for c in report.conflicts)
    assert target.iterations("run") == [200, 300]
    assert target.retrieve_validation_scores("run")["voi"]["validate"][200] == 0.25


def test_leaderboard_keeps_run_names_with_dots(store):
    odd = "v1.2.3"
    scored(store, odd, [(100, 0.1)])
    scored(store, "plain", [(100, 0.2)])
    assert [e.run for e in store.leaderboard("voi")] == [odd, "plain"]
    assert [e.run for e in store.leaderboard("voi", runs=[odd])] == [odd]
    assert set(store.run_digests([odd, "plain"])) == {odd, "plain"}
    store.delete_run(odd)
    assert [e.run for e in store.leaderboard("voi")] == ["plain"]


@pytest.mark.parametrize("name", ["a.b", "$x", "%2E", "%24.%25$", "[x]&y/z"])
def test_summary_field_names_round_trip_without_dots_or_dollars(name):
    field = _field(name)
    assert "." not in field and "$" not in field
    assert _unfield(field) == name


def digest_file(root, run):
    return root / run / "checkpoints" / "index.digest.json"


def test_a_reader_takes_the_writers_digest_only_while_its_stamp_matches(tmp_path):
    from dacapo_store.weights import local

    store = LocalWeightsStore(tmp_path)
    scored(store, "a", [(100, 0.5)])
    scored(store, "b", [(100, 0.2), (200, 0.1)])
    first = store.leaderboard("voi")
    assert [(e.run, e.iteration) for e in first] == [("b", 200), ("a", 100)]
    assert digest_file(tmp_path, "a").is_file()  # written by the writer, beside its journal
    assert set(LocalWeightsStore(tmp_path).stored_digests(["a", "b"])) == {"a", "b"}
    digest_file(tmp_path, "a").write_text("not a digest")  # damaged: the journal is read instead
    local._cache.clear()  # as in a new process
    assert LocalWeightsStore(tmp_path).stored_digests(["a", "b"]).keys() == {"b"}
    assert LocalWeightsStore(tmp_path).leaderboard("voi") == first
    store.remove("b", 200)
    assert [(e.run, e.iteration, e.value) for e in LocalWeightsStore(tmp_path).leaderboard("voi")] == [
        ("b", 100, 0.2),
        ("a", 100, 0.5),
    ]


def leaders(store) -> list[tuple[str, int]]:
    return [(e.run, e.iteration) for e in store.leaderboard("voi")]


def test_a_write_by_another_store_shows_in_the_next_leaderboard(tmp_path):
    reader, writer = LocalWeightsStore(tmp_path), LocalWeightsStore(tmp_path)
    scored(writer, "a", [(100, 0.5)])
    assert leaders(reader) == [("a", 100)]
    scored(writer, "b", [(100, 0.2)])
    assert leaders(reader) == [("b", 100), ("a", 100)]
    writer.store_validation_scores("a", 100, {"voi": 0.1})
    assert leaders(reader) == [("a", 100), ("b", 100)]
    writer.delete_run("b")
    assert leaders(reader) == [("a", 100)]


def test_a_change_no_digest_follows_is_seen_at_the_next_leaderboard(tmp_path):
    store = LocalWeightsStore(tmp_path)
    scored(store, "a", [(100, 0.5)])
    scored(store, "b", [(100, 0.2)])
    assert leaders(store) == [("b", 100), ("a", 100)]
    # another tool appending to the journal: the digest's stamp no longer matches
    journal = tmp_path / "a" / "checkpoints" / "index.jsonl"
    event = {"op": "scores", "iteration": 100, "dataset": "validate", "scores": {"voi": 0.01},
             "higher_is_better": {"voi": False}}  # fmt: skip
    with open(journal, "ab") as f:
        f.write(json.dumps(event).encode() + b"\n")
    assert leaders(store) == [("a", 100), ("b", 100)]
    assert leaders(LocalWeightsStore(tmp_path)) == [("a", 100), ("b", 100)]


def test_training_stats_go_with_a_copy_and_a_deleted_run(tmp_path):
    source, target = LocalWeightsStore(tmp_path / "a"), LocalWeightsStore(tmp_path / "b")
    scored(source)
    source.store_training_stats(
        "run", [TrainingIterationStats(1, 0.5, 0.1), TrainingIterationStats(2, 0.4, 0.1)]
    )
    assert copy_run_weights(source, target, "run").training_stats == "copied"
    assert target.retrieve_training_stats("run") == source.retrieve_training_stats("run")
    assert copy_run_weights(source, target, "run").training_stats == "unchanged"
    other = LocalWeightsStore(tmp_path / "c")
    other.store_training_stats("run", [TrainingIterationStats(1, 0.9, 0.1)])
    clash = copy_run_weights(source, other, "run")
    assert clash.training_stats == "conflict"
    assert clash.conflicts[0].startswith("training stats: the target holds other ones")
    assert [s.loss for s in other.retrieve_training_stats("run")] == [0.9]  # nothing of them written
    source.delete_run("run")
    assert source.retrieve_training_stats("run") == []
