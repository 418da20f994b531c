"""Benchmark the weights store against baselines measured in the same run.

1. A >= 256 MB checkpoint on the files backend: store and load in GB/s, against plain file I/O of
   the same bytes and against torch.save/torch.load of the same state dict.
   Targets: verified load >= 0.9x plain-read bandwidth, and no slower than torch.load.
2. The same checkpoint in GridFS on mongomock: store + load through GridFSWeightsStore against
   pymongo's GridFS putting and reading the same bytes (GridFSBucket does not run on mongomock;
   GridFS.put/get use the same GridIn/GridOut). Target >= 0.8x.
3. retrieve_best on a run with 10,000 scored iterations x 3 datasets x 5 criteria (files):
   target median < 5 ms.

Run: /work/venv/bin/python bench/bench_weights.py [--mb 256] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dacapo_store.weights import LocalWeightsStore
from dacapo_store.weights import local as local_backend
from dacapo_store.weights.serialization import safetensors_chunks


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


def bench_checkpoint(base: Path, megabytes: int, repeat: int) -> None:
    torch.manual_seed(0)
    n = max(1, megabytes // 4)
    state = {f"layer{i}.weight": torch.randn(1024, 1024) for i in range(n)}  # 4 MiB each
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    store = LocalWeightsStore(base / "runs")
    plain = base / "plain.safetensors"
    pt = base / "state.pt"
    payload = b"".join(bytes(c) for c in safetensors_chunks(state))

    def plain_write():
        with open(plain, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())

    def torch_save():
        with open(pt, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())

    def store_weights():
        store.store_weights("bench", 1, state)

    def plain_read():
        with open(plain, "rb") as f:
            return f.read()

    def torch_load():
        return torch.load(pt, map_location="cpu", weights_only=True)

    def retrieve():
        weights = store.retrieve_weights("bench", 1)
        return weights.model

    print(f"checkpoint: {len(state)} tensors, {nbytes / 2**20:.0f} MiB, median of {repeat} (page cache warm)")
    results = {}
    for label, fn in [
        ("plain write+fsync", plain_write),
        ("torch.save+fsync", torch_save),
        ("store_weights", store_weights),
        ("plain read", plain_read),
        ("torch.load", torch_load),
        ("retrieve_weights (xxh3 verified)", retrieve),
    ]:
        fn()  # warm up: page cache, allocator
        results[label] = statistics.median(timed(fn, repeat))
        print(f"  {label:36s} {results[label] * 1000:8.1f} ms  {gbps(nbytes, results[label]):6.2f} GB/s")
    check = store.retrieve_weights("bench", 1).model
    assert all(torch.equal(check[k], state[k]) for k in state), "round trip differs"
    load, read, tload = (results[k] for k in ("retrieve_weights (xxh3 verified)", "plain read", "torch.load"))
    print(
        f"  load / plain-read bandwidth  = {read / load:.2f}x  (target >= 0.90x)  {_ok(read / load >= 0.9)}"
    )
    print(f"  load speed / torch.load      = {tload / load:.2f}x  (target >= 1.00x)  {_ok(tload >= load)}")
    store_t, write_t = results["store_weights"], results["plain write+fsync"]
    print(
        f"  store / plain-write bandwidth = {write_t / store_t:.2f}x; "
        f"store / torch.save = {results['torch.save+fsync'] / store_t:.2f}x"
    )


def bench_gridfs(megabytes: int, repeat: int) -> None:
    """Store + load through GridFSWeightsStore vs pymongo GridFS put + read of the same bytes (mongomock)."""
    import gridfs
    import mongomock
    import mongomock.gridfs

    from dacapo_store.weights import GridFSWeightsStore

    mongomock.gridfs.enable_gridfs_integration()
    torch.manual_seed(0)
    state = {f"layer{i}.weight": torch.randn(1024, 1024) for i in range(max(1, megabytes // 4))}
    payload = b"".join(bytes(c) for c in safetensors_chunks(state))
    client = mongomock.MongoClient()
    store = GridFSWeightsStore(client=client, db_name="bench_store")
    # GridFSBucket itself does not run on mongomock (its client-side timeout lookup fails), so the
    # baseline is pymongo's GridFS put/get: the same GridIn/GridOut chunk writer and reader.
    bucket = gridfs.GridFS(client["bench_bucket"], collection="weights")

    def ours():
        # as the baseline: put, read back, delete (so both work on a collection of one checkpoint)
        store.store_weights("bench", 1, state)
        model = store.retrieve_weights("bench", 1).model
        store.remove("bench", 1)
        return model

    def baseline():
        file_id = bucket.put(payload, filename="bench/1")
        data = bucket.get(file_id).read()
        bucket.delete(file_id)
        return data

    print(f"GridFS on mongomock: {len(payload) / 2**20:.0f} MiB, store + load, median of {repeat}")
    times = {}
    for label, fn in [("GridFS put + read", baseline), ("GridFSWeightsStore store + load", ours)]:
        fn()
        times[label] = statistics.median(timed(fn, repeat))
        print(
            f"  {label:36s} {times[label] * 1000:8.1f} ms  {gbps(2 * len(payload), times[label]):6.2f} GB/s"
        )
    loaded = ours()
    assert all(torch.equal(loaded[k], state[k]) for k in state), "round trip differs"
    ratio = times["GridFS put + read"] / times["GridFSWeightsStore store + load"]
    print(f"  store+load / GridFS put+read  = {ratio:.2f}x  (target >= 0.80x)  {_ok(ratio >= 0.8)}")


def bench_best(base: Path, iterations: int, repeat: int) -> None:
    store = LocalWeightsStore(base / "runs")
    run = "scored"
    datasets = ["val_a", "val_b", "val_c"]
    criteria = {"voi": False, "dice": True, "f1_score": True, "hausdorff": False, "loss": False}
    gen = torch.Generator().manual_seed(1)
    values = torch.rand(iterations, len(datasets), len(criteria), generator=gen).tolist()
    # scores as store_validation_scores writes them, appended in batches (one fsync per batch)
    events = [
        {
            "op": "scores",
            "iteration": it,
            "dataset": d,
            "scores": dict(zip(criteria, values[it][j], strict=True)),
            "higher_is_better": criteria,
        }
        for it in range(iterations)
        for j, d in enumerate(datasets)
    ]
    start = time.perf_counter()
    for i in range(0, len(events), 5000):
        store.append_index(run, events[i : i + 5000])
    write_s = time.perf_counter() - start
    # weights for every 100th iteration: most best-scored iterations have none and are skipped
    for it in range(0, iterations, 100):
        store.store_weights(run, it, {"w": torch.zeros(4)})
    journal = base / "runs" / run / "checkpoints" / "index.jsonl"
    print(
        f"retrieve_best: {iterations} iterations x {len(datasets)} datasets x {len(criteria)} criteria, "
        f"{iterations // 100} checkpoints; index {journal.stat().st_size / 2**20:.1f} MiB "
        f"(appended in {write_s:.2f} s)"
    )
    local_backend._cache.clear()
    start = time.perf_counter()
    first = store.retrieve_best(run, "voi")
    cold = time.perf_counter() - start
    queries = [(c, d) for c in criteria for d in [None, *datasets]]
    times = []
    for i in range(repeat):
        c, d = queries[i % len(queries)]
        t0 = time.perf_counter()
        store.retrieve_best(run, c, d)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"  cold (parse index + rank)    {cold * 1000:8.2f} ms  (best voi = {first})")
    print(
        f"  median over {repeat} queries   {med * 1000:8.3f} ms  p99 "
        f"{sorted(times)[int(0.99 * len(times))] * 1000:.3f} ms  (target < 5 ms)  {_ok(med < 0.005)}"
    )
    fresh = []
    for i in range(20):
        store.store_validation_scores(run, iterations + i, {"voi": 0.5}, dataset="val_a")
        t0 = time.perf_counter()
        store.retrieve_best(run, "voi")
        fresh.append(time.perf_counter() - t0)
    print(f"  median right after a new score (re-rank) {statistics.median(fresh) * 1000:.2f} ms")
    t = timed(lambda: store.store_validation_scores(run, 0, {"dice": 0.5}, dataset="val_a"), 50)
    print(f"  store_validation_scores      {statistics.median(t) * 1000:8.2f} ms per call (lock + fsync)")


def _ok(passed: bool) -> str:
    return "OK" if passed else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="checkpoint size in MiB (>= 256 for the target)")
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        bench_checkpoint(base, args.mb, args.repeat)
        bench_gridfs(args.mb, args.repeat)
        bench_best(base, args.iterations, 1000)


if __name__ == "__main__":
    main()
