"""`dacapo-store weights ...`: checkpoints, best iterations and pruning of one run."""

from __future__ import annotations

import click

from .app import app, command, confirm, progress, say, settings, table


@app.group(context_settings={"help_option_names": ["-h", "--help"]})
def weights() -> None:
    """Checkpoints and validation scores of runs."""


@command("list", group=weights, epilog="Example: dacapo-store weights list my_run")
@click.argument("run")
def list_weights(run: str) -> None:
    """The checkpoints of RUN, with size, author and the criteria each is best for."""
    with settings().weights_store() as store:
        where = store.where
        iterations = store.iterations(run)
        best: dict[int, list[str]] = {}
        for criterion in store.criteria(run):
            try:
                best.setdefault(store.retrieve_best(run, criterion), []).append(criterion)
            except LookupError:
                continue  # scores, but none at an iteration that still has weights
        rows = []
        for iteration in iterations:
            try:
                meta = store.metadata(run, iteration)
            except LookupError:
                meta = {"created_by": "(legacy DaCapo checkpoint)"}
            size = sum(int(b.get("size", 0)) for b in (meta.get("blobs") or {}).values())
            rows.append(
                (
                    iteration,
                    meta.get("created_at", ""),
                    meta.get("created_by", ""),
                    f"{size / 1e6:.2f} MB" if size else "",
                    ", ".join(sorted(best.get(iteration, []))),
                )
            )
    if not rows:
        say(f"run {run} has no checkpoints in {where}")
        return
    table(["iteration", "created_at", "created_by", "size", "best for"], rows)


@command("best", group=weights, epilog="Example: dacapo-store weights best my_run voi --dataset validate")
@click.argument("run")
@click.argument("criterion")
@click.option("--dataset", help="Only this validation dataset (default: the mean over datasets).")
def best(run: str, criterion: str, dataset: str | None) -> None:
    """The iteration of RUN with the best CRITERION score that still has weights."""
    with settings().weights_store() as store:
        click.echo(store.retrieve_best(run, criterion, dataset))


@command("prune", group=weights, epilog="Example: dacapo-store weights prune my_run --keep-last 2 --dry-run")
@click.argument("run")
@click.option("--keep-last", type=click.IntRange(min=0), required=True, help="Keep the N latest checkpoints.")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation (needed when not in a terminal).")
def prune(run: str, keep_last: int, dry_run: bool, yes: bool) -> None:
    """Delete RUN's checkpoints that are not recent, not a best, not pinned, and no run's start."""
    s = settings()
    with s.weights_store() as store, s.config_store() as configs:
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
    """Remove what killed writers left in the weights store: unreferenced blobs, orphan chunks, temp files."""
    seconds = _age(older_than)
    with settings().weights_store() as store:
        found = store.gc(seconds, dry_run=True)
        if not found:
            say(f"nothing to collect in {store.where} (older than {older_than})")
            return
        _leftovers_table(found)
        total = sum(item.size for item in found)
        if dry_run:
            say(f"would remove {len(found)} leftover(s), {total} bytes")
            return
        confirm(f"Remove {len(found)} leftover(s), {total} bytes?", yes)
        removed = store.gc(seconds)
    if removed != found:
        _leftovers_table(removed)
    say(f"removed {len(removed)} leftover(s), {sum(item.size for item in removed)} bytes")


def _leftovers_table(items) -> None:
    table(["kind", "run", "name", "bytes"], [(i.kind, i.run or "", i.name, i.size) for i in items])
