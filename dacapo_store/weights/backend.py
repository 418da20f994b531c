"""WeightsBackend: the primitives a weights store is made of, and nothing else.

A backend keeps blobs (put whole or not at all, get, delete, list), each run's index (read it as
a RunIndex, append events; see `index.py`), our training stats rows, the digests writers keep
(`digest.py`), one change signal over every run (`changes_since`), and what killed writers left
behind (for `gc`). `LocalBackend` (folders) and `GridFSBackend` (MongoDB) are only these;
`WeightsStore` composes one and does the typed work once: checkpoints (`checkpoints.py`), scores,
pins and bests (`scoring.py`), training stats (`training.py`), garbage and pruning (`upkeep.py`),
and what spans runs (`digests.py`).
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import DacapoStoreError
from .digest import RunDigest
from .index import RunIndex

if TYPE_CHECKING:
    from ..legacy.registry import DacapoRegistry


class BlobNotFoundError(DacapoStoreError, LookupError):
    """A backend has no blob of that name (internal: the typed API turns it into a better error)."""


@attrs.frozen
class Leftover:
    """Something a killed writer left behind, found by `WeightsStore.gc`."""

    #: "unreferenced blob" (complete, named by no index entry), "orphan chunks" (GridFS chunks
    #: without a file document), or "temporary file" (a files-backend `.tmp-*`)
    kind: str
    run: str | None
    name: str
    size: int
    #: when it was written (seconds since the epoch)
    created: float
    #: how the backend finds it again to remove it
    key: Any = attrs.field(default=None, repr=False, eq=False)


class Collected(list):
    """The leftovers `gc` removed (or would), and the runs it left alone: `skipped` maps a run to
    why (part of its index can't be read, so none of its blobs is known to be unreferenced)."""

    def __init__(self, items: Iterable[Leftover] = ()) -> None:
        super().__init__(items)
        self.skipped: dict[str, str] = {}


def gc_cutoff(older_than: float | timedelta) -> float:
    """The time (seconds since the epoch) before which a leftover is old enough for `gc`."""
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ValueError(
            f"older_than must be a non-negative number of seconds or a timedelta, got {older_than!r}"
        )
    return time.time() - seconds


class WeightsBackend(ABC):
    """Where a weights store keeps its data: the primitives (see the module docstring)."""

    #: How to find this store, for messages (no passwords).
    where: str = "?"
    #: DaCapo's registry beside ours (its checkpoints, scores, bests, training stats), read only.
    dacapo: DacapoRegistry | None = None

    def close(self) -> None:
        """Release what the backend holds (a MongoDB client it connected, DaCapo's registry's)."""
        if self.dacapo is not None:
            self.dacapo.close()

    # -- blobs and the index --

    @abstractmethod
    def put_blob(self, run: str, name: str, chunks: Iterable[bytes | memoryview]) -> None:
        """Store the concatenated `chunks` under `name`, atomically: whole or not at all."""

    @abstractmethod
    def get_blob(self, run: str, name: str) -> Any:
        """The blob's bytes as a buffer, writable if possible; BlobNotFoundError if absent."""

    @abstractmethod
    def delete_blob(self, run: str, name: str) -> None:
        """Remove a blob; absent is fine."""

    @abstractmethod
    def list_blobs(self, run: str) -> list[str]:
        """Names of the run's complete blobs, referenced or not."""

    @abstractmethod
    def read_index(self, run: str) -> RunIndex:
        """The run's index as it is now (empty for an unknown run)."""

    @abstractmethod
    def append_index(self, run: str, events: list[dict[str, Any]]) -> None:
        """Add index events (see `index.py`) durably; each event is applied whole or not at all."""

    def fresh_reads(self) -> contextlib.AbstractContextManager[None]:
        """Within it, reads of indexes and training stats look at what is stored now, whole,
        bypassing what a backend keeps parsed in this process (a cache extended by appends would
        not see a line damaged in place): what checks and `gc` read through."""
        return contextlib.nullcontext()

    #: What the run's index and training stats are called in messages (the files backend: its files).
    journal_names: tuple[str, str] = ("index", "training stats")

    def journal_runs(self) -> list[str] | None:
        """Runs with an index or training stats of ours; None: the store's `run_names()`."""
        return None

    def read_indexes(self, runs: Iterable[str] | None = None) -> dict[str, RunIndex]:
        """Indexes of many runs (None: every run with an index here); backends may batch the reads."""
        if runs is None:
            raise NotImplementedError(f"{type(self).__name__} can't list its runs")
        return {run: self.read_index(run) for run in runs}

    def changes_since(
        self, token: Any, runs: Collection[str] = (), *, thorough: bool = False
    ) -> tuple[Any, set[str] | None]:
        """(new token, runs whose data may have changed since `token` was handed out).

        The one change signal of the store, for views over many runs (`DigestTable`): it watches
        `runs` and every run the store has (ours and DaCapo's), and names new runs too. None
        instead of a set means "any run may have changed" (read `run_names()`); `token` None asks
        for a first token (a backend may then name every run it has). `thorough`: look behind
        what summarizes the markers (now and then; it may answer None). The default knows nothing.
        """
        return None, None

    def runs_with_stats(self, runs: Collection[str], token: Any = None) -> set[str] | None:
        """Those of `runs` that may have training stats, ours or DaCapo's (None: any may): the
        others' extent needs no read. `token`: one from `changes_since`, which may know."""
        return None

    def stored_digests(self, runs: Iterable[str]) -> dict[str, RunDigest]:
        """The digests writers stored of these runs' own indexes (`digest.py`), for the runs whose
        stored digest matches its source as it is now; the others are left out (read them)."""
        return {}

    def dacapo_runs(self, runs: Iterable[str], token: Any = None) -> set[str]:
        """Those of `runs` for which DaCapo keeps scores, best files or checkpoints (their index is
        ours laid over DaCapo's). `token`: one from `changes_since`, which may already know."""
        return set() if self.dacapo is None else self.dacapo.runs_with_index(runs)

    def read_checkpoint(self, run: str, iteration: int) -> dict[str, Any] | None:
        """The index entry of one checkpoint; backends may answer without reading the whole index."""
        return self.read_index(run).checkpoints.get(iteration)

    @abstractmethod
    def list_runs(self) -> list[str]:
        """Names of the runs that have blobs."""

    @abstractmethod
    def blob_stats(self, run: str) -> list[tuple[str, int, float]]:
        """(name, size in bytes, written at in seconds since the epoch) of the run's complete blobs."""

    @abstractmethod
    def partial_leftovers(self) -> list[Leftover]:
        """What interrupted writes left that is not a complete blob (temporary files, orphan chunks)."""

    @abstractmethod
    def remove_leftover(self, leftover: Leftover) -> None:
        """Delete one leftover found by `partial_leftovers` or `gc` (absent is fine)."""

    @abstractmethod
    def read_training_stats(self, run: str) -> dict[int, tuple[float, float]]:
        """Our training stats of the run: iteration -> (loss, time)."""

    @abstractmethod
    def append_training_stats(self, run: str, rows: Mapping[int, tuple[float, float]]) -> None:
        """Add stats of iterations not stored yet, durably, never rewriting what is there: all of
        them or (on an error) none.

        An iteration stored meanwhile with other values raises TrainingStatsConflictError.
        """

    @abstractmethod
    def drop_training_stats(self, run: str) -> None:
        """Remove our training stats of the run; absent is fine."""

    def index_written(self, run: str) -> float | None:
        """When the run's index (scores, checkpoints, pins) was last written (seconds since the
        epoch), from what is stored anyway; None if unknown or none."""
        return None

    @abstractmethod
    def training_stats_written(self, run: str) -> float | None:
        """When our training stats of the run were last written (seconds since the epoch); None if none.

        From what is stored anyway (a file's mtime, a document's ObjectId), nothing written for it.
        """

    def training_stats_last(self, run: str) -> tuple[int, float | None] | None:
        """(highest iteration, `training_stats_written`) of our training stats; None if none.

        Backends that can answer without reading every row (one indexed query) do.
        """
        stats = self.read_training_stats(run)
        return (max(stats), self.training_stats_written(run)) if stats else None

    def own_run_names(self) -> list[str]:
        """Runs with an index of ours (checkpoints, scores or pins)."""
        raise NotImplementedError

    def forget_run(self, run: str) -> None:
        """Drop the run's index (scores, pins, checkpoint entries); its blobs are deleted first."""
        raise NotImplementedError

    def describe_problem(self, exc: BaseException) -> str:
        """What is wrong with a run's data, for any reader: the message without the store's paths."""
        return str(exc) or type(exc).__name__


__all__ = ["BlobNotFoundError", "Collected", "Leftover", "WeightsBackend", "gc_cutoff"]
