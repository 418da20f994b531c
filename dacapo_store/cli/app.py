"""dacapo-store: the root command, store selection, output and error handling."""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import DacapoStoreError, StoreConnectionError
from ..mongo import RedactingFilter, redact
from ..options import Options

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def out() -> Console:
    """stdout: colour and tables in a terminal, plain text when piped."""
    return Console(highlight=False, soft_wrap=True)


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


class Settings:
    """What the root options chose; commands build their stores from it."""

    def __init__(self, store: str | None, db: str | None, debug: bool) -> None:
        self.store_spec = store
        self.db = db
        self.debug = debug

    def options(self, store: str | None = None, db: str | None = None) -> Options:
        return options_for(store if store is not None else self.store_spec, db if db is not None else self.db)

    def config_store(self, store: str | None = None, db: str | None = None):
        from ..config_store import create_config_store

        return create_config_store(self.options(store, db))

    def weights_store(self):
        from ..weights import create_weights_store

        return create_weights_store(self.options())


def options_for(spec: str | None, db: str | None) -> Options:
    """Options with `--store files:PATH` or `--store mongodb://...` (and `--db`) applied."""
    if spec is None:
        return Options.instance(mongo_db_name=db)
    if spec.startswith("files:"):
        path = spec[len("files:") :]
        if not path:
            raise click.BadParameter("files: needs a folder, e.g. files:/data/dacapo", param_hint="--store")
        return Options.instance(type="files", runs_base_dir=path)
    if spec.startswith(("mongodb://", "mongodb+srv://")):
        return Options.instance(type="mongo", mongo_db_host=spec, mongo_db_name=db)
    raise click.BadParameter(
        f"{redact(spec)!r} is neither files:PATH nor a mongodb:// URI", param_hint="--store"
    )


def settings() -> Settings:
    obj = click.get_current_context().find_root().obj
    return obj if isinstance(obj, Settings) else Settings(None, None, False)


@click.group(
    name="dacapo-store",
    context_settings=CONTEXT,
    epilog="Example: dacapo-store --store files:/data/dacapo list runs --architecture unet",
)
@click.option(
    "--store",
    metavar="STORE",
    help="files:PATH (PATH holds configs/) or a mongodb:// URI. "
    "Default: the options file and DACAPO_* variables.",
)
@click.option("--db", metavar="NAME", help="MongoDB database name (with a mongodb:// store).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="dacapo-store", prog_name="dacapo-store")
@click.pass_context
def app(ctx: click.Context, store: str | None, db: str | None, debug: bool) -> None:
    """Admin commands for a DaCapo experiment registry: configs, weights, validation scores."""
    ctx.obj = Settings(store, db, debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:  # no password in any log line, ours or pymongo's
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def fail(message: str, code: int = 1) -> click.exceptions.Exit:
    """Print one line on stderr; return the Exit to raise."""
    console = err()
    if console.is_terminal:
        console.print(f"[red]error:[/red] {message}", markup=True)
    else:
        click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(code)


def debug_traceback(code: int) -> click.exceptions.Exit:
    """Print the exception being handled as a traceback with passwords redacted (--debug); return the Exit."""
    click.echo(redact(traceback.format_exc()).rstrip(), err=True)
    return click.exceptions.Exit(code)


def command(
    name: str | None = None, *, group: click.Group = app, **kwargs: Any
) -> Callable[[F], click.Command]:
    """A command whose known failures print one line and exit 1 (2: store unreachable)."""

    def decorate(fn: F) -> click.Command:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
                raise
            except StoreConnectionError as exc:
                if settings().debug:
                    raise debug_traceback(2) from None
                raise fail(redact(str(exc)), 2) from None
            except (DacapoStoreError, ValueError, TypeError, OSError) as exc:
                if settings().debug:
                    raise debug_traceback(1) from None
                raise fail(redact(str(exc)) or type(exc).__name__, 1) from None
            except Exception:
                if settings().debug:
                    raise debug_traceback(1) from None
                raise

        kwargs.setdefault("context_settings", CONTEXT)
        return group.command(name, **kwargs)(run)

    return decorate


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """A rich table in a terminal; tab-separated lines with a header when piped."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    console = out()
    if console.is_terminal:
        t = Table(*columns, title=title, header_style="bold")
        for row in rows:
            t.add_row(*row)
        console.print(t)
    else:
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(row))


def say(message: str) -> None:
    """One line of output; rich markup is only rendered in a terminal."""
    console = out()
    if console.is_terminal:
        console.print(message)
    else:
        click.echo(console.render_str(message).plain)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@contextmanager
def progress(label: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr in a terminal; nothing when not in one."""
    console = err()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda *_: bar.advance(task)


def confirm(question: str, yes: bool) -> None:
    """Go on with --yes; ask in a terminal; refuse (usage error) when nobody can answer."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError("not a terminal: pass --yes to confirm")
    if not click.confirm(question, default=False):
        raise fail("cancelled", 1)


def main() -> None:
    app(prog_name="dacapo-store")
