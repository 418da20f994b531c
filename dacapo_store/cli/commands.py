"""The config commands: init, info, list, show, add, diff, delete, copy, export, import, check, lineage.

They work on documents, so configs whose Python class is not installed are listed, shown,
copied and exported whole; `check` and `add` are where documents are structured.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click
import yaml
from rich.markup import escape

from ..config_store.dialects import MIXED, STASH_KEY, document_dialect
from ..config_store.documents import (
    KIND_CLASSES,
    KINDS,
    META_KEY,
    RUN_PARTS,
    config_part,
    content_hash,
    diff_documents,
)
from ..configs._base import FAMILIES, TYPE_KEY
from ..conversion import converter
from ..criteria import start_rule
from ..errors import (
    ConfigValidationError,
    DacapoStoreError,
    DuplicateNameError,
    InvalidNameError,
    StoreConnectionError,
)
from ..mongo import redact
from ..queries.lineage import lineage as build_lineage
from ..transfer import TransferReport, transfer, transfer_total
from ..where import WhereError
from ..where import parse_all as parse_where
from .app import (
    NoRegistryError,
    app,
    command,
    confirm,
    fail,
    json_option,
    out,
    print_json,
    progress,
    say,
    settings,
    table,
)

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


@command(epilog="Example: dacapo-store init /data/dacapo")
@click.argument("path", type=click.Path(path_type=Path))
def init(path: Path) -> None:
    """Create an empty registry (a folder holding configs/) at PATH; an existing one is left as is."""
    path = path.expanduser()
    if (path / "configs").is_dir():
        say(f"{path} already holds a registry")
        return
    if path.exists() and not path.is_dir():
        raise fail(f"{path} is a file, not a folder", 2)
    if path.name == "configs":
        raise fail(
            f"a registry is the folder that holds configs/, not configs/ itself: "
            f"dacapo-store init {path.parent}",
            2,
        )
    (path / "configs").mkdir(parents=True, exist_ok=True)
    say(f"created an empty registry at {path}; use it with --store files:{path}")


@command(epilog="Example: dacapo-store --store files:/data/dacapo info --json")
@json_option
def info(as_json: bool) -> None:
    """Where the store is, whether it answers, how many of each kind it holds, and the weights store."""
    s = settings()
    options = s.options()
    source = options.source or "(none: defaults and DACAPO_* variables)"
    try:
        store = s.config_store()
    except StoreConnectionError as exc:
        if as_json:
            print_json({"options_file": options.source, "config_store": None, "answers": False})
        else:
            table(
                ["what", "value"],
                [("options file", source), ("config store", f"{options.type}: NOT REACHABLE")],
            )
        raise fail(redact(str(exc)), 2) from None
    with store:
        where = store.describe()
        counts = {kind: len(store.names(kind)) for kind in KINDS}
    weights = s.weights_where()
    if as_json:
        print_json(
            {
                "options_file": options.source,
                "config_store": where,
                "answers": True,
                "counts": counts,
                "weights_store": weights,
            }
        )
        return
    rows: list[tuple[str, Any]] = [("options file", source), ("config store", where), ("answers", "yes")]
    rows += list(counts.items())
    rows.append(("weights store", weights))
    table(["what", "value"], rows)


@command("list", epilog="Example: dacapo-store list runs --architecture unet --json")
@click.argument("kind", type=KIND, metavar="KIND")
@click.option("--task", multiple=True, help="Only runs with this task (repeatable).")
@click.option("--architecture", multiple=True, help="Only runs with this architecture (repeatable).")
@click.option("--trainer", multiple=True, help="Only runs with this trainer (repeatable).")
@click.option("--datasplit", multiple=True, help="Only runs with this datasplit (repeatable).")
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="'PATH OP VALUE'",
    help="Only runs whose document this holds on (repeatable, all must hold): PATH dotted into the run "
    "document (trainer_config.learning_rate, datasplit_config.validate_configs.0.name), OP one of "
    "== != < <= > >= ~ (~: substring or list element), VALUE a JSON literal or bare text.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of names.")
def list_(kind: str, task, architecture, trainer, datasplit, where, as_json: bool) -> None:
    """The names of the stored configs of KIND.

    Search runs by config values: dacapo-store list runs
    --where 'architecture_config.fmaps_out == 32' --where 'num_iterations > 1000'
    """
    try:
        conditions = parse_where(where)
    except WhereError as exc:
        raise fail(str(exc), 2) from None
    if conditions and kind != "runs":
        raise fail("--where searches runs only", 2)
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
        if conditions:
            names = store.retrieve_run_config_names(**filters, where=conditions)
        else:
            names = store.names(kind, **filters)
        shared = store.shared_run_names() if kind == "runs" else {}
    if as_json:
        print_json(names)
    elif out().is_terminal:
        say(f"[bold]{len(names)} {kind}[/bold]", markup=True)
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
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def show(kind: str, name: str, fmt: str, meta: bool, repetition: int | None, as_json: bool) -> None:
    """The stored document of one config.

    With --meta the output is the export format: `add` takes it back, metadata and all; it also
    says which DaCapo dialect the document is in (0.3.5, main, or either when both write it alike).
    """
    if repetition is not None and kind != "runs":
        raise fail(f"--repetition picks one of the runs DaCapo stored under one name; {kind} have none", 2)
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
                    # which DaCapo writes it: 0.3.5, main, either (both alike) or mixed
                    "dialect": document_dialect(KIND_CLASSES[kind], doc),
                },
            }
            # what `migrate` kept beside it, which the other dialect gets back
            recorded = store.raw_document(kind, name, repetition=repetition).get(META_KEY) or {}
            if recorded.get(STASH_KEY):
                doc[META_KEY][STASH_KEY] = recorded[STASH_KEY]
    doc = _as_lists(doc)  # tuples read as YAML/JSON arrays; `add` restores them
    if fmt == "json" or as_json:
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


def _syntax_error(file: Path, exc: Exception) -> ConfigValidationError:
    """One line: the file, the line and column, and the problem."""
    kind = "JSON" if file.suffix == ".json" else "YAML"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where, problem = f"line {mark.line + 1}, column {mark.column + 1}", exc.problem or exc.context
    elif isinstance(exc, json.JSONDecodeError):
        where, problem = f"line {exc.lineno}, column {exc.colno}", exc.msg
    else:
        where, problem = "", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ConfigValidationError(f"{file}: not valid {kind}{' at ' + where if where else ''}: {problem}")


def _read_documents(file: Path) -> list[dict[str, Any]]:
    from ..config_store.yamlio import DacapoYamlLoader

    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigValidationError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        if file.suffix == ".json":
            docs: Any = json.loads(text) if text.strip() else []
        else:
            docs = [d for d in yaml.load_all(text, Loader=DacapoYamlLoader) if d is not None]
    except (ValueError, yaml.YAMLError) as exc:
        raise _syntax_error(file, exc) from None
    flat: list[Any] = []
    for d in docs if isinstance(docs, list) else [docs]:
        flat += d if isinstance(d, list) else [d]
    for d in flat:
        if not isinstance(d, dict):
            raise ConfigValidationError(f"{file}: expected config mappings, got {type(d).__name__}")
    if not flat:
        raise ConfigValidationError(f"{file}: holds no config documents")
    return flat


def _plan_add(
    files: tuple[Path, ...], kind: str | None, no_verify: bool
) -> tuple[list[tuple[str, Any, str, Any]], list[str]]:
    """(kind, config or document, label, metadata) to store, and the problems found, before any
    store is read."""
    plan: list[tuple[str, Any, str, Any]] = []
    problems: list[str] = []
    for file in files:
        try:
            docs = _read_documents(file)
        except ConfigValidationError as exc:
            problems.append(str(exc))
            continue
        for doc in docs:
            # An exported document carries who stored it: keep that, beside the document.
            meta = doc.pop(META_KEY, None)
            meta = {k: v for k, v in meta.items() if v is not None} if isinstance(meta, dict) else None
            known_kind = _kind_of_document(doc)
            label = f"{file}: {doc.get('name', '?')!r}"
            if known_kind is None and kind is None:
                problems.append(f"{label}: can't tell its kind (no known __type__); pass --kind")
            elif known_kind is None and kind != "runs" and TYPE_KEY not in doc:
                problems.append(f"{label}: has no {TYPE_KEY}, so no class can ever read it; add {TYPE_KEY}")
            elif known_kind is None:
                plan.append((kind, doc, label, meta))  # class not installed: keep the document
            else:
                try:
                    config = converter.structure(doc, KIND_CLASSES[known_kind])
                except ConfigValidationError as exc:
                    problems.append(f"{label}: {exc}")
                    continue
                ok, why = (True, "") if no_verify else config.verify()
                if ok:
                    plan.append((known_kind, config, label, meta))
                else:
                    problems.append(f"{label}: failed verify(): {why}")
    return plan, problems


def _documents_of(store, item_kind: str, item: Any) -> list[tuple[str, dict[str, Any]]]:
    """The documents storing `item` writes (in the registry's DaCapo dialect): a run's parts,
    then the run."""
    if isinstance(item, dict):
        return [(item_kind, config_part(item))]
    doc = store.document_of(item)
    if item_kind != "runs":
        return [(item_kind, doc)]
    return [(part_kind, doc[field]) for field, part_kind in RUN_PARTS.items()] + [("runs", doc)]


def _batch_conflicts(store, plan: list[tuple[str, Any, str, Any]]) -> tuple[list[str], bool]:
    """Documents of the batch that clash with each other or with the store (nothing is written),
    and whether one of them has a name the store can't hold (a usage error)."""
    problems: list[str] = []
    invalid = False
    seen: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
    for item_kind, item, label, _meta in plan:
        try:
            documents = _documents_of(store, item_kind, item)
        except DacapoStoreError as exc:  # what the registry's DaCapo dialect can't express
            problems.append(f"{label}: {exc}")
            continue
        for kind, doc in documents:
            key = (kind, str(doc.get("name")))
            if key in seen:
                other, other_label = seen[key]
                differences = [d for d in diff_documents(other, doc) if d[0]]
                if differences:
                    path, a, b = differences[0]
                    problems.append(
                        f"{label}: {kind}/{key[1]} differs from the one in {other_label} "
                        f"({path}: {a!r} vs {b!r})"
                    )
                continue
            seen[key] = (doc, label)
            try:
                store.check_document(kind, doc)
            except DuplicateNameError as exc:
                problems.append(f"{label}: {exc}")
            except DacapoStoreError as exc:
                invalid = invalid or isinstance(exc, InvalidNameError)
                problems.append(f"{label}: {exc}")
    return problems, invalid


@command(epilog="Example: dacapo-store add experiments/*.yaml")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--kind", type=KIND, help="The kind of documents whose class is not installed here.")
@click.option("--no-verify", is_flag=True, help="Store configs even if verify() fails.")
def add(files: tuple[Path, ...], kind: str | None, no_verify: bool) -> None:
    """Store the config documents in YAML or JSON FILES; all are checked before any is written.

    The whole batch is checked first: every document structures and verifies, none clashes with
    another of the batch or with a stored one. A run also stores its task, architecture, trainer
    and datasplit. A document whose class is not installed is stored as it is when --kind names
    its kind (it still needs a __type__).
    """
    plan, problems = _plan_add(files, kind, no_verify)
    invalid = False
    with settings().config_store() as store:
        if not problems:
            problems, invalid = _batch_conflicts(store, plan)
        if problems:
            for p in problems:
                fail(p)
            raise fail(f"nothing stored: {len(problems)} problem(s)", 2 if invalid else 1)
        for doc_kind, item, _label, meta in plan:
            if isinstance(item, dict):
                written = store.put_document(doc_kind, item, metadata=meta)
                say(f"{'stored' if written else 'unchanged'} {doc_kind}/{item['name']!r} (as a document)")
            else:
                written = store.store(item, verify=not no_verify, metadata=meta)
                say(f"{'stored' if written else 'unchanged'} {doc_kind}/{item.name!r}")


@command(epilog="Example: dacapo-store diff runs run_a run_b")
@click.argument("kind", type=KIND, metavar="KIND")
@click.argument("a")
@click.argument("b")
@json_option
def diff(kind: str, a: str, b: str, as_json: bool) -> None:
    """The fields where two stored configs differ; exit 1 when they differ."""
    with settings().config_store() as store:
        differences = diff_documents(store.get_document(kind, a), store.get_document(kind, b))
    differences = [d for d in differences if d[0] != "name"]
    if as_json:
        print_json(
            {
                "kind": kind,
                "a": a,
                "b": b,
                "same": not differences,
                "differences": [
                    {"field": p, "a": _jsonable(x), "b": _jsonable(y)} for p, x, y in differences
                ],
            }
        )
    elif not differences:
        say(f"{kind}/{a!r} and {kind}/{b!r} are the same but for the name")
    else:
        table(
            ["field", a, b],
            [(p, json.dumps(x, default=repr), json.dumps(y, default=repr)) for p, x, y in differences],
        )
    if differences:
        raise click.exceptions.Exit(1)


def _jsonable(value: Any) -> Any:
    """A value for JSON output; an absent field is null."""
    return value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else None


@command(epilog="Example: dacapo-store delete runs old_run --with-weights --yes")
@click.argument("kind", type=KIND, metavar="KIND")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete even if stored runs start from it or use it.")
@click.option("--with-weights", is_flag=True, help="For a run: also delete its checkpoints and scores.")
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation (needed when not in a terminal).")
def delete(kind: str, name: str, force: bool, with_weights: bool, yes: bool) -> None:
    """Delete one config; asks first in a terminal.

    A run another run starts from, or a task, architecture, trainer or datasplit that stored runs
    use, is refused unless --force. Deleting a run leaves its checkpoints and scores in the weights
    store unless --with-weights.
    """
    if with_weights and kind != "runs":
        raise click.UsageError("--with-weights goes with deleting runs")
    s = settings()
    with s.config_store() as store:
        store.get_document(kind, name)  # a missing name fails before asking
        if not force:
            store.check_deletable(kind, name)  # refused before asking
        weights = s.weights_store(must_exist=with_weights) if kind == "runs" else None
        what = f"{kind}/{name!r}" + (" and its checkpoints and scores" if with_weights else "")
        confirm(f"Delete {what} from {store.describe()}?", yes)
        store.delete(kind, name, force=force)
    say(f"deleted {kind}/{name!r}")
    if weights is None:
        return
    if with_weights:
        from ..dacapo_adapter.validation import validation_arrays

        removed = weights.delete_run(name)
        validation_arrays(weights).delete(name)  # DaCapo's whole validation arrays (the adapter's)
        say(f"deleted {len(removed)} checkpoint(s) and the scores of run {name} from {weights.where}")
    elif weights.read_index(name).checkpoints or weights.read_index(name).scores:
        say(
            f"the checkpoints and scores of run {name} remain in {weights.where} "
            f"({len(weights.iterations(name))} checkpoint(s)); delete them with --with-weights"
        )


def _transfer(source, target, kinds: list[str], verb: str, weights: tuple | None, as_json: bool) -> None:
    src_weights, dst_weights = weights if weights is not None else (None, None)
    total = transfer_total(source, kinds, src_weights)
    with progress(f"{verb} {total} documents and blobs", total) as advance:
        report = transfer(
            source, target, kinds, source_weights=src_weights, target_weights=dst_weights, on_step=advance
        )
    if as_json:
        print_json(report.as_json())
    else:
        _say_summary(report, verb, source, target, dst_weights)
    if not report.ok:
        raise click.exceptions.Exit(1)


def _say_summary(report: TransferReport, verb: str, source, target, dst_weights) -> None:
    c = report.configs
    say(
        f"{verb}: {source.describe()} -> {target.describe()}: {len(c.copied)} copied, "
        f"{len(c.unchanged)} already there, {len(c.conflicts)} conflicts, "
        f"{len(c.failed)} failed"
    )
    if dst_weights is not None:
        copied = sum(len(r.checkpoints_copied) for r in report.runs)
        unchanged = sum(len(r.checkpoints_unchanged) for r in report.runs)
        size = sum(r.bytes_copied for r in report.runs)
        scores = sum(r.scores_copied for r in report.runs)
        pins = sum(r.pins_copied for r in report.runs)
        say(
            f"weights of {len(report.runs)} run(s) -> {dst_weights.where}: {copied} checkpoint(s) copied "
            f"({size / 1e6:.2f} MB, checksums verified), {unchanged} already there, {scores} score(s) "
            f"and {pins} pin(s) copied"
        )
    for kind, name, why in c.conflicts:
        fail(f"conflict {kind}/{name!r}, target kept as it is: {why}")
    for kind, name, why in c.failed:
        fail(f"failed {kind}/{name!r}: {why}")
    for r in report.runs:
        for why in r.conflicts:
            fail(f"conflict in the weights of run {r.run!r}, target kept as it is: {why}")
        for why in r.failed:
            fail(f"failed in the weights of run {r.run!r}: {why}")
        if r.dacapo_not_copied:
            fail(f"run {r.run!r}: DaCapo's own {', '.join(r.dacapo_not_copied)} were not copied")
    if any(r.dacapo_not_copied for r in report.runs):
        say(
            "DaCapo's own checkpoints, scores and best files stay where DaCapo keeps them: bring them "
            "into the target with `dacapo-store import-dacapo --from SOURCE --to TARGET`"
        )


configs_only_option = click.option(
    "--configs-only", is_flag=True, help="Copy config documents only, no checkpoints, scores or pins."
)


@command(epilog="Example: dacapo-store copy --from files:/data/dacapo --to mongodb://db:27017 --db-to dacapo")
@click.option("--from", "source", required=True, metavar="STORE", help="files:PATH or a mongodb:// URI.")
@click.option("--to", "target", required=True, metavar="STORE", help="files:PATH or a mongodb:// URI.")
@click.option("--db-from", metavar="NAME", help="Database of a MongoDB source.")
@click.option("--db-to", metavar="NAME", help="Database of a MongoDB target.")
@kinds_option
@configs_only_option
@json_option
def copy(
    source: str,
    target: str,
    db_from: str | None,
    db_to: str | None,
    kinds: str | None,
    configs_only: bool,
    as_json: bool,
) -> None:
    """Copy a registry: documents, and the checkpoints, scores and pins of the runs copied.

    Weights go with the store: files:PATH keeps them under PATH, MongoDB in its GridFS. Reruns
    are no-ops; conflicts are reported and kept as they are at the target (exit 1).
    """
    chosen = _kinds(kinds)
    s = settings()
    with s.config_store(source, db_from) as src, s.config_store(target, db_to, create=True) as dst:
        weights = None if configs_only else (s.weights_store(source, db_from), s.weights_store(target, db_to))
        _transfer(src, dst, chosen, "copy", weights, as_json)


@command("export", epilog="Example: dacapo-store --store mongodb://db:27017 export backup/")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@kinds_option
@configs_only_option
@json_option
def export(directory: Path, kinds: str | None, configs_only: bool, as_json: bool) -> None:
    """Back up the registry into DIRECTORY (the files layout): configs, checkpoints, scores, pins.

    Open the result with --store files:DIRECTORY.
    """
    s = settings()
    spec = f"files:{directory}"
    with s.config_store() as src, s.config_store(spec, create=True) as dst:
        weights = None if configs_only else (s.weights_store(must_exist=False), s.weights_store(spec))
        _transfer(src, dst, _kinds(kinds), "export", weights, as_json)


@command("import", epilog="Example: dacapo-store --store mongodb://db:27017 import backup/")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@kinds_option
@configs_only_option
@json_option
def import_(directory: Path, kinds: str | None, configs_only: bool, as_json: bool) -> None:
    """Store everything of DIRECTORY (a files-layout registry holding configs/) here."""
    if not (directory / "configs").is_dir():
        raise fail(f"{directory} has no configs/ folder: not a files-layout registry", 2)
    s = settings()
    spec = f"files:{directory}"
    with s.config_store(spec) as src, s.config_store(create=True) as dst:
        weights = None if configs_only else (s.weights_store(spec), s.weights_store(must_exist=False))
        _transfer(src, dst, _kinds(kinds), "import", weights, as_json)


def _document_problems(
    store, kind: str, advance, dialects: dict[str, list[tuple[str, str]]] | None = None
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """(checked, problems, notes) of one kind's documents.

    Problems: unreadable, invalid name, not structuring, misnamed, hand-edited, twins, damaged
    metadata. Notes: what reads only leniently (as DaCapo reads other 0.3.x versions' documents),
    runs DaCapo stored once per repetition under one name, runs DaCapo main stored without a name,
    documents without metadata (DaCapo's own: who stored them is unknown) and metadata written
    before records had a checksum. `dialects` collects (kind, name) per DaCapo dialect of the
    documents.
    """
    problems: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    checked = 0
    seen: dict[str, list[Any]] = {}
    edited: list[str] = []

    def problem(name: str, text: str) -> None:
        problems.append({"kind": kind, "name": name, "iteration": None, "problem": text})

    bad_meta, unchecked_meta = store.metadata_problems(kind)
    damaged_meta = {name for name, _ in bad_meta}
    for name, text in bad_meta:
        problem(name, text)
    without_meta: list[str] = []
    for name, doc in store.documents(kind):
        advance()
        checked += 1
        invalid = store.name_problem(kind, name)
        if invalid is not None:
            problem(name, f"invalid name: {invalid}")
            continue
        if isinstance(doc, Exception):
            problem(name, str(doc))
            continue
        inner = doc.get("name")
        seen.setdefault(str(inner), []).append(doc.get("repetition"))
        if inner is None and kind == "runs" and name == "None":
            notes.append({"kind": kind, "name": name, "note": NAMELESS_NOTE})
        elif inner != name:
            problem(name, f"its name field is {inner!r}, not {name!r} (the name it is stored under)")
        if dialects is not None:
            dialect = document_dialect(KIND_CLASSES[kind], doc)
            if dialect != MIXED:  # a mixed one fails to structure below, naming its fields
                dialects.setdefault(dialect, []).append((kind, name))
        try:
            _, read_notes = converter.structure_lenient(doc, KIND_CLASSES[kind])
        except ConfigValidationError as exc:
            problem(name, str(exc))
        else:
            notes += [{"kind": kind, "name": name, "note": f"read leniently: {note}"} for note in read_notes]
        try:
            meta = store.metadata(kind, name)
        except DacapoStoreError:
            meta = None
        if meta is not None and meta.content_hash != content_hash(doc):
            edited.append(name)
        elif meta is not None and meta.created_by is None and name not in damaged_meta:
            without_meta.append(name)
    twins = {name for name, reps in seen.items() if len(reps) > 1}
    for name in edited:
        if name not in twins:  # a twin's metadata may be its sibling's: the hash can't tell
            problem(
                name, "its content differs from what was stored (edited by hand?): the content hash changed"
            )
    for name in sorted(twins):
        reps = seen[name]
        if kind == "runs" and None not in reps and len(set(reps)) == len(reps):
            # DaCapo's layout: one run per (name, repetition); readable with `repetition=`
            notes.append({"kind": kind, "name": name, "note": _repetitions_note(sorted(reps))})
        else:
            problem(name, f"{len(reps)} documents share this name")
    if without_meta:
        # ours always land after their metadata: these are DaCapo's, written by hand, or copies
        notes.append(
            {
                "kind": kind,
                "name": "",
                "note": f"{len(without_meta)} document(s) without metadata (who stored them is unknown: "
                f"written by DaCapo or by hand, or copied from such): {_names_note(without_meta)}",
            }
        )
    if unchecked_meta:
        notes.append(
            {
                "kind": kind,
                "name": "",
                "note": f"{len(unchecked_meta)} metadata record(s) without a checksum (written before "
                f"records had one): {_names_note(unchecked_meta)}",
            }
        )
    return checked, problems, notes


NAMELESS_NOTE = (
    "stored without a name (name: null, which DaCapo main allows), listed as 'None'; DaCapo can't "
    "look it up by name: store it again under a name"
)


def _dialect_notes(store, dialects: dict[str, list[tuple[str, str]]]) -> list[dict[str, Any]]:
    """Notes on the DaCapo dialects present: a registry holding both, and each document not in
    the dialect the registry writes; nothing for a registry of DaCapo 0.3.5 documents only."""
    if not dialects.get("main"):
        return []
    writes = store.dialect()
    counts = ", ".join(f"{len(dialects.get(d, []))} DaCapo {d}" for d in ("0.3.5", "main"))
    either = len(dialects.get("either", []))
    notes = []
    if dialects.get("0.3.5"):
        notes.append(
            {
                "kind": "registry",
                "name": store.describe(),
                "note": f"mixes DaCapo dialects: {counts} documents ({either} either); it writes DaCapo "
                f"{writes}'s: `dacapo-store migrate --to {writes}` rewrites them into one",
            }
        )
    else:
        notes.append(
            {
                "kind": "registry",
                "name": store.describe(),
                "note": f"holds DaCapo main documents ({counts}, {either} either); "
                f"it writes DaCapo {writes}'s",
            }
        )
    for dialect in ("0.3.5", "main"):
        if dialect != writes:
            notes += [
                {
                    "kind": kind,
                    "name": name,
                    "note": f"a DaCapo {dialect} document (the registry writes {writes}'s)",
                }
                for kind, name in dialects.get(dialect, [])
            ]
    return notes


def _names_note(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _run_problems(store, weights) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(problems, notes) of the runs: parts or start run not stored, a start criterion no score
    uses are problems; a start our `Start` can't apply (a COSEM model, a DaCapo criterion outside
    our criterion rule) is a note."""
    problems: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    names = {kind: set(store.names(kind)) for kind in ("runs", *RUN_PARTS.values())}
    for name, doc in store.documents("runs"):
        if isinstance(doc, Exception):
            continue

        def problem(text: str, run: str = name) -> None:
            problems.append({"kind": "runs", "name": run, "iteration": None, "problem": text})

        for field, kind in RUN_PARTS.items():
            part = (doc.get(field) or {}).get("name") if isinstance(doc.get(field), Mapping) else None
            if part is not None and part not in names[kind]:
                problem(f"its {field} {part!r} is not stored in {kind}")
        start = doc.get("start_config")
        if not isinstance(start, Mapping):
            continue
        if start.get(TYPE_KEY, "StartConfig") != "StartConfig":
            # e.g. CosemStartConfig: its `run` names a published COSEM model, not a run here
            notes.append({"kind": "runs", "name": name, "note": f"starts from a {start[TYPE_KEY]}"})
            continue
        parent, criterion = start.get("run"), start.get("criterion")
        if parent not in names["runs"]:
            problem(f"it starts from run {parent!r}, which is not in this store")
            continue
        try:
            kind, _ = start_rule(criterion)
        except (ValueError, TypeError) as exc:
            notes.append(
                {"kind": "runs", "name": name, "note": f"its start criterion can't be applied here: {exc}"}
            )
            continue
        if kind != "criterion" or weights is None:
            continue
        criteria = weights.criteria(parent)
        if not criteria:  # not validated yet: nothing to check the criterion against
            notes.append(
                {
                    "kind": "runs",
                    "name": name,
                    "note": f"it starts from run {parent!r} by {criterion!r}, which has no scores yet",
                }
            )
        elif criterion not in criteria:
            problem(
                f"it starts from run {parent!r} by {criterion!r}, but no score of {parent!r} uses "
                f"that criterion in {weights.where} (it has: {', '.join(criteria)})"
            )
    return problems, notes


def weights_problems(weights, runs: list[str] | None, advance=lambda *_: None) -> tuple[int, list[dict]]:
    """`weights.verify` over runs (default: all); (checkpoints checked, problems as dicts): each
    checkpoint's blobs, and every line of each run's index and training stats."""
    problems: list[dict[str, Any]] = []
    checked = 0
    for run in weights.own_run_names() if runs is None else runs:
        checked += len(weights.read_index(run).checkpoints)
        for p in weights.verify(run):
            problems.append(
                {"kind": "weights", "name": p.run, "iteration": p.iteration, "problem": p.problem}
            )
        advance()
    return checked, problems


def journal_findings(weights, runs: Iterable[str]) -> tuple[list[dict], list[dict]]:
    """(problems, notes) of the runs' index and training stats as stored (`journal_problems`):
    damaged lines are problems, lines older than checksums notes."""
    problems: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for run in runs:
        try:
            found, noted = weights.journal_problems(run)
        except InvalidNameError:
            continue  # a run document's invalid name: reported with the documents

        problems += [{"kind": "weights", "name": run, "iteration": None, "problem": p} for p in found]
        notes += [{"kind": "weights", "name": run, "note": n} for n in noted]
    return problems, notes


@command(epilog="Example: dacapo-store check --weights --json")
@kinds_option
@click.option("--weights", "with_weights", is_flag=True, help="Also verify every checkpoint's blobs.")
@json_option
def check(kinds: str | None, with_weights: bool, as_json: bool) -> None:
    """Check every stored document and run; list the problems with their reason (exit 1 if any).

    Documents: readable, structure as their class, name field equal to the name stored under,
    content equal to what was stored (its content hash), metadata sound, no two sharing a name.
    Runs: parts and start run stored, start criterion used by the start run's scores, every line
    of their index and training stats readable (each carries a checksum). Notes: a registry holding
    DaCapo main documents (and which documents are not in the dialect it writes). --weights: also
    every blob present, of its size and checksum (as `weights verify`).
    """
    chosen = _kinds(kinds)
    s = settings()
    problems: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    checked = 0
    with s.config_store() as store:
        total = sum(len(store.names(k)) for k in chosen)
        dialects: dict[str, list[tuple[str, str]]] = {}
        with progress(f"check {total} documents", total) as advance:
            for kind in chosen:
                n, found, noted = _document_problems(store, kind, advance, dialects)
                checked += n
                problems += found
                notes += noted
        notes = _dialect_notes(store, dialects) + notes
        weights = None
        try:
            weights = s.weights_store()
        except (NoRegistryError, DacapoStoreError, ValueError) as exc:
            if with_weights:
                raise
            click.echo(f"warning: start criteria not checked: {exc}", err=True)
        if "runs" in chosen:
            found, noted = _run_problems(store, weights)
            problems += found
            notes += noted
        run_names = store.names("runs") if "runs" in chosen else []
    checkpoints = 0
    if weights is not None:
        # every run's index and training stats are read line by line: a damaged line is a problem
        runs = sorted(set(weights.journal_runs()) | set(run_names))
        found, noted = journal_findings(weights, runs)
        problems += found
        notes += noted
        if with_weights:
            runs = weights.own_run_names()
            with progress(f"verify {len(runs)} runs", len(runs)) as advance:
                checkpoints, found = weights_problems(weights, runs, advance)
            problems += [p for p in found if p["iteration"] is not None]  # the rest: just above
    if as_json:
        print_json({"documents": checked, "checkpoints": checkpoints, "problems": problems, "notes": notes})
    elif notes:
        table(["kind", "name", "note"], [(n["kind"], n["name"], n["note"]) for n in notes])
    if problems and not as_json:
        table(
            ["kind", "name", "problem"],
            [
                (
                    p["kind"],
                    p["name"] if p["iteration"] is None else f"{p['name']}@{p['iteration']}",
                    p["problem"],
                )
                for p in problems
            ],
        )
    if problems:
        raise fail(
            f"{len(problems)} problem(s) in {checked} documents"
            + (f" and {checkpoints} checkpoints" if with_weights else "")
        )
    if not as_json:
        extra = f" and {checkpoints} checkpoints verify" if with_weights else ""
        noted = f" ({len(notes)} notes)" if notes else ""
        say(f"all {checked} documents check out{extra}{noted}")


@command(epilog="Example: dacapo-store lineage finetune_run")
@click.argument("run")
@json_option
def lineage(run: str, as_json: bool) -> None:
    """The chain of starts behind RUN, and the runs that start from it."""
    with settings().config_store() as store:
        result = build_lineage(store, run)
    if as_json:
        print_json(
            {
                "run": result.run,
                "ancestors": [
                    {"run": a.run, "criterion": a.criterion, "depth": a.depth, "in_store": a.in_store}
                    for a in result.ancestors
                ],
                "cycle": result.cycle,
                "descendants": [
                    {"run": d.run, "criterion": d.criterion, "depth": d.depth} for d in result.descendants
                ],
            }
        )
        return
    lines = [run]
    for a in result.ancestors:
        note = "" if a.in_store else "  [not in this store]"
        lines.append(f"{'  ' * a.depth}<- {a.run} (by {a.criterion}){note}")
    if result.cycle:
        lines.append(f"{'  ' * (len(result.ancestors) + 1)}(a cycle)")
    say("\n".join(lines) if len(lines) > 1 else f"{run} starts from scratch")
    if result.descendants:
        say(f"runs that start from {run}:")
        for d in result.descendants:
            say(f"{'  ' * d.depth}-> {d.run} (by {d.criterion})")
    else:
        say(f"no stored run starts from {run}")


__all__ = ["app"]
