"""Start: begin a run from another run's weights, chosen by criterion, "latest" or iteration."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from .criteria import start_rule
from .errors import WeightsNotFoundError
from .names import check_name

if TYPE_CHECKING:
    import torch

    from .configs.starts import StartConfig
    from .weights.base import WeightsStore

log = logging.getLogger(__name__)


@attrs.frozen
class LoadReport:
    """What `Start.initialize_weights` did: the iteration used and the fate of every key."""

    run: str
    iteration: int
    #: keys copied into the model (same name and shape)
    loaded: list[str]
    #: keys of the model that the checkpoint does not have (left as they were)
    missing: list[str]
    #: keys of the checkpoint that the model does not have (ignored)
    unexpected: list[str]
    #: keys in both whose shapes differ (left as they were); see `shapes` for the two shapes
    mismatched: list[str]
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = attrs.field(factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every key of the model and of the checkpoint was loaded."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        parts = [f"run {self.run} iteration {self.iteration}: loaded {len(self.loaded)} tensor(s)"]
        if self.mismatched:
            shapes = ", ".join(
                f"{k} {list(self.shapes[k][0])} vs model {list(self.shapes[k][1])}" for k in self.mismatched
            )
            parts.append(f"shape mismatch, kept the model's: {shapes}")
        if self.missing:
            parts.append(f"not in the checkpoint, kept the model's: {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"not in the model, ignored: {', '.join(self.unexpected)}")
        return "; ".join(parts)


class Start:
    """Applies a StartConfig: resolves its criterion to an iteration and loads those weights."""

    def __init__(self, start_config: StartConfig, weights_store: WeightsStore | None = None) -> None:
        self.start_config = start_config
        self.run = check_name(start_config.run, "start run name")
        self.criterion = start_config.criterion
        self._weights_store = weights_store

    @contextmanager
    def _store(self) -> Iterator[WeightsStore]:
        """The store given, else the one the options name, opened for this call and closed after it."""
        if self._weights_store is not None:
            yield self._weights_store
            return
        from .weights import create_weights_store

        with create_weights_store() as store:
            yield store

    def iteration(self) -> int:
        """The iteration the criterion names: best by a criterion, the latest, or given as digits."""
        with self._store() as store:
            return self._iteration(store)

    def _iteration(self, store: WeightsStore) -> int:
        kind, value = start_rule(self.criterion)
        if kind == "latest":
            latest = store.latest_iteration(self.run)
            if latest is None:
                raise WeightsNotFoundError(f"can't start from run {self.run}: it has no weights")
            return latest
        if kind == "iteration":
            return value  # type: ignore[return-value]
        return store.retrieve_best(self.run, value)  # type: ignore[arg-type]

    def initialize_weights(
        self, model: torch.nn.Module, strict: bool = False, *, allow_pickle: bool = False
    ) -> LoadReport:
        """Load the chosen weights into `model`: matching layers (name and shape), the rest untouched.

        `strict=True` raises RuntimeError, leaving the model as it was, unless every key matches.
        """
        with self._store() as store:
            iteration = self._iteration(store)
            weights = store.retrieve_weights(self.run, iteration, allow_pickle=allow_pickle)
        report = _match(self.run, iteration, model.state_dict(), weights.model)
        if strict and not report.complete:
            raise RuntimeError(f"strict start from {report}")
        model.load_state_dict({k: weights.model[k] for k in report.loaded}, strict=False)
        level = logging.INFO if report.complete else logging.WARNING
        log.log(level, "started from %s", report)
        return report


def _match(run: str, iteration: int, target: dict[str, Any], source: dict[str, Any]) -> LoadReport:
    loaded, missing, mismatched = [], [], []
    shapes = {}
    for key, tensor in target.items():
        if key not in source:
            missing.append(key)
        elif tuple(source[key].shape) != tuple(tensor.shape):
            mismatched.append(key)
            shapes[key] = (tuple(source[key].shape), tuple(tensor.shape))
        else:
            loaded.append(key)
    unexpected = [key for key in source if key not in target]
    return LoadReport(run, iteration, loaded, missing, unexpected, mismatched, shapes)
