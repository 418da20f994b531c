"""Weights, validation scores and best checkpoints of runs, on files or in MongoDB GridFS."""

from __future__ import annotations

from ..criteria import HIGHER_IS_BETTER, LOWER_IS_BETTER
from ..options import Options
from .base import Leftover, PickleCheckpointError, Weights, WeightsStore
from .gridfs import GridFSWeightsStore
from .local import LocalWeightsStore
from .stats import TrainingIterationStats


def create_weights_store(options: Options | None = None) -> WeightsStore:
    """The weights store the options name: `files` under runs_base_dir, or `gridfs` in MongoDB.

    DaCapo's own data of the runs is read where DaCapo keeps it for these options: checkpoints
    and best files under runs_base_dir; scores and training stats under runs_base_dir/stats
    (type `files`) or in the MongoDB database (type `mongo`).
    """
    options = options or Options.instance()
    if options.weights_backend == "gridfs":
        if not options.mongo_db_host:
            raise ValueError("weights_store is 'gridfs' but mongo_db_host (DACAPO_MONGO_DB_HOST) is not set")
        return GridFSWeightsStore(
            options.mongo_db_host,
            options.mongo_db_name or "dacapo",
            timeout=options.server_selection_timeout,
            dacapo_runs_dir=options.runs_base_dir,
        )
    dacapo = None
    if options.type == "mongo":
        # DaCapo with a MongoDB store keeps its scores and training stats there, weights on disk
        from ..legacy.registry import DacapoMongo

        dacapo = DacapoMongo(
            runs_dir=options.runs_base_dir,
            db_host=options.mongo_db_host,
            db_name=options.mongo_db_name or "dacapo",
            timeout=options.server_selection_timeout,
        )
    return LocalWeightsStore(options.runs_base_dir, dacapo=dacapo)


__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "GridFSWeightsStore",
    "Leftover",
    "LocalWeightsStore",
    "PickleCheckpointError",
    "TrainingIterationStats",
    "Weights",
    "WeightsStore",
    "create_weights_store",
]
