"""Config store benchmark: files backend against a naive DaCapo-style store, listing at scale.

    python bench/bench_config_store.py [--runs 1000] [--listing 10000]

Baselines are measured in the same run: the naive store writes `yaml.dump` in place and
reads with `yaml.full_load` on the pure-Python loader, as DaCapo 0.3 does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import attrs
import mongomock
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import full_run

from dacapo_store import converter
from dacapo_store.config_store import FileConfigStore, MongoConfigStore


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_ms(fn, repeats: int = 15) -> float:
    return statistics.median(timed(fn) for _ in range(repeats)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--listing", type=int, default=10_000)
    args = parser.parse_args()
    runs = [full_run(f"run_{i:05d}") for i in range(args.runs)]
    ok = True

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = FileConfigStore(tmp / "ours")
        naive = tmp / "naive" / "runs"
        naive.mkdir(parents=True)

        def naive_store():
            for run in runs:
                with open(naive / f"{run.name}.yaml", "w") as f:
                    yaml.dump(converter.unstructure(run), f)

        def naive_retrieve():
            for run in runs:
                with open(naive / f"{run.name}.yaml") as f:
                    yaml.full_load(f)  # FullLoader: the pure-Python loader DaCapo uses

        def our_store():
            for run in runs:
                store.store_run_config(run)

        def our_retrieve():
            for run in runs:
                store.retrieve_run_config(run.name)

        t_naive_store = timed(naive_store)
        t_our_store = timed(our_store)
        t_naive_get = timed(naive_retrieve)
        t_our_get = timed(our_retrieve)
        n = len(runs)
        print(f"files backend, {n} full run configs")
        print(
            f"  store    ours {n / t_our_store:9.0f}/s  naive {n / t_naive_store:9.0f}/s  "
            f"ratio {t_naive_store / t_our_store:5.2f}x  (ours: atomic + fsync, also stores 4 parts)"
        )
        ratio = t_naive_get / t_our_get
        verdict = "PASS" if ratio >= 10 else "MISS"
        ok &= ratio >= 10
        print(
            f"  retrieve ours {n / t_our_get:9.0f}/s  naive {n / t_naive_get:9.0f}/s  "
            f"ratio {ratio:5.2f}x  target >= 10x: {verdict}  (ours also structures to RunConfig)"
        )

        # -- listing at scale ----------------------------------------------------------------
        big = FileConfigStore(tmp / "big")
        base = converter.unstructure(full_run("x"))
        big.store_run_config(full_run("x"))
        archs = ["unet_a", "unet_b", "unet_c", "unet_d"]
        started = time.perf_counter()
        for i in range(args.listing - 1):
            doc = dict(base, name=f"r{i:05d}")
            doc["architecture_config"] = dict(base["architecture_config"], name=archs[i % 4])
            big.put_document("runs", doc)
        print(f"listing: {args.listing} runs stored in {time.perf_counter() - started:.1f} s")
        fresh = FileConfigStore(tmp / "big")
        cold = timed(lambda: fresh.retrieve_run_config_names(architecture_names=["unet_b"])) * 1000
        names_ms = median_ms(lambda: FileConfigStore(tmp / "big").retrieve_run_config_names())
        filt_ms = median_ms(
            lambda: FileConfigStore(tmp / "big").retrieve_run_config_names(architecture_names=["unet_b"])
        )
        filt_same = median_ms(lambda: fresh.retrieve_run_config_names(architecture_names=["unet_b"]))
        count = len(fresh.retrieve_run_config_names(architecture_names=["unet_b"]))
        for label, value, limit in (
            ("all names", names_ms, 100),
            ("by architecture (new store object)", filt_ms, 500),
            ("by architecture (same store object)", filt_same, 500),
        ):
            verdict = "PASS" if value < limit else "MISS"
            ok &= value < limit
            print(f"  {label:38s} median {value:7.1f} ms  target < {limit} ms: {verdict}")
        print(f"  by architecture, first query building the index: {cold:.0f} ms ({count} matches)")
        # The DaCapo dialect a store object writes is looked up once, on its first write: on
        # files from the run index (each run file read once, then kept in the per-user cache).
        dialect_ms = median_ms(lambda: FileConfigStore(tmp / "big").dialect(), repeats=5)
        verdict = "PASS" if dialect_ms < 500 else "MISS"
        ok &= dialect_ms < 500
        label = "the dialect it writes (new store object)"
        print(f"  {label:38s} median {dialect_ms:7.1f} ms  target < 500 ms: {verdict}")

    # -- mongomock, reported -----------------------------------------------------------------
    mstore = MongoConfigStore(client=mongomock.MongoClient(), db_name="bench")
    t_store = timed(lambda: [mstore.store_run_config(r) for r in runs])
    t_get = timed(lambda: [mstore.retrieve_run_config(r.name) for r in runs])
    assert attrs.asdict(mstore.retrieve_run_config(runs[0].name)) == attrs.asdict(runs[0])
    print(f"mongomock, {n} full run configs: store {n / t_store:.0f}/s, retrieve {n / t_get:.0f}/s")
    print("ALL TARGETS MET" if ok else "SOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
