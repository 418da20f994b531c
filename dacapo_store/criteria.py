"""The criterion vocabulary, on the ground floor: names, directions, DaCapo's criteria, the start rule.

Everything that asks "is this a criterion?", "which way is better?", "which criteria does DaCapo
report?" or "what does this StartConfig.criterion choose?" asks it here, so the answer is the same
for a store, a query, the command line and DaCapo's data read in place. No I/O; only the error
hierarchy is imported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from .errors import InvalidCriterionError

#: The criteria of DaCapo 0.3.5's BinarySegmentationEvaluationScores, in its order (a distance
#: task reports each of them per channel: "<channel>__<criterion>").
BINARY_SEGMENTATION_CRITERIA: tuple[str, ...] = (
    "dice",
    "jaccard",
    "hausdorff",
    "false_negative_rate",
    "false_negative_rate_with_tolerance",
    "false_positive_rate",
    "false_discovery_rate",
    "false_positive_rate_with_tolerance",
    "voi",
    "mean_false_distance",
    "mean_false_negative_distance",
    "mean_false_positive_distance",
    "mean_false_distance_clipped",
    "mean_false_negative_distance_clipped",
    "mean_false_positive_distance_clipped",
    "precision_with_tolerance",
    "recall_with_tolerance",
    "f1_score_with_tolerance",
    "precision",
    "recall",
    "f1_score",
)
#: InstanceEvaluationScores.criteria of DaCapo 0.3.5, in its order.
INSTANCE_CRITERIA: tuple[str, ...] = ("voi_split", "voi_merge", "voi")
#: DummyEvaluationScores.criteria of DaCapo 0.3.5, in its order.
DUMMY_CRITERIA: tuple[str, ...] = ("frizz_level", "blipp_score")

#: Which way is better for every criterion DaCapo 0.3.5's evaluators report, plus `loss`
#: (DACAPO_FORMAT.md). Channel-prefixed names (`mito__dice`) are looked up by their criterion:
#: see `known_direction`.
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
    {*BINARY_SEGMENTATION_CRITERIA, *INSTANCE_CRITERIA, *DUMMY_CRITERIA, "loss"} - HIGHER_IS_BETTER
)

# A criterion is a key in MongoDB documents and a word in StartConfig.criterion: no dots, no `$`,
# and never all digits (digits name an iteration there).
_CRITERION = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,127}")
RESERVED_CRITERIA = frozenset({"latest"})
_DIGITS = re.compile(r"[0-9]+")


def check_criterion(criterion: object) -> str:
    """Return `criterion` if it can name a validation criterion; raise TypeError/ValueError otherwise."""
    if type(criterion) is not str:
        raise TypeError(f"criterion must be a str, got {type(criterion).__name__}: {criterion!r}")
    if _CRITERION.fullmatch(criterion) is None or criterion in RESERVED_CRITERIA:
        raise InvalidCriterionError(
            f"invalid criterion {criterion!r}: use 1 to 128 letters, digits, '_' or '-', starting with a "
            f"letter or '_', and not {sorted(RESERVED_CRITERIA)}"
        )
    return criterion


def known_direction(criterion: str) -> bool | None:
    """True if higher is better, False if lower is better, None if the table does not know it.

    A channel-prefixed criterion (`mito__dice`, as DaCapo's multi-channel evaluators report it)
    takes the direction of its criterion.
    """
    if "__" in criterion and criterion not in HIGHER_IS_BETTER and criterion not in LOWER_IS_BETTER:
        criterion = criterion.rsplit("__", 1)[1]
    if criterion in HIGHER_IS_BETTER:
        return True
    if criterion in LOWER_IS_BETTER:
        return False
    return None


#: The metrics a page ranks runs by when none is asked for and several are as common, in order:
#: the overlap scores DaCapo's segmentation tasks report first, then the others it knows; a
#: metric it doesn't know, then a dummy task's, last.
MAIN_METRICS: tuple[str, ...] = (
    "dice",
    "f1_score",
    "f1_score_with_tolerance",
    "jaccard",
    "voi",
    "loss",
    *(c for c in (*BINARY_SEGMENTATION_CRITERIA, *INSTANCE_CRITERIA) if c not in ("dice", "f1_score", "voi")),
)


def main_rank(criterion: str) -> int:
    """How main a criterion's metric is (lower first, `MAIN_METRICS`); `mito__dice` ranks as dice."""
    metric = criterion.rsplit("__", 1)[-1]
    if metric in MAIN_METRICS:
        return MAIN_METRICS.index(metric)
    return len(MAIN_METRICS) + (1 if metric in DUMMY_CRITERIA else 0)


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


# ---------------------------------------------------------------------------------- the start rule

StartKind = Literal["latest", "iteration", "criterion"]


def start_rule(criterion: object) -> tuple[StartKind, int | str | None]:
    """What a `StartConfig.criterion` chooses: ("latest", None), ("iteration", n) for digits, or
    ("criterion", name) for a criterion name (the best iteration by it).

    TypeError/ValueError if it is none of them, naming the three forms.
    """
    if criterion == "latest":
        return "latest", None
    if type(criterion) is str and _DIGITS.fullmatch(criterion) and criterion.isascii():
        return "iteration", int(criterion)
    try:
        return "criterion", check_criterion(criterion)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{exc}; or use 'latest' or an iteration number") from None


__all__ = [
    "BINARY_SEGMENTATION_CRITERIA",
    "DUMMY_CRITERIA",
    "HIGHER_IS_BETTER",
    "INSTANCE_CRITERIA",
    "LOWER_IS_BETTER",
    "MAIN_METRICS",
    "RESERVED_CRITERIA",
    "check_criterion",
    "check_score",
    "direction_conflict",
    "known_direction",
    "main_rank",
    "start_rule",
]
