"""The leaderboard: each run's best by a criterion, best run first, from the run catalog."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..config_store.base import ConfigStore
from ..criteria import check_criterion
from ..names import check_name
from ..weights.base import WeightsStore
from ..weights.leaderboard import LeaderboardEntry
from .catalog import RunCatalog

#: `ConfigStore.names` filter keys -> the catalog's part filters.
FILTER_PARTS = {
    "task_names": "task",
    "architecture_names": "architecture",
    "trainer_names": "trainer",
    "datasplit_names": "datasplit",
}


def leaderboard(
    weights: WeightsStore,
    criterion: str,
    *,
    dataset: str | None = None,
    configs: ConfigStore | None = None,
    filters: Mapping[str, Iterable[str]] | None = None,
    top: int | None = None,
    catalog: RunCatalog | None = None,
) -> list[LeaderboardEntry]:
    """The run catalog's leaderboard (`best.ranked` over each run's `best.choose`): the runs of
    `weights` (and of `configs`), those whose parts match `filters` (`task_names=`,
    `architecture_names=`, ... as in `ConfigStore.names`), the `top` best. The same answer as
    `WeightsStore.leaderboard` and the dashboard's."""
    check_criterion(criterion)
    if dataset is not None:
        check_name(dataset, "dataset name", slash_ok=True)
    parts = {}
    for key, values in (filters or {}).items():
        if key not in FILTER_PARTS:
            raise TypeError(f"unknown filter {key!r} (use {', '.join(FILTER_PARTS)})")
        if values:
            parts[FILTER_PARTS[key]] = [check_name(v, f"{FILTER_PARTS[key]} name") for v in values]
    if parts and configs is None and catalog is None:
        raise ValueError("filtering runs by their parts needs a config store")
    if catalog is None:
        catalog = RunCatalog(configs, weights, recheck=0)
    return catalog.snapshot().leaderboard(criterion, dataset, parts=parts, top=top)


__all__ = ["LeaderboardEntry", "leaderboard"]
