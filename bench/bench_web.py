"""Benchmark `dacapo-store serve` on generated registries, against listing the run names alone.

Registries (generated once into --dir, reused on later runs):

- files-10k: 10,000 runs x 100 scored iterations (2 criteria, 5 checkpoints each) on files;
- mongomock-10k: 10,000 runs x 100 scored iterations in mongomock (configs in MongoConfigStore,
  index in GridFSWeightsStore: one `weights_runs` document per run);
- files-100k: 100,000 runs x 100 scored iterations on files, like files-10k (generating it takes
  about 10 minutes and 2.7 GB);

each plus one run with 1,000 scored iterations x 5 criteria. Documents are written through the
stores' primitives (`ConfigStore._insert`, `WeightsStore.append_index`) with fsync turned off while
generating (throwaway data). Checkpoints are index entries without blob files: the dashboard never
loads weights. On mongomock the run documents are inserted in bulk in the shape
`GridFSWeightsStore.append_index` leaves (digest included), because mongomock's upserts scan the
whole collection.

Measured, through the ASGI app in this process (server time: routing, queries, templates):
the runs page (first page; filtered by an architecture; sorted by best score), a run page of the
1,000 x 5 run, compare of 20 runs; p50 and p95 over --repeat requests, printed against the time to
list the run names alone (`configs.names("runs")`) in the same run. The first request (building
the run catalog) is printed apart: that is the server's start-up cost; on files three times: in a
new process with no saved copy of the catalog (it reads every run's config document and the digest
its writers keep beside each journal; its peak memory too), in this process likewise, and warm (a
new server starting from the saved copy the cold one wrote). Then the cost of the check each
request may trigger (at most once a second) and of the full check every 10 minutes, both with
nothing changed, and the load average before and after (the machine may be shared). The bench
keeps its per-user cache in `<dir>/cache`. Optionally (--browser) the time until the runs table
is visible in headless Chromium at 10,000 runs.

Targets: runs page p50 < 200 ms at 10k (also sorted by best), < 1 s at 100k; run page < 300 ms;
compare of 20 runs < 500 ms; the runs table visible < 1.5 s in Chromium. Issue 17: a cold build's
peak memory under 500 MiB at 100k; the first request under 30 s cold at 100k, 5 s on mongomock.

Registries generated before run digests existed have none: regenerate them (remove --dir's
folders) to measure what a registry written by this version costs.

Run: python bench/bench_web.py [--dir /tmp/bench-web] [--repeat 30] [--only files-10k,...] [--browser]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.config_store.documents import RUN_PARTS, content_hash, new_metadata
from dacapo_store.conversion import converter
from dacapo_store.web.browser import launch
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore
from dacapo_store.weights import digest as digests
from dacapo_store.weights.gridfs import _document_events
from dacapo_store.weights.index import RunIndex

CRITERIA = {"f1_score": True, "loss": False}
BIG_CRITERIA = {"f1_score": True, "loss": False, "voi": False, "dice": True, "recall": True}
BIG = "big_run"


def template():
    from dacapo_store.cli.demo import _configs

    base, _ = _configs()
    return base


def run_documents(n: int):
    """(parts, run documents) of n generated runs: 5 tasks, 10 architectures, 4 trainers, 3 splits."""
    base = template()
    tasks = [attrs.evolve(base.task_config, name=f"task_{i}") for i in range(5)]
    archs = [attrs.evolve(base.architecture_config, name=f"arch_{i}") for i in range(10)]
    trainers = [attrs.evolve(base.trainer_config, name=f"trainer_{i}") for i in range(4)]
    splits = [attrs.evolve(base.datasplit_config, name=f"split_{i}") for i in range(3)]
    parts = {
        "tasks": [converter.unstructure(t) for t in tasks],
        "architectures": [converter.unstructure(a) for a in archs],
        "trainers": [converter.unstructure(t) for t in trainers],
        "datasplits": [converter.unstructure(s) for s in splits],
    }
    base_doc = converter.unstructure(base)
    by_field = {field: parts[kind] for field, kind in RUN_PARTS.items()}
    counts = {"task_config": 5, "architecture_config": 10, "trainer_config": 4, "datasplit_config": 3}
    docs = []
    for i in range(n + 1):
        doc = dict(base_doc)
        doc["name"] = BIG if i == n else f"run_{i:06d}"
        doc["repetition"] = i % 3
        doc["num_iterations"] = 100_000
        for field, count in counts.items():
            doc[field] = by_field[field][i % count]
        docs.append(doc)
    return parts, docs


def index_events(i: int, iterations: int, criteria: dict[str, bool]) -> list[dict]:
    """Scores every 100 iterations; a checkpoint (index entry only) at the last five."""
    events = []
    step = 100
    for k in range(1, iterations + 1):
        it = k * step
        scores = {c: ((i * 7919 + k * 104729) % 1000) / 1000.0 for c in criteria}
        events.append(
            {
                "op": "scores",
                "iteration": it,
                "dataset": "validate",
                "scores": scores,
                "higher_is_better": criteria,
            }
        )
    for k in range(max(1, iterations - 4), iterations + 1):
        it = k * step
        meta = {
            "format": "dacapo_store.weights/1",
            "iteration": it,
            "created_at": "2026-01-01T00:00:00.000+00:00",
            "created_by": "bench@host",
            "blobs": {"model": {"name": f"{it}-0.model.safetensors", "sha256": "0" * 64, "size": 1 << 20}},
        }
        events.append({"op": "checkpoint", "iteration": it, "meta": meta})
    return events


@contextlib.contextmanager
def no_fsync():
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def generate_files(folder: Path, n: int, iterations: int) -> None:
    done = folder / ".complete"
    shape = f"{n} runs x {iterations} scored iterations"
    if done.exists():
        made = done.read_text().strip()
        # an empty marker: made before the marker named its shape (files-10k had this shape)
        if made == shape or (not made and n == 10_000 and iterations == 100):
            return
        made = made or "an older shape"
        sys.exit(f"{folder} holds another registry ({made}); remove it to generate {shape}")
    print(f"generating {n} runs x {iterations} scored iterations on files in {folder} ...", flush=True)
    start = time.perf_counter()
    configs, weights = FileConfigStore(folder / "configs"), LocalWeightsStore(folder)
    parts, docs = run_documents(n)
    with no_fsync():
        for kind, kind_docs in parts.items():
            for doc in kind_docs:
                configs.put_document(kind, doc)
        for i, doc in enumerate(docs):
            configs._insert("runs", doc["name"], doc)  # as `put_document` stores it, without its checks
            configs._put_meta("runs", doc["name"], metadata_of(doc))
            big = doc["name"] == BIG
            weights.append_index(
                doc["name"], index_events(i, 1000 if big else iterations, BIG_CRITERIA if big else CRITERIA)
            )
    done.write_text(shape + "\n")
    print(f"  generated in {time.perf_counter() - start:.0f} s", flush=True)


def metadata_of(doc: dict) -> dict:
    """The metadata `put_document` records beside a run document (who stored it, when, its hash)."""
    return {**new_metadata(doc), "content_hash": content_hash(doc)}


def generate_mongomock(n: int, iterations: int):
    import mongomock
    import mongomock.gridfs

    mongomock.gridfs.enable_gridfs_integration()
    print(f"generating {n} runs x {iterations} scored iterations in mongomock ...", flush=True)
    start = time.perf_counter()
    server = mongomock.MongoClient()
    configs = MongoConfigStore(client=server, db_name="bench")
    weights = GridFSWeightsStore(client=server, db_name="bench")
    parts, docs = run_documents(n)
    for kind, kind_docs in parts.items():
        for doc in kind_docs:
            configs.put_document(kind, doc)
    configs.db["runs"].drop_indexes()  # see below: mongomock's unique checks are a scan per insert
    configs.db["runs"].insert_many([dict(doc) for doc in docs])
    configs.db["config_metadata"].insert_many(
        [{"kind": "runs", "name": doc["name"], **metadata_of(doc)} for doc in docs]
    )
    configs = MongoConfigStore(client=server, db_name="bench")  # its indexes again
    documents = []
    for i, doc in enumerate(docs):
        big = doc["name"] == BIG
        run = {"_id": doc["name"], "checkpoints": {}, "scores": {}, "directions": {}}
        for event in index_events(i, 1000 if big else iterations, BIG_CRITERIA if big else CRITERIA):
            it = str(event["iteration"])
            if event["op"] == "checkpoint":
                run["checkpoints"][it] = event["meta"]
            else:
                run["scores"].setdefault(event["dataset"], {})[it] = event["scores"]
                run["directions"].update(event["higher_is_better"])
        documents.append({**run, "updated": datetime.now(timezone.utc), "writes": 1})
    # the documents `GridFSWeightsStore.append_index` leaves (with the digest its writer sets),
    # inserted at once: its upserts would scan the collection once per write on mongomock
    for run in documents:
        index = RunIndex().with_events(_document_events(run["_id"], run, []))
        run["digest"] = {
            "json": json.dumps(digests.to_json(digests.digest_of(index))),
            "writes": run["writes"],
        }
    weights.db["weights_runs"].insert_many(documents)
    print(f"  generated in {time.perf_counter() - start:.0f} s", flush=True)
    return configs, weights


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def first_request(client, what: str) -> float:
    start = time.perf_counter()
    assert client.get("/api/v1/runs?limit=1").status_code == 200
    seconds = time.perf_counter() - start
    print(f"first request, {what}: {seconds:.2f} s", flush=True)
    return seconds


def measure(label: str, stores, repeat: int, targets: dict[str, float]) -> list[tuple]:
    """`stores()`: a new (config store, weights store) pair, as a server starting would open them."""
    from starlette.testclient import TestClient

    from dacapo_store.queries import RunCatalog
    from dacapo_store.web import create_app
    from dacapo_store.weights import local

    configs, weights = stores()
    names_times = []
    for _ in range(repeat):
        start = time.perf_counter()
        names = configs.names("runs")
        names_times.append(time.perf_counter() - start)
    base_p50, base_p95 = percentiles(names_times)
    print(
        f"\n== {label}: {len(names)} runs; listing the names alone: p50 {base_p50 * 1e3:.1f} ms, "
        f"p95 {base_p95 * 1e3:.1f} ms",
        flush=True,
    )
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    snapshot = RunCatalog(configs, weights)._snapshot_file  # files only: the catalog's saved start
    folder = getattr(weights, "basedir", None)
    if folder is not None:  # a cold build in a process of its own: its time and peak memory
        cold = cold_in_child(folder)
        print(
            f"first page in a new process, cold (no saved copy): {cold['seconds']:.2f} s, "
            f"peak memory {cold['maxrss_mib']:.0f} MiB",
            flush=True,
        )
    if snapshot is not None:
        snapshot.unlink(missing_ok=True)
        with TestClient(create_app(configs, weights)) as client:
            first_request(client, "cold (no snapshot: reads every run)")
        configs, weights = stores()
        local._cache.clear()  # as in a new process: no journal parsed yet
    app = create_app(configs, weights)
    rows = []
    with TestClient(app) as client:
        first_request(client, "warm (from the snapshot)" if snapshot is not None else "(reads every run)")
        compare = ",".join(names[:20])
        pages = [
            ("runs page, first page", "/", "runs"),
            ("runs page, filtered", "/?architecture=arch_3&name=run_00", "runs"),
            ("runs page, sorted by best", "/?sort=best&criterion=f1_score", "runs"),
            ("runs API, sorted by best", "/api/v1/runs?sort=best&criterion=loss&offset=100", "runs"),
            ("run page, 1,000 x 5 criteria", f"/runs/{BIG}", "run"),
            ("run API, 1,000 x 5 criteria", f"/api/v1/runs/{BIG}", "run"),
            ("compare of 20 runs", f"/compare?runs={compare}", "compare"),
            ("compare API, 20 runs", f"/api/v1/compare?runs={compare}", "compare"),
        ]
        for what, path, kind in pages:
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - start)
                assert response.status_code == 200, (path, response.text[:300])
            p50, p95 = percentiles(times)
            target = targets[kind]
            verdict = "ok" if p50 < target else "MISSED"
            rows.append((label, what, p50, p95, p50 / base_p50, target, verdict))
            print(
                f"{what:32s} p50 {p50 * 1e3:8.1f} ms  p95 {p95 * 1e3:8.1f} ms  "
                f"{p50 / base_p50:7.3g}x names  target {target * 1e3:.0f} ms: {verdict}",
                flush=True,
            )
        # the cost of asking the stores what changed (done at most once a second per server)
        inner = app
        while not hasattr(inner, "state"):  # the token guard, gzip, ... around the Starlette app
            inner = inner.app
        catalog = inner.state.registry.catalog
        times = []
        for _ in range(max(3, repeat // 5)):
            catalog._checked = -float("inf")  # as if the last check were long ago
            start = time.perf_counter()
            catalog._refresh_now()  # in the foreground, to time it
            times.append(time.perf_counter() - start)
        p50, p95 = percentiles(times)
        where = "in the background" if p50 > catalog.budget else "before each request"
        print(
            f"{'change check (no changes)':32s} p50 {p50 * 1e3:8.1f} ms  p95 {p95 * 1e3:8.1f} ms  ({where})"
        )
        start = time.perf_counter()
        catalog._refresh_now(force=True)  # what runs every `full_every` (10 min)
        print(f"{'full check (no changes)':32s} {(time.perf_counter() - start) * 1e3:8.1f} ms", flush=True)
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return rows


def browser_time(folder: Path) -> float | None:
    """Seconds from navigation until the runs table is visible, in headless Chromium."""
    import socket
    import subprocess
    import tempfile

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from dacapo_store.cli import main; main()",
            "--store",
            f"files:{folder}",
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/"
        with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            context = launch(p, profile)
            page = context.new_page()
            # the server builds its run catalog on the first request: start-up, not the page's time
            page.goto(url + "api/v1/runs?limit=1", timeout=600_000)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                page.goto(url, wait_until="commit")
                page.wait_for_selector("#runs-table", state="visible")
                times.append(time.perf_counter() - start)
            context.close()
        return statistics.median(times)
    finally:
        proc.terminate()
        proc.wait()


def cold_in_child(folder: Path) -> dict:
    """A new process builds the catalog of `folder` from nothing (no saved copy) and answers the
    runs table's first page: {"seconds", "maxrss_mib"} (imports not counted)."""
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--child-cold", str(folder)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_cold(folder: Path) -> None:
    import json
    import resource

    from dacapo_store.queries import RunCatalog, RunQuery

    start = time.perf_counter()
    catalog = RunCatalog(FileConfigStore(folder / "configs"), LocalWeightsStore(folder), persist=False)
    catalog.snapshot().query(RunQuery(limit=50))
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "maxrss_mib": rss}))


def files_stores(folder: Path):
    return lambda: (FileConfigStore(folder / "configs"), LocalWeightsStore(folder))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", default="/tmp/bench-web", type=Path)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--only", default="files-10k,mongomock-10k,files-100k")
    parser.add_argument("--browser", action="store_true", help="also time the runs table in Chromium")
    parser.add_argument("--mongomock-iterations", type=int, default=100)
    parser.add_argument("--child-cold", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_cold:
        child_cold(args.child_cold)
        return
    # the bench's own per-user cache (run catalog snapshots, leaderboard summaries), beside its
    # registries: timing a cold start removes a snapshot, never one of the user's
    os.environ["XDG_CACHE_HOME"] = str((args.dir / "cache").absolute())
    chosen = args.only.split(",")
    targets_10k = {"runs": 0.2, "run": 0.3, "compare": 0.5}
    rows = []
    if "files-10k" in chosen:
        folder = args.dir / "files-10k"
        generate_files(folder, 10_000, 100)
        rows += measure("files, 10k runs", files_stores(folder), args.repeat, targets_10k)
        if args.browser:
            seconds = browser_time(folder)
            if seconds is not None:
                verdict = "ok" if seconds < 1.5 else "MISSED"
                print(
                    f"Chromium: runs table visible {seconds * 1e3:.0f} ms after navigation "
                    f"(target 1500 ms): {verdict}"
                )
    if "mongomock-10k" in chosen:
        configs, weights = generate_mongomock(10_000, args.mongomock_iterations)
        rows += measure("mongomock, 10k runs", lambda: (configs, weights), args.repeat, targets_10k)
    if "files-100k" in chosen:
        folder = args.dir / "files-100k"
        generate_files(folder, 100_000, 100)
        rows += measure(
            "files, 100k runs",
            files_stores(folder),
            max(5, args.repeat // 3),
            {"runs": 1.0, "run": 0.3, "compare": 0.5},
        )
    missed = [r for r in rows if r[-1] != "ok"]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} timings met their targets")


if __name__ == "__main__":
    main()
