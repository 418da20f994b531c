"""`dacapo-store weights ...`: checkpoints, scores, bests, pins, checks and pruning of runs."""

from __future__ import annotations

import contextlib
import math

import click

from ..errors import ConfigNotFoundError
from ..names import check_name
from ..weights.best import all_bests
from .app import (
    NoRegistryError,
    app,
    command,
    confirm,
    fail,
    json_option,
    print_json,
    progress,
    say,
    settings,
    table,
)


@app.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Example: dacapo-store weights list my_run",
)
def weights() -> None:
    """Checkpoints and validation scores of runs."""


def existing_run(store, run: str) -> bool:
    """Whether RUN is known: anything in the weights store, or a stored run config.

    Exit 1 ("not found", naming the weights store) when it is neither; an invalid name is exit 2.
    """
    check_name(run, "run name")
    index = store.run_index(run)  # ours over DaCapo's
    if index.checkpoints or index.scores or index.pins or store.legacy_iterations(run):
        return True
    try:
        with settings().config_store() as configs:
            configs.get_document("runs", run)
    except (ConfigNotFoundError, NoRegistryError):
        raise fail(
            f"run {run} not found: nothing in weights store {store.where} and no run config of that name"
        ) from None
    return False


def _by_key(item: tuple) -> tuple:
    (criterion, dataset), _ = item
    return criterion, dataset is not None, dataset or ""


def _fmt(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"


@command("list", group=weights, epilog="Example: dacapo-store weights list my_run --json")
@click.argument("run")
@json_option
def list_weights(run: str, as_json: bool) -> None:
    """The checkpoints of RUN: size, author, scores, and the criteria each is best for."""
    store = settings().weights_store()
    existing_run(store, run)
    index = store.run_index(run)
    best: dict[int, list[str]] = {}
    marks: dict[int, list[dict]] = {}
    for (criterion, dataset), choice in sorted(all_bests(index).items(), key=_by_key):
        if not choice.loadable:
            continue  # the run's best score has no checkpoint left: no row to mark
        marks.setdefault(choice.iteration, []).append(
            {"criterion": criterion, "dataset": dataset, "pinned": choice.pinned}
        )
        if dataset is None or len(index.scores.get(criterion, {})) > 1:
            on = f" on {dataset}" if dataset is not None else ""
            best.setdefault(choice.iteration, []).append(
                f"{criterion}{on}" + (" (pinned)" if choice.pinned else "")
            )
    columns = sorted({(c, d) for c, by_d in index.scores.items() for d in by_d})
    entries = []
    for iteration in index.iterations():
        meta = index.checkpoints.get(iteration)
        size = sum(int(b.get("size", 0)) for b in ((meta or {}).get("blobs") or {}).values())
        entries.append(
            {
                "iteration": iteration,
                "created_at": (meta or {}).get("created_at"),
                "created_by": (meta or {}).get("created_by") if meta else "(legacy DaCapo checkpoint)",
                "size": size if meta else None,
                "legacy": meta is None,
                "damaged": index.damaged.get(iteration),
                "best_for": best.get(iteration, []),
                "bests": marks.get(iteration, []),
                "scores": {
                    c: {
                        d: index.scores[c][d][iteration]
                        for d in index.scores[c]
                        if iteration in index.scores[c][d]
                    }
                    for c in sorted(index.scores)
                    if any(iteration in v for v in index.scores[c].values())
                },
            }
        )
    if as_json:
        print_json(entries)
        return
    if not entries:
        say(f"run {run} has no checkpoints in {store.where}")
        return
    table(
        [
            "iteration",
            "created_at",
            "created_by",
            "size",
            *(f"{c} {d}" for c, d in columns),
            "best for",
            "damaged",
        ],
        [
            (
                e["iteration"],
                e["created_at"] or "",
                e["created_by"] or "",
                f"{e['size'] / 1e6:.2f} MB" if e["size"] else "",
                *(_fmt(e["scores"].get(c, {}).get(d)) for c, d in columns),
                ", ".join(e["best_for"]),
                e["damaged"] or "",
            )
            for e in entries
        ],
    )


@command("best", group=weights, epilog="Example: dacapo-store weights best my_run voi --dataset validate")
@click.argument("run")
@click.argument("criterion")
@click.option("--dataset", help="Only this validation dataset (default: the mean over datasets).")
@json_option
def best(run: str, criterion: str, dataset: str | None, as_json: bool) -> None:
    """The iteration of RUN with the best CRITERION score that still has sound weights.

    Prints the iteration, the score and whether it is pinned or computed, tab-separated
    (`cut -f1` gives the iteration). A checkpoint a check found damaged is never named.
    """
    store = settings().weights_store()
    existing_run(store, run)
    choice = store.best_choice(run, criterion, dataset)
    value = None if math.isnan(choice.value) else choice.value
    if as_json:
        print_json(
            {
                "run": run,
                "criterion": criterion,
                "dataset": dataset,
                "iteration": choice.iteration,
                "value": value,
                "pinned": choice.pinned,
            }
        )
        return
    how = "pinned" if choice.pinned else "computed best"
    click.echo(f"{choice.iteration}\t{criterion}={_fmt(value) or 'none'}\t{how}")


@command("pin", group=weights, epilog="Example: dacapo-store weights pin my_run 4000 voi --dataset validate")
@click.argument("run")
@click.argument("iteration", type=click.IntRange(min=0))
@click.argument("criterion")
@click.option("--dataset", help="Pin for this dataset only (default: over all datasets).")
def pin(run: str, iteration: int, criterion: str, dataset: str | None) -> None:
    """Pin ITERATION as RUN's best by CRITERION: `weights best` and starts then use it."""
    store = settings().weights_store()
    existing_run(store, run)
    store.store_best(run, iteration, dataset, criterion)
    say(
        f"pinned iteration {iteration} of {run} as best by {criterion}"
        + (f" on {dataset}" if dataset else "")
    )


@command("unpin", group=weights, epilog="Example: dacapo-store weights unpin my_run voi")
@click.argument("run")
@click.argument("criterion")
@click.option("--dataset", help="The pin of this dataset (default: the one over all datasets).")
def unpin(run: str, criterion: str, dataset: str | None) -> None:
    """Drop RUN's pin for CRITERION: the computed best counts again."""
    store = settings().weights_store()
    existing_run(store, run)
    store.unpin(run, criterion, dataset)
    say(f"unpinned {criterion} of {run}" + (f" on {dataset}" if dataset else ""))


@command("remove", group=weights, epilog="Example: dacapo-store weights remove my_run 2000 --yes")
@click.argument("run")
@click.argument("iteration", type=click.IntRange(min=0))
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation (needed when not in a terminal).")
def remove(run: str, iteration: int, yes: bool) -> None:
    """Delete one checkpoint of RUN (its scores stay)."""
    store = settings().weights_store()
    existing_run(store, run)
    store.metadata(run, iteration)  # not there: one clear error before asking
    confirm(f"Delete the checkpoint of {run} at iteration {iteration} from {store.where}?", yes)
    store.remove(run, iteration)
    say(f"deleted the checkpoint of {run} at iteration {iteration}")


@command("verify", group=weights, epilog="Example: dacapo-store weights verify my_run other_run")
@click.argument("runs", nargs=-1)
@json_option
def verify(runs: tuple[str, ...], as_json: bool) -> None:
    """Check every checkpoint of RUNS (default: all runs): each blob present, of its size and
    checksum, and every line of their index and training stats. Damaged checkpoints are recorded,
    so `weights best` skips them (and a sound one loses its mark); exit 1 on any problem."""
    from .commands import weights_problems

    store = settings().weights_store()
    for run in runs:
        existing_run(store, run)
    names = list(runs) if runs else store.journal_runs()
    with progress(f"verify {len(names)} runs", len(names)) as advance:
        checked, problems = weights_problems(store, names, advance)
    if as_json:
        print_json(
            {
                "runs": len(names),
                "checkpoints": checked,
                "problems": [
                    {"run": p["name"], "iteration": p["iteration"], "problem": p["problem"]} for p in problems
                ],
            }
        )
    elif problems:
        rows = [(p["name"], "" if p["iteration"] is None else p["iteration"], p["problem"]) for p in problems]
        table(["run", "iteration", "problem"], rows)
    if problems:
        raise fail(
            f"{len(problems)} problem(s) in {checked} checkpoint(s) of {len(names)} run(s) in {store.where}"
        )
    if not as_json:
        say(f"all {checked} checkpoint(s) of {len(names)} run(s) verify")


@command("prune", group=weights, epilog="Example: dacapo-store weights prune my_run --keep-last 2 --dry-run")
@click.argument("run")
@click.option("--keep-last", type=click.IntRange(min=0), required=True, help="Keep the N latest checkpoints.")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation (needed when not in a terminal).")
def prune(run: str, keep_last: int, dry_run: bool, yes: bool) -> None:
    """Delete RUN's checkpoints that are not recent, not a best, not pinned, and no run's start."""
    s = settings()
    store = s.weights_store()
    existing_run(store, run)
    with s.config_store() as configs:
        doomed = store.prune(run, keep_last=keep_last, config_store=configs, dry_run=True)
        if not doomed:
            say(f"nothing to prune in {run}")
            return
        if dry_run:
            say(f"would delete {len(doomed)} checkpoint(s) of {run}: {', '.join(map(str, doomed))}")
            return
        confirm(f"Delete {len(doomed)} checkpoint(s) of {run}?", yes)
        with progress(f"prune {run}", None):
            deleted = store.prune(run, keep_last=keep_last, config_store=configs)
    say(f"deleted {len(deleted)} checkpoint(s) of {run}: {', '.join(map(str, deleted))}")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _age(value: str) -> float:
    """Seconds from `90`, `90s`, `30m`, `1h` or `2d`."""
    text = value.strip().lower()
    unit = _UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        message = f"{value!r} is not an age like 90s, 30m, 1h or 2d"
        raise click.BadParameter(message, param_hint="--older-than") from None
    if not seconds >= 0:
        raise click.BadParameter(f"{value!r} is negative", param_hint="--older-than")
    return seconds


@command("gc", group=app, epilog="Example: dacapo-store gc --older-than 1h --dry-run")
@click.option(
    "--older-than",
    "older_than",
    default="1h",
    show_default=True,
    help="Only leftovers older than this (90s, 30m, 1h, 2d): a writer at work is never touched.",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation (needed when not in a terminal).")
def gc(older_than: str, dry_run: bool, yes: bool) -> None:
    """Remove what killed writers left: unreferenced blobs, orphan chunks and temp files in the
    weights store; temp files, metadata without its document and parts of a run that never landed
    among the configs.

    A run whose index has a damaged part is left alone (a blob may be named there) and named on
    stderr, with exit status 1 once the rest is collected.
    """
    seconds = _age(older_than)
    s = settings()
    try:
        configs = s.config_store()
    except NoRegistryError:  # a folder of weights only: nothing of configs to collect
        configs = None
    with s.weights_store() as store, configs or contextlib.nullcontext():
        in_weights = store.gc(seconds, dry_run=True)
        skipped = dict(in_weights.skipped)
        found = [*in_weights, *(configs.gc(seconds, dry_run=True) if configs else [])]
        if not found:
            say(f"nothing to collect in {store.where} (older than {older_than})")
        else:
            _leftovers_table(found)
            total = sum(item.size for item in found)
            if dry_run:
                say(f"would remove {len(found)} leftover(s), {total} bytes")
            else:
                confirm(f"Remove {len(found)} leftover(s), {total} bytes?", yes)
                collected = store.gc(seconds)
                skipped.update(collected.skipped)
                removed = [*collected, *(configs.gc(seconds) if configs else [])]
                if removed != found:
                    _leftovers_table(removed)
                say(f"removed {len(removed)} leftover(s), {sum(item.size for item in removed)} bytes")
    for run, why in sorted(skipped.items()):
        click.echo(f"skipped run {run}: {why}", err=True)
    if skipped:
        raise fail(f"{len(skipped)} run(s) not collected: their index is damaged (see `dacapo-store check`)")


def _leftovers_table(items) -> None:
    table(["kind", "run", "name", "bytes"], [(i.kind, i.run or "", i.name, i.size) for i in items])


__all__ = ["weights"]
