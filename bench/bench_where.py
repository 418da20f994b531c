"""Benchmark searching runs by config values (`where=`) on a generated files registry of 10,000 runs.

The registry is bench_web.py's files-10k (generated once into --dir, reused). Measured through the
ASGI app in this process: `/api/v1/runs?where=...` (two conditions, AND) warm, p50 and p95 over
--repeat requests, against the same page without a search (the baseline, measured in the same run);
the first search of a dashboard started from the catalog's saved copy (it reads every run document
once) apart; and `ConfigStore.retrieve_run_config_names(where=...)` (one pass over the documents,
what a script without a catalog pays). The load average is printed before and after.

Target (issue 18): a search answers in under 100 ms warm at 10,000 runs on files.

Run: python bench/bench_where.py [--dir /tmp/bench-web] [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_web import files_stores, generate_files

SEARCH = [("where", "architecture_config.name == arch_3"), ("where", "repetition >= 1")]
TARGET = 0.1


def timed(client, params, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get("/api/v1/runs", params=params)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    return times


def p(times: list[float], q: float) -> float:
    return statistics.quantiles(times, n=100)[int(q) - 1] if len(times) > 1 else times[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", default="/tmp/bench-web", type=Path)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    os.environ["XDG_CACHE_HOME"] = str((args.dir / "cache").absolute())
    from starlette.testclient import TestClient

    from dacapo_store.web import create_app

    folder = args.dir / "files-10k"
    generate_files(folder, 10_000, 100)
    print(f"load average before: {os.getloadavg()}")
    stores = files_stores(folder)
    configs, weights = stores()
    with TestClient(create_app(configs, weights)) as client:
        client.get("/api/v1/runs")  # the catalog built (or restored from its saved copy)
    configs, weights = stores()
    with TestClient(create_app(configs, weights)) as client:
        client.get("/api/v1/runs")
        start = time.perf_counter()
        found = client.get("/api/v1/runs", params=SEARCH).json()["total"]
        first = time.perf_counter() - start
        baseline = timed(client, [], args.repeat)
        search = timed(client, SEARCH, args.repeat)
    start = time.perf_counter()
    names = configs.retrieve_run_config_names(where=[v for _, v in SEARCH])
    one_pass = time.perf_counter() - start
    assert len(names) == found, (len(names), found)
    b50, s50, s95 = p(baseline, 50), p(search, 50), p(search, 95)
    verdict = "ok" if s50 < TARGET else "MISSED"
    print(f"{found} of 10,001 runs match {' AND '.join(v for _, v in SEARCH)}")
    print(f"runs page, no search (baseline): p50 {b50 * 1e3:.1f} ms")
    print(
        f"runs page, where= warm: p50 {s50 * 1e3:.1f} ms, p95 {s95 * 1e3:.1f} ms "
        f"= {s50 / b50:.2f} x baseline (target {TARGET * 1e3:.0f} ms): {verdict}"
    )
    print(f"first search after a restart (reads the run documents once): {first:.2f} s")
    print(f"retrieve_run_config_names(where=...), one pass without a catalog: {one_pass:.2f} s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
