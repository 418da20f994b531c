"""DaCapo's validation scores as our score events: labelled, and reduced over post-processing parameters.

DaCapo stores each validated iteration as `{"iteration": i, "scores": [dataset][parameter][criterion]}`
with no names: the datasets are the run's validation datasets (its datasplit's `validate_configs`,
in order) and the criteria those of its task's evaluator (in the evaluator's order). Per iteration,
dataset and criterion we keep the best value over the parameter sets, as DaCapo's own `get_best`
does along the "parameters" dimension (NaN skipped); where every parameter set scored NaN, the
score is NaN: kept, as ours are ("validated, no value"), never best.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..criteria import (
    BINARY_SEGMENTATION_CRITERIA,
    DUMMY_CRITERIA,
    INSTANCE_CRITERIA,
    known_direction,
)

log = logging.getLogger(__name__)

# task __type__ -> how its evaluator names its criteria
_CHANNEL_TASKS = {"DistanceTaskConfig", "HotDistanceTaskConfig", "InnerDistanceTaskConfig"}
_FIXED_TASKS = {
    "AffinitiesTaskConfig": INSTANCE_CRITERIA,
    "DummyTaskConfig": DUMMY_CRITERIA,
    "OneHotTaskConfig": DUMMY_CRITERIA,
}


def task_criteria(task: Any) -> list[str] | None:
    """The criteria DaCapo 0.3.5 reports for a task document, in order; None if the task is unknown."""
    if not isinstance(task, Mapping):
        return None
    kind = task.get("__type__")
    if kind in _CHANNEL_TASKS:
        channels = task.get("channels")
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            return None
        # DaCapo's binary segmentation evaluator always reports per channel: "<channel>__<criterion>"
        return [
            f"{channel}__{criterion}" for channel in channels for criterion in BINARY_SEGMENTATION_CRITERIA
        ]
    if kind in _FIXED_TASKS:
        return list(_FIXED_TASKS[kind])
    if kind == "PretrainedTaskConfig":
        return task_criteria(task.get("sub_task_config"))
    return None


def validation_datasets(run: Any) -> list[str]:
    """Names of a run document's validation datasets, in DaCapo's order (empty if it has none)."""
    split = run.get("datasplit_config") if isinstance(run, Mapping) else None
    validate = split.get("validate_configs") if isinstance(split, Mapping) else None
    if not isinstance(validate, list):
        return []
    return [d.get("name") for d in validate if isinstance(d, Mapping) and isinstance(d.get("name"), str)]


def score_events(
    run_name: str, run: Mapping[str, Any] | None, documents: Iterable[Any]
) -> list[dict[str, Any]]:
    """Our `scores` index events for DaCapo's validation score documents of one run.

    Documents that can't be labelled (unknown task, shapes that don't fit the run's datasets and
    criteria) are logged and skipped: they stay DaCapo's, unread.
    """
    documents = list(documents)
    if not documents:
        return []
    criteria = task_criteria(run.get("task_config")) if run else None
    datasets = validation_datasets(run) if run else []
    if criteria is None or not datasets:
        log.warning(
            "run %s: DaCapo validation scores can't be labelled (%s); skipped",
            run_name,
            "no run config" if run is None else "unknown task or no validation datasets",
        )
        return []
    directions = {c: known_direction(c) for c in criteria}
    events = []
    for doc in documents:
        iteration = doc.get("iteration") if isinstance(doc, Mapping) else None
        array = doc.get("scores") if isinstance(doc, Mapping) else None
        if type(iteration) is not int or iteration < 0 or not _fits(array, len(datasets), len(criteria)):
            log.warning("run %s: skipping a DaCapo validation score document that does not fit", run_name)
            continue
        for dataset, per_parameter in zip(datasets, array, strict=True):
            best = best_over_parameters(per_parameter, criteria, directions)
            if best:
                events.append(
                    {
                        "op": "scores",
                        "iteration": iteration,
                        "dataset": dataset,
                        "scores": best,
                        "higher_is_better": {c: directions[c] for c in best if directions[c] is not None},
                    }
                )
    return events


def best_over_parameters(
    per_parameter: Iterable[Any], criteria: list[str], directions: Mapping[str, bool | None]
) -> dict[str, float]:
    """criterion -> the best value over DaCapo's post-processing parameter sets (rows of values in
    the order of `criteria`), by the criterion's direction (unknown: the highest); NaN and
    non-numbers are skipped. A criterion scored NaN by every parameter set is NaN (validated, no
    value: kept, never best); one with no number at all is left out. DaCapo's `get_best`."""
    rows = list(per_parameter)
    best: dict[str, float] = {}
    for index, criterion in enumerate(criteria):
        numbers = [_number(p[index]) for p in rows if isinstance(p, list) and index < len(p)]
        values = [v for v in numbers if v is not None and not math.isnan(v)]
        if not values:
            if any(v is not None for v in numbers):
                best[criterion] = math.nan
            continue
        higher = directions.get(criterion)
        best[criterion] = max(values) if higher or higher is None else min(values)
    return best


def _fits(array: Any, datasets: int, criteria: int) -> bool:
    return (
        isinstance(array, list)
        and len(array) == datasets
        and all(
            isinstance(per_parameter, list)
            and per_parameter
            and all(isinstance(p, list) and len(p) == criteria for p in per_parameter)
            for per_parameter in array
        )
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
