"""Scores, directions, pins and the best of a run: what `retrieve_best`, `best_choice` and `Start` answer.

Scores, criterion directions and pins live in the run's index; DaCapo's scores and best files
are laid under ours (`run_index`). The choice itself is `best.choose`, the one rule.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..criteria import check_criterion, check_score, direction_conflict, known_direction
from ..errors import CriterionNotFoundError, DacapoStoreError, StoreConnectionError, WeightsNotFoundError
from ..fsutil import naming
from ..names import check_name
from .best import choose, pin_of
from .index import RunIndex
from .records import BestChoice, RunLike, check_iteration, run_name

if TYPE_CHECKING:
    from .backend import WeightsBackend

log = logging.getLogger(__name__)


class Scoring:
    """The scores, pins and best part of `WeightsStore`."""

    backend: WeightsBackend

    def run_index(self, run: str) -> RunIndex:
        """Our index laid over DaCapo's scores and bests of the run (ours win where both have one)."""
        ours = self.backend.read_index(run)
        if self.dacapo is None:
            return ours
        return ours.over(self.dacapo.index(run))

    def run_indexes(self, runs: Iterable[str]) -> dict[str, RunIndex | Exception]:
        """`run_index` of several runs, ours read together (one query on MongoDB); a run whose
        data can't be read maps to the error that says why (the others are unaffected)."""
        runs = list(runs)
        try:
            ours: dict[str, RunIndex | Exception] = dict(self.backend.read_indexes(runs))
        except StoreConnectionError:
            raise
        except (DacapoStoreError, OSError):  # one is damaged: each on its own
            ours = {}
            for run in runs:
                try:
                    ours[run] = self.backend.read_index(run)
                except StoreConnectionError:
                    raise
                except (DacapoStoreError, OSError) as exc:
                    ours[run] = exc
        if self.dacapo is None:
            return ours
        out: dict[str, RunIndex | Exception] = {}
        for run, index in ours.items():
            try:
                out[run] = index if isinstance(index, Exception) else index.over(self.dacapo.index(run))
            except StoreConnectionError:
                raise
            except (DacapoStoreError, OSError) as exc:
                out[run] = exc
        return out

    def store_validation_scores(
        self,
        run: RunLike,
        iteration: int,
        scores: Mapping[str, float],
        dataset: str = "validate",
        higher_is_better: Mapping[str, bool] | None = None,
    ) -> None:
        """Record validation `scores` (criterion -> value) of `iteration` on `dataset`."""
        name = run_name(run)
        iteration = check_iteration(iteration)
        check_name(dataset, "dataset name", slash_ok=True)
        if not isinstance(scores, Mapping) or not scores:
            raise ValueError(f"scores must be a non-empty mapping of criterion to number, got {scores!r}")
        given = dict(higher_is_better or {})
        values = {check_criterion(c): check_score(c, v) for c, v in scores.items()}
        stored = self.run_index(name).directions
        directions: dict[str, bool] = {}
        unknown = []
        for criterion in values:
            higher = given.get(criterion, stored.get(criterion, known_direction(criterion)))
            if higher is None:
                unknown.append(criterion)
                continue
            if type(higher) is not bool:
                raise TypeError(f"higher_is_better[{criterion!r}] must be a bool, got {higher!r}")
            directions[criterion] = higher
        if unknown:
            raise ValueError(
                f"unknown direction for criteria {sorted(unknown)} of run {name}: pass "
                "higher_is_better={criterion: True/False} (nothing was stored)"
            )
        event = {
            "op": "scores",
            "iteration": iteration,
            "dataset": dataset,
            "scores": values,
            "higher_is_better": directions,
        }
        conflict = direction_conflict(name, stored, [event])
        if conflict is not None:
            raise conflict
        # the backend checks the directions again as it writes (under the run's lock, or in the
        # same update): a racing first direction is refused there
        try:
            self.backend.append_index(name, [event])
        except OSError as exc:
            doing = f"recording scores of run {name} at iteration {iteration}"
            raise naming(exc, doing, self.where) from exc

    def criteria(self, run: RunLike) -> list[str]:
        """The criteria the run has scores for."""
        return sorted(self.run_index(run_name(run)).scores)

    def retrieve_validation_scores(self, run: RunLike) -> dict[str, dict[str, dict[int, float]]]:
        """All scores of a run: criterion -> dataset -> iteration -> value."""
        scores = self.run_index(run_name(run)).scores
        return {c: {d: dict(v) for d, v in by_d.items()} for c, by_d in scores.items()}

    def retrieve_best(self, run: RunLike, criterion: str, dataset: str | None = None) -> int:
        """The iteration with weights that is best by `criterion` (a pin, if there is one, wins).

        With `dataset=None`, the mean over the datasets validated at each iteration.
        """
        return self.best_choice(run, criterion, dataset).iteration

    def best_choice(self, run: RunLike, criterion: str, dataset: str | None = None) -> BestChoice:
        """What `retrieve_best` picks, with its score and whether it is a pin (one read of the index).

        The rule is `best.choose`: a loadable pin wins, else the best score with a loadable
        checkpoint (ours or DaCapo's; damaged ones skipped; NaN never best; ties to the earlier).
        """
        name = run_name(run)
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name", slash_ok=True)
        index = self.run_index(name)
        by_dataset = index.scores.get(criterion)
        pinned = pin_of(index, criterion, dataset)
        if not by_dataset and pinned is None:
            if dataset is not None and dataset in index.scores and criterion not in index.scores:
                raise CriterionNotFoundError(
                    f"run {name} has no scores for criterion {criterion!r}, but has criterion {dataset!r}: "
                    "retrieve_best takes (run, criterion, dataset), DaCapo's (run, dataset, criterion); "
                    f"call retrieve_best({name!r}, {dataset!r}, {criterion!r})"
                )
            raise CriterionNotFoundError(
                f"run {name} has no validation scores for criterion {criterion!r}; "
                f"it has: {', '.join(sorted(index.scores)) or 'none'}"
            )
        if by_dataset and dataset is not None and dataset not in by_dataset and pinned is None:
            raise CriterionNotFoundError(
                f"run {name} has no {criterion!r} scores on dataset {dataset!r}; "
                f"it has them on: {', '.join(sorted(by_dataset))}"
            )
        chosen = choose(index, criterion, dataset)
        if chosen is None or not chosen.loadable:
            raise WeightsNotFoundError(
                f"run {name}: no iteration scored on {criterion!r} has sound weights in {self.where}"
            )
        if pinned is not None and not chosen.pinned:
            log.warning(
                "run %s: the pinned best %s iteration %d has no sound weights; using the computed best",
                name,
                criterion,
                pinned,
            )
        value = math.nan if chosen.value is None else chosen.value
        return BestChoice(chosen.iteration, value, chosen.pinned)

    def store_best(self, run: RunLike, iteration: int, dataset: str | None, criterion: str) -> None:
        """Pin `iteration` as the best by `criterion` on `dataset` (None: over all datasets)."""
        name = run_name(run)
        iteration = check_iteration(iteration)
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name", slash_ok=True)
        if iteration not in self.iterations(name):
            raise WeightsNotFoundError(f"can't pin iteration {iteration} of run {name}: it has no weights")
        self.backend.append_index(
            name, [{"op": "pin", "dataset": dataset, "criterion": criterion, "iteration": iteration}]
        )

    def unpin(self, run: RunLike, criterion: str, dataset: str | None = None) -> None:
        """Drop the pin of `criterion` on `dataset`; CriterionNotFoundError if there is none."""
        name = run_name(run)
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name", slash_ok=True)
        if (dataset, criterion) not in self.backend.read_index(name).pins:
            on = f" on dataset {dataset!r}" if dataset is not None else ""
            raise CriterionNotFoundError(f"run {name} has no pin for {criterion!r}{on}")
        self.backend.append_index(name, [{"op": "unpin", "dataset": dataset, "criterion": criterion}])

    def pins(self, run: RunLike) -> list[tuple[str | None, str, int]]:
        """(dataset or None, criterion, iteration) of every pin of the run."""
        return sorted(
            ((d, c, i) for (d, c), i in self.backend.read_index(run_name(run)).pins.items()),
            key=lambda p: (p[1], p[0] or ""),
        )
