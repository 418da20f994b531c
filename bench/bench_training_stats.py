"""Benchmark appending training stats against rewriting them all, measured in the same run.

A run with 100,000 iterations of training stats on the files backend; then 100 more iterations
are stored, as a training loop does every 100 iterations. Ours appends lines to a journal; the
baseline rewrites everything (what DaCapo's FileStatsStore does: one pickle of the whole list,
written to a temporary file and renamed). Reported: time and bytes written per append (bytes from
/proc/self/io `wchar`), and their ratios. Target: bytes written ~ the 100 new lines, not the run.

Run: /work/venv/bin/python bench/bench_training_stats.py [--existing 100000] [--append 100]
     [--rounds 20] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path

from dacapo_store import TrainingIterationStats
from dacapo_store.fsutil import write_temp
from dacapo_store.weights import LocalWeightsStore


def written_bytes() -> int:
    """Bytes this process has passed to write() so far (Linux); 0 elsewhere."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def stats(begin: int, end: int) -> list[TrainingIterationStats]:
    return [TrainingIterationStats(i, 1.0 / (i + 1), 0.25) for i in range(begin, end)]


def rewrite_all(folder: Path, rows: list[dict]) -> None:
    """The baseline: the whole list pickled again, atomically replacing the file."""
    tmp = write_temp(folder, "training_stats", [pickle.dumps(rows, protocol=4)])
    os.replace(tmp, folder / "training_stats")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, default=100_000)
    parser.add_argument("--append", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        store = LocalWeightsStore(root / "runs")
        store.store_training_stats("run", stats(0, args.existing))
        baseline_dir = root / "baseline"
        baseline_dir.mkdir()
        rows = [
            {"iteration": s.iteration, "loss": s.loss, "time": s.time, "run_name": "run"}
            for s in stats(0, args.existing)
        ]
        rewrite_all(baseline_dir, rows)

        ours_t, ours_b, base_t, base_b = [], [], [], []
        end = args.existing
        for _ in range(args.rounds):
            new = stats(end, end + args.append)
            end += args.append
            w0, t0 = written_bytes(), time.perf_counter()
            store.store_training_stats("run", new)
            ours_t.append(time.perf_counter() - t0)
            ours_b.append(written_bytes() - w0)

            w0, t0 = written_bytes(), time.perf_counter()
            rows.extend(
                {"iteration": s.iteration, "loss": s.loss, "time": s.time, "run_name": "run"} for s in new
            )
            rewrite_all(baseline_dir, rows)
            base_t.append(time.perf_counter() - t0)
            base_b.append(written_bytes() - w0)

        assert len(store.retrieve_training_stats("run")) == end
        journal = root / "runs" / "run" / "checkpoints" / "training_stats.jsonl"
        t, b = statistics.median(ours_t), int(statistics.median(ours_b))
        bt, bb = statistics.median(base_t), int(statistics.median(base_b))
        print(f"training stats: {args.existing:,} stored, +{args.append} per round, median of {args.rounds}")
        print(f"  append (ours, journal)      {t * 1000:8.2f} ms  {b:>12,} bytes written")
        print(f"  rewrite everything (base)   {bt * 1000:8.2f} ms  {bb:>12,} bytes written")
        print(f"  time ratio  ours / baseline = {t / bt:.3f}")
        size = journal.stat().st_size
        print(f"  bytes ratio ours / baseline = {b / bb:.5f}  (journal {size:,} bytes in all)")
        verdict = "OK" if b < bb / 100 else "MISS"
        print(f"  {verdict}: an append writes the new lines only, not the run's history")


if __name__ == "__main__":
    main()
