"""WeightsStore: the typed weights API, written once over a composed backend of primitives.

`WeightsStore(backend)` does the typed work, one concern per module: checkpoints
(`checkpoints.py`), scores, pins and bests (`scoring.py`, over the one rule of `best.py`),
training stats (`training.py`), garbage and pruning (`upkeep.py`) and what spans runs
(`across.py`, over `digests.DigestTable`). The backend (`backend.WeightsBackend`: `LocalBackend`,
`GridFSBackend`) is only its primitives; `LocalWeightsStore` and `GridFSWeightsStore` are this
class over one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import PickleCheckpointError
from .across import AcrossRuns
from .backend import BlobNotFoundError, Collected, Leftover, WeightsBackend, gc_cutoff
from .checkpoints import FORMAT, Checkpoints
from .leaderboard import LeaderboardEntry
from .records import BestChoice, RunLike, Weights, WeightsProblem, check_iteration, run_name
from .scoring import Scoring
from .training import TrainingStats
from .upkeep import Upkeep

if TYPE_CHECKING:
    from ..legacy.registry import DacapoRegistry


class WeightsStore(Checkpoints, Scoring, TrainingStats, Upkeep, AcrossRuns):
    """Checkpoints, validation scores and best-iteration choices of runs (CONTRACT.md "Weights store").

    The backend's own attributes (its primitives, `db`, `basedir`, ...) are reached through
    `store.backend`; for scripts written before the split they are also found on the store.
    """

    def __init__(self, backend: WeightsBackend) -> None:
        self.backend = backend

    @property
    def where(self) -> str:
        """How to find this store, for messages (no passwords)."""
        return self.backend.where

    @property
    def dacapo(self) -> DacapoRegistry | None:
        """DaCapo's registry beside ours (its checkpoints, scores, bests, training stats), read only."""
        return self.backend.dacapo

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: a backend attribute (a primitive, `db`, ...)
        if name == "backend" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.backend, name)

    def close(self) -> None:
        """Release what the store holds (a MongoDB client it connected, DaCapo's registry's)."""
        self.backend.close()

    def __enter__(self) -> WeightsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_index(self, run: str) -> Any:
        """The run's own index as it is now (a backend primitive; `run_index` lays it over DaCapo's)."""
        return self.backend.read_index(run)

    def changes_since(self, token: Any, runs: Any = (), *, thorough: bool = False) -> Any:
        """The backend's one change signal over every run (see `WeightsBackend.changes_since`)."""
        return self.backend.changes_since(token, runs, thorough=thorough)


__all__ = [
    "FORMAT",
    "BestChoice",
    "BlobNotFoundError",
    "Collected",
    "LeaderboardEntry",
    "Leftover",
    "PickleCheckpointError",
    "RunLike",
    "Weights",
    "WeightsBackend",
    "WeightsProblem",
    "WeightsStore",
    "check_iteration",
    "gc_cutoff",
    "run_name",
]
