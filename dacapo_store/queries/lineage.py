"""Lineage: the chain of starts behind a run, and the runs that start from it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection

import attrs

from ..config_store.base import ConfigStore


@attrs.frozen
class LineageStep:
    """A run in a lineage: reached by `criterion`, `depth` steps away, and whether it is stored here."""

    run: str
    criterion: str | None
    depth: int
    in_store: bool
    #: for a descendant: the run it starts from
    parent: str | None = None


@attrs.frozen
class Lineage:
    """`ancestors`: the start, its start, ... (nearest first); `cycle`: the chain comes back to a run
    already in it; `descendants`: runs starting from the run, depth first."""

    run: str
    ancestors: list[LineageStep]
    cycle: bool
    descendants: list[LineageStep]


def lineage(
    store: ConfigStore,
    run: str,
    *,
    stored: Collection[str] | None = None,
    starts_from: Callable[[str], list[tuple[str, str]]] | None = None,
    start_of: Callable[[str], tuple[str, str] | None] | None = None,
) -> Lineage:
    """The lineage of a stored run (ConfigNotFoundError if it is not stored).

    `stored` (the run names), `starts_from` (runs starting from a run) and `start_of` (the run
    and criterion a stored run starts from, or None) default to asking the store; the dashboard
    passes its catalog's, which answer from memory (and then the caller has read the run).
    """
    if start_of is None:
        store.get_document("runs", run)
        start_of = functools.partial(_start_of, store)
    stored = set(store.names("runs")) if stored is None else stored
    starts_from = starts_from or store.starts_from
    ancestors: list[LineageStep] = []
    seen, current, cycle = {run}, run, False
    while current in stored:
        start = start_of(current)
        if start is None:
            break
        parent, criterion = start
        ancestors.append(LineageStep(parent, criterion, len(ancestors) + 1, parent in stored))
        if parent in seen:
            cycle = True
            break
        seen.add(parent)
        current = parent
    descendants: list[LineageStep] = []

    def walk(name: str, depth: int, visited: set[str]) -> None:
        for child, criterion in starts_from(name):
            if child not in visited:
                visited.add(child)
                descendants.append(LineageStep(child, criterion, depth, True, parent=name))
                walk(child, depth + 1, visited)

    walk(run, 1, {run})
    return Lineage(run, ancestors, cycle, descendants)


def _start_of(store: ConfigStore, run: str) -> tuple[str, str] | None:
    start = store.get_document("runs", run).get("start_config")
    if not isinstance(start, dict) or not isinstance(start.get("run"), str):
        return None
    return start["run"], str(start.get("criterion"))
