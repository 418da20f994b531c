"""A run's digest: what every view across runs needs of its index, a few hundred bytes, never its scores.

The catalog (runs table, leaderboard, config pages) and `WeightsStore.leaderboard` read a run as
its digest: its best for every criterion and dataset (`best.all_bests`, the one rule), directions,
criteria and datasets, checkpoint count and latest, the last scored iteration, when its newest
checkpoint was written, and the checkpoints a check found damaged. `digest_of` computes it from an
index; nothing else does.

Writers keep a digest of their own index beside it (files: `checkpoints/index.digest.json`;
MongoDB: the `digest` field of the run's `weights_runs` document), stamped with the state of the
source it was computed from, after the write's commit point (its failure never undoes a write).
A reader uses a stored digest only while its stamp matches the source as it is now, and otherwise
folds the index itself; readers never write one. DaCapo's data of a run is not in a stored digest
(DaCapo never writes one): a run that has any is always folded, ours laid over DaCapo's.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from ..criteria import known_direction
from .best import BestKey, Choice, all_bests
from .index import RunIndex

FORMAT = 1


@attrs.frozen
class RunDigest:
    """The weights side of a run's record, small enough to keep for 100,000 runs."""

    bests: Mapping[BestKey, Choice] = attrs.field(factory=dict)
    #: criterion -> higher is better (None: unknown), for every scored criterion
    directions: Mapping[str, bool | None] = attrs.field(factory=dict)
    criteria: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    #: checkpoints, ours and DaCapo's, damaged ones included; the highest of their iterations
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    #: the highest scored iteration
    scored_until: int | None = None
    #: when our newest checkpoint was written (ISO 8601, as its index entry says)
    checkpoint_time: str | None = None
    #: our checkpoints a check found damaged: iteration -> what is wrong
    damaged: Mapping[int, str] = attrs.field(factory=dict)
    #: the run's data can't be read: what is wrong (the rest of the digest is then empty)
    problem: str | None = None
    #: lines of the run's own index that can't be read (skipped; the rest is read): where and why
    journal_damage: tuple[str, ...] = ()
    #: the last iteration of its training stats (ours or DaCapo's) and when they were last written
    #: (seconds since the epoch); set by the reader (`WeightsStore.run_digests`), never stored
    trained_until: int | None = None
    stats_written: float | None = None


def digest_of(index: RunIndex) -> RunDigest:
    """The digest of a run's index (ours, or ours over DaCapo's)."""
    scored = [it for by_d in index.scores.values() for values in by_d.values() for it in values]
    stamps = [m.get("created_at") for m in index.checkpoints.values()]
    stamps = [s for s in stamps if isinstance(s, str)]
    iterations = index.iterations()
    directions = {c: index.directions.get(c, known_direction(c)) for c in index.scores}
    return RunDigest(
        bests=all_bests(index),
        directions=directions,
        criteria=tuple(sorted(index.scores)),
        datasets=tuple(sorted({d for by_d in index.scores.values() for d in by_d})),
        checkpoints=len(iterations),
        latest_checkpoint=iterations[-1] if iterations else None,
        scored_until=max(scored) if scored else None,
        checkpoint_time=max(stamps) if stamps else None,
        damaged=dict(index.damaged),
        journal_damage=tuple(index.problems),
    )


def damaged_digest(problem: str) -> RunDigest:
    """The digest of a run whose data can't be read: listed, with what is wrong."""
    return RunDigest(problem=problem)


def to_json(digest: RunDigest) -> dict[str, Any]:
    """The digest as JSON/BSON-safe values (flat lists: fast to parse, small to store)."""
    return {
        "format": FORMAT,
        "bests": [
            [c, d, b.iteration, b.value, int(b.pinned), int(b.loadable)] for (c, d), b in digest.bests.items()
        ],
        "directions": [[c, h] for c, h in digest.directions.items()],
        "datasets": list(digest.datasets),
        "checkpoints": digest.checkpoints,
        "latest_checkpoint": digest.latest_checkpoint,
        "scored_until": digest.scored_until,
        "checkpoint_time": digest.checkpoint_time,
        "damaged": [[it, problem] for it, problem in digest.damaged.items()],
        "problem": digest.problem,
        "journal_damage": list(digest.journal_damage),
    }


_intern = sys.intern
_NO_DAMAGE: Mapping[int, str] = MappingProxyType({})
#: What many runs hold alike (directions, criteria, datasets, the configs they use): one copy each.
_SHARED: dict[Any, Any] = {}


def shared(key: Any, make: Any) -> Any:
    """The one copy of what `make` makes for `key` (100,000 runs share a few hundred): what a
    catalog of every run keeps must not be kept once a run. Keys name what they are for
    (`("datasets", ...)`); the values are never changed. The table is emptied when it gets big."""
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= 65536:
            _SHARED.clear()
        found = _SHARED.setdefault(key, make())
    return found


def from_json(data: Mapping[str, Any]) -> RunDigest:
    """A digest written by `to_json`; ValueError (or KeyError, TypeError) if it is not one of
    this format. Criterion and dataset names are interned: 100,000 runs share a few of them."""
    if data.get("format") != FORMAT:
        raise ValueError(f"not a run digest of format {FORMAT}")
    bests: dict[BestKey, Choice] = {}
    made: dict[tuple, Choice] = {}  # a run's best over all datasets is often one dataset's: one object
    for c, d, it, value, pinned, loadable in data["bests"]:
        if type(it) is not int or (value is not None and not isinstance(value, (int, float))):
            raise ValueError("a best that is not an iteration and a number")
        key = (_intern(c), None if d is None else _intern(d))
        fields = (it, None if value is None else float(value), bool(pinned), bool(loadable))
        choice = made.get(fields)
        if choice is None:
            choice = made[fields] = Choice(*fields)
        bests[key] = choice
    pairs = tuple((_intern(c), h) for c, h in data["directions"])
    directions, criteria = shared(
        ("directions", pairs), lambda: (MappingProxyType(dict(pairs)), tuple(sorted(c for c, _ in pairs)))
    )
    datasets = tuple(_intern(d) for d in data["datasets"])
    return RunDigest(
        bests=bests,
        directions=directions,
        criteria=criteria,
        datasets=shared(("datasets", datasets), lambda: datasets),
        checkpoints=int(data["checkpoints"]),
        latest_checkpoint=data["latest_checkpoint"],
        scored_until=data["scored_until"],
        checkpoint_time=data["checkpoint_time"],
        damaged={int(it): str(p) for it, p in data["damaged"]} if data["damaged"] else _NO_DAMAGE,
        problem=data["problem"],
        journal_damage=tuple(str(p) for p in data.get("journal_damage", ())),
    )


__all__ = ["RunDigest", "damaged_digest", "digest_of", "from_json", "shared", "to_json"]
