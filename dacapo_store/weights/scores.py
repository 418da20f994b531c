"""Criterion directions and best-iteration selection over validation scores."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

#: Which way is better for every criterion DaCapo 0.3.5's evaluators report (binary segmentation,
#: instance and dummy evaluation scores; DACAPO_FORMAT.md), plus `loss`. Channel-prefixed names
#: (`mito__dice`) are looked up by their criterion: see `known_direction`.
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {
        "dice",
        "jaccard",
        "precision",
        "recall",
        "f1_score",
        "precision_with_tolerance",
        "recall_with_tolerance",
        "f1_score_with_tolerance",
        "frizz_level",
    }
)
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {
        "hausdorff",
        "false_negative_rate",
        "false_negative_rate_with_tolerance",
        "false_positive_rate",
        "false_discovery_rate",
        "false_positive_rate_with_tolerance",
        "voi",
        "voi_split",
        "voi_merge",
        "mean_false_distance",
        "mean_false_positive_distance",
        "mean_false_negative_distance",
        "mean_false_distance_clipped",
        "mean_false_negative_distance_clipped",
        "mean_false_positive_distance_clipped",
        "blipp_score",
        "loss",
    }
)

# A criterion is a key in MongoDB documents and a word in StartConfig.criterion: no dots, no `$`,
# and never all digits (digits name an iteration there).
_CRITERION = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,127}")
RESERVED_CRITERIA = frozenset({"latest"})


def check_criterion(criterion: object) -> str:
    """Return `criterion` if it can name a validation criterion; raise TypeError/ValueError otherwise."""
    if type(criterion) is not str:
        raise TypeError(f"criterion must be a str, got {type(criterion).__name__}: {criterion!r}")
    if _CRITERION.fullmatch(criterion) is None or criterion in RESERVED_CRITERIA:
        raise ValueError(
            f"invalid criterion {criterion!r}: use 1 to 128 letters, digits, '_' or '-', starting with a "
            f"letter or '_', and not {sorted(RESERVED_CRITERIA)}"
        )
    return criterion


def known_direction(criterion: str) -> bool | None:
    """True if higher is better, False if lower is better, None if the table does not know it.

    A channel-prefixed criterion (`mito__dice`, as DaCapo's multi-channel evaluators report it)
    takes the direction of its criterion.
    """
    if "__" in criterion and criterion not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
        criterion = criterion.rsplit("__", 1)[1]
    if criterion in HIGHER_IS_BETTER:
        return True
    if criterion in LOWER_IS_BETTER:
        return False
    return None


def check_score(criterion: str, value: object) -> float:
    """A score as a float: a real number (NaN allowed, meaning 'no score'); bools and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        import numpy as np  # a dependency; imported here to keep `import dacapo_store` light

        if isinstance(value, np.generic) and np.issubdtype(type(value), np.number):
            return float(value)
        if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
            return check_score(criterion, value.item())  # a one-element tensor
        raise TypeError(f"score for criterion {criterion!r} must be a real number, got {value!r}")
    return float(value)


def rank(
    values_by_dataset: Mapping[str, Mapping[int, float]],
    higher_is_better: bool,
    datasets: Collection[str] | None = None,
) -> list[int]:
    """Iterations from best to worst by their score (mean over the given datasets validated there).

    NaN scores count as missing. Ties go to the earlier iteration.
    """
    chosen = values_by_dataset if datasets is None else {d: values_by_dataset[d] for d in datasets}
    if len(chosen) == 1:
        (values,) = chosen.values()
        means = {it: v for it, v in values.items() if v == v}  # v != v: NaN
    else:
        sums: dict[int, float] = {}
        counts: dict[int, int] = {}
        for values in chosen.values():
            for it, v in values.items():
                if v != v:
                    continue
                if it in sums:
                    sums[it] += v
                    counts[it] += 1
                else:
                    sums[it] = v
                    counts[it] = 1
        means = {it: s / counts[it] for it, s in sums.items()}
    keys = {it: -m for it, m in means.items()} if higher_is_better else means
    order = sorted(keys)  # by iteration, then a stable sort by score: ties keep the earlier one first
    order.sort(key=keys.__getitem__)
    return order


def direction_conflict(run: str, stored: Mapping[str, bool], events: Iterable[Mapping]) -> ValueError | None:
    """The error for the first criterion of a scores event whose direction differs from the one
    the run stores; None if there is none. Writers check it under the run's lock (files) or in the
    same update (MongoDB), so two racing first directions are refused as two calls in a row are."""
    for event in events:
        if event.get("op") != "scores":
            continue
        for criterion, higher in (event.get("higher_is_better") or {}).items():
            if criterion in stored and stored[criterion] is not higher:
                return ValueError(
                    f"run {run} stores {criterion!r} as {_direction(stored[criterion])}, "
                    f"not {_direction(higher)}; use another criterion name for the other direction"
                )
    return None


def _direction(higher: bool) -> str:
    return "higher-is-better" if higher else "lower-is-better"
