"""What the typed weights API hands back, and the checks every part of it makes on its arguments."""

from __future__ import annotations

from typing import Any, Union

import attrs

from ..configs.runs import RunConfig
from ..errors import InvalidNameError
from ..names import check_name, run_name_problem

RunLike = Union[str, RunConfig]  # noqa: UP007 -- a runtime alias, py3.10-safe


@attrs.frozen
class Weights:
    """One checkpoint: model and optimizer state dicts on the CPU, and its metadata."""

    model: dict[str, Any]
    optimizer: dict[str, Any] | None
    run: str
    iteration: int
    #: created_at, created_by and the blob records; None for a legacy DaCapo checkpoint.
    metadata: dict[str, Any] | None = None


@attrs.frozen
class BestChoice:
    """The checkpoint `retrieve_best` picks, its score (NaN if a pin has none) and whether it is a pin."""

    iteration: int
    value: float
    pinned: bool


@attrs.frozen
class WeightsProblem:
    """One thing `verify` found wrong with a run's checkpoints."""

    run: str
    #: None for what is not about one checkpoint (a damaged line of the run's index or stats)
    iteration: int | None
    problem: str


def run_name(run: RunLike) -> str:
    """The checked name of a run given by name or RunConfig."""
    if isinstance(run, RunConfig):
        run = run.name
    name = check_name(run, "run name", slash_ok=True)
    problem = run_name_problem(name, frozenset())  # '/' (on every backend); files: see _writable
    if problem is not None:
        raise InvalidNameError(f"invalid run name {name!r}: {problem}")
    return name


def check_iteration(iteration: object) -> int:
    """`iteration` as an int if it is a non-negative int (bson Int64 included, bool not)."""
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        raise ValueError(f"iteration must be a non-negative int, got {iteration!r}")
    return int(iteration)


def summary(iterations: list[int]) -> str:
    if not iterations:
        return "none"
    if len(iterations) <= 8:
        return ", ".join(map(str, iterations))
    return f"{len(iterations)} from {iterations[0]} to {iterations[-1]}"


__all__ = ["BestChoice", "RunLike", "Weights", "WeightsProblem", "check_iteration", "run_name", "summary"]
