"""`dacapo-store migrate --to 0.3.5|main [--yes]`: rewrite a registry into one DaCapo dialect."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape

from ..config_store.dialects import DocumentMigration, MigrationReport
from .app import command, fail, json_option, print_json, say, settings


@command(
    epilog="Example: dacapo-store migrate --to main            (a dry run)\n"
    "         dacapo-store migrate --to main --yes      (rewrites)"
)
@click.option("--to", "to", type=click.Choice(["0.3.5", "main"]), required=True, help="The dialect to write.")
@click.option("--yes", is_flag=True, help="Rewrite the documents; without it nothing is written.")
@json_option
def migrate(to: str, yes: bool, as_json: bool) -> None:
    """Rewrite every config document into DaCapo TO's dialect (0.3.5 or main).

    Without --yes it is a dry run: it lists what changes in each document and writes nothing.
    Nothing is lost: what TO can't express (a 0.3.5 trainer's batch_size in a main registry,
    main's sample_strategy in a 0.3.5 one) is kept beside the document, with its metadata, and
    comes back when migrating the other way. Each document is replaced on its own, atomically;
    documents already in TO, or that both dialects write alike, are left as they are, so a
    second run changes nothing. Documents TO can't hold at all (a WrappedArchitectureConfig in
    0.3.5, a run without a task) are left as they are and listed (exit 1).
    """
    with settings().config_store() as store:
        report = store.migrate(to, dry_run=not yes)
        where = store.describe()
    if as_json:
        print_json(_jsonable(report.as_json()))
    else:
        for item in report.documents:
            if item.status == "migrate":
                _say_changes(item, report)
        _say_summary(report, where)
    if not report.ok:
        for item in report.documents:
            if item.status == "refused":
                fail(f"{item.kind}/{item.name!r} can't be migrated: {item.reason}")
        raise fail(f"{report.count('refused')} document(s) left in their dialect", 1)


def _say_changes(item: DocumentMigration, report: MigrationReport) -> None:
    verb = "would migrate" if report.dry_run else "migrated"
    rep = f" (repetition {item.repetition})" if item.repetition is not None else ""
    say(f"{verb} {escape(item.kind)}/{escape(repr(item.name))}{rep}: DaCapo {item.source} -> {report.to}")
    if not report.dry_run:
        return
    for change in item.changes:
        say("    " + escape(_change_text(change)))


def _change_text(change: dict[str, Any]) -> str:
    path, what = change["path"], change["change"]
    if what == "renamed":
        return f"{path} -> {change['to']}"
    if what == "added":
        return f"+ {path}: {_value(change['value'])}"
    if what == "removed":
        where = f"moved to {change['moved_to']}" if change.get("moved_to") else None
        where = where or ("kept beside the document" if change.get("kept") else "a default, dropped")
        return f"- {path}: {_value(change['value'])} ({where})"
    return f"~ {path}: {_value(change['from'])} -> {_value(change['to'])}"


def _value(value: Any) -> str:
    return json.dumps(_jsonable(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _say_summary(report: MigrationReport, where: str) -> None:
    migrate, unchanged, refused = (report.count(s) for s in ("migrate", "unchanged", "refused"))
    if report.dry_run:
        tail = "; nothing written (dry run: add --yes to rewrite them)" if migrate else ""
        say(
            f"{migrate} document(s) of {where} to migrate to DaCapo {report.to}, {unchanged} already "
            f"DaCapo {report.to}'s or either's, {refused} can't be{tail}"
        )
    else:
        say(
            f"migrated {migrate} document(s) of {where} to DaCapo {report.to}; {unchanged} already were, "
            f"{refused} can't be"
        )
