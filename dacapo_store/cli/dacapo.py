"""DaCapo on the command line: `dacapo-store import-dacapo` brings a DaCapo 0.3 registry's data into a
dacapo_store registry; `dacapo-store dacapo ARGS...` runs DaCapo's own command line writing into it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from ..errors import UnsupportedDacapoError
from .app import CONTEXT, command, fail, print_json, progress, say, settings


def open_source(spec: str, db: str | None, runs_dir: Path | None):
    """A read-only DaCapo registry from `files:PATH` or a mongodb:// URI (with `--db`)."""
    from ..legacy.registry import DacapoFiles, DacapoMongo

    if spec.startswith("files:"):
        path = Path(spec[len("files:") :]).expanduser()
        if not spec[len("files:") :] or not path.is_dir():
            raise click.BadParameter(f"{path} is not a folder", param_hint="--from")
        if not ((path / "configs").is_dir() or (path / "stats").is_dir()):
            raise fail(
                f"--from: {path} is not a DaCapo registry (its runs_base_dir holds configs/ and stats/)", 2
            )
        return DacapoFiles(path)
    if spec.startswith(("mongodb://", "mongodb+srv://")):
        registry = DacapoMongo(
            runs_dir=runs_dir,
            db_host=spec,
            db_name=db or "dacapo",
            timeout=settings().options().server_selection_timeout,
        )
        _ = registry.db  # connect now: an unreachable source fails before anything is opened
        return registry
    raise click.BadParameter("expected files:PATH or a mongodb:// URI", param_hint="--from")


@command(
    "import-dacapo",
    epilog="Example: dacapo-store --store files:/data/registry import-dacapo "
    "--from files:/groups/lab/dacapo\n\n"
    "Example: dacapo-store import-dacapo --from mongodb://db:27017 --db dacapo "
    "--runs-dir /groups/lab/dacapo --to mongodb://db:27017 --db-to registry --dry-run",
)
@click.option(
    "--from",
    "source",
    required=True,
    metavar="SOURCE",
    help="files:PATH (DaCapo's runs_base_dir) or a mongodb:// URI.",
)
@click.option("--db", "db", metavar="NAME", help="Database of a MongoDB source (default: dacapo).")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="DaCapo's runs_base_dir, where a MongoDB source's checkpoints and best files are.",
)
@click.option(
    "--to", "target", metavar="STORE", help="files:PATH or a mongodb:// URI (default: the configured store)."
)
@click.option("--db-to", metavar="NAME", help="Database of a MongoDB target.")
@click.option(
    "--runs", "runs", multiple=True, metavar="RUN", help="Only these runs (and their configs); repeatable."
)
@click.option("--dry-run", is_flag=True, help="Only say what would be converted.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_dacapo(
    source: str,
    db: str | None,
    runs_dir: Path | None,
    target: str | None,
    db_to: str | None,
    runs: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Copy DaCapo's configs, checkpoints, scores, bests and training stats into this registry.

    The source is only read. Checkpoints are converted to safetensors (checksummed), DaCapo's
    best files become pins. Rerunning imports nothing new; the summary says what was
    converted, skipped and why. Exit 1 if anything failed.
    """
    from ..config_store import create_config_store
    from ..legacy.importer import import_dacapo as run_import
    from ..legacy.importer import import_steps
    from ..weights import create_weights_store

    registry = open_source(source, db, runs_dir)
    weights = None
    try:
        missing = sorted(set(runs) - set(registry.run_names()))
        if missing:
            raise fail(f"no run named {', '.join(map(repr, missing))} in {registry.where}")
        options = settings().options(target, db_to)
        weights = create_weights_store(options)
        chosen = list(runs) or None
        with create_config_store(options) as configs:
            total = import_steps(registry, chosen)
            with progress("import-dacapo", total) as advance:
                report = run_import(registry, configs, weights, runs=chosen, dry_run=dry_run, on_step=advance)
            where = f"{registry.where} -> {configs.describe()} + {weights.where}"
    finally:
        if weights is not None:
            weights.close()
        registry.close()
    if as_json:
        print_json(report.as_dict())
    else:
        _summary(report, where)
    if not report.ok:
        raise click.exceptions.Exit(1)


def _summary(report, where: str) -> None:
    verb = "would convert" if report.dry_run else "converted"
    counts = report.counts()
    say(f"import-dacapo{' (dry run)' if report.dry_run else ''}: {where}")
    for outcome, label in (("converted", verb), ("skipped", "skipped"), ("failed", "failed")):
        parts = ", ".join(f"{n} {what}" for what, n in sorted(counts.get(outcome, {}).items()))
        say(f"  {label}: {parts or 'nothing'}")
    reasons = Counter((what, _reason(detail)) for what, _, detail in report.skipped)
    for (what, reason), n in sorted(reasons.items()):
        say(f"  skipped {n} {what}: {reason}")
    for what, name, detail in report.failed:
        fail(f"{what} {name}: {detail}")


def _reason(detail: str) -> str:
    return detail if len(detail) <= 160 else detail[:157] + "..."


@command(
    "dacapo",
    context_settings={**CONTEXT, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
    epilog="Example: dacapo-store dacapo train -r my_run",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dacapo_cli(args: tuple[str, ...]) -> None:
    """Run DaCapo 0.3.5's own command line (`dacapo ARGS...`) with its stores in this registry.

    DaCapo's configs, checkpoints, training stats and validation scores go through dacapo_store
    (the store --store names, else the options): no pickles, checked documents, bests from the
    scores. `dacapo-store dacapo --help` shows DaCapo's commands. Needs DaCapo 0.3.5 installed.
    """
    from ..dacapo_adapter import install, uninstall

    try:
        install(settings().options())
    except UnsupportedDacapoError as exc:
        raise fail(str(exc), 2) from None
    from dacapo.cli import cli

    try:
        cli.main(args=list(args), prog_name="dacapo-store dacapo")
    finally:
        uninstall()
