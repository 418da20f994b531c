"""dacapo-store: admin commands for a DaCapo registry."""

from __future__ import annotations

import typer

from .. import __version__

app = typer.Typer(
    name="dacapo-store",
    help="Admin commands for a DaCapo experiment registry (configs, weights, scores).",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dacapo-store {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Admin commands for a DaCapo experiment registry."""


def main() -> None:
    app()
