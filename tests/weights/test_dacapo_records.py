"""What the DaCapo adapter keeps of DaCapo's records, tested without DaCapo: the whole validation
arrays beside a run's index (every backend), their best over parameter sets, and which training
stats DaCapo hands over are new, trained again after a resume, or conflicting."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from conftest import no_options

from dacapo_store.dacapo_adapter.training import (
    plan_training_stats,
    subsampled_training,
    subsampled_validation,
)
from dacapo_store.dacapo_adapter.validation import (
    COLLECTION,
    JOURNAL,
    canonical,
    iteration_record,
    plan,
    reduced,
    validation_arrays,
)
from dacapo_store.errors import InvalidNameError, TrainingStatsConflictError
from dacapo_store.weights import LocalWeightsStore

RUN = "jrc_hela-2_[mito&er&nuc]_dist_" + "x" * 150  # DaCapo's generated names: long, with & [ ]
DATASETS = ["jrc_hela-2_[mito&er]_crop1_8nm", "jrc_hela-3/crop17"]
PARAMETERS = ["threshold_64", "threshold_127", "threshold_191"]
# 72 criteria, as a distance task over many channels reports them
CRITERIA = [
    f"{ch}{k}__{m}" for k in range(8) for ch in ("mito", "er", "nuc") for m in ("dice", "voi", "f1_score")
]
DIRECTIONS = {c: not c.endswith("__voi") for c in CRITERIA}


def record(iteration: int, seed: int, **changes) -> dict:
    rng = np.random.default_rng(seed)
    scores = rng.random((len(DATASETS), len(PARAMETERS), len(CRITERIA))).tolist()
    scores[0][1][2] = math.nan
    scores[1][0][0] = np.float32(0.25)  # DaCapo's evaluators give numpy scalars too
    scores[1][2][5] = None
    args = {"scores": scores, "datasets": DATASETS, "parameters": PARAMETERS, "criteria": CRITERIA}
    args.update(changes)
    return iteration_record(iteration, higher_is_better=DIRECTIONS, **args)


def test_a_record_keeps_dacapos_array_as_plain_numbers():
    rec = record(100, 1)
    assert rec["scores"][1][0][0] == 0.25 and type(rec["scores"][1][0][0]) is float
    assert math.isnan(rec["scores"][0][1][2]) and rec["scores"][1][2][5] is None
    assert len(rec["scores"]) == 2 and len(rec["scores"][0]) == 3 and len(rec["scores"][0][0]) == 72
    assert rec["higher_is_better"]["mito0__voi"] is False and rec["higher_is_better"]["er3__dice"] is True


def test_a_score_that_is_not_a_number_is_refused_naming_where():
    scores = record(100, 1)["scores"]
    scores[1][2][3] = "0.5"
    with pytest.raises(TypeError, match=r"iteration 100 scores\[1\]\[2\]\[3\] must be a number, got str"):
        record(100, 1, scores=scores)
    with pytest.raises(ValueError, match="non-negative int, got -1"):
        record(-1, 1)
    with pytest.raises(TypeError, match="every dataset label must be a str"):
        record(100, 1, datasets=["a", 3])


def test_plan_writes_what_is_new_or_changed_and_drops_what_the_run_deleted():
    stored = {it: record(it, it) for it in (100, 200, 300)}
    given = {100: record(100, 100), 200: record(200, 999), 400: record(400, 400)}
    changed, dropped = plan(stored, given)
    assert sorted(changed) == [200, 400]  # 100 is equal, NaN and all
    assert dropped == []  # 300 < 400: validated by another process, kept
    changed, dropped = plan(stored, {100: record(100, 100)})
    assert changed == {} and dropped == [200, 300]  # after 100: DaCapo's run deleted them (resume)
    assert plan(stored, {}) == ({}, [])  # nothing given drops nothing


def test_the_best_over_parameter_sets_takes_each_criterions_direction():
    rec = record(100, 3)
    best = reduced(rec)
    assert set(best) == set(DATASETS)
    for d, dataset in enumerate(DATASETS):
        for c, criterion in enumerate(CRITERIA):
            values = [
                v for v in (rec["scores"][d][p][c] for p in range(3)) if v is not None and not math.isnan(v)
            ]
            expected = max(values) if DIRECTIONS[criterion] else min(values)
            assert best[dataset][criterion] == expected


def test_rows_that_dont_match_the_criteria_are_kept_but_not_scored(caplog):
    rec = record(100, 3)
    rec["scores"][1][1] = rec["scores"][1][1][:-1]  # a row one value short: can't be labelled
    with caplog.at_level(logging.WARNING):
        best = reduced(rec)
    assert list(best) == [DATASETS[0]]
    assert "don't have one value per criterion" in caplog.text
    rec["scores"] = rec["scores"][:1]
    assert reduced(rec) == {}


def test_records_round_trip_exactly_beside_the_index(store):
    arrays = validation_arrays(store)
    assert arrays.read(RUN) == {}
    first = {100: record(100, 1), 200: record(200, 2)}
    arrays.write(RUN, first, [])
    again = type(arrays)(store.basedir) if isinstance(store, LocalWeightsStore) else arrays
    back = again.read(RUN)
    assert {it: canonical(r) for it, r in back.items()} == {it: canonical(r) for it, r in first.items()}
    arrays.write(RUN, {200: record(200, 22), 300: record(300, 3)}, [100])
    back = arrays.read(RUN)
    assert sorted(back) == [200, 300] and canonical(back[200]) == canonical(record(200, 22))
    assert arrays.read("another_run") == {}


def test_where_the_records_live(store, tmp_path):
    validation_arrays(store).write(RUN, {100: record(100, 1)}, [])
    if isinstance(store, LocalWeightsStore):
        journal = store.basedir / RUN / "checkpoints" / JOURNAL
        assert journal.read_bytes().count(b"\n") == 2  # a header, one record: JSON lines, no pickle
    else:
        assert store.db[COLLECTION].count_documents({"run_name": RUN, "iteration": 100}) == 1
    assert store.iterations(RUN) == [] and store.criteria(RUN) == []  # nothing else of the run changed


def test_a_damaged_journal_line_is_skipped_and_the_rest_read(tmp_path, caplog):
    store = LocalWeightsStore(tmp_path)
    arrays = validation_arrays(store)
    arrays.write(RUN, {100: record(100, 1)}, [])
    journal = tmp_path / RUN / "checkpoints" / JOURNAL
    with open(journal, "ab") as f:
        f.write(b'{"op": "set", "iteration": "x"}\n')
    arrays.write(RUN, {200: record(200, 2)}, [])
    with caplog.at_level(logging.WARNING):
        assert sorted(type(arrays)(tmp_path).read(RUN)) == [100, 200]
    assert "malformed line" in caplog.text


def test_a_bad_run_name_is_refused_before_any_io(store):
    with pytest.raises(InvalidNameError):
        validation_arrays(store).write("../escape", {100: record(100, 1)}, [])
    with pytest.raises(InvalidNameError):
        validation_arrays(store).read("")


# ------------------------------------------------------------------ training stats


def rows(values: dict[int, tuple[float, float]]):
    return [(it, loss, time) for it, (loss, time) in values.items()]


def test_only_iterations_not_stored_are_new():
    stored = {i: (1.0 / (i + 1), 0.1) for i in range(100)}
    given = {i: (1.0 / (i + 1), 0.1) for i in range(200)}
    asked = []
    new, retrained = plan_training_stats("run", stored, rows(given), lambda: asked.append(1) or 0)
    assert sorted(new) == list(range(100, 200)) and retrained == [] and asked == []


def test_numpy_and_tensor_losses_compare_as_numbers_nan_equal_to_nan():
    stored = {0: (0.5, 0.1), 1: (math.nan, 0.1)}
    given = [(0, np.float32(0.5), 0.1), (1, float("nan"), np.float64(0.1)), (2, torch.tensor(0.25), 0.1)]
    new, retrained = plan_training_stats("run", stored, given, lambda: 0)
    assert new == {2: (0.25, 0.1)} and retrained == []


def test_other_values_before_the_latest_checkpoint_are_a_conflict():
    stored = {i: (float(i), 0.1) for i in range(300)}
    given = {**stored, 150: (9.0, 0.1), 250: (8.0, 0.1), 300: (3.0, 0.1)}
    message = r"1 iteration\(s\) from 150 .*before its latest checkpoint 200; nothing was stored"
    with pytest.raises(TrainingStatsConflictError, match=message):
        plan_training_stats("run", stored, rows(given), lambda: 200)


def test_iterations_trained_again_after_resuming_keep_their_first_values():
    # DaCapo resumed from the checkpoint at 200 and trained 200..299 again: other losses
    stored = {i: (float(i), 0.1) for i in range(300)}
    given = {**{i: (float(i), 0.1) for i in range(200)}, **{i: (-float(i), 0.2) for i in range(200, 350)}}
    new, retrained = plan_training_stats("run", stored, rows(given), lambda: 200)
    assert retrained == list(range(200, 300)) and sorted(new) == list(range(300, 350))


def test_training_stats_that_are_not_numbers_are_refused():
    with pytest.raises(ValueError, match="must be a non-negative int, got '3'"):
        plan_training_stats("run", {}, [("3", 1.0, 0.1)], lambda: 0)
    with pytest.raises(TypeError, match="iteration 3 must be numbers, got loss None"):
        plan_training_stats("run", {}, [(3, None, 0.1)], lambda: 0)


def test_subsampling_keeps_about_a_thousand_and_the_last():
    assert subsampled_training(list(range(10))) == list(range(10))
    kept = subsampled_training(list(range(100_001)))
    assert kept[:3] == [0, 100, 200] and kept[-1] == 100_000 and len(kept) == 1001
    validated = list(range(0, 200_001, 1000))
    kept = subsampled_validation(validated, 1000)
    assert kept == validated  # every 1000: fewer than a thousand validations
    assert subsampled_validation(list(range(0, 5_000_001, 1000)), 1000)[:3] == [0, 5000, 10000]
    with pytest.raises(ValueError, match="validation_interval"):
        subsampled_validation(validated, None)


def test_deleting_a_run_with_its_weights_deletes_its_records(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from conftest import small_run

    from dacapo_store.cli import app
    from dacapo_store.config_store import FileConfigStore

    store = LocalWeightsStore(tmp_path)
    arrays = validation_arrays(store)
    arrays.write(RUN, {100: record(100, 1)}, [])
    arrays.write("other_run", {100: record(100, 2)}, [])
    FileConfigStore(tmp_path / "configs").store(small_run(RUN))
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    argv = ["--store", f"files:{tmp_path}", "delete", "runs", RUN, "--with-weights", "--yes"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert arrays.read(RUN) == {} and sorted(arrays.read("other_run")) == [100]
    assert not (tmp_path / RUN / "checkpoints" / JOURNAL).exists()


def test_deleting_records_leaves_other_runs(store):
    arrays = validation_arrays(store)
    arrays.write(RUN, {100: record(100, 1)}, [])
    arrays.write("other_run", {100: record(100, 2)}, [])
    arrays.delete(RUN)
    arrays.delete("never_stored")
    assert arrays.read(RUN) == {} and sorted(arrays.read("other_run")) == [100]
