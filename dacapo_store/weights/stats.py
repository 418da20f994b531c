"""Training stats: loss and step time per iteration, as DaCapo records them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Union

import attrs

from ..criteria import check_score


@attrs.frozen
class TrainingIterationStats:
    """Loss and time (seconds) of one training iteration (DaCapo's fields)."""

    iteration: int = attrs.field(metadata={"help_text": "The iteration that was trained."})
    loss: float = attrs.field(metadata={"help_text": "The loss of this iteration."})
    time: float = attrs.field(metadata={"help_text": "How long the iteration took, in seconds."})


TrainingStatsInput = Union[  # noqa: UP007 -- a runtime alias, py3.10-safe
    Iterable[TrainingIterationStats], Mapping[int, Mapping[str, float]]
]


class TrainingRows(dict):
    """A backend's training stats of a run, iteration -> (loss, time), with what it stored that
    could not be read (`problems`, each saying where) and how many journal lines carry no checksum."""

    problems: tuple[str, ...] = ()
    unchecked = 0


def training_rows(stats: TrainingStatsInput) -> dict[int, tuple[float, float]]:
    """`stats` checked and normalized to iteration -> (loss, time); bad input raises before any write."""
    rows: dict[int, tuple[float, float]] = {}
    if isinstance(stats, Mapping):
        items: Iterable[tuple[Any, Any]] = stats.items()
        for iteration, values in items:
            if not isinstance(values, Mapping) or set(values) != {"loss", "time"}:
                raise ValueError(
                    f"training stats of iteration {iteration!r} must be a mapping with 'loss' and 'time', "
                    f"got {values!r}"
                )
            _add(rows, iteration, values["loss"], values["time"])
    elif isinstance(stats, (str, bytes)) or not isinstance(stats, Iterable):
        raise TypeError(
            "training stats must be TrainingIterationStats items or a mapping iteration -> "
            f"{{'loss', 'time'}}, got {type(stats).__name__}"
        )
    else:
        for item in stats:
            if not isinstance(item, TrainingIterationStats):
                raise TypeError(f"expected TrainingIterationStats, got {type(item).__name__}: {item!r:.100}")
            _add(rows, item.iteration, item.loss, item.time)
    return rows


def _add(rows: dict[int, tuple[float, float]], iteration: Any, loss: Any, time: Any) -> None:
    if type(iteration) is not int or iteration < 0:
        raise ValueError(f"iteration must be a non-negative int, got {iteration!r}")
    row = (check_score("loss", loss), check_score("time", time))
    if iteration in rows and not same_stats(rows[iteration], row):
        raise ValueError(f"iteration {iteration} is given twice with different values")
    rows[iteration] = row


def same_stats(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Equal values, NaN equal to NaN."""
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def mongo_stats_last(collection: Any, run: str) -> tuple[int, float | None] | None:
    """(iteration, when inserted) of the run's stats document of the highest iteration: its
    ObjectId's time. None: the run has no stats here.

    Training writes stats in iteration order, so that one is the newest. The (run_name,
    iteration) index that ours and DaCapo's collections both have finds it in one key, where
    sorting on `_id` would read every document of the run.
    """
    from bson import ObjectId

    projection = {"_id": True, "iteration": True}
    doc = collection.find_one({"run_name": run}, projection=projection, sort=[("iteration", -1)])
    if doc is None or type(doc.get("iteration")) is bool or not isinstance(doc.get("iteration"), int):
        return None
    oid = doc.get("_id")
    return int(doc["iteration"]), (oid.generation_time.timestamp() if isinstance(oid, ObjectId) else None)
