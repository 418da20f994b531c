"""Read-only queries over the stores, shared by the command line and the dashboard."""

from __future__ import annotations

from .catalog import SORT_KEYS, RunCatalog, RunQuery
from .runs import (
    STATUSES,
    Best,
    RunSummary,
    best_per_run,
    compare_runs,
    run_detail,
    run_lineage,
    training_stats,
)

__all__ = [
    "SORT_KEYS",
    "STATUSES",
    "Best",
    "RunCatalog",
    "RunQuery",
    "RunSummary",
    "best_per_run",
    "compare_runs",
    "run_detail",
    "run_lineage",
    "training_stats",
]
