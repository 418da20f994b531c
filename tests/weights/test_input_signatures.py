"""LocalWeightsStore.changes_since sees every file a run's summary reads, ours and DaCapo's (files).

On DaCapo 0.3.5's own files registry (tests/data/dacapo-0.3.5), with our journals beside it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dacapo_store.weights import LocalWeightsStore

PACK = Path(__file__).resolve().parent.parent / "data" / "dacapo-0.3.5" / "files"
DUMMY = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"
HELA = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"
OTHER = "lab_lsd_er"  # a run with a config only


@pytest.fixture
def pack(tmp_path) -> Path:
    """The pack, copied, every mtime a minute old (nothing in it written just now)."""
    root = tmp_path / "dacapo"
    shutil.copytree(PACK, root, symlinks=True)
    for folder, dirs, files in os.walk(root, topdown=False):
        for path in [*(os.path.join(folder, n) for n in [*files, *dirs]), folder]:
            st = os.lstat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 60 * 10**9), follow_symlinks=False)
    return root


def best_file(root: Path) -> Path:
    return next((root / DUMMY / "checkpoints").glob("*/*.json"))


def new_best(folder: Path) -> None:
    folder.mkdir()
    (folder / "frizz_level.json").write_text('{"iteration": 3}')


def copy_stats(root: Path, source: str, target: str) -> None:
    """DaCapo rewrites a run's stats pickle in place with each batch of iterations."""
    stats = root / "stats" / "training_stats"
    (stats / target).write_bytes((stats / source).read_bytes())


ONE_ROW = {50: {"loss": 1.0, "time": 1.0}}
CHANGES: dict[str, Callable[[Path, LocalWeightsStore], None]] = {
    "our index journal": lambda root, w: w.store_validation_scores(DUMMY, 3, {"loss": 0.5}),
    "our training stats journal": lambda root, w: w.store_training_stats(DUMMY, ONE_ROW),
    "DaCapo's training stats": lambda root, w: copy_stats(root, HELA, DUMMY),
    "DaCapo's validation scores": lambda root, w: (root / "stats" / "validation_scores" / DUMMY).unlink(),
    "a new DaCapo checkpoint": lambda root, w: (root / DUMMY / "checkpoints" / "iterations" / "12").touch(),
    "a DaCapo best file rewritten in place": lambda root, w: best_file(root).write_text('{"iteration": 6}'),
    "a new DaCapo best folder": lambda root, w: new_best(root / DUMMY / "checkpoints" / "new_dataset"),
    "DaCapo's stats of a run that had none": lambda root, w: copy_stats(root, DUMMY, OTHER),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_changes_since_names_the_run_whose_input_changed(pack, change):
    weights = LocalWeightsStore(pack)
    runs = [DUMMY, HELA, OTHER]
    token, changed = weights.changes_since(None, runs)
    assert set(runs) <= changed  # a first token names every run there is
    token, changed = weights.changes_since(token, runs)
    assert changed == set()
    CHANGES[change](pack, weights)
    expected = {OTHER} if "had none" in change else {DUMMY}
    assert weights.changes_since(token, runs)[1] == expected
    full = weights.input_signatures(runs, discover=True)  # a sweep that lists every folder agrees
    assert full.changed(token, full.sigs) == expected


def test_a_full_sweep_gives_the_signatures_of_an_incremental_one(pack):
    weights = LocalWeightsStore(pack)
    runs = sorted(p.name for p in pack.iterdir() if p.name not in ("configs", "stats"))
    full = weights.input_signatures(runs)
    assert weights.input_signatures(runs, full).sigs == full.sigs
    assert all(full.sigs[run] for run in runs)  # every run of the pack has something to sign


def test_something_written_just_now_is_read_again_until_it_settles(pack):
    """A file stat'ed within a clock tick of its write may change again without its mtime moving."""
    weights = LocalWeightsStore(pack)
    token, _ = weights.changes_since(None, [DUMMY])
    weights.store_training_stats(DUMMY, ONE_ROW)
    token, changed = weights.changes_since(token, [DUMMY])
    assert changed == {DUMMY}
    stats = pack / DUMMY / "checkpoints" / "training_stats.jsonl"
    st = stats.stat()
    os.utime(stats, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # as if a second had passed
    token, changed = weights.changes_since(token, [DUMMY])
    assert changed == {DUMMY}  # once more, settled now
    assert weights.changes_since(token, [DUMMY])[1] == set()
