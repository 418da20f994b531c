"""The config commands: info, list, show, add, diff, delete, copy, export, import, check, lineage.

They work on documents, so configs whose Python class is not installed are listed, shown,
copied and exported whole; `check` and `add` are where documents are structured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml
from rich.markup import escape

from ..config_store.documents import KIND_CLASSES, KINDS, META_KEY, diff_documents
from ..config_store.transfer import copy_documents, count_documents
from ..configs._base import FAMILIES, TYPE_KEY
from ..conversion import converter
from ..errors import ConfigValidationError, DacapoStoreError, StoreConnectionError
from ..mongo import redact
from ..names import name_problem
from .app import app, command, confirm, fail, out, print_json, progress, say, settings, table

KIND = click.Choice(KINDS)


def _kinds(value: str | None) -> list[str]:
    if not value:
        return list(KINDS)
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise click.BadParameter(
            f"unknown kind(s) {', '.join(unknown)}; use {','.join(KINDS)}", param_hint="--kinds"
        )
    return kinds


kinds_option = click.option("--kinds", metavar="K,...", help="Comma-separated kinds (default: all).")


@command(epilog="Example: dacapo-store --store files:/data/dacapo info")
def info() -> None:
    """Where the store is, whether it answers, and how many of each kind it holds."""
    s = settings()
    options = s.options()
    rows: list[tuple[str, Any]] = [
        ("options file", options.source or "(none: defaults and DACAPO_* variables)")
    ]
    try:
        store = s.config_store()
    except StoreConnectionError as exc:
        rows.append(("config store", f"{options.type}: NOT REACHABLE"))
        table(["what", "value"], rows)
        raise fail(redact(str(exc)), 2) from None
    with store:
        rows += [("config store", store.describe()), ("answers", "yes")]
        rows += [(kind, len(store.names(kind))) for kind in KINDS]
    where = (
        f"{redact(options.mongo_db_host or '?')}/{options.mongo_db_name}"
        if options.weights_backend == "gridfs"
        else str(options.runs_base_dir)
    )
    rows.append(("weights store", f"{options.weights_backend}: {where}"))
    table(["what", "value"], rows)


@command("list", epilog="Example: dacapo-store list runs --architecture unet --json")
@click.argument("kind", type=KIND, metavar="KIND")
@click.option("--task", multiple=True, help="Only runs with this task (repeatable).")
@click.option("--architecture", multiple=True, help="Only runs with this architecture (repeatable).")
@click.option("--trainer", multiple=True, help="Only runs with this trainer (repeatable).")
@click.option("--datasplit", multiple=True, help="Only runs with this datasplit (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of names.")
def list_(kind: str, task, architecture, trainer, datasplit, as_json: bool) -> None:
    """The names of the stored configs of KIND."""
    filters = {
        "task_names": task,
        "architecture_names": architecture,
        "trainer_names": trainer,
        "datasplit_names": datasplit,
    }
    filters = {k: list(v) for k, v in filters.items() if v}
    if filters and kind != "runs":
        raise click.UsageError("--task/--architecture/--trainer/--datasplit filter runs only")
    with settings().config_store() as store:
        names = store.names(kind, **filters)
        shared = store.shared_run_names() if kind == "runs" else {}
    if as_json:
        print_json(names)
    elif out().is_terminal:
        say(f"[bold]{len(names)} {kind}[/bold]")
        for name in names:
            note = _repetitions_note(shared.get(name))
            say(f"  {escape(name)}" + (f"  [dim]{note}[/dim]" if note else ""))
    else:
        for name in names:
            click.echo(name)
    # Piped output stays one name per line; the note goes to stderr.
    if shared and (as_json or not out().is_terminal):
        for name, reps in shared.items():
            if name in names:
                click.echo(f"note: {name!r} {_repetitions_note(reps)}", err=True)


def _repetitions_note(repetitions: list[int] | None) -> str:
    if not repetitions:
        return ""
    return (
        f"({len(repetitions)} runs share this name: DaCapo repetitions "
        f"{', '.join(map(str, repetitions))}; pick one with --repetition)"
    )


@command(epilog="Example: dacapo-store show runs my_run --meta")
@click.argument("kind", type=KIND, metavar="KIND")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option(
    "--meta", is_flag=True, help=f"Also show who stored it, when, and its content hash (under {META_KEY})."
)
@click.option("--repetition", type=int, help="For runs DaCapo stored once per repetition under one name.")
def show(kind: str, name: str, fmt: str, meta: bool, repetition: int | None) -> None:
    """The stored document of one config.

    With --meta the output is the export format: `add` takes it back, metadata and all.
    """
    with settings().config_store() as store:
        doc = store.get_document(kind, name, repetition=repetition)
        if meta:
            m = store.metadata(kind, name, repetition=repetition)
            doc = {
                **doc,
                META_KEY: {
                    "created_at": m.created_at.isoformat() if m.created_at else None,
                    "created_by": m.created_by,
                    "content_hash": m.content_hash,
                },
            }
    doc = _as_lists(doc)  # tuples read as YAML/JSON arrays; `add` restores them
    if fmt == "json":
        print_json(doc)
    else:
        click.echo(
            yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, allow_unicode=True), nl=False
        )


def _as_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value


def _kind_of_document(doc: dict[str, Any]) -> str | None:
    if "task_config" in doc and TYPE_KEY not in doc:
        return "runs"
    tag = doc.get(TYPE_KEY)
    for kind, cls in KIND_CLASSES.items():
        if tag in FAMILIES.get(cls, {}):
            return kind
    return None


def _read_documents(file: Path) -> list[dict[str, Any]]:
    from ..config_store.yamlio import DacapoYamlLoader

    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix == ".json":
            docs: Any = json.loads(text)
        else:
            docs = [d for d in yaml.load_all(text, Loader=DacapoYamlLoader) if d is not None]
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigValidationError(
            f"{file}: not valid {file.suffix[1:] or 'YAML'} ({str(exc).splitlines()[0]})"
        ) from None
    flat: list[Any] = []
    for d in docs if isinstance(docs, list) else [docs]:
        flat += d if isinstance(d, list) else [d]
    for d in flat:
        if not isinstance(d, dict):
            raise ConfigValidationError(f"{file}: expected config mappings, got {type(d).__name__}")
    return flat


@command(epilog="Example: dacapo-store add experiments/*.yaml")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--kind", type=KIND, help="The kind of documents whose class is not installed here.")
@click.option("--no-verify", is_flag=True, help="Store configs even if verify() fails.")
def add(files: tuple[Path, ...], kind: str | None, no_verify: bool) -> None:
    """Store the config documents in YAML or JSON FILES; all are checked before any is written.

    A run also stores its task, architecture, trainer and datasplit. A document whose class
    is not installed is stored as it is when --kind names its kind.
    """
    plan: list[tuple[str, Any, str, Any]] = []
    problems: list[str] = []
    for file in files:
        for doc in _read_documents(file):
            # An exported document carries who stored it: keep that, beside the document.
            meta = doc.pop(META_KEY, None)
            meta = {k: v for k, v in meta.items() if v is not None} if isinstance(meta, dict) else None
            known_kind = _kind_of_document(doc)
            doc_kind = known_kind or kind
            label = f"{file}: {doc.get('name', '?')!r}"
            if doc_kind is None:
                problems.append(f"{label}: can't tell its kind (no known __type__); pass --kind")
            elif known_kind is None:
                plan.append((doc_kind, doc, label, meta))  # class not installed: keep the document
            else:
                try:
                    config = converter.structure(doc, KIND_CLASSES[doc_kind])
                except ConfigValidationError as exc:
                    problems.append(f"{label}: {exc}")
                    continue
                ok, why = (True, "") if no_verify else config.verify()
                if ok:
                    plan.append((doc_kind, config, label, meta))
                else:
                    problems.append(f"{label}: failed verify(): {why}")
    if problems:
        for p in problems:
            fail(p)
        raise fail(f"nothing stored: {len(problems)} document(s) failed")
    failures = 0
    with settings().config_store() as store:
        for doc_kind, item, label, meta in plan:
            try:
                if isinstance(item, dict):
                    written = store.put_document(doc_kind, item, metadata=meta)
                    say(f"{'stored' if written else 'unchanged'} {doc_kind}/{item['name']!r} (as a document)")
                else:
                    written = store.store(item, verify=not no_verify, metadata=meta)
                    say(f"{'stored' if written else 'unchanged'} {doc_kind}/{item.name!r}")
            except DacapoStoreError as exc:
                failures += 1
                fail(f"{label}: {exc}")
    if failures:
        raise click.exceptions.Exit(1)


@command(epilog="Example: dacapo-store diff runs run_a run_b")
@click.argument("kind", type=KIND, metavar="KIND")
@click.argument("a")
@click.argument("b")
def diff(kind: str, a: str, b: str) -> None:
    """The fields where two stored configs differ; exit 1 when they differ."""
    with settings().config_store() as store:
        differences = diff_documents(store.get_document(kind, a), store.get_document(kind, b))
    differences = [d for d in differences if d[0] != "name"]
    if not differences:
        say(f"{kind}/{a!r} and {kind}/{b!r} are the same but for the name")
        return
    table(
        ["field", a, b],
        [(p, json.dumps(x, default=repr), json.dumps(y, default=repr)) for p, x, y in differences],
    )
    raise click.exceptions.Exit(1)


@command(epilog="Example: dacapo-store delete runs old_run --yes")
@click.argument("kind", type=KIND, metavar="KIND")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete a run even if other runs start from it.")
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation (needed when not in a terminal).")
def delete(kind: str, name: str, force: bool, yes: bool) -> None:
    """Delete one config; asks first in a terminal."""
    with settings().config_store() as store:
        store.get_document(kind, name)  # a missing name fails before asking
        confirm(f"Delete {kind}/{name!r} from {store.describe()}?", yes)
        store.delete(kind, name, force=force)
    say(f"deleted {kind}/{name!r}")


def _transfer(source, target, kinds: list[str], verb: str) -> None:
    total = count_documents(source, kinds)
    with progress(f"{verb} {total} documents", total) as advance:
        report = copy_documents(source, target, kinds, on_document=advance)
    say(
        f"{verb}: {source.describe()} -> {target.describe()}: {len(report.copied)} copied, "
        f"{len(report.unchanged)} already there, {len(report.conflicts)} conflicts, "
        f"{len(report.failed)} failed"
    )
    for kind, name, why in report.conflicts:
        fail(f"conflict {kind}/{name!r}, target kept as it is: {why}")
    for kind, name, why in report.failed:
        fail(f"failed {kind}/{name!r}: {why}")
    if not report.ok:
        raise click.exceptions.Exit(1)


@command(epilog="Example: dacapo-store copy --from files:/data/dacapo --to mongodb://db:27017 --db-to dacapo")
@click.option("--from", "source", required=True, metavar="STORE", help="files:PATH or a mongodb:// URI.")
@click.option("--to", "target", required=True, metavar="STORE", help="files:PATH or a mongodb:// URI.")
@click.option("--db-from", metavar="NAME", help="Database of a MongoDB source.")
@click.option("--db-to", metavar="NAME", help="Database of a MongoDB target.")
@kinds_option
def copy(source: str, target: str, db_from: str | None, db_to: str | None, kinds: str | None) -> None:
    """Copy documents between stores; reruns are no-ops; conflicts are reported and kept (exit 1)."""
    chosen = _kinds(kinds)
    s = settings()
    with s.config_store(source, db_from) as src, s.config_store(target, db_to) as dst:
        _transfer(src, dst, chosen, "copy")


@command("export", epilog="Example: dacapo-store --store mongodb://db:27017 export backup/")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@kinds_option
def export(directory: Path, kinds: str | None) -> None:
    """Write every document into DIRECTORY/configs/<kind>/<name>.yaml.

    Open the result with --store files:DIRECTORY.
    """
    s = settings()
    with s.config_store() as src, s.config_store(f"files:{directory}") as dst:
        _transfer(src, dst, _kinds(kinds), "export")


@command("import", epilog="Example: dacapo-store --store mongodb://db:27017 import backup/")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@kinds_option
def import_(directory: Path, kinds: str | None) -> None:
    """Store every document of DIRECTORY (a files-layout registry holding configs/) here."""
    if not (directory / "configs").is_dir():
        raise fail(f"{directory} has no configs/ folder: not a files-layout registry")
    s = settings()
    with s.config_store(f"files:{directory}") as src, s.config_store() as dst:
        _transfer(src, dst, _kinds(kinds), "import")


@command(epilog="Example: dacapo-store check --kinds runs")
@kinds_option
def check(kinds: str | None) -> None:
    """Structure every stored document; list those that fail with the reason (exit 1 if any)."""
    chosen = _kinds(kinds)
    bad: list[tuple[str, str, str]] = []
    notes: list[tuple[str, str, str]] = []
    checked = 0
    with settings().config_store() as store:
        total = count_documents(store, chosen)
        with progress(f"check {total} documents", total) as advance:
            for kind in chosen:
                for name, doc in store.documents(kind):
                    advance()
                    checked += 1
                    problem = name_problem(name, slash_ok=store.slash_in_names)
                    if problem is not None:
                        bad.append((kind, name, f"invalid name: {problem}"))
                        continue
                    try:
                        if isinstance(doc, Exception):
                            raise doc
                        _, read_notes = converter.structure_lenient(doc, KIND_CLASSES[kind])
                    except ConfigValidationError as exc:
                        bad.append((kind, name, str(exc)))
                    else:
                        notes += [(kind, name, f"read leniently: {n}") for n in read_notes]
            if "runs" in chosen:
                for name, reps in store.shared_run_names().items():
                    notes.append(("runs", name, _repetitions_note(reps)))
    if notes:
        table(["kind", "name", "note"], notes, title="Readable, with notes")
    if bad:
        table(["kind", "name", "problem"], bad)
        raise fail(f"{len(bad)} of {checked} documents failed to structure")
    say(f"all {checked} documents structure" + (f" ({len(notes)} notes)" if notes else ""))


@command(epilog="Example: dacapo-store lineage finetune_run")
@click.argument("run")
def lineage(run: str) -> None:
    """The chain of starts behind RUN, and the runs that start from it."""
    with settings().config_store() as store:
        stored = set(store.names("runs"))
        store.get_document("runs", run)  # not found: one clear error
        lines, seen, current = [run], {run}, run
        while current in stored:
            start = store.get_document("runs", current).get("start_config")
            if not start:
                break
            parent = start.get("run")
            note = "" if parent in stored else "  [not in this store]"
            lines.append(f"{'  ' * len(lines)}<- {parent} (by {start.get('criterion')}){note}")
            if parent in seen:
                lines.append(f"{'  ' * len(lines)}(a cycle)")
                break
            seen.add(parent)
            current = parent
        say("\n".join(lines) if len(lines) > 1 else f"{run} starts from scratch")

        def descendants(children: list[tuple[str, str]], depth: int, seen: set[str]) -> None:
            for child, criterion in children:
                if child not in seen:
                    seen.add(child)
                    say(f"{'  ' * depth}-> {child} (by {criterion})")
                    descendants(store.starts_from(child), depth + 1, seen)

        direct = store.starts_from(run)
        if direct:
            say(f"runs that start from {run}:")
            descendants(direct, 1, {run})
        else:
            say(f"no stored run starts from {run}")


__all__ = ["app"]
