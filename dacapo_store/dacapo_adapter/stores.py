"""DaCapo 0.3.5's three store interfaces over dacapo_store's stores (imports DaCapo).

`DacapoConfigStore`, `DacapoWeightsStore` and `DacapoStatsStore` subclass DaCapo's own abstract
`ConfigStore`, `WeightsStore` and `StatsStore` and take DaCapo's calls with DaCapo's signatures
and argument order; `install()` (in `__init__`) makes DaCapo's factories hand them out.
"""

from __future__ import annotations

import abc
import logging
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import dacapo.store.conversion_hooks as dacapo_hooks
from dacapo.experiments import (
    RunConfig,
    TrainingIterationStats,
    TrainingStats,
    ValidationIterationScores,
)
from dacapo.experiments.architectures import ArchitectureConfig
from dacapo.experiments.datasplits import DataSplitConfig
from dacapo.experiments.datasplits.datasets import DatasetConfig
from dacapo.experiments.datasplits.datasets.arrays import ArrayConfig
from dacapo.experiments.tasks import TaskConfig
from dacapo.experiments.trainers import TrainerConfig
from dacapo.store import config_store as dacapo_config_store
from dacapo.store.converter import converter as dacapo_converter
from dacapo.store.stats_store import StatsStore
from dacapo.store.weights_store import Weights
from dacapo.store.weights_store import WeightsStore as DacapoWeightsStoreBase

from ..config_store import ConfigStore
from ..config_store.documents import KIND_CLASSES, KINDS, RUN_PARTS
from ..configs import StartConfig
from ..conversion import converter
from ..criteria import check_criterion, known_direction
from ..errors import ConfigValidationError, InvalidNameError, UnknownConfigTypeError
from ..errors import DuplicateNameError as OurDuplicateNameError
from ..names import check_name
from ..start import Start
from ..weights.base import WeightsStore, run_name
from .training import plan_training_stats, subsampled_training, subsampled_validation
from .validation import iteration_record, plan, reduced, same_score, validation_arrays

log = logging.getLogger(__name__)

#: DaCapo's class for each kind, as its config stores structure documents.
DACAPO_CLASSES: dict[str, type] = {
    "runs": RunConfig,
    "tasks": TaskConfig,
    "architectures": ArchitectureConfig,
    "trainers": TrainerConfig,
    "datasplits": DataSplitConfig,
    "datasets": DatasetConfig,
    "arrays": ArrayConfig,
}


class DuplicateNameError(OurDuplicateNameError, dacapo_config_store.DuplicateNameError):
    """A different config is stored under the name: ours, and DaCapo's, so either `except` catches it."""


def _name(run: Any) -> str:
    """A run's name from a name, a DaCapo `Run` or `RunConfig`, checked."""
    return run_name(run if isinstance(run, str) else getattr(run, "name", run))


# ---------------------------------------------------------------------------------------- configs


class DacapoConfigStore(dacapo_config_store.ConfigStore):
    """DaCapo's ConfigStore over our ConfigStore's documents: DaCapo objects in and out.

    Storing unstructures the config with DaCapo's converter (DaCapo's document, byte for byte),
    checks it against our config classes (a value of the wrong type is refused, naming the
    field), and stores it with `put_document`: metadata beside it, atomic create, a different
    document under the name is a `DuplicateNameError` (DaCapo's `ignore` keys left out of the
    comparison). A run's task, architecture, trainer and datasplit are stored with it (those
    not among the ignored keys).
    Retrieving structures the stored document with DaCapo's converter, after checking that every
    `__type__` in it names one of DaCapo's config classes (DaCapo resolves them with `eval`), and
    refuses a result that DaCapo's converter left a dict.
    """

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        # DaCapo's `delete_<kind>_config` call `self.delete_config(self.<kind>, name)`
        for kind in KINDS:
            setattr(self, kind, kind)

    def __repr__(self) -> str:
        return f"DacapoConfigStore({self.store.describe()})"

    def close(self) -> None:
        self.store.close()

    def _store(self, kind: str, config: Any, ignore: Iterable[str] | None) -> None:
        doc = dacapo_converter.unstructure(config)
        if not isinstance(doc, dict):
            raise ConfigValidationError(
                f"a {kind[:-1]} config unstructures to a {type(doc).__name__}, not a document"
            )
        name = doc.get("name")
        _check_ours(kind, doc, name)
        ignored = set(ignore or ())
        plan_ = [
            (RUN_PARTS[f], doc[f])
            for f in RUN_PARTS
            if kind == "runs" and f not in ignored and isinstance(doc.get(f), dict)
        ]
        plan_.append((kind, doc))
        write = []
        for part_kind, part in plan_:
            try:
                if self.store.check_document(part_kind, part):
                    write.append((part_kind, part))
            except OurDuplicateNameError as exc:
                if part is doc and ignored and all(_top(path) in ignored for path, _, _ in exc.differences):
                    continue  # differs only in keys DaCapo was told to ignore: keep what is stored
                raise DuplicateNameError(str(exc), exc.differences) from None
        for part_kind, part in write:
            try:
                self.store.put_document(part_kind, part)
            except OurDuplicateNameError as exc:  # stored by another writer meanwhile
                raise DuplicateNameError(str(exc), exc.differences) from None

    def _retrieve(self, kind: str, name: str) -> Any:
        doc = self.store.get_document(kind, name)
        _check_types(doc, kind, name)
        config = dacapo_converter.structure(doc, DACAPO_CLASSES[kind])
        _check_structured(config, f"{kind}/{name!r}")
        return config

    def _names(self, kind: str) -> list[str]:
        return self.store.names(kind)

    def _delete(self, kind: str, name: str, force: bool = False) -> None:
        self.store.delete(kind, name, force=force)

    def delete_config(self, database: str, config_name: str, *, force: bool = False) -> None:
        """Delete `config_name` from `database` (a kind: DaCapo passes `self.runs`, `self.tasks`, ...)."""
        self._delete(database, config_name, force)

    def retrieve_run_config_names(
        self,
        task_names: Iterable[str] | None = None,
        datasplit_names: Iterable[str] | None = None,
        architecture_names: Iterable[str] | None = None,
        trainer_names: Iterable[str] | None = None,
    ) -> list[str]:
        """Names of the stored runs, only those using the given parts if any are given."""
        return self.store.retrieve_run_config_names(
            task_names=task_names,
            datasplit_names=datasplit_names,
            architecture_names=architecture_names,
            trainer_names=trainer_names,
        )


def _add_kind_methods(cls: type) -> type:
    """DaCapo's per-kind methods (`store_K_config(config, ignore=None)`, `retrieve_K_config(name)`,
    `retrieve_K_config_names()`, `delete_K_config(name)`), written once over the kind."""
    for kind in KINDS:
        singular = kind[:-1]

        def store(self, config, ignore=None, _kind=kind):
            self._store(_kind, config, ignore)

        def retrieve(self, name, _kind=kind):
            return self._retrieve(_kind, name)

        def names(self, _kind=kind):
            return self._names(_kind)

        def delete(self, name, *, force=False, _kind=kind):
            self._delete(_kind, name, force)

        for attr, fn, doc in (
            (
                f"store_{singular}_config",
                store,
                f"Store a DaCapo {singular} config (DaCapo's `ignore`: keys not compared).",
            ),
            (f"retrieve_{singular}_config", retrieve, f"The stored {singular} config as a DaCapo object."),
            (f"retrieve_{singular}_config_names", names, f"Sorted names of the stored {kind}."),
            (
                f"delete_{singular}_config",
                delete,
                f"Delete the {singular} config (`force=True`: even if runs use it).",
            ),
        ):
            if attr in cls.__dict__:
                continue  # written out in the class (runs take filters)
            fn.__name__ = fn.__qualname__ = attr
            fn.__doc__ = doc
            setattr(cls, attr, fn)
    abc.update_abstractmethods(cls)
    return cls


_add_kind_methods(DacapoConfigStore)


def _top(path: str) -> str:
    return path.split(".")[0].split("[")[0]


def _check_ours(kind: str, doc: dict[str, Any], name: Any) -> None:
    """Refuse a DaCapo document that our config classes don't read back (a wrong value type)."""
    try:
        converter.structure(doc, KIND_CLASSES[kind])
    except UnknownConfigTypeError as exc:
        # a config class of DaCapo (or of the lab) that dacapo_store does not have: stored as DaCapo wrote it
        log.warning("%s config %r is stored unchecked: %s", kind[:-1], name, exc)
    except ConfigValidationError as exc:
        raise ConfigValidationError(
            f"DaCapo {kind[:-1]} config {name!r} can't be stored: {exc}", exc.errors
        ) from None


def _check_types(doc: Any, kind: str, name: str, path: str = "") -> None:
    """Every `__type__` must name a config class where DaCapo's converter looks it up.

    DaCapo's converter turns `__type__` into a class with `eval` in `dacapo.store.conversion_hooks`;
    only bare names of attrs classes found there are let through, so nothing else is evaluated.
    """
    if isinstance(doc, dict):
        if "__type__" in doc:
            typ = doc["__type__"]
            cls = vars(dacapo_hooks).get(typ) if isinstance(typ, str) and typ.isidentifier() else None
            if not (isinstance(cls, type) and attrs.has(cls)):
                raise UnknownConfigTypeError(
                    f"{kind}/{name!r}: {path or '<document>'}.__type__ {typ!r} names no DaCapo 0.3.5 "
                    "config class"
                )
        for key, value in doc.items():
            _check_types(value, kind, name, f"{path}.{key}" if path else str(key))
    elif isinstance(doc, (list, tuple)):
        for i, value in enumerate(doc):
            _check_types(value, kind, name, f"{path}[{i}]")


def _check_structured(value: Any, where: str, path: str = "") -> None:
    """DaCapo's converter hands back the raw dict when a part does not structure: refuse that."""
    if isinstance(value, dict) and "__type__" in value:
        raise ConfigValidationError(
            f"{where}: DaCapo can't read {path or 'the document'} as a {value['__type__']} "
            "(a field missing or of another DaCapo version?); see DaCapo's message above"
        )
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            _check_structured(getattr(value, field.name), where, f"{path}.{field.name}".lstrip("."))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_structured(item, where, f"{path}[{i}]")


# ---------------------------------------------------------------------------------------- weights


class DacapoWeightsStore(DacapoWeightsStoreBase):
    """DaCapo's WeightsStore over our WeightsStore: safetensors checkpoints, verified on load.

    `store_weights(run, iteration)` stores `run.model` and `run.optimizer`; `retrieve_weights`
    returns DaCapo's `Weights`; `retrieve_best(run, dataset, criterion)` takes DaCapo's order and
    picks by our scores (pins first), so bests need no `store_best`. DaCapo's own pickled
    checkpoints in the run folder load through our restricted unpickler.
    """

    def __init__(self, weights: WeightsStore, basedir: str | Path) -> None:
        self.weights = weights
        #: DaCapo's runs_base_dir (`CosemStart` puts downloaded checkpoints under it).
        self.basedir = Path(basedir)

    def __repr__(self) -> str:
        return f"DacapoWeightsStore({self.weights.where})"

    def close(self) -> None:
        self.weights.close()

    def latest_iteration(self, run: Any) -> int | None:
        """The highest iteration with weights (ours or DaCapo's), or None."""
        return self.weights.latest_iteration(_name(run))

    def store_weights(self, run: Any, iteration: int) -> None:
        """Store `run.model` and `run.optimizer` at `iteration` (replacing a checkpoint there)."""
        self.weights.store_weights(_name(run), iteration, run.model, run.optimizer)

    def retrieve_weights(self, run: Any, iteration: int) -> Weights:
        """The checkpoint at `iteration` as DaCapo's `Weights` (tensors on the CPU)."""
        found = self.weights.retrieve_weights(_name(run), iteration)
        return Weights(OrderedDict(found.model), found.optimizer)

    def _retrieve_weights(self, run: Any, key: Any) -> Weights:
        """The weights a start names: an iteration, "latest", or a criterion (best by our scores)."""
        name = _name(run)
        if isinstance(key, int) and not isinstance(key, bool):
            return self.retrieve_weights(name, key)
        key = str(key)
        legacy = self.basedir / name / "checkpoints" / "iterations" / key if _file_name(key) else None
        if legacy is not None and not key.isdigit() and legacy.is_file():
            # a checkpoint put there by name (DaCapo's CosemStart downloads one): read without pickle
            from ..legacy.unpickler import load_checkpoint

            model, optimizer = load_checkpoint(legacy)
            return Weights(OrderedDict(model), optimizer)
        iteration = Start(StartConfig(run=name, criterion=key), self.weights).iteration()
        return self.retrieve_weights(name, iteration)

    def remove(self, run: Any, iteration: int) -> None:
        """Delete our checkpoint at `iteration` (DaCapo's own files are never deleted)."""
        self.weights.remove(_name(run), iteration)

    def store_best(self, run: Any, iteration: int, dataset: Any, criterion: str) -> None:
        """Pin `iteration` as the best by `criterion` on `dataset` (a name or a DaCapo Dataset)."""
        self.weights.store_best(_name(run), iteration, _dataset(dataset), criterion)

    def retrieve_best(self, run: Any, dataset: Any, criterion: str) -> int:
        """The best iteration by `criterion` on `dataset` (None: the mean over datasets): DaCapo's order."""
        return self.weights.retrieve_best(_name(run), criterion, _dataset(dataset))

    def _load_best(self, run: Any, criterion: str) -> None:
        """Load the weights `criterion` names (see `_retrieve_weights`) into `run.model`."""
        run.model.load_state_dict(self._retrieve_weights(run, criterion).model)


def _file_name(key: str) -> bool:
    """Whether `key` can name a file in a folder (no `/`, no `..`, nothing hidden)."""
    try:
        check_name(key, "key")
    except InvalidNameError:
        return False
    return True


def _dataset(dataset: Any) -> str | None:
    return dataset if dataset is None or isinstance(dataset, str) else dataset.name


# ------------------------------------------------------------------------------------------ stats


class DacapoStatsStore(StatsStore):
    """DaCapo's StatsStore over our training stats and validation scores.

    Training stats: only iterations not stored yet are appended (DaCapo hands over all of them
    each time); see `training.py` for conflicts and DaCapo's resume. Validation scores: each
    iteration's whole array is kept (see `validation.py`) and its best over the parameter sets
    is recorded as our validation scores, with DaCapo's direction per criterion, so bests,
    starts, the leaderboard and the dashboard see the run while it trains.
    """

    def __init__(self, weights: WeightsStore) -> None:
        self.weights = weights
        self.arrays = validation_arrays(weights)
        self._known: dict[str, dict[int, tuple[float, float]]] = {}
        self._recorded: dict[str, dict[int, Any]] = {}
        self._warned: set[tuple[str, str]] = set()
        #: run -> the checkpoint this process resumed from, once stats trained again showed it
        self._resumed: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"DacapoStatsStore({self.weights.where})"

    def close(self) -> None:
        self.weights.close()

    # -- training stats

    def store_training_stats(self, run_name: str, stats: TrainingStats) -> None:
        """Append the iterations of `stats` not stored yet."""
        name = _name(run_name)
        given = [(s.iteration, s.loss, s.time) for s in stats.iteration_stats]
        known = self._known.get(name)
        if known is None:
            known = self._read_training_stats(name)
        new, retrained = plan_training_stats(name, known, given, lambda: self._resume_point(name))
        if retrained and (name, "retrained") not in self._warned:
            self._warned.add((name, "retrained"))
            log.warning(
                "run %s: iterations %d to %d were trained again after resuming from its latest checkpoint; "
                "the training stats first stored for them are kept",
                name,
                retrained[0],
                retrained[-1],
            )
        if new:
            rows = {it: {"loss": loss, "time": time} for it, (loss, time) in new.items()}
            self.weights.store_training_stats(name, rows)
            known.update(new)
        self._known[name] = known

    def _resume_point(self, name: str) -> int:
        """The checkpoint DaCapo resumed from: the latest one when stats trained again first show,
        which precedes any checkpoint of this process (DaCapo stores stats before weights). Kept,
        as DaCapo hands over the rows it trained again with every later call too."""
        if name not in self._resumed:
            self._resumed[name] = self.weights.latest_iteration(name) or 0
        return self._resumed[name]

    def _read_training_stats(self, name: str) -> dict[int, tuple[float, float]]:
        return {s.iteration: (s.loss, s.time) for s in self.weights.retrieve_training_stats(name)}

    def retrieve_training_stats(self, run_name: str, subsample: bool = False) -> TrainingStats:
        """Every stored iteration's stats (ours and DaCapo's own), by iteration; `subsample` as
        DaCapo's MongoDB store does it (about 1000 iterations)."""
        name = _name(run_name)
        known = self._read_training_stats(name)
        self._known[name] = known
        iterations = sorted(known)
        if subsample:
            iterations = subsampled_training(iterations)
        return TrainingStats(
            [TrainingIterationStats(iteration=it, loss=known[it][0], time=known[it][1]) for it in iterations]
        )

    def delete_training_stats(self, run_name: str) -> None:
        """Delete the run's training stats that we stored (DaCapo's own files stay)."""
        name = _name(run_name)
        self.weights.delete_training_stats(name)
        self._known.pop(name, None)

    # -- validation scores

    def store_validation_iteration_scores(self, run_name: str, scores: Any) -> None:
        """Keep DaCapo's `ValidationScores` whole, and their best over parameters as our scores."""
        name = _name(run_name)
        datasets = [_dataset(d) for d in scores.datasets]
        parameters = [str(p) for p in scores.parameters]
        criteria = list(scores.criteria)
        directions = {c: self._direction(name, scores.evaluation_scores, c) for c in criteria}
        given: dict[int, dict[str, Any]] = {}
        for item in scores.scores:
            given[item.iteration] = iteration_record(
                item.iteration, item.scores, datasets, parameters, criteria, directions
            )
        stored = self.arrays.read(name)
        changed, dropped = plan(stored, given)
        if changed or dropped:
            self.arrays.write(name, changed, dropped)
        recorded = self._recorded.setdefault(name, {})
        for iteration in dropped:
            recorded.pop(iteration, None)
        todo = [it for it in sorted(given) if it in changed or it not in recorded]
        if todo:
            self._record_scores(name, {it: given[it] for it in todo})
            recorded.update({it: True for it in todo})

    def _direction(self, run: str, evaluation_scores: Any, criterion: str) -> bool | None:
        try:
            higher = evaluation_scores.higher_is_better(criterion)
        except Exception:  # DaCapo's evaluators raise various errors for names they don't know
            higher = None
        if not isinstance(higher, bool):
            higher = known_direction(criterion)
        if higher is None and (run, criterion) not in self._warned:
            self._warned.add((run, criterion))
            log.warning(
                "run %s: criterion %r has no direction; it is kept, not recorded as a score", run, criterion
            )
        return higher

    def _record_scores(self, name: str, records: dict[int, dict[str, Any]]) -> None:
        """Store the best over parameters where our index does not have it yet (or has another value)."""
        current = self.weights.retrieve_validation_scores(name)
        for iteration, record in records.items():
            directions = record["higher_is_better"]
            for dataset, best in reduced(record).items():
                values = {
                    c: v
                    for c, v in best.items()
                    if c in directions
                    and self._criterion_ok(name, c)
                    and not same_score(current.get(c, {}).get(dataset, {}).get(iteration), v)
                }
                if values:
                    self.weights.store_validation_scores(
                        name,
                        iteration,
                        values,
                        dataset=dataset,
                        higher_is_better={c: directions[c] for c in values},
                    )

    def _criterion_ok(self, run: str, criterion: str) -> bool:
        try:
            check_criterion(criterion)
        except (TypeError, ValueError) as exc:
            if (run, criterion) not in self._warned:
                self._warned.add((run, criterion))
                log.warning("run %s: criterion kept in the array only, not as a score: %s", run, exc)
            return False
        return True

    def retrieve_validation_iteration_scores(
        self, run_name: str, subsample: bool = False, validation_interval: int | None = None
    ) -> list[ValidationIterationScores]:
        """Every validated iteration's array as it was stored (ours, and DaCapo's own where we have
        none), by iteration; `subsample` as DaCapo's MongoDB store does it."""
        name = _name(run_name)
        arrays: dict[int, Any] = {}
        if self.weights.dacapo is not None:
            for doc in self.weights.dacapo.validation_score_documents(name):
                iteration = doc.get("iteration")
                if type(iteration) is int and isinstance(doc.get("scores"), list):
                    arrays[iteration] = doc["scores"]
        arrays.update({it: record["scores"] for it, record in self.arrays.read(name).items()})
        iterations = sorted(arrays)
        if subsample:
            iterations = subsampled_validation(iterations, validation_interval)
        return [ValidationIterationScores(iteration=it, scores=arrays[it]) for it in iterations]
