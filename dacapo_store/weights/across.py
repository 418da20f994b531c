"""Across runs: every run's digest, the leaderboard, and which way a criterion ranks runs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ..criteria import check_criterion, known_direction
from ..errors import DacapoStoreError, StoreConnectionError
from ..names import check_name
from .best import direction
from .digest import RunDigest, damaged_digest, digest_of
from .leaderboard import LeaderboardEntry, leaderboard_entries
from .records import RunLike, run_name

if TYPE_CHECKING:
    from .backend import WeightsBackend
    from .digests import DigestTable

log = logging.getLogger(__name__)

#: How many runs' indexes a fold reads together (and holds at once).
FOLD_BATCH = 200


class AcrossRuns:
    """The part of `WeightsStore` that spans runs (built on `DigestTable`)."""

    backend: WeightsBackend

    def run_names(self) -> list[str]:
        """Runs this store has anything for (checkpoints, scores or pins), ours and DaCapo's, sorted."""
        ours = set(self.backend.own_run_names())
        if self.dacapo is not None:
            ours.update(self.dacapo.run_names())
        return sorted(ours)

    def run_digest(self, run: RunLike) -> RunDigest:
        """The run's digest (`digest.py`): its bests by every criterion and dataset, and the rest a
        view over many runs needs. A run whose data can't be read has a digest saying what is wrong."""
        name = run_name(run)
        return self.run_digests([name])[name]

    def run_digests(self, runs: Iterable[str], token: Any = None) -> dict[str, RunDigest]:
        """Digests of `runs`: the stored one where its stamp matches its source and DaCapo has
        nothing for the run, else folded from the index (ours over DaCapo's). `token`: one from
        `changes_since`, which may already know which runs DaCapo has data for."""
        runs = list(runs)
        theirs = self.backend.dacapo_runs(runs, token)
        stored = self.backend.stored_digests([r for r in runs if r not in theirs])
        folded = self._fold_ours([r for r in runs if r not in theirs and r not in stored])
        with_stats = self.backend.runs_with_stats(runs, token)
        out = {}
        for run in runs:
            found = stored.get(run) or folded.get(run)
            found = found if found is not None else self._fold_digest(run, run in theirs)
            if with_stats is not None and run not in with_stats:
                out[run] = found
                continue
            trained_until, written = self._stats_extent(run)
            if trained_until is not None:
                found = attrs.evolve(found, trained_until=trained_until, stats_written=written)
            out[run] = found
        return out

    def _fold_ours(self, runs: list[str]) -> dict[str, RunDigest]:
        """Digests of runs without a stored one, read `FOLD_BATCH` indexes at a time (one query
        each on MongoDB); a batch with a run that can't be read is left to `_fold_digest`."""
        out: dict[str, RunDigest] = {}
        for start in range(0, len(runs), FOLD_BATCH):
            batch = runs[start : start + FOLD_BATCH]
            try:
                indexes = self.backend.read_indexes(batch)
            except StoreConnectionError:
                raise
            except (DacapoStoreError, OSError):
                continue  # one of them is damaged: each is read on its own, the damage kept with it
            out.update((run, digest_of(index)) for run, index in indexes.items())
        return out

    def _stats_extent(self, run: str) -> tuple[int | None, float | None]:
        try:
            trained_until, written = self.training_stats_extent(run)
        except StoreConnectionError:
            raise
        except (DacapoStoreError, OSError, ValueError) as exc:
            log.warning("run %s: its training stats are unreadable: %s", run, exc)
            return None, None
        return trained_until, None if written is None else written.timestamp()

    def _fold_digest(self, run: str, theirs: bool) -> RunDigest:
        try:
            index = self.run_index(run) if theirs else self.backend.read_index(run)
        except StoreConnectionError:
            raise
        except (DacapoStoreError, OSError) as exc:
            log.warning("run %s: its data can't be read: %s", run, exc)
            return damaged_digest(self.backend.describe_problem(exc))
        return digest_of(index)

    def digest_table(self) -> DigestTable:
        """This store's table of every run's digest (made on first use, kept up to date by
        `DigestTable.refresh`): what `leaderboard` ranks and the run catalog is built on."""
        table = self.__dict__.get("_digest_table")
        if table is None:
            from .digests import DigestTable

            table = self.__dict__.setdefault("_digest_table", DigestTable(self))
        return table

    def leaderboard(
        self,
        criterion: str,
        runs: Iterable[RunLike] | None = None,
        dataset: str | None = None,
        *,
        top: int | None = None,
    ) -> list[LeaderboardEntry]:
        """Each run's best by `criterion`, best run first (by the criterion's direction).

        `runs` limits it to those runs; `dataset=None` ranks by the mean over datasets, as
        `retrieve_best` does; `top` keeps only the first so many. A run whose scored iterations
        have no loadable checkpoint is listed by its best score with `loadable=False`. The same
        rule and ranking as the command line and the dashboard (`best.py`).
        """
        check_criterion(criterion)
        if dataset is not None:
            check_name(dataset, "dataset name", slash_ok=True)
        names = None if runs is None else [run_name(r) for r in runs]
        table = self.digest_table()
        digests = table.refresh(watch=names or ())
        if names is not None:
            digests = {n: digests[n] for n in names if n in digests}
        key = (criterion, dataset)
        found = [(name, d.bests[key]) for name, d in digests.items() if key in d.bests]
        higher = direction(criterion, (digests[n].directions.get(criterion) for n in sorted(digests)))
        return leaderboard_entries(found, higher, top)

    def direction(self, criterion: str, runs: list[str] | None = None) -> bool:
        """Whether higher is better for `criterion`: DaCapo's table, else the first run (by name)
        that stores it, else True (`best.direction`)."""
        known = known_direction(criterion)
        if known is not None:
            return known
        names = self.run_names() if runs is None else sorted(runs)
        stored = (self.backend.read_index(name).directions.get(criterion) for name in names)
        return direction(criterion, stored)
