"""Training stats: loss and time per iteration, ours and DaCapo's, and how far a run trained."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..errors import TrainingStatsConflictError
from ..fsutil import naming
from .records import RunLike, run_name, summary
from .stats import TrainingIterationStats, TrainingStatsInput, same_stats, training_rows

if TYPE_CHECKING:
    from .backend import WeightsBackend


class TrainingStats:
    """The training stats part of `WeightsStore`."""

    backend: WeightsBackend

    def store_training_stats(self, run: RunLike, stats: TrainingStatsInput) -> int:
        """Record loss and time per iteration; returns how many iterations were new.

        `stats`: TrainingIterationStats items or a mapping iteration -> {"loss", "time"}. An
        iteration already stored (by us or by DaCapo) with the same values is skipped; with other
        values, TrainingStatsConflictError is raised and nothing is written.
        """
        name = run_name(run)
        rows = training_rows(stats)
        existing = self._training_stats(name)
        conflicts = [it for it, row in rows.items() if it in existing and not same_stats(existing[it], row)]
        if conflicts:
            raise TrainingStatsConflictError(
                f"run {name} already has other training stats at iteration(s) {summary(sorted(conflicts))} "
                f"(e.g. {conflicts[0]}: stored loss, time {existing[conflicts[0]]}, "
                f"given {rows[conflicts[0]]}); "
                "nothing was stored"
            )
        new = {it: row for it, row in rows.items() if it not in existing}
        if new:
            try:
                self.backend.append_training_stats(name, dict(sorted(new.items())))
            except OSError as exc:
                doing = f"storing training stats of run {name} at iteration(s) {summary(sorted(new))}"
                raise naming(exc, doing, self.where) from exc
        return len(new)

    def retrieve_training_stats(self, run: RunLike) -> list[TrainingIterationStats]:
        """Loss and time per iteration, ours and DaCapo's, sorted by iteration."""
        stats = self._training_stats(run_name(run))
        return [TrainingIterationStats(it, loss, time) for it, (loss, time) in sorted(stats.items())]

    def delete_training_stats(self, run: RunLike) -> None:
        """Remove the run's training stats that we stored (DaCapo's own files are never touched)."""
        self.backend.drop_training_stats(run_name(run))

    def training_stats_updated(self, run: RunLike) -> datetime | None:
        """When the run's training stats, ours or DaCapo's, were last written (UTC); None if it has none.

        What dates a run that trains before its first checkpoint (DaCapo's `time` field is seconds
        per iteration, not a date): `training_stats_extent`'s second half.
        """
        return self.training_stats_extent(run)[1]

    def training_stats_extent(self, run: RunLike) -> tuple[int | None, datetime | None]:
        """(highest iteration, when last written, UTC) of the run's training stats, ours and
        DaCapo's; (None, None) if it has none.

        What a run's summary needs of its stats, without reading them all: on MongoDB one indexed
        query per collection, however many iterations DaCapo logged.
        """
        name = run_name(run)
        found = [self.backend.training_stats_last(name)]
        if self.dacapo is not None:
            found.append(self.dacapo.training_stats_last(name))
        present = [f for f in found if f is not None]
        if not present:
            return None, None
        stamps = [when for _, when in present if when is not None]
        updated = datetime.fromtimestamp(max(stamps), timezone.utc) if stamps else None
        return max(it for it, _ in present), updated

    def scores_written(self, run: RunLike) -> datetime | None:
        """When the run's validation scores (ours: its index; DaCapo's) were last written, UTC;
        None if unknown. What dates a run that scores before its first checkpoint."""
        name = run_name(run)
        stamps = [self.backend.index_written(name)]
        if self.dacapo is not None:
            stamps.append(self.dacapo.scores_written(name))
        known = [s for s in stamps if s is not None]
        return datetime.fromtimestamp(max(known), timezone.utc) if known else None

    def _training_stats(self, run: str) -> dict[int, tuple[float, float]]:
        theirs = {} if self.dacapo is None else self.dacapo.training_stats(run)
        ours = self.backend.read_training_stats(run)
        return {**theirs, **ours} if theirs else ours
