"""Training stats: loss and time per iteration, stored once, read back sorted, on every backend."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from dacapo_store import TrainingIterationStats, TrainingStatsConflictError

from .conftest import age_our_stats, dacapo_stats_written_at


def stats(*iterations: int, loss: float = 1.0) -> list[TrainingIterationStats]:
    return [TrainingIterationStats(i, loss + i, 0.1 * i) for i in iterations]


def test_stored_stats_come_back_sorted(store):
    assert store.store_training_stats("run", stats(3, 1, 2)) == 3
    assert store.retrieve_training_stats("run") == stats(1, 2, 3)


def test_a_mapping_of_iteration_to_loss_and_time_is_accepted(store):
    store.store_training_stats("run", {0: {"loss": 2.0, "time": 0.5}, 1: {"loss": 1.5, "time": 0.25}})
    assert store.retrieve_training_stats("run") == [
        TrainingIterationStats(0, 2.0, 0.5),
        TrainingIterationStats(1, 1.5, 0.25),
    ]


def test_storing_the_same_values_again_is_a_no_op(store):
    store.store_training_stats("run", stats(0, 1))
    assert store.store_training_stats("run", stats(0, 1)) == 0
    assert store.retrieve_training_stats("run") == stats(0, 1)


def test_appending_keeps_what_is_there(store):
    store.store_training_stats("run", stats(0, 1))
    assert store.store_training_stats("run", stats(1, 2, 3)) == 2
    assert store.retrieve_training_stats("run") == stats(0, 1, 2, 3)


def test_other_values_for_a_stored_iteration_are_an_error_and_nothing_is_written(store):
    store.store_training_stats("run", stats(0, 1))
    with pytest.raises(TrainingStatsConflictError, match=r"iteration\(s\) 1\b.*nothing was stored"):
        store.store_training_stats("run", stats(1, 2, loss=5.0))
    assert store.retrieve_training_stats("run") == stats(0, 1)


def test_nan_equals_nan_when_stored_again(store):
    store.store_training_stats("run", {0: {"loss": math.nan, "time": 0.1}})
    assert store.store_training_stats("run", {0: {"loss": math.nan, "time": 0.1}}) == 0
    (only,) = store.retrieve_training_stats("run")
    assert math.isnan(only.loss)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ({0: {"loss": 1.0}}, ValueError, "'loss' and 'time'"),
        ({-1: {"loss": 1.0, "time": 1.0}}, ValueError, "non-negative int"),
        ({"1": {"loss": 1.0, "time": 1.0}}, ValueError, "non-negative int"),
        ({0: {"loss": "x", "time": 1.0}}, TypeError, "real number"),
        ([(0, 1.0, 1.0)], TypeError, "TrainingIterationStats"),
        ("stats", TypeError, "must be TrainingIterationStats"),
        ([TrainingIterationStats(0, 1.0, 1.0), TrainingIterationStats(0, 2.0, 1.0)], ValueError, "twice"),
    ],
)
def test_bad_stats_are_refused_before_anything_is_written(store, bad, error, message):
    store.store_training_stats("run", stats(5))
    with pytest.raises(error, match=message):
        store.store_training_stats("run", bad)
    assert store.retrieve_training_stats("run") == stats(5)


def test_delete_removes_the_runs_stats_only(store):
    store.store_training_stats("run", stats(0, 1))
    store.store_training_stats("other", stats(0))
    store.delete_training_stats("run")
    assert store.retrieve_training_stats("run") == []
    assert store.retrieve_training_stats("other") == stats(0)
    store.delete_training_stats("run")  # absent is fine
    store.store_training_stats("run", stats(0, loss=3.0))
    assert store.retrieve_training_stats("run") == stats(0, loss=3.0)


def test_an_unknown_run_has_no_stats(store):
    assert store.retrieve_training_stats("nobody") == []


def test_files_append_to_a_journal_without_rewriting_it(tmp_path):
    from dacapo_store.weights import LocalWeightsStore

    store = LocalWeightsStore(tmp_path)
    store.store_training_stats("run", stats(*range(50)))
    journal = tmp_path / "run" / "checkpoints" / "training_stats.jsonl"
    before, inode = journal.read_bytes(), journal.stat().st_ino
    store.store_training_stats("run", stats(*range(50, 60)))
    after = journal.read_bytes()
    assert journal.stat().st_ino == inode and after.startswith(before) and len(after) > len(before)
    assert LocalWeightsStore(tmp_path).retrieve_training_stats("run") == stats(*range(60))


def test_gridfs_keeps_ours_in_weights_training_stats():
    import mongomock

    from dacapo_store.weights import GridFSWeightsStore

    store = GridFSWeightsStore(client=mongomock.MongoClient(), db_name="t")
    store.store_training_stats("run", stats(0, 1))
    assert store.db["weights_training_stats"].count_documents({"run_name": "run"}) == 2
    assert "training_stats" not in store.db.list_collection_names()


# ------------------------------------------------------------------ when they were written

OLD = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)


def test_a_run_without_stats_has_no_stats_time(store):
    assert store.training_stats_updated("run") is None
    store.store_training_stats("other", stats(0))
    assert store.training_stats_updated("run") is None


def test_storing_stats_dates_them_now(store):
    before = datetime.now(timezone.utc)
    store.store_training_stats("run", stats(0, 1))
    written = store.training_stats_updated("run")
    assert written.tzinfo is not None
    # an ObjectId keeps whole seconds; the bound is the test's own run time, not a timing
    assert before - timedelta(seconds=1) <= written <= datetime.now(timezone.utc) + timedelta(seconds=1)


def test_stats_written_long_ago_are_dated_then(store):
    store.store_training_stats("run", stats(0, 1))
    age_our_stats(store, "run", OLD)
    assert store.training_stats_updated("run") == OLD


def test_the_extent_is_the_last_iteration_and_the_newest_time_of_ours_and_dacapos(store):
    assert store.training_stats_extent("run") == (None, None)
    dacapo_stats_written_at(store, "run", OLD)
    last_theirs = store.retrieve_training_stats("run")[-1].iteration
    assert store.training_stats_extent("run") == (last_theirs, OLD)
    store.store_training_stats("run", stats(10**7))
    last, written = store.training_stats_extent("run")
    assert last == 10**7 and written > OLD + timedelta(days=1)


def test_dacapos_own_stats_are_dated_where_dacapo_keeps_them(store):
    dacapo_stats_written_at(store, "run", OLD)
    assert store.retrieve_training_stats("run") != []  # DaCapo's, read in place
    assert store.training_stats_updated("run") == OLD
    store.store_training_stats("run", stats(10**7))  # ours, newer: the newest of both counts
    assert store.training_stats_updated("run") > OLD + timedelta(days=1)
