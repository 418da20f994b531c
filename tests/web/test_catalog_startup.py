"""The run catalog's start-up from its snapshot, and change detection over every input of a summary (files).

The snapshot and the signatures exist on the files backend only (a MongoDB catalog reads its
collections' change tokens, unchanged); the MongoDB case checks that no snapshot is written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path

import attrs
import pytest
from starlette.testclient import TestClient

from dacapo_store.config_store import FileConfigStore
from dacapo_store.queries import RunCatalog, RunQuery, snapshot
from dacapo_store.queries.catalog import entry_of
from dacapo_store.web import create_app
from dacapo_store.weights import LocalWeightsStore, local

from .conftest import RUNS, demo_stores

BASE, FINETUNE = RUNS
PACK = Path(__file__).resolve().parent.parent / "data" / "dacapo-0.3.5" / "files"
DUMMY = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"
HELA = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"


def age(root: Path, seconds: int = 60) -> Path:
    """Put every file's and folder's mtime back: nothing in the tree was written just now (a
    signature taken within a clock tick of a write is read again on the next check, by design)."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in [*files, *dirs, None]:
            path = os.path.join(folder, name) if name else folder
            st = os.lstat(path)
            old = st.st_mtime_ns - seconds * 10**9
            os.utime(path, ns=(st.st_atime_ns, old), follow_symlinks=False)
    for digest in root.glob("*/checkpoints/index.digest.json"):
        # as its writer would have stamped it, had it written the journal `seconds` earlier
        doc = json.loads(digest.read_bytes())
        doc["of"]["mtime"] = (digest.parent / "index.jsonl").stat().st_mtime_ns
        st = digest.stat()
        digest.write_text(json.dumps(doc))
        os.utime(digest, ns=(st.st_atime_ns, st.st_mtime_ns))
    return root


@pytest.fixture
def registry(demo_dir, tmp_path) -> Path:
    """A copy of the demo registry, aged."""
    return age(demo_stores("files", demo_dir, tmp_path).weights.basedir)


def open_catalog(folder: Path) -> RunCatalog:
    """A catalog as a freshly started server has it after its first request (no journal parsed
    in this process before)."""
    local._cache.clear()
    catalog = RunCatalog(FileConfigStore(folder / "configs"), LocalWeightsStore(folder), recheck=0)
    catalog.refresh()
    catalog.flush()  # its saved copy is written apart from the answer
    return catalog


def rows(catalog: RunCatalog) -> list[dict]:
    return catalog.query(RunQuery(sort="best", criterion="f1_score", limit=500))["rows"]


def snapshot_files(user_cache: Path) -> list[Path]:
    return sorted((user_cache / "run-catalog").glob("*.json"))


def tamper_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Change a file's bytes keeping its size, inode and mtime: no stat can see it."""
    st = path.stat()
    data = path.read_bytes()
    assert len(old) == len(new) and old in data
    with open(path, "r+b") as f:
        f.write(data.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def test_a_restarted_server_serves_the_same_rows_from_the_snapshot(registry, user_cache):
    with TestClient(create_app(FileConfigStore(registry / "configs"), LocalWeightsStore(registry))) as c:
        first = c.get("/api/v1/runs?sort=best&criterion=f1_score").json()
    assert len(snapshot_files(user_cache)) == 1
    local._cache.clear()
    with TestClient(create_app(FileConfigStore(registry / "configs"), LocalWeightsStore(registry))) as c:
        again = c.get("/api/v1/runs?sort=best&criterion=f1_score").json()
    assert again == first and [r["name"] for r in again["rows"]] == RUNS


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_mtime_ns for p in root.rglob("*")}


def test_the_snapshot_lives_in_the_user_cache_and_holds_every_summary_field(registry, user_cache):
    before = tree(registry)
    catalog = open_catalog(registry)
    assert tree(registry) == before  # nothing written into the registry
    (file,) = snapshot_files(user_cache)
    saved = snapshot.loads(file.read_bytes(), *catalog._snapshot_keys())
    for name in RUNS:
        entry = entry_of(name, saved.config_fields[name], saved.digests[name])
        assert entry.summary == catalog.summary(name)  # attrs equality: every field, of whatever type
        assert entry.summary.created_at is not None and entry.summary.created_at.tzinfo is not None
        assert saved.digests[name] == catalog.table.digests[name]
        current = catalog.snapshot().entries[name]
        assert entry.bests == current.bests and entry.directions == current.directions


def test_a_restarted_catalog_reads_only_the_journals_whose_signature_changed(registry):
    first = open_catalog(registry)
    best = first.best(BASE, "f1_score")
    assert best is not None and first.summary(FINETUNE).criteria == ()
    # behind the snapshot's back: BASE's journal changed without its stat moving (unseen by
    # design), FINETUNE's appended to (its signature moves)
    journal = registry / BASE / "checkpoints" / "index.jsonl"
    value = json.dumps(best.value).encode()
    assert len(value) > 2
    tamper_in_place(journal, b'"f1_score":' + value, b'"f1_score":' + b"9" * len(value))
    LocalWeightsStore(registry).store_validation_scores(FINETUNE, 7, {"loss": 0.25})

    restarted = open_catalog(registry)
    assert restarted.best(BASE, "f1_score") == best  # from the snapshot: BASE's journal was not read
    assert restarted.summary(FINETUNE).criteria == ("loss",)  # read again: its signature changed
    # without the snapshot a catalog takes the writers' digests, stamped with the journals' stat:
    # the tamper is unseen there too, until the digest is gone and the journal is read
    shutil.rmtree(Path(os.environ["XDG_CACHE_HOME"]) / "dacapo_store" / "run-catalog")
    assert open_catalog(registry).best(BASE, "f1_score") == best
    shutil.rmtree(Path(os.environ["XDG_CACHE_HOME"]) / "dacapo_store" / "run-catalog")
    (registry / BASE / "checkpoints" / "index.digest.json").unlink()
    assert open_catalog(registry).best(BASE, "f1_score") != best


def test_a_run_added_or_removed_while_no_server_ran_shows_at_start(registry):
    open_catalog(registry).names()
    configs = FileConfigStore(registry / "configs")
    doc = configs.get_document("runs", FINETUNE)
    configs.put_document("runs", {**doc, "name": "third"})
    configs.delete("runs", FINETUNE)
    assert open_catalog(registry).names() == [BASE, "third"]


def test_changed_training_stats_show_on_the_next_request(registry):
    catalog = open_catalog(registry)
    before = catalog.summary(FINETUNE)
    assert not before.has_stats and before.iterations_trained == 0
    LocalWeightsStore(registry).store_training_stats(FINETUNE, {40: {"loss": 0.5, "time": 1.0}})
    after = catalog.summary(FINETUNE)
    assert after.has_stats and after.iterations_trained == 40
    # and at the next start, from the snapshot saved by the first check or read again
    assert open_catalog(registry).summary(FINETUNE).iterations_trained == 40


@pytest.fixture
def pack(tmp_path) -> Path:
    """DaCapo 0.3.5's own files registry (configs, stats, checkpoints, best files), copied."""
    root = tmp_path / "dacapo"
    shutil.copytree(PACK, root, symlinks=True)
    return age(root)


def test_a_changed_dacapo_stats_file_shows_on_the_next_request(pack):
    catalog = open_catalog(pack)
    assert catalog.summary(DUMMY).iterations_trained == 9
    # DaCapo rewrites its stats pickle in place with every new batch of iterations
    stats = pack / "stats" / "training_stats"
    (stats / DUMMY).write_bytes((stats / HELA).read_bytes())
    assert catalog.summary(DUMMY).iterations_trained == 19
    assert open_catalog(pack).summary(DUMMY).iterations_trained == 19


def test_a_new_dacapo_checkpoint_shows_on_the_next_request(pack):
    catalog = open_catalog(pack)
    assert catalog.summary(DUMMY).latest_checkpoint == 9
    (pack / DUMMY / "checkpoints" / "iterations" / "30").write_bytes(b"not read")
    assert catalog.summary(DUMMY).latest_checkpoint == 30


def test_the_full_sweep_reads_again_what_changed_unseen_by_the_quick_check(registry):
    catalog = open_catalog(registry)
    assert catalog.summary(FINETUNE).latest_checkpoint is None
    # a new journal whose folder's mtime is put back (as a file server's cached times may show):
    # the per-request check trusts the folder and misses it; the full sweep lists every folder
    folder = registry / FINETUNE / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    old = folder.stat().st_mtime_ns - 10**10
    os.utime(folder, ns=(old, old))
    catalog.refresh(force=True)
    journal = registry / BASE / "checkpoints" / "index.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    header, events = lines[0], [line for line in lines[1:] if b'"op":"checkpoint"' in line]
    (folder / "index.jsonl").write_bytes(header + events[0])
    os.utime(folder, ns=(old, old))
    assert catalog.summary(FINETUNE).latest_checkpoint is None
    best = catalog.best(BASE, "f1_score")
    tamper_in_place(journal, b'"op":"scores"', b'"op":"scoreX"')  # unseen: BASE must not be read
    catalog.refresh(force=True)
    assert catalog.summary(FINETUNE).latest_checkpoint == json.loads(events[0])["iteration"]
    assert catalog.best(BASE, "f1_score") == best


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other folders", "other fields"])
def test_a_corrupt_or_foreign_snapshot_is_ignored_with_a_warning_and_rebuilt(
    registry, user_cache, caplog, damage
):
    expected = rows(open_catalog(registry))
    (file,) = snapshot_files(user_cache)
    data = file.read_bytes()
    doc = json.loads(data)
    if damage == "garbage":
        file.write_bytes(b"\x00 not json")
    elif damage == "truncated":
        file.write_bytes(data[: len(data) // 2])
    elif damage == "other folders":
        file.write_text(json.dumps({**doc, "weights": "/elsewhere"}))
    else:
        file.write_text(json.dumps({**doc, "config_keys": [*doc["config_keys"][:-1], "renamed"]}))
    with caplog.at_level(logging.WARNING, logger="dacapo_store.queries.snapshot"):
        catalog = open_catalog(registry)
        assert rows(catalog) == expected
    assert any("ignored and rebuilt" in r.getMessage() for r in caplog.records)
    rebuilt = snapshot.load(file, *catalog._snapshot_keys())
    assert rebuilt is not None and sorted(rebuilt.config_fields) == RUNS


def test_two_catalogs_saving_at_once_leave_a_readable_snapshot(registry, user_cache):
    one, two = open_catalog(registry), open_catalog(registry)
    one.names(), two.names()
    (file,) = snapshot_files(user_cache)
    errors = []

    def save(catalog: RunCatalog) -> None:
        try:
            for _ in range(30):
                catalog._saved_version = -1  # as if something changed: each call writes the file again
                catalog._save(wait=True)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(c,)) for c in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    found = snapshot.load(file, *one._snapshot_keys())
    assert found is not None and sorted(found.config_fields) == RUNS
    assert list(file.parent.iterdir()) == [file]  # no temporary file left behind


def test_an_unwritable_cache_only_costs_the_snapshot(registry, user_cache):
    user_cache.mkdir(parents=True, exist_ok=True)
    (user_cache / "run-catalog").write_text("a file where the folder would be")
    catalog = open_catalog(registry)
    assert catalog.names() == RUNS and catalog.best(BASE, "f1_score") is not None


def test_a_catalog_over_mongodb_keeps_no_snapshot(demo_dir, tmp_path, user_cache):
    stores = demo_stores("mongomock", demo_dir, tmp_path)
    catalog = RunCatalog(stores.configs, stores.weights, recheck=0)
    assert catalog.names() == RUNS and catalog.best(BASE, "f1_score") is not None
    assert not (user_cache / "run-catalog").exists()


def test_a_big_snapshot_is_written_in_pieces_and_reads_back_whole(registry, user_cache):
    """10,000 runs (the demo's, under new names): the saved copy is written piece by piece, none
    near the whole (a cold build at 100,000 runs would otherwise hold the text twice), and reads
    back equal, runs that use the same configs sharing one `uses` tuple."""
    catalog = open_catalog(registry)
    (file,) = snapshot_files(user_cache)
    keys = catalog._snapshot_keys()
    saved = snapshot.loads(file.read_bytes(), *keys)
    base = RUNS[0]
    inputs = saved.weights_token
    names = [f"copy_{i:05d}" for i in range(10_000)]
    for name in names:
        saved.config_fields[name] = {**saved.config_fields[base], "name": name}
        saved.digests[name] = saved.digests[base]
        inputs.sigs[name] = inputs.sigs[base]
        for listings in inputs.listings.values():
            listings[name] = listings.get(base)
    chunks = list(snapshot.dump_chunks(saved))
    data = b"".join(chunks)
    assert len(chunks) > 10 and max(map(len, chunks)) < len(data) / 4
    back = snapshot.loads(data, *keys)
    assert back.config_fields == saved.config_fields and back.digests == saved.digests
    assert back.weights_token.sigs == inputs.sigs
    assert len({id(back.config_fields[n]["uses"]) for n in names}) == 1


def test_digests_read_back_share_what_runs_hold_alike_and_keep_it_read_only(registry):
    """100,000 runs' digests hold a few hundred sets of directions, criteria and datasets: read
    from the files writers keep, runs alike share one read-only copy, and equal digests stay equal."""
    from dacapo_store.weights import digest as digests

    store = LocalWeightsStore(registry)
    found = store.run_digests(sorted(RUNS))
    assert set(found) == set(RUNS)
    again = {r: digests.from_json(digests.to_json(d)) for r, d in found.items()}
    # what a reader adds (its training stats' extent) is never stored in a digest
    assert again == {r: attrs.evolve(d, trained_until=None, stats_written=None) for r, d in found.items()}
    first, second = (again[r] for r in sorted(RUNS)[:2])
    if first.directions == second.directions:
        assert first.directions is second.directions and first.criteria is second.criteria
    with pytest.raises(TypeError):
        first.directions["f1_score"] = False  # type: ignore[index]
    assert digests.from_json(digests.to_json(first)).directions is first.directions
