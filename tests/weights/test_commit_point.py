"""The index entry is a checkpoint's one commit point: an interrupted replacement leaves the old
checkpoint or the new one, whole, in a fresh process, and `gc` never takes either away.

Faults are injected where they happen, from outside the store's own names: `os.fsync` raising
(EIO, KeyboardInterrupt, SystemExit from a SIGTERM handler) at each of its calls in turn, pymongo
collection writes raising AutoReconnect at each write in turn, and real SIGINTs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import strict_mongo
from pymongo.errors import AutoReconnect
from strict_mongo import StrictMongoClient

from dacapo_store.errors import StoreConnectionError
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

from .fresh_check import ITERATION, RUN, check_checkpoint, dump_server, prepare, state

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OLD, NEW = 1.0, 2.0


def fresh_process_checks(cases: list[dict], tmp_path: Path) -> list[dict]:
    """Run `fresh_check.py` over the cases in one new Python process; its JSON lines."""
    file = tmp_path / "cases.json"
    file.write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(HERE / "fresh_check.py"), str(file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def assert_all_sound(results: list[dict], cases: list[dict]) -> None:
    assert len(results) == len(cases)
    failed = [f"{r['name']}: {r['error']}" for r in results if not r["ok"]]
    assert not failed, "\n".join(failed)


# ---------------------------------------------------------------- files: os.fsync faults


FAULTS = {
    "EIO": lambda: OSError(errno.EIO, os.strerror(errno.EIO)),
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": lambda: SystemExit(143),
}


def fsync_failing_at(monkeypatch, call: int, fault, *, after: bool) -> None:
    """os.fsync raises `fault()` at its `call`-th call, before or after really syncing."""
    real, calls = os.fsync, [0]

    def fsync(fd: int) -> None:
        calls[0] += 1
        if calls[0] == call:
            if after:
                real(fd)
            raise fault()
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def fsyncs_of_a_replacement(tmp_path: Path, monkeypatch) -> int:
    store = LocalWeightsStore(tmp_path / "count")
    prepare(store)
    real, calls = os.fsync, [0]

    def counting(fd: int) -> None:
        calls[0] += 1
        real(fd)

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", counting)
        store.store_weights(RUN, ITERATION, *state(NEW))
    return calls[0]


def test_an_fsync_fault_at_any_point_of_a_replacement_leaves_the_old_or_the_new_checkpoint(
    tmp_path, monkeypatch
):
    fsyncs = fsyncs_of_a_replacement(tmp_path, monkeypatch)
    assert fsyncs >= 5  # two blobs and their folder, the journal
    template = tmp_path / "template"
    (template / "configs").mkdir(parents=True)
    prepare(LocalWeightsStore(template))
    cases, swallowed = [], []
    for name, fault in FAULTS.items():
        for call in range(1, fsyncs + 1):
            for after in (False, True):
                label = f"{name} at fsync {call}{' after syncing' if after else ''}"
                registry = tmp_path / f"{name}-{call}-{int(after)}"
                shutil.copytree(template, registry)  # the run before the replacement
                store = LocalWeightsStore(registry)
                with monkeypatch.context() as patch:
                    fsync_failing_at(patch, call, fault, after=after)
                    try:
                        store.store_weights(RUN, ITERATION, *state(NEW))
                        swallowed.append(label)  # reported stored, though not known durable
                    except type(fault()):
                        pass
                cases.append({"name": label, "spec": {"backend": "files", "path": str(registry)}})
    for case in cases:
        case["allowed"] = [OLD, NEW]
    assert_all_sound(fresh_process_checks(cases, tmp_path), cases)
    assert swallowed == []


def test_a_full_disk_at_the_journal_names_the_run_and_iteration_and_keeps_the_old_checkpoint(
    tmp_path, monkeypatch
):
    store = LocalWeightsStore(tmp_path)
    prepare(store)
    real_write = os.write

    def full(fd: int, data) -> int:
        if os.fstat(fd).st_size > 0 and b'"op":"checkpoint"' in bytes(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(
        OSError,
        match=r"No space left on device while recording the checkpoint of run run "
        r"at iteration 3 in .*",
    ) as caught:
        store.store_weights(RUN, ITERATION, *state(NEW))
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert check_checkpoint(LocalWeightsStore(tmp_path), {OLD}) == OLD


# ---------------------------------------------------------------- GridFS: AutoReconnect on writes


def writes_failing_at(monkeypatch, write: int, *, after: bool) -> list[str]:
    """Every write method of the double's collections raises AutoReconnect at the `write`-th write
    (before it is applied, or after: the server did it, the answer was lost); the names written."""
    done: list[str] = []
    for method in strict_mongo._WRITES:
        original = getattr(strict_mongo.StrictCollection, method)

        def wrapper(self, *args, _original=original, _method=method, **kwargs):
            done.append(f"{_method} {self.name}")
            if len(done) == write and not after:
                raise AutoReconnect("connection reset by peer")
            result = _original(self, *args, **kwargs)
            if len(done) == write:
                raise AutoReconnect("connection reset by peer")
            return result

        monkeypatch.setattr(strict_mongo.StrictCollection, method, wrapper)
    return done


def test_an_autoreconnect_at_any_write_of_a_gridfs_replacement_leaves_the_old_or_the_new_checkpoint(
    tmp_path, monkeypatch
):
    client = StrictMongoClient()
    prepare(GridFSWeightsStore(client=client, db_name="count"))
    store = GridFSWeightsStore(client=client, db_name="count")
    with monkeypatch.context() as patch:
        writes = writes_failing_at(patch, 0, after=False)
        store.store_weights(RUN, ITERATION, *state(NEW))
    assert len(writes) >= 6, writes  # chunks and file documents, the entry, the summary, deletes
    cases = []
    for write in range(1, len(writes) + 1):
        for after in (False, True):
            client = StrictMongoClient()
            prepare(GridFSWeightsStore(client=client, db_name="dacapo"))
            store = GridFSWeightsStore(client=client, db_name="dacapo")
            with monkeypatch.context() as patch:
                writes_failing_at(patch, write, after=after)
                # a failed write of the store itself fails it; a failed derived write does not
                with contextlib.suppress(StoreConnectionError):
                    store.store_weights(RUN, ITERATION, *state(NEW))
            dump = tmp_path / f"dump-{write}-{int(after)}.pickle"
            dump_server(client, dump)
            label = f"AutoReconnect at write {write} ({writes[write - 1]}){' after it' if after else ''}"
            cases.append(
                {
                    "name": label,
                    "spec": {"backend": "mongomock", "db": "dacapo"},
                    "dump": str(dump),
                    "allowed": [OLD, NEW],
                }
            )
    assert_all_sound(fresh_process_checks(cases, tmp_path), cases)


def test_a_failing_summary_refresh_does_not_undo_a_gridfs_store(monkeypatch):
    client = StrictMongoClient()
    store = GridFSWeightsStore(client=client, db_name="dacapo")
    prepare(store)

    def unreachable(self, *args, **kwargs):
        raise AutoReconnect("connection reset by peer")

    monkeypatch.setattr(strict_mongo.StrictCollection, "update_many", unreachable)
    store.store_weights(RUN, ITERATION, *state(NEW))  # the summary failed: the store did not
    monkeypatch.undo()
    assert check_checkpoint(GridFSWeightsStore(client=client, db_name="dacapo"), {NEW}) == NEW


# ---------------------------------------------------------------- real SIGINTs


WRITER = r"""
import faulthandler, json, signal, sys
faulthandler.dump_traceback_later(90, exit=True)  # a hang shows where, in the test's failure
sys.path[:0] = [sys.argv[2], sys.argv[3]]
from fresh_check import ITERATION, RUN, check_checkpoint, load_server, prepare, state
spec = json.loads(sys.argv[1])
if spec["backend"] == "files":
    from dacapo_store.weights import LocalWeightsStore as Store
    store = Store(spec["path"])
    checker = None
else:
    import mongomock.gridfs
    from strict_mongo import StrictMongoClient
    from dacapo_store.weights import GridFSWeightsStore
    mongomock.gridfs.enable_gridfs_integration()
    client = StrictMongoClient()
    store = GridFSWeightsStore(client=client, db_name="dacapo")
    checker = lambda: GridFSWeightsStore(client=client.sibling(), db_name="dacapo")
prepare(store)
print("ready", flush=True)
acked = value = 1.0
while True:
    try:
        while True:
            value += 1
            store.store_weights(RUN, ITERATION, *state(value))
            acked = value
            sys.stdout.write(f"ok {value}\n")  # one write: an interrupt can't cut the line short
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's next SIGINT comes after "go"
    report = {"acked": acked, "attempted": value}
    if checker is not None:  # the double lives in this process: check it here, on a new client
        try:
            found = check_checkpoint(checker(), {acked, value})
            store.gc(0)
            report["found"] = found
            report["after_gc"] = check_checkpoint(checker(), {found})
        except Exception as exc:
            report["error"] = f"{type(exc).__name__}: {exc}"
    print("interrupted", json.dumps(report), flush=True)
    if sys.stdin.readline().strip() != "go":
        break
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print("going", flush=True)
"""


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_a_writer_interrupted_by_sigint_at_random_moments_never_loses_an_acknowledged_checkpoint(
    backend, tmp_path
):
    spec = (
        {"backend": "files", "path": str(tmp_path / "runs")}
        if backend == "files"
        else {"backend": "mongomock", "db": "dacapo"}
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), json.dumps(spec), str(HERE), str(HERE.parent)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    rng = random.Random(16)
    watchdog = threading.Timer(120, writer.kill)  # a writer that hangs fails the test, not the suite
    watchdog.start()
    try:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        took = None  # how long one store takes, from two acknowledgements in a row
        for trial in range(40):
            acks = []
            for _ in range(rng.randrange(1, 3) if took else 2):  # stores go through, then at a random moment
                line = writer.stdout.readline()
                acks.append(time.perf_counter())
                assert line.startswith("ok"), (line, writer.stderr.read())
            took = acks[-1] - acks[-2] if len(acks) > 1 else took
            # into the next store, anywhere in it: a busy wait of up to one store's duration
            deadline = acks[-1] + rng.random() * took
            while time.perf_counter() < deadline:
                pass
            writer.send_signal(signal.SIGINT)
            late = 0
            while not (line := writer.stdout.readline()).startswith("interrupted"):
                assert line.startswith("ok"), (line, writer.stderr.read())
                late += 1
                if late % 3 == 0:
                    # Python drops a KeyboardInterrupt raised in a finalizer (a lock object's
                    # __del__ running just then): press Ctrl-C again, as a user would
                    writer.send_signal(signal.SIGINT)
            report = json.loads(line.split(" ", 1)[1])
            assert "error" not in report, (trial, report)
            if backend == "files":
                store = LocalWeightsStore(spec["path"])
                found = check_checkpoint(store, {report["acked"], report["attempted"]})
                store.gc(0)
                assert check_checkpoint(LocalWeightsStore(spec["path"]), {found}) == found
            if trial < 39:
                writer.stdin.write("go\n")
                assert writer.stdout.readline().strip() == "going"
        writer.stdin.close()  # the writer ends at the end of its input
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
    finally:
        watchdog.cancel()
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        for pipe in (writer.stdin, writer.stdout, writer.stderr):
            pipe.close()
