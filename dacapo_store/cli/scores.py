"""`dacapo-store scores` and `dacapo-store leaderboard`: validation scores of a run, and across runs."""

from __future__ import annotations

import csv
import io
import math

import click

from ..queries.leaderboard import leaderboard as build_leaderboard
from ..queries.scores import scores_table
from .app import command, fail, print_json, say, settings, table
from .weights import existing_run

FORMAT = click.Choice(["table", "csv", "json"])


def _fmt(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.6g}"


def _csv(columns: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    click.echo(buffer.getvalue(), nl=False)


@command(epilog="Example: dacapo-store scores my_run --criterion voi --format csv")
@click.argument("run")
@click.option("--dataset", help="Only this validation dataset.")
@click.option("--criterion", help="Only this criterion.")
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def scores(run: str, dataset: str | None, criterion: str | None, fmt: str, as_json: bool) -> None:
    """RUN's validation scores: one row per iteration and dataset, one column per criterion.

    The best iteration of each criterion on each dataset is marked `*` (a pin counts); csv and json
    give one row per score (iteration, dataset, criterion, value, best, has_weights).
    """
    store = settings().weights_store()
    existing_run(store, run)
    rows = scores_table(store, run, dataset=dataset, criterion=criterion)
    if as_json or fmt == "json":
        print_json(
            [
                {
                    "iteration": r.iteration,
                    "dataset": r.dataset,
                    "criterion": r.criterion,
                    "value": r.value,
                    "best": r.best,
                    "has_weights": r.has_weights,
                }
                for r in rows
            ]
        )
        return
    if fmt == "csv":
        _csv(
            ["iteration", "dataset", "criterion", "value", "best", "has_weights"],
            [[r.iteration, r.dataset, r.criterion, _fmt(r.value), r.best, r.has_weights] for r in rows],
        )
        return
    if not rows:
        raise fail(
            f"run {run} has no validation scores{' matching that' if dataset or criterion else ''} "
            f"in {store.where}"
        )
    criteria = sorted({r.criterion for r in rows})
    cells: dict[tuple[int, str], dict[str, str]] = {}
    weights_of: dict[int, bool] = {}
    for r in rows:
        cells.setdefault((r.iteration, r.dataset), {})[r.criterion] = _fmt(r.value) + (" *" if r.best else "")
        weights_of[r.iteration] = r.has_weights
    table(
        ["iteration", "dataset", *criteria, "weights"],
        [
            (it, ds, *(by_c.get(c, "") for c in criteria), "yes" if weights_of[it] else "no")
            for (it, ds), by_c in sorted(cells.items())
        ],
    )


@command(epilog="Example: dacapo-store leaderboard voi --architecture unet --top 10")
@click.argument("criterion")
@click.option("--dataset", help="Rank by this validation dataset (default: the mean over datasets).")
@click.option("--task", multiple=True, help="Only runs with this task (repeatable).")
@click.option("--architecture", multiple=True, help="Only runs with this architecture (repeatable).")
@click.option("--trainer", multiple=True, help="Only runs with this trainer (repeatable).")
@click.option("--datasplit", multiple=True, help="Only runs with this datasplit (repeatable).")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs.")
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def leaderboard(
    criterion: str,
    dataset: str | None,
    task,
    architecture,
    trainer,
    datasplit,
    top: int,
    fmt: str,
    as_json: bool,
) -> None:
    """Each run's best checkpoint by CRITERION, best run first (by the criterion's direction)."""
    s = settings()
    store = s.weights_store()
    filters = {
        "task_names": task,
        "architecture_names": architecture,
        "trainer_names": trainer,
        "datasplit_names": datasplit,
    }
    configs = s.config_store() if any(filters.values()) else None
    try:
        entries = build_leaderboard(
            store, criterion, dataset=dataset, configs=configs, filters=filters, top=top
        )
    finally:
        if configs is not None:
            configs.close()
    rows = [(i + 1, e.run, e.iteration, e.value, e.pinned, e.loadable) for i, e in enumerate(entries)]
    if as_json or fmt == "json":
        print_json(
            [
                {"rank": r, "run": run, "iteration": it, "value": v, "pinned": p, "loadable": ok}
                for r, run, it, v, p, ok in rows
            ]
        )
        return
    if fmt == "csv":
        _csv(
            ["rank", "run", "iteration", "value", "pinned", "loadable"],
            [[r, run, it, _fmt(v), p, ok] for r, run, it, v, p, ok in rows],
        )
        return
    if not rows:
        say(f"no run has {criterion!r} scores in {store.where}")
        return
    table(
        ["rank", "run", "iteration", criterion, "pinned", "checkpoint"],
        [
            (r, run, it, _fmt(v), "yes" if p else "", "" if ok else "no checkpoint")
            for r, run, it, v, p, ok in rows
        ],
    )
