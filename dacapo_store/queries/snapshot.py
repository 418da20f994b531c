"""The run catalog's snapshot: its run summaries and bests kept between servers, in the per-user cache.

On a files registry a server starts from the snapshot the last one saved and reads again only the
runs whose signatures changed since: the stat of the run file and of its metadata file, and the
signature of every other file its summary was read from (`weights/inputs.py`: our journals,
DaCapo's checkpoints, best files and stats). It lives in
`$XDG_CACHE_HOME/dacapo_store/run-catalog/<hash of the two folders' paths>.json`, never in the
registry; it is a cache: deleting it costs one full read at the next start, and one that can't be
read (damaged, written by another version, or for other folders) is ignored with a warning and
written anew. Two servers saving at once each rename a complete file into place; the last wins.

Layout: one JSON object, the runs in parallel arrays (flat arrays parse many times faster than an
object per run). RunSummary and Best are written generically, every attrs field by name, each
summary field as a column with a codec chosen from its values ("plain" JSON values, "datetime" as
ISO text, "tuple" as arrays), so a field added to RunSummary travels without a change here; a
snapshot whose fields differ from the running code's is one written by another version. What
repeats from run to run (a best's criterion and dataset, a run's set of directions, the names in
a `checkpoints/` folder) is written once in a table and named by its position there.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from ..fsutil import write_temp
from ..weights.inputs import InputState
from .runs import Best, RunSummary

log = logging.getLogger(__name__)

FORMAT = "dacapo_store.run_catalog"
VERSION = 1
_PLAIN = (str, int, float, bool)

#: (summary, bests by (criterion, dataset or None), directions by criterion) of one run
Entry = tuple[RunSummary, Mapping[tuple[str, str | None], Best], Mapping[str, bool | None]]


@attrs.define
class Snapshot:
    """What a catalog over a FileConfigStore and a LocalWeightsStore needs to start where it left."""

    configs: str
    weights: str
    entries: dict[str, Entry]
    #: run name -> stat (mtime_ns, size, inode) of its run file, and of its metadata file (or None)
    run_files: dict[str, tuple[int, int, int]]
    meta_files: dict[str, tuple[int, int, int] | None]
    #: (mtime_ns or -1, inode) of the runs folder and of the runs' metadata folder, or None
    runs_folder: tuple[int, int] | None
    meta_folder: tuple[int, int] | None
    inputs: InputState


def summary_fields() -> list[str]:
    return [f.name for f in attrs.fields(RunSummary) if f.init]


def best_fields() -> list[str]:
    return [f.name for f in attrs.fields(Best) if f.init]


def dumps(snap: Snapshot) -> bytes:
    """The snapshot file's bytes; TypeError if a summary field holds a value it can't write."""
    names = list(snap.entries)
    fields, bfields = summary_fields(), best_fields()
    columns, codecs = [], []
    for field in fields:
        values = [getattr(snap.entries[n][0], field) for n in names]
        codec = _codec(field, values)
        codecs.append(codec)
        if codec == "datetime":
            values = [None if v is None else v.isoformat() for v in values]
        columns.append(values)  # tuples are written as JSON arrays
    # what repeats from run to run is written once, in a table, and named by its position there
    best_keys: dict[tuple[str, str | None], int] = {}
    direction_sets: dict[tuple, int] = {}
    listed_names: dict[tuple[str, ...], int] = {}
    bests, directions = [], []
    for n in names:
        _, run_bests, run_directions = snap.entries[n]
        flat: list[Any] = []
        for key, best in run_bests.items():
            flat += [best_keys.setdefault(key, len(best_keys)), *(getattr(best, f) for f in bfields)]
        bests.append(flat)
        items = tuple(x for item in run_directions.items() for x in item)
        directions.append(direction_sets.setdefault(items, len(direction_sets)))
    inputs = snap.inputs
    listings = []
    for n in names:
        per_root = []
        for root in inputs.roots:
            listing = inputs.listings.get(root, {}).get(n)
            if listing is not None:
                listing = [*listing[:2], listed_names.setdefault(tuple(listing[2]), len(listed_names))]
            per_root.append(listing)
        listings.append(per_root)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "configs": snap.configs,
        "weights": snap.weights,
        "roots": inputs.roots,
        "summary_fields": fields,
        "codecs": codecs,
        "best_fields": bfields,
        "runs_folder": snap.runs_folder,
        "meta_folder": snap.meta_folder,
        "stats": {kind: [m, i, sorted(names_)] for kind, (m, i, names_) in inputs.stats.items()},
        "names": names,
        "columns": columns,
        "best_keys": list(best_keys),
        "bests": bests,
        "direction_sets": list(direction_sets),
        "directions": directions,
        "listed_names": list(listed_names),
        "run_files": [snap.run_files.get(n) for n in names],
        "meta_files": [snap.meta_files.get(n) for n in names],
        "inputs": [inputs.sigs.get(n) for n in names],
        "listings": listings,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def loads(data: bytes, configs: str, weights: str) -> Snapshot:
    """A snapshot from a file's bytes; ValueError (or KeyError, TypeError, ...) if it is not one
    written for these folders by this version."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError("not a run catalog snapshot of this version")
    if (doc["configs"], doc["weights"]) != (configs, weights):
        raise ValueError(f"made for other folders ({doc['configs']}, {doc['weights']})")
    fields, codecs = doc["summary_fields"], doc["codecs"]
    if fields != summary_fields() or doc["best_fields"] != best_fields():
        raise ValueError("written by another version (other summary fields)")
    names = doc["names"]
    n = len(names)
    per_run = ("bests", "directions", "run_files", "meta_files", "inputs", "listings")
    if len(doc["columns"]) != len(fields) or any(len(doc[k]) != n for k in per_run):
        raise ValueError("arrays of different lengths")
    columns = []
    for values, codec in zip(doc["columns"], codecs, strict=True):
        if len(values) != n:
            raise ValueError("arrays of different lengths")
        if codec == "datetime":
            values = [None if v is None else datetime.fromisoformat(v) for v in values]
        elif codec == "tuple":
            values = [_tuple_of(v) for v in values]
        elif codec != "plain":
            raise ValueError(f"unknown codec {codec!r}")
        columns.append(values)
    width = 1 + len(best_fields())
    best_keys = [(criterion, dataset) for criterion, dataset in doc["best_keys"]]
    # read-only once loaded: runs with the same directions share one mapping
    direction_sets = [dict(zip(d[::2], d[1::2], strict=True)) for d in doc["direction_sets"]]
    made: dict[tuple, Best] = {}
    entries: dict[str, Entry] = {}
    positional = all(not f.kw_only for f in attrs.fields(RunSummary) if f.init)
    rows = zip(*columns, strict=True) if columns else iter([()] * n)
    for name, row, flat, dirs in zip(names, rows, doc["bests"], doc["directions"], strict=True):
        summary = RunSummary(*row) if positional else RunSummary(**dict(zip(fields, row, strict=True)))
        if summary.name != name:
            raise ValueError(f"summary of {summary.name!r} filed under {name!r}")
        run_bests = {}
        for j in range(0, len(flat), width):
            values = tuple(flat[j + 1 : j + width])
            best = made.get(values)  # Best is frozen: equal ones are shared (a run's best over all
            if best is None:  # datasets is its best on its one dataset, most of the time)
                best = made[values] = Best(*values)
            run_bests[best_keys[flat[j]]] = best
        entries[name] = (summary, run_bests, direction_sets[dirs])
    roots = [str(root) for root in doc["roots"]]
    inputs = InputState(roots)
    inputs.stats = {kind: (m, i, frozenset(names_)) for kind, (m, i, names_) in doc["stats"].items()}
    inputs.listings = {root: {} for root in roots}
    listed_names = [tuple(names_) for names_ in doc["listed_names"]]
    for name, sig, listings in zip(names, doc["inputs"], doc["listings"], strict=True):
        inputs.sigs[name] = tuple(sig)
        for root, listing in zip(roots, listings, strict=True):
            # (mtime, inode, names); read, never compared whole
            inputs.listings[root][name] = (
                None if listing is None else (*listing[:2], listed_names[listing[2]])
            )
    return Snapshot(
        configs=configs,
        weights=weights,
        entries=entries,
        run_files={n: tuple(s) for n, s in zip(names, doc["run_files"], strict=True)},
        meta_files={n: _tuple(s) for n, s in zip(names, doc["meta_files"], strict=True)},
        runs_folder=_tuple(doc["runs_folder"]),
        meta_folder=_tuple(doc["meta_folder"]),
        inputs=inputs,
    )


def load(file: Path, configs: str, weights: str) -> Snapshot | None:
    """The snapshot in `file`, or None (absent; unreadable or foreign, with a warning)."""
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("run catalog snapshot %s can't be read (%s); reading the registry", file, exc)
        return None
    collecting = gc.isenabled()
    gc.disable()  # millions of new objects, none garbage: collections would double the time
    try:
        return loads(data, configs, weights)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        log.warning("run catalog snapshot %s ignored and rebuilt: %s", file, exc)
        return None
    finally:
        if collecting:
            gc.enable()


def save(file: Path, snap: Snapshot) -> bool:
    """Write the snapshot: a temporary file renamed into place (best-effort: False if it can't)."""
    try:
        data = dumps(snap)
    except (TypeError, ValueError) as exc:
        log.warning("run catalog snapshot not saved: %s", exc)
        return False
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        os.replace(write_temp(file.parent, file.name, [data], fsync=False), file)
    except OSError as exc:
        log.debug("run catalog snapshot not saved in %s: %s", file.parent, exc)
        return False
    return True


def _codec(field: str, values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if all(issubclass(k, _PLAIN) for k in kinds):
        return "plain"
    if all(issubclass(k, datetime) for k in kinds):
        return "datetime"
    if all(issubclass(k, tuple) for k in kinds) and all(_plain_tuple(v) for v in values if v is not None):
        return "tuple"
    types = ", ".join(sorted(k.__name__ for k in kinds))
    raise TypeError(f"RunSummary.{field} holds {types}: no codec for it")


def _plain_tuple(value: tuple) -> bool:
    """A tuple of plain values, None or such tuples (e.g. the (kind, name) pairs of RunSummary.uses)."""
    return all(
        x is None or isinstance(x, _PLAIN) or (isinstance(x, tuple) and _plain_tuple(x)) for x in value
    )


def _tuple_of(value: Any) -> Any:
    """A JSON array read back as the tuple it was written from, nested ones too."""
    return tuple(_tuple_of(x) for x in value) if isinstance(value, list) else value


def _tuple(value: list | None) -> tuple | None:
    return None if value is None else tuple(value)
