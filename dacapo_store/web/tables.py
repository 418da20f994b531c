"""CSV twins of the dashboard's tables: the same view data as the page and its JSON, as rows.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula; a registry name
is never meant as one, so such a text cell is written with a leading `'` (OWASP's advice).
Numbers are written in full precision, NaN as `NaN`, a missing value as an empty cell.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

#: The run summary fields of a runs (or leaderboard) row, in their CSV order.
RUN_FIELDS = (
    "name",
    "task",
    "architecture",
    "trainer",
    "datasplit",
    "repetition",
    "num_iterations",
    "iterations_trained",
    "latest_checkpoint",
    "checkpoints",
    "status",
    "updated_at",
    "created_at",
    "created_by",
    "start_run",
    "start_criterion",
)
BEST_FIELDS = ("criterion", "dataset", "best_value", "best_iteration", "best_pinned")
SCORE_FIELDS = ("run", "iteration", "dataset", "criterion", "value", "best", "has_weights")


def runs_csv(data: Mapping[str, Any]) -> str:
    """The runs table (`views.runs`): one line per run, with its best by the page's criterion and
    by each other metric column (`<criterion>_value`, `<criterion>_iteration`)."""
    more = [c["criterion"] for c in data.get("columns", []) if c["criterion"] != data.get("criterion")]
    header = (*RUN_FIELDS, *BEST_FIELDS, *(f"{c}_{f}" for c in more for f in ("value", "iteration")))

    def line(row: Mapping[str, Any]) -> list[Any]:
        bests = row.get("bests") or {}
        extra = [(bests.get(c) or {}).get(f) for c in more for f in ("value", "iteration")]
        return [*_run_row(data, row), *extra]

    return _write(header, (line(row) for row in data["rows"]))


def leaderboard_csv(data: Mapping[str, Any]) -> str:
    """The leaderboard (`views.leaderboard`): rank first."""
    return _write(
        ("rank", *RUN_FIELDS, *BEST_FIELDS), ([row["rank"], *_run_row(data, row)] for row in data["rows"])
    )


def scores_csv(data: Mapping[str, Any]) -> str:
    """A run's scores (`views.run_scores`): one line per iteration, dataset and criterion."""
    return _write(SCORE_FIELDS, ([data["run"], *(row[f] for f in SCORE_FIELDS[1:])] for row in data["rows"]))


def filename(stem: str, suffix: str = ".csv") -> str:
    """A Content-Disposition value naming a download: an ASCII name, and the exact one (RFC 6266)."""
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:120] or "download"
    return f"attachment; filename=\"{plain}{suffix}\"; filename*=UTF-8''{quote(stem + suffix, safe='')}"


def _run_row(data: Mapping[str, Any], row: Mapping[str, Any]) -> list[Any]:
    best = row.get("best") or {}
    return [
        *(row.get(f) for f in RUN_FIELDS),
        data.get("criterion"),
        data.get("dataset"),
        best.get("value"),
        best.get("iteration"),
        best.get("pinned"),
    ]


def _write(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
