"""DaCapo's store_weights / retrieve_weights through the adapter, against DaCapo's own LocalWeightsStore.

A model of --mb MiB (float32) with DaCapo's optimizer (RAdam, as its trainers make it: two state
tensors per parameter, so the checkpoint is about 3x the model) after one step. Measured in the
same run, alternating, median of --repeat, page cache warm, `os.sync()` (untimed) before each;
the stores first, then the loads. Each store writes the next iteration (as training does: a new
checkpoint file each time) and the one before is removed after it, untimed:

- store: DaCapo's `LocalWeightsStore.store_weights(run, i)` (torch.save of a pickled `Weights`,
  not fsynced) against the adapter's (safetensors model and optimizer, xxh3-128 checksums,
  fsynced, then the index entry). Target: the adapter at least as fast (>= 1.00x). DaCapo's
  with an fsync after it is shown for reference (what durability costs it), and both stores
  again back to back (each repeated with nothing between, as checkpoint after checkpoint).
  A plain durable write is shown too: the same tensor bytes written to one file with `os.write`
  through the page cache and fsynced at the end, nothing else. The adapter writes past the
  page cache (O_DIRECT, several writes in flight), so its fsync finds little left to do.
  DaCapo's unsynced save never waits for the disk: on a disk slower than its save (this VM
  writes 1.5 GiB with `dd oflag=direct conv=fdatasync` in 0.76-0.84 s, DaCapo saves it in
  0.66-0.71 s) no durable store can meet the store target.
- load: the adapter's `retrieve_weights(run, i)` (each blob's xxh3-128 verified, tensors viewing
  the mapped file) against a plain read of the same bytes (the checkpoint's blob files).
  Target >= 0.90x. DaCapo's own `retrieve_weights` (torch.load of its pickle) is shown too.

Needs DaCapo 0.3.5: run it with the DaCapo peer's Python and this checkout on the path:

    PYTHONPATH=. /work/dacapo-peer/bin/python bench/bench_dacapo_adapter.py [--mb 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch


class BenchRun(SimpleNamespace):
    """What DaCapo's weights stores read of a `Run`: its name, model and optimizer (and its str)."""

    def __str__(self) -> str:
        return self.name


def make_run(megabytes: int) -> BenchRun:
    """A model of `megabytes` MiB and DaCapo's optimizer for it, after one step."""
    torch.manual_seed(0)
    layers = max(1, megabytes // 4)  # 4 MiB each
    model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024, bias=False) for _ in range(layers)])
    optimizer = torch.optim.RAdam(model.parameters(), lr=1e-4)  # DaCapo's trainers' optimizer
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    return BenchRun(name="bench_run", model=model, optimizer=optimizer)


def nbytes(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(nbytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(nbytes(v) for v in state)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=512, help="model size in MiB (the optimizer adds 2x)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder)")
    args = parser.parse_args()

    with contextlib.redirect_stdout(io.StringIO()):  # DaCapo prints as it works
        from dacapo.store.local_weights_store import LocalWeightsStore as DacapoLocalWeightsStore

    from dacapo_store.dacapo_adapter.stores import DacapoWeightsStore
    from dacapo_store.weights import LocalWeightsStore

    base = Path(tempfile.mkdtemp(prefix="bench-adapter-", dir=args.dir))
    try:
        run = make_run(args.mb)
        size = nbytes(run.model.state_dict()) + nbytes(run.optimizer.state_dict())
        with contextlib.redirect_stdout(io.StringIO()):
            dacapo = DacapoLocalWeightsStore(base / "dacapo")
        ours = DacapoWeightsStore(LocalWeightsStore(base / "ours"), base / "ours")

        def blobs() -> list[Path]:
            return sorted((base / "ours" / run.name / "checkpoints" / "blobs").iterdir())

        def plain_read() -> int:
            total = 0
            for path in blobs():
                with open(path, "rb") as f:
                    total += len(f.read())
            return total

        def quietly(fn):
            def call():
                with contextlib.redirect_stdout(io.StringIO()):
                    return fn()

            return call

        # Each store writes the next iteration, as training does (a new checkpoint file each
        # time, never an overwrite); the one before is removed after it, untimed.
        counter = iter(range(1, 1_000_000))
        latest = {"dacapo": None, "ours": None, "plain": None}

        def stored(which: str, store, remove):
            def step():
                it = next(counter)
                store(it)
                previous, latest[which] = latest[which], it
                return previous, remove

            return step

        def dacapo_store(it: int) -> None:
            dacapo.store_weights(run, it)

        def dacapo_fsynced(it: int) -> None:
            dacapo.store_weights(run, it)
            with open(base / "dacapo" / run.name / "checkpoints" / "iterations" / str(it), "rb+") as f:
                os.fsync(f.fileno())

        def dacapo_remove(it: int) -> None:
            dacapo.remove(run.name, it)

        def ours_store(it: int) -> None:
            ours.store_weights(run, it)

        def ours_remove(it: int) -> None:
            ours.remove(run.name, it)

        tensors = list(run.model.state_dict().values()) + [
            t for s in run.optimizer.state_dict()["state"].values() for t in s.values() if t.dim()
        ]

        def plain_write(it: int) -> None:
            fd = os.open(base / f"plain-{it}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                for t in tensors:
                    view = memoryview(t.detach().contiguous().numpy()).cast("B")
                    while view:
                        view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)

        def plain_remove(it: int) -> None:
            os.unlink(base / f"plain-{it}")

        stores = {
            "DaCapo store_weights (torch.save, no fsync)": quietly(
                stored("dacapo", dacapo_store, dacapo_remove)
            ),
            "DaCapo store_weights + fsync (reference)": quietly(
                stored("dacapo", dacapo_fsynced, dacapo_remove)
            ),
            "adapter store_weights (fsynced)": stored("ours", ours_store, ours_remove),
            "plain write + fsync of the same bytes": stored("plain", plain_write, plain_remove),
        }
        loads = {
            "plain read of the adapter's blobs": plain_read,
            "adapter retrieve_weights (verified)": lambda: ours.retrieve_weights(run.name, latest["ours"]),
            "DaCapo retrieve_weights (torch.load)": quietly(
                lambda: dacapo.retrieve_weights(run.name, latest["dacapo"])
            ),
        }
        # and the two stores again back to back: checkpoint after checkpoint with nothing between
        blocks = {
            "DaCapo store_weights, back to back": stores["DaCapo store_weights (torch.save, no fsync)"],
            "adapter store_weights, back to back": stores["adapter store_weights (fsynced)"],
        }
        times: dict[str, list[float]] = {label: [] for steps in (stores, loads, blocks) for label in steps}
        cpu: dict[str, list[float]] = {label: [] for label in times}

        def measure(label: str, fn) -> None:
            os.sync()
            start, used = time.perf_counter(), time.process_time()
            result = fn()
            times[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - used)
            done(result)

        def done(result) -> None:
            # after a store, remove the checkpoint before it (untimed)
            if isinstance(result, tuple) and result[0] is not None:
                with contextlib.redirect_stdout(io.StringIO()):
                    result[1](result[0])

        # stores first, then loads, as in training: checkpoints are stored one after the other
        # and loaded when a run resumes, starts or is applied
        for steps in (stores, loads):
            for fn in steps.values():  # warm up: page cache, allocator, first files
                done(fn())
            for _ in range(args.repeat):  # alternating, so that drift hits each alike
                for label, fn in steps.items():
                    measure(label, fn)
        for label, fn in blocks.items():
            for _ in range(args.repeat):
                measure(label, fn)
        check = ours.retrieve_weights(run.name, latest["ours"])
        model_ok = all(torch.equal(check.model[k], v) for k, v in run.model.state_dict().items())
        state = run.optimizer.state_dict()["state"]
        opt_ok = all(
            torch.equal(check.optimizer["state"][i][k], v) for i, s in state.items() for k, v in s.items()
        )
        assert model_ok and opt_ok, "round trip differs"

        print(
            f"checkpoint: model {args.mb} MiB + RAdam state, {size / 2**20:.0f} MiB in all; "
            f"median of {args.repeat}; load average {os.getloadavg()[0]:.2f}"
        )
        med = {label: statistics.median(t) for label, t in times.items()}
        for label, seconds in med.items():
            print(
                f"  {label:45s} {seconds * 1000:8.1f} ms  {size / seconds / 1e9:6.2f} GB/s"
                f"  (cpu {statistics.median(cpu[label]) * 1000:7.1f} ms)"
            )
        store = med["DaCapo store_weights (torch.save, no fsync)"] / med["adapter store_weights (fsynced)"]
        load = med["plain read of the adapter's blobs"] / med["adapter retrieve_weights (verified)"]
        versus = med["DaCapo retrieve_weights (torch.load)"] / med["adapter retrieve_weights (verified)"]
        print(f"  store: adapter speed / DaCapo's    = {store:.2f}x  (target >= 1.00x)  {_ok(store >= 1.0)}")
        plain = med["plain write + fsync of the same bytes"] / med["adapter store_weights (fsynced)"]
        print(f"  store: adapter speed / plain write + fsync = {plain:.2f}x")
        back = med["DaCapo store_weights, back to back"] / med["adapter store_weights, back to back"]
        print(f"  store, back to back: adapter / DaCapo's = {back:.2f}x")
        print(f"  load: adapter / plain-read bandwidth = {load:.2f}x  (target >= 0.90x)  {_ok(load >= 0.9)}")
        print(f"  load: adapter speed / DaCapo's     = {versus:.2f}x")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _ok(met: bool) -> str:
    return "met" if met else "NOT MET"


if __name__ == "__main__":
    main()
