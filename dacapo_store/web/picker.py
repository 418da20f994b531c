"""Criteria at DaCapo scale, for the pages: channel x metric groups, the chosen ones, short labels.

A DaCapo run reports one criterion per channel and metric (`mito__dice`, `nuc__hausdorff`: 66 to
130 of them) on several validation datasets with long generated names. The run and compare pages
chart one small multiple per metric (run) or criterion (compare) for the criteria chosen in a
picker grouped by channel and metric, whose choice lives in the URL:

- `criterion=C` (repeatable): that criterion;
- `metric=M` (repeatable): every criterion of that metric (of the `channel=` ones, if given);
- `channel=H` (repeatable): every criterion of that channel (of the `metric=` ones, if given).

Nothing here reads a store: the views pass in what the catalog and `queries` answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .params import NotFound, Params

#: Charts a page draws by default: all criteria up to this many, else those of one metric.
DEFAULT_CHARTS = 12
#: Traces a chart shows by default; the rest are in its legend, one click away.
MAX_TRACES = 12
#: Longest label a legend or table header shows before it is cut in the middle.
LABEL_WIDTH = 34


def criterion_parts(criterion: str) -> tuple[str | None, str]:
    """(channel, metric) of a criterion: `mito__dice` -> ("mito", "dice"); `voi` -> (None, "voi").

    DaCapo's multi-channel evaluators name criteria `f"{channel}__{metric}"`; the metric is what
    follows the last `__` (the rule `known_direction` uses for a criterion's direction).
    """
    channel, sep, metric = criterion.rpartition("__")
    if not sep or not channel or not metric:
        return None, criterion
    return channel, metric


def choose(
    p: Params,
    directions: Mapping[str, bool | None],
    default: Iterable[str],
    *,
    where: str,
) -> dict[str, Any]:
    """The picker of a page: every criterion grouped by metric and channel, and the chosen ones.

    `directions`: the page's criteria (criterion -> higher is better, None: unknown); `default`:
    the choice when the URL names none; `where` names the page in messages (a 404 for a criterion,
    metric or channel it doesn't have).
    """
    criteria = sorted(directions)
    parts = {c: criterion_parts(c) for c in criteria}
    metrics = sorted({m for _, m in parts.values()})
    channels = sorted({h for h, _ in parts.values() if h is not None})
    named = p.criteria("criterion")
    by_metric = p.strings("metric")
    by_channel = p.strings("channel")
    for value, known, what in (
        *((c, criteria, "criterion") for c in named),
        *((m, metrics, "metric") for m in by_metric),
        *((h, channels, "channel") for h in by_channel),
    ):
        if value not in known:
            raise NotFound(f"{where} has no {what} {value!r}; it has: {_listing(known)}")
    if named or by_metric or by_channel:
        chosen = {
            c
            for c, (h, m) in parts.items()
            if c in named
            or (by_metric and m in by_metric and (not by_channel or h is None or h in by_channel))
            or (not by_metric and by_channel and h in by_channel)
        }
        is_default = False
    else:
        chosen = set(default)
        is_default = True
    grid: dict[str, dict[str, str]] = {}
    for c, (h, m) in parts.items():
        grid.setdefault(m, {})[h or ""] = c
    return {
        "chosen": [c for c in criteria if c in chosen],
        "default": is_default,
        "total": len(criteria),
        "metrics": metrics,
        "channels": channels + ([""] if any(h is None for h, _ in parts.values()) else []),
        "grid": grid,
        "criteria": {
            c: {"channel": h, "metric": m, "higher_is_better": directions[c]} for c, (h, m) in parts.items()
        },
    }


def default_choice(candidates: Iterable[str], preferred: str | None = None) -> list[str]:
    """What a page charts before anything is picked: every candidate when there are at most
    `DEFAULT_CHARTS`, else the candidates of one metric: `preferred`'s (the registry's default
    criterion) if it is a candidate, else the metric with the most candidates (then by name)."""
    candidates = sorted(set(candidates))
    if len(candidates) <= DEFAULT_CHARTS:
        return candidates
    groups: dict[str, list[str]] = {}
    for c in candidates:
        groups.setdefault(criterion_parts(c)[1], []).append(c)
    if preferred in candidates:
        metric = criterion_parts(preferred)[1]
    else:
        metric = min(groups, key=lambda m: (-len(groups[m]), m))
    return groups[metric]


def short_labels(names: Sequence[str], width: int = LABEL_WIDTH) -> dict[str, str]:
    """Labels that tell names apart in a legend or a table header: names that fit in `width`
    characters as they are, longer ones by the part where they differ (a prefix and suffix all
    share are cut, marked by an ellipsis), cut in the middle beyond `width`. The full name always
    goes beside it, in a title or the hover text."""
    names = list(dict.fromkeys(names))
    middles = {n: n for n in names}
    if len(names) > 1 and any(len(n) > width for n in names):
        prefix = _common_prefix(names)
        suffix = _common_prefix([n[prefix:][::-1] for n in names])
        prefix = prefix if prefix >= 4 else 0
        suffix = suffix if suffix >= 4 else 0
        cut = {n: n[prefix : len(n) - suffix] for n in names}
        if all(cut.values()):
            middles = {n: ("…" if prefix else "") + cut[n] + ("…" if suffix else "") for n in names}
    labels = {n: _middle(m, width) for n, m in middles.items()}
    if len(set(labels.values())) < len(labels):
        return {n: n for n in names}
    return labels


def _common_prefix(texts: Sequence[str]) -> int:
    """How many leading characters all texts share."""
    shortest = min(texts, key=len)
    for i, char in enumerate(shortest):
        if any(t[i] != char for t in texts):
            return i
    return len(shortest)


def _middle(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return text[:half] + "…" + text[len(text) - (width - 1 - half) :]


def _listing(values: Sequence[str], most: int = 20) -> str:
    shown = [repr(v) for v in values[:most]]
    more = f" and {len(values) - most} more" if len(values) > most else ""
    return (", ".join(shown) or "none") + more
