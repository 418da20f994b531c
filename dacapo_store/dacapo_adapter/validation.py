"""DaCapo's validation arrays kept whole beside a run's index, and what they say as our scores.

DaCapo's `ValidationIterationScores` holds, per validated iteration, every score of every
dataset x post-processing parameter set x criterion, without names. The adapter keeps each
iteration as one JSON record with its labels (the names DaCapo's `ValidationScores` gives):

    {"iteration": 5000, "datasets": [...], "parameters": [...], "criteria": [...],
     "higher_is_better": {criterion: bool}, "scores": [[[value, ...], ...], ...]}

so that `retrieve_validation_iteration_scores` gives back exactly what was stored, and records
the best over the parameter sets as our validation scores (`reduced`). Where the records live
follows the run's index: a journal `checkpoints/validation_arrays.jsonl` in the run's folder
beside `index.jsonl` (files), or one document per run and iteration in the collection
`weights_validation_arrays` (MongoDB, beside `weights_runs`). JSON, never a pickle.
Nothing here imports DaCapo.
"""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..checksums import seal_json
from ..legacy.validation import best_over_parameters
from ..mongo import translate_errors
from ..mongo_indexes import IndexSpec, ensure_indexes
from ..weights.base import WeightsStore, run_name

log = logging.getLogger(__name__)

#: The files journal of a run, beside our index in `<run>/checkpoints/`.
JOURNAL = "validation_arrays.jsonl"
_HEADER_KEY = "dacapo_store_validation_arrays"
#: The MongoDB collection, beside `weights_runs`.
COLLECTION = "weights_validation_arrays"
INDEXES = (IndexSpec(COLLECTION, "run_name_iteration", (("run_name", 1), ("iteration", 1)), unique=True),)
_LABELS = ("datasets", "parameters", "criteria")


def iteration_record(
    iteration: Any,
    scores: Any,
    datasets: Sequence[str],
    parameters: Sequence[str],
    criteria: Sequence[str],
    higher_is_better: Mapping[str, bool | None],
) -> dict[str, Any]:
    """One validated iteration as a JSON record; TypeError/ValueError naming the place otherwise.

    Scores are kept as given, nested lists of numbers (numpy scalars become Python numbers,
    which compare equal; NaN and None stay), so reading the record back gives DaCapo's array.
    """
    if type(iteration) is not int or iteration < 0:
        raise ValueError(f"validation iteration must be a non-negative int, got {iteration!r}")
    for what, names in (("dataset", datasets), ("parameter", parameters), ("criterion", criteria)):
        if not all(isinstance(n, str) for n in names):
            raise TypeError(
                f"iteration {iteration}: every {what} label must be a str, got {list(names)!r:.200}"
            )
    directions = {c: h for c, h in higher_is_better.items() if isinstance(h, bool)}
    return {
        "iteration": iteration,
        "datasets": list(datasets),
        "parameters": list(parameters),
        "criteria": list(criteria),
        "higher_is_better": directions,
        "scores": _plain(scores, f"iteration {iteration} scores"),
    }


def _plain(value: Any, where: str) -> Any:
    """Nested lists of numbers (or None) as JSON-able Python values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or type(value) in (int, float, bool):
        return value
    if isinstance(value, (int, float)):  # float subclasses (numpy.float64), IntEnum...
        return float(value) if isinstance(value, float) else int(value)
    item = getattr(value, "item", None)  # numpy scalars and 0-d arrays, one-element tensors
    if callable(item):
        try:
            plain = item()
        except (TypeError, ValueError):
            plain = None
        if type(plain) in (int, float, bool):
            return plain
    raise TypeError(f"{where} must be a number, got {type(value).__name__}: {value!r:.80}")


def canonical(record: Mapping[str, Any]) -> str:
    """The record as one JSON text: equal texts, equal records (NaN equal to NaN)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True)


def plan(
    stored: Mapping[int, Mapping[str, Any]], given: Mapping[int, Mapping[str, Any]]
) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """(records to write, iterations to drop) so that the store holds what DaCapo gave.

    A given iteration that is new or differs is written. Stored iterations after the last
    given one are dropped: DaCapo gives its whole list each time, so those are iterations its
    run deleted (`delete_after` when training resumes from an earlier checkpoint). Stored
    iterations before it that DaCapo did not give stay: another process may have validated
    them (DaCapo's `validate` command beside a training run). An empty list drops nothing.
    """
    changed = {
        it: dict(record)
        for it, record in given.items()
        if it not in stored or (stored[it] != record and canonical(stored[it]) != canonical(record))
    }
    last = max(given, default=None)
    dropped = [] if last is None else sorted(it for it in stored if it > last)
    return changed, dropped


def reduced(record: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """dataset -> criterion -> the best value over the parameter sets (DaCapo's `get_best`).

    A dataset whose rows don't have one value per criterion can't be labelled: it is left out,
    with a warning (its array is still kept whole).
    """
    datasets, criteria, array = record["datasets"], record["criteria"], record["scores"]
    if not isinstance(array, list) or len(array) != len(datasets):
        log.warning(
            "validation scores of iteration %s have %s dataset(s), labelled %d: not recorded as scores",
            record.get("iteration"),
            len(array) if isinstance(array, list) else "no",
            len(datasets),
        )
        return {}
    out: dict[str, dict[str, float]] = {}
    for dataset, rows in zip(datasets, array, strict=True):
        if not isinstance(rows, list) or any(
            not isinstance(r, list) or len(r) != len(criteria) for r in rows
        ):
            log.warning(
                "validation scores of iteration %s on %s don't have one value per criterion (%d): "
                "not recorded as scores",
                record.get("iteration"),
                dataset,
                len(criteria),
            )
            continue
        best = best_over_parameters(rows, list(criteria), record.get("higher_is_better") or {})
        if best:
            out[dataset] = best
    return out


def same_score(a: float | None, b: float) -> bool:
    """Equal, NaN equal to NaN; None (no score stored) is never equal."""
    return a is not None and (a == b or (math.isnan(a) and math.isnan(b)))


class ValidationArrays(ABC):
    """The per-run store of whole validation records: read all of a run, write some, drop some."""

    @abstractmethod
    def read(self, run: str) -> dict[int, dict[str, Any]]:
        """iteration -> record, for every stored iteration of the run."""

    @abstractmethod
    def write(self, run: str, changed: Mapping[int, Mapping[str, Any]], dropped: Collection[int]) -> None:
        """Store (or replace) `changed` and remove `dropped`; each record lands whole or not at all."""

    @abstractmethod
    def delete(self, run: str) -> None:
        """Remove every record of the run (with its weights: `dacapo-store delete --with-weights`)."""


class FileValidationArrays(ValidationArrays):
    """`<basedir>/<run>/checkpoints/validation_arrays.jsonl`, an append-only journal like our index:
    lines `{"op": "set", ...record}` and `{"op": "drop", "iterations": [...]}`, appended under the
    journal's lock, read incrementally (the weights store's journal helpers)."""

    def __init__(self, basedir: str | Path) -> None:
        self.basedir = Path(basedir)

    def _path(self, run: str) -> Path:
        return self.basedir / run_name(run) / "checkpoints" / JOURNAL

    def read(self, run: str) -> dict[int, dict[str, Any]]:
        from ..weights.local import _read_journal

        return _read_journal(self._path(run), _HEADER_KEY, dict, _fold, _keep)

    def write(self, run: str, changed: Mapping[int, Mapping[str, Any]], dropped: Collection[int]) -> None:
        from ..weights.local import _append, _locked

        events = [{"op": "set", **record} for _, record in sorted(changed.items())]
        if dropped:
            events.append({"op": "drop", "iterations": sorted(dropped)})
        if not events:
            return
        payload = b"".join(seal_json(e) + b"\n" for e in events)
        path = self._path(run)
        with _locked(path):
            _append(path, _HEADER_KEY, payload)

    def delete(self, run: str) -> None:
        from ..weights.local import _locked

        path = self._path(run)
        if path.exists():
            with _locked(path):
                path.unlink(missing_ok=True)
            Path(str(path) + ".lock").unlink(missing_ok=True)


def _keep(records: dict[int, dict[str, Any]], problems: list[str]) -> dict[int, dict[str, Any]]:
    """A damaged header or line is logged by the journal reader and skipped; the records stay."""
    return records


def _fold(
    records: dict[int, dict[str, Any]], path: str, lines: list[bytes], first: int
) -> dict[int, dict[str, Any]]:
    from ..weights.local import _sound_lines

    new = dict(records)  # a reader may still hold the old one
    events, _, _, _ = _sound_lines(path, lines, first)  # lines failing their checksum are skipped
    for event in events:
        try:
            if event["op"] == "set":
                record = {k: v for k, v in event.items() if k not in ("op", "#")}
                if type(record["iteration"]) is not int or not all(
                    isinstance(record[k], list) for k in _LABELS
                ):
                    raise ValueError
                new[record["iteration"]] = record
            elif event["op"] == "drop":
                for iteration in event["iterations"]:
                    new.pop(iteration, None)
            else:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            log.warning("skipping a malformed line in %s: %.80r", path, event)
    return new


class MongoValidationArrays(ValidationArrays):
    """Collection `weights_validation_arrays`: one document per run and iteration (unique), each
    replaced whole by one single-document write."""

    def __init__(self, db: Any, where: str) -> None:
        self.db, self.where = db, where
        self._collection = db[COLLECTION]
        self._indexed = False

    def _ensure(self) -> None:
        if not self._indexed:
            with translate_errors(self.where):
                ensure_indexes(self.db, INDEXES, self.where)
            self._indexed = True

    def read(self, run: str) -> dict[int, dict[str, Any]]:
        name = run_name(run)
        out: dict[int, dict[str, Any]] = {}
        with translate_errors(self.where):
            for doc in self._collection.find(
                {"run_name": name}, projection={"_id": False, "run_name": False}
            ):
                iteration = doc.get("iteration")
                if type(iteration) is bool or not isinstance(iteration, int):
                    log.warning("run %s: skipping a malformed document in %s", name, COLLECTION)
                    continue
                out[int(iteration)] = {**doc, "iteration": int(iteration)}
        return out

    def write(self, run: str, changed: Mapping[int, Mapping[str, Any]], dropped: Collection[int]) -> None:
        name = run_name(run)
        self._ensure()
        with translate_errors(self.where):
            for iteration, record in sorted(changed.items()):
                doc = {"run_name": name, **record, "iteration": iteration}
                self._collection.replace_one({"run_name": name, "iteration": iteration}, doc, upsert=True)
            if dropped:
                self._collection.delete_many({"run_name": name, "iteration": {"$in": sorted(dropped)}})

    def delete(self, run: str) -> None:
        name = run_name(run)
        with translate_errors(self.where):
            self._collection.delete_many({"run_name": name})


def validation_arrays(weights: WeightsStore) -> ValidationArrays:
    """The records' store beside `weights`'s index: its folder, or its MongoDB database."""
    from ..weights import GridFSWeightsStore, LocalWeightsStore

    if isinstance(weights, LocalWeightsStore):
        return FileValidationArrays(weights.basedir)
    if isinstance(weights, GridFSWeightsStore):
        return MongoValidationArrays(weights.db, weights.where)
    raise TypeError(f"no place for DaCapo's validation arrays beside a {type(weights).__name__}")
