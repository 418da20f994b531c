"""The leaderboard: each run's best checkpoint by a criterion, best run first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..config_store.base import ConfigStore
from ..weights.base import WeightsStore
from ..weights.leaderboard import LeaderboardEntry


def leaderboard(
    weights: WeightsStore,
    criterion: str,
    *,
    dataset: str | None = None,
    configs: ConfigStore | None = None,
    filters: Mapping[str, Iterable[str]] | None = None,
    top: int | None = None,
) -> list[LeaderboardEntry]:
    """`weights.leaderboard`, limited to the stored runs matching `filters` (`task_names=`,
    `architecture_names=`, ... as in `ConfigStore.names`) and to the `top` best."""
    runs = None
    if filters and any(filters.values()):
        if configs is None:
            raise ValueError("filtering runs by their parts needs a config store")
        runs = configs.names("runs", **{k: list(v) for k, v in filters.items() if v})
    return weights.leaderboard(criterion, runs=runs, dataset=dataset, top=top)


__all__ = ["LeaderboardEntry", "leaderboard"]
