"""The run catalog's saved copy: its config fields, digests and change tokens, in the per-user cache.

On a files registry a catalog (a dashboard, a command) starts from the copy the last one saved and
reads again only the runs whose signatures changed since: the stat of each run file and metadata
file (`FileConfigStore.changes_since`) and of every file a run's digest is read from
(`weights/inputs.py`). It lives in `$XDG_CACHE_HOME/dacapo_store/run-catalog/<hash of the two
folders' paths>.json`, never in the registry. It is a cache of the catalog, never its authority:
what disagrees with the files is read again, deleting it costs one cold build (from the digests the
writers keep beside each journal), and one that can't be read (damaged, written by another
version, for other folders) is ignored with a warning and written anew. Two processes saving at
once each rename a complete file into place; the last wins.

Layout: one JSON object, the runs in parallel arrays (flat arrays parse many times faster than an
object per run); what repeats from run to run (a best's criterion and dataset, a set of
directions, the names in a `checkpoints/` folder) is written once in a table and named by its
position there.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from ..config_store.files import FilesToken
from ..fsutil import write_temp
from ..weights.best import Choice
from ..weights.digest import RunDigest
from ..weights.inputs import InputState
from .runs import config_fields, shared_uses

log = logging.getLogger(__name__)

FORMAT = "dacapo_store.run_catalog"
VERSION = 2
_PLAIN = (str, int, float, bool)
#: The config fields of a run (see `runs.config_fields`), plus what an unreadable document has.
CONFIG_KEYS = (*config_fields("", None, None), "config_problem")
_intern = sys.intern


@attrs.define
class Saved:
    """What a catalog over a FileConfigStore (or none) and a LocalWeightsStore needs to start again."""

    configs: str
    weights: str
    config_token: Any
    config_fields: dict[str, dict]
    weights_token: Any
    digests: Mapping[str, RunDigest]


def dumps(saved: Saved) -> bytes:
    """The file's bytes; TypeError if something can't be written (a token of another store)."""
    return b"".join(dump_chunks(saved))


def dump_chunks(saved: Saved) -> Iterator[bytes]:
    """The file's bytes in pieces of at most a few thousand runs each, so writing 100,000 runs
    never holds the whole text (it would double a cold build's peak memory). TypeError, raised
    before the first piece, if something can't be written (a token of another store)."""
    return _encode(_document(saved))


def _document(saved: Saved) -> dict[str, Any]:
    token = saved.config_token
    if token is not None and not isinstance(token, FilesToken):
        raise TypeError(f"no codec for a config token {type(token).__name__}")
    inputs = saved.weights_token
    if not isinstance(inputs, InputState):
        raise TypeError(f"no codec for a weights token {type(inputs).__name__}")
    names = list(saved.config_fields)
    columns, codecs = [], []
    for key in CONFIG_KEYS:
        values = [saved.config_fields[n].get(key) for n in names]
        codec = _codec(key, values)
        codecs.append(codec)
        if codec == "datetime":
            values = [None if v is None else v.isoformat() for v in values]
        columns.append(values)
    files = None
    if token is not None:
        tnames = list(token.files)
        files = {
            "kind": token.kind,
            "folder": token.folder,
            "meta_folder": token.meta_folder,
            "names": tnames,
            "files": [token.files[n] for n in tnames],
            "metas": [token.metas.get(n) for n in tnames],
        }
    dnames = list(saved.digests)
    best_keys: dict[tuple[str, str | None], int] = {}
    direction_sets: dict[tuple, int] = {}
    dataset_sets: dict[tuple, int] = {}

    def rows() -> Iterator[list]:
        # made as they are written: the tables of keys and sets fill meanwhile (written after)
        for n in dnames:
            d = saved.digests[n]
            flat: list[Any] = []
            for key, b in d.bests.items():
                flat += [
                    best_keys.setdefault(key, len(best_keys)),
                    b.iteration,
                    b.value,
                    int(b.pinned),
                    int(b.loadable),
                ]
            dirs = tuple(x for item in d.directions.items() for x in item)
            yield [
                flat,
                direction_sets.setdefault(dirs, len(direction_sets)),
                dataset_sets.setdefault(d.datasets, len(dataset_sets)),
                d.checkpoints,
                d.latest_checkpoint,
                d.scored_until,
                d.checkpoint_time,
                [[it, p] for it, p in d.damaged.items()] if d.damaged else None,
                d.problem,
                d.trained_until,
                d.stats_written,
            ]

    listed_names: dict[tuple[str, ...], int] = {}
    listings = []
    for n in dnames:
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
        "configs": saved.configs,
        "weights": saved.weights,
        "config_token": files,
        "config_keys": list(CONFIG_KEYS),
        "codecs": codecs,
        "names": names,
        "columns": columns,
        "roots": inputs.roots,
        "complete": inputs.complete,
        "stats": {kind: [m, i, sorted(ns)] for kind, (m, i, ns) in inputs.stats.items()},
        "folders": {root: [list(sig), sorted(ns)] for root, (sig, ns) in inputs.folders.items()},
        "swept": [n for n in inputs.sigs if n not in saved.digests],
        "swept_sigs": [inputs.sigs[n] for n in inputs.sigs if n not in saved.digests],
        "digest_names": dnames,
        "digests": _Stream(rows()),
        "best_keys": _Later(lambda: list(best_keys)),
        "direction_sets": _Later(lambda: list(direction_sets)),
        "dataset_sets": _Later(lambda: list(dataset_sets)),
        "sigs": [inputs.sigs.get(n) for n in dnames],
        "listed_names": list(listed_names),
        "listings": listings,
    }
    return doc


#: How many items of a long array are encoded at once.
_SLICE = 4096


class _Stream:
    """An array written as its items are made, `_SLICE` at a time (never all held at once)."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items


class _Later:
    """A value made when it is written (a table that the items written before it filled)."""

    def __init__(self, make: Any) -> None:
        self.make = make


def _encode(value: Any) -> Iterator[bytes]:
    """`value` as compact JSON, long arrays (and objects and arrays holding them) piece by piece."""
    if isinstance(value, _Later):
        value = value.make()
    if isinstance(value, _Stream):
        yield b"["
        first = True
        while batch := list(itertools.islice(value.items, _SLICE)):
            yield (b"" if first else b",") + json.dumps(batch, separators=(",", ":")).encode()[1:-1]
            first = False
        yield b"]"
    elif isinstance(value, dict) and any(_long(v) for v in value.values()):
        yield b"{"
        for i, (key, item) in enumerate(value.items()):
            yield (b"," if i else b"") + json.dumps(key).encode() + b":"
            yield from _encode(item)
        yield b"}"
    elif isinstance(value, list) and (len(value) > _SLICE or any(_long(v) for v in value)):
        yield b"["
        if len(value) > _SLICE:
            for start in range(0, len(value), _SLICE):
                part = json.dumps(value[start : start + _SLICE], separators=(",", ":")).encode()
                yield (b"," if start else b"") + part[1:-1]
        else:
            for i, item in enumerate(value):
                if i:
                    yield b","
                yield from _encode(item)
        yield b"]"
    else:
        yield json.dumps(value, separators=(",", ":")).encode()


def _long(value: Any) -> bool:
    if isinstance(value, (_Stream, _Later)):
        return True
    return isinstance(value, list) and (len(value) > _SLICE or any(_long(v) for v in value[:16]))


def loads(data: bytes, configs: str, weights: str) -> Saved:
    """A saved catalog from a file's bytes; ValueError (or KeyError, TypeError, ...) if it is not
    one written for these folders by this version."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError("not a run catalog snapshot of this version")
    if (doc["configs"], doc["weights"]) != (configs, weights):
        raise ValueError(f"made for other folders ({doc['configs']}, {doc['weights']})")
    if doc["config_keys"] != list(CONFIG_KEYS):
        raise ValueError("written by another version (other config fields)")
    names = doc["names"]
    columns = []
    for values, codec in zip(doc["columns"], doc["codecs"], strict=True):
        if len(values) != len(names):
            raise ValueError("arrays of different lengths")
        if codec == "datetime":
            values = [None if v is None else datetime.fromisoformat(v) for v in values]
        elif codec == "tuple":
            values = [shared_uses(_tuple_of(v)) for v in values]
        elif codec != "plain":
            raise ValueError(f"unknown codec {codec!r}")
        columns.append(values)
    fields: dict[str, dict] = {}
    rows = zip(*columns, strict=True) if columns else iter([()] * len(names))
    for name, row in zip(names, rows, strict=True):
        found = dict(zip(CONFIG_KEYS, row, strict=True))
        if found["config_problem"] is None:
            del found["config_problem"]
        for key in ("task", "architecture", "trainer", "datasplit", "created_by"):
            if isinstance(found[key], str):
                found[key] = _intern(found[key])
        if found["name"] != name:
            raise ValueError(f"config fields of {found['name']!r} filed under {name!r}")
        fields[name] = found
    token = None
    if doc["config_token"] is not None:
        t = doc["config_token"]
        token = FilesToken(
            t["kind"],
            _tuple(t["folder"]),
            _tuple(t["meta_folder"]),
            {n: tuple(f) for n, f in zip(t["names"], t["files"], strict=True)},
            {n: _tuple(m) for n, m in zip(t["names"], t["metas"], strict=True)},
        )
    best_keys = [(_intern(c), None if d is None else _intern(d)) for c, d in doc["best_keys"]]
    direction_sets = [
        {_intern(c): h for c, h in zip(d[::2], d[1::2], strict=True)} for d in doc["direction_sets"]
    ]
    dataset_sets = [tuple(_intern(x) for x in d) for d in doc["dataset_sets"]]
    criteria_of = [tuple(sorted(d)) for d in direction_sets]
    made: dict[tuple, Choice] = {}
    digests: dict[str, RunDigest] = {}
    dnames = doc["digest_names"]
    for name, row in zip(dnames, doc["digests"], strict=True):
        flat, dirs, sets, checkpoints, latest, scored, when, damaged, problem, trained, written = row
        bests = {}
        for j in range(0, len(flat), 5):
            values = (flat[j + 1], flat[j + 2], bool(flat[j + 3]), bool(flat[j + 4]))
            choice = made.get(values)  # frozen: equal ones are shared
            if choice is None:
                choice = made[values] = Choice(*values)
            bests[best_keys[flat[j]]] = choice
        digests[name] = RunDigest(
            bests=bests,
            directions=direction_sets[dirs],
            criteria=criteria_of[dirs],
            datasets=dataset_sets[sets],
            checkpoints=checkpoints,
            latest_checkpoint=latest,
            scored_until=scored,
            checkpoint_time=when,
            damaged={int(it): p for it, p in damaged} if damaged else {},
            problem=problem,
            trained_until=trained,
            stats_written=written,
        )
    roots = [str(root) for root in doc["roots"]]
    inputs = InputState(roots)
    inputs.complete = bool(doc["complete"])
    inputs.stats = {kind: (m, i, frozenset(ns)) for kind, (m, i, ns) in doc["stats"].items()}
    inputs.folders = {root: (tuple(sig), frozenset(ns)) for root, (sig, ns) in doc["folders"].items()}  # type: ignore[misc]
    inputs.listings = {root: {} for root in roots}
    listed_names = [tuple(ns) for ns in doc["listed_names"]]
    for name, sig, listings in zip(dnames, doc["sigs"], doc["listings"], strict=True):
        if sig is not None:
            inputs.sigs[name] = tuple(sig)
        for root, listing in zip(roots, listings, strict=True):
            inputs.listings[root][name] = (
                None if listing is None else (*listing[:2], listed_names[listing[2]])
            )
    for name, sig in zip(doc["swept"], doc["swept_sigs"], strict=True):
        inputs.sigs[name] = tuple(sig)
    return Saved(configs, weights, token, fields, inputs, digests)


def load(file: Path, configs: str, weights: str) -> Saved | None:
    """The saved catalog in `file`, or None (absent; unreadable or foreign, with a warning)."""
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


def save(file: Path, saved: Saved) -> bool:
    """Write the saved catalog: a temporary file renamed into place (best-effort: False if it can't)."""
    try:
        chunks = dump_chunks(saved)
        file.parent.mkdir(parents=True, exist_ok=True)
        os.replace(write_temp(file.parent, file.name, chunks, fsync=False), file)
    except (TypeError, ValueError) as exc:
        log.debug("run catalog snapshot not saved: %s", exc)
        return False
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
    raise TypeError(f"config field {field} holds {types}: no codec for it")


def _plain_tuple(value: tuple) -> bool:
    """A tuple of plain values, None or such tuples (e.g. the (kind, name) pairs of `uses`)."""
    return all(
        x is None or isinstance(x, _PLAIN) or (isinstance(x, tuple) and _plain_tuple(x)) for x in value
    )


def _tuple_of(value: Any) -> Any:
    """A JSON array read back as the tuple it was written from, nested ones too."""
    return tuple(_tuple_of(x) for x in value) if isinstance(value, list) else value


def _tuple(value: list | None) -> tuple | None:
    return None if value is None else tuple(value)
