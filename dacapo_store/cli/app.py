"""dacapo-store: the root command, store selection, output and error handling."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..errors import DacapoStoreError, InvalidNameError, OptionsError, StoreConnectionError
from ..mongo import RedactingFilter, redact
from ..options import Options

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

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

    def config_store(self, store: str | None = None, db: str | None = None, *, create: bool = False):
        """The config store; on files, a folder without `configs/` is an error unless `create`."""
        from ..config_store import create_config_store

        options = self.options(store, db)
        if options.type == "files" and not create:
            require_registry(options.runs_base_dir)
        return _closed_with_command(create_config_store(options))

    def weights_store(self, store: str | None = None, db: str | None = None, *, must_exist: bool = True):
        """The weights store: for a given STORE the registry's own (files: PATH, MongoDB: its
        GridFS), else the one the options name. A files one must exist unless `must_exist=False`
        (a source that may hold no weights, or a target being created)."""
        from ..weights import GridFSWeightsStore, LocalWeightsStore, create_weights_store

        options = self.options(store, db)
        if store is not None and options.type == "mongo":
            return _closed_with_command(
                GridFSWeightsStore(
                    options.mongo_db_host,
                    options.mongo_db_name or "dacapo",
                    timeout=options.server_selection_timeout,
                )
            )
        if store is not None:
            return LocalWeightsStore(options.runs_base_dir)
        if options.weights_backend == "files" and must_exist:
            if not options.runs_base_dir.is_dir():
                raise NoRegistryError(
                    f"no weights store at {options.runs_base_dir}: the folder does not exist "
                    "(set runs_base_dir, DACAPO_RUNS_BASE_DIR or --store files:PATH; "
                    "or weights_store: gridfs for MongoDB)"
                )
            if options.type == "files":
                require_registry(options.runs_base_dir)  # a stranger's folder is no registry
        return _closed_with_command(create_weights_store(options))

    def weights_where(self) -> str:
        """Which weights store the options name, for messages."""
        options = self.options()
        if options.weights_backend == "gridfs":
            return f"gridfs: {redact(options.mongo_db_host or '?')}/{options.mongo_db_name}"
        return f"files: {options.runs_base_dir}"


def _closed_with_command(store: T) -> T:
    """`store`, closed when the command ends (closing twice is harmless, so `with` works too)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.find_root().call_on_close(store.close)
    return store


class NoRegistryError(DacapoStoreError):
    """The path given holds no registry (exit 2)."""


def require_registry(path: Path) -> None:
    """Raise NoRegistryError unless `path` holds a `configs/` folder, saying what was expected."""
    path = Path(path).expanduser()
    if (path / "configs").is_dir():
        return
    create = f"create one with: dacapo-store init {path}"
    if path.name == "configs" and path.is_dir():
        raise NoRegistryError(
            f"{path} looks like the configs/ folder itself; point at the folder that holds it: "
            f"--store files:{path.parent}"
        )
    if not path.exists():
        raise NoRegistryError(f"no registry at {path}: the folder does not exist; {create}")
    if not path.is_dir():
        raise NoRegistryError(f"no registry at {path}: it is a file, not a folder holding configs/")
    raise NoRegistryError(f"no registry at {path}: expected a folder holding configs/; {create}")


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
    epilog="""\b
Examples:
  dacapo-store --store files:/data/dacapo list runs --architecture unet
  dacapo-store init /data/dacapo
  dacapo-store scores my_run --criterion voi
  dacapo-store leaderboard voi --architecture unet --top 10
  dacapo-store weights verify my_run
  dacapo-store weights pin my_run 4000 voi
  dacapo-store weights unpin my_run voi
  dacapo-store weights remove my_run 2000 --yes
  dacapo-store copy --from files:/data/dacapo --to mongodb://db:27017 --db-to dacapo
  dacapo-store check --weights --json
  dacapo-store gc --older-than 1h --dry-run
  dacapo-store import-dacapo --from files:/groups/lab/dacapo --dry-run
  dacapo-store serve --port 8765""",
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
        console.print(f"[red]error:[/red] {escape(message)}", markup=True)
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
            except BrokenPipeError:
                quiet_stdout()
                raise click.exceptions.Exit(0) from None
            except (StoreConnectionError, NoRegistryError, InvalidNameError, OptionsError) as exc:
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
            t.add_row(*(Text(cell) for cell in row))  # data is never rich markup
        console.print(t)
    else:
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(row))


def say(message: str, *, markup: bool = False) -> None:
    """One line of plain text; with `markup=True` rich markup (data escaped by the caller) is
    rendered in a terminal and dropped when piped."""
    console = out()
    if not markup:
        if console.is_terminal:
            console.print(Text(message))
        else:
            click.echo(message)
    elif console.is_terminal:
        console.print(message)
    else:
        click.echo(console.render_str(message).plain)


def print_json(value: Any) -> None:
    """Indented JSON; NaN becomes null so every JSON parser reads it."""
    click.echo(json.dumps(_no_nan(value), indent=2, default=str))


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (shape: see docs/cli.md).")


def quiet_stdout() -> None:
    """The reader of our stdout went away (`| head`): stop writing, say nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


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
    try:
        app(prog_name="dacapo-store")
    except BrokenPipeError:
        quiet_stdout()
        sys.exit(0)
