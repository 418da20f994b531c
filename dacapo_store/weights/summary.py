"""The files backend's leaderboard summary: every run's bests in one file, read a key at a time.

Layout of the file (in the per-user cache, see `LocalWeightsStore._bests_file`; a cache, rebuilt
when unreadable):

- line 1: ``{"version": 2, "names": [run, ...], "sigs": [size, mtime_ns, inode, legacy, ...],
  "log": [inode, offset, swept_at] or null}``, four numbers per run: its journal's stat, and the
  mtime of its DaCapo checkpoint folder (-1: none); `log` says how far the registry's change log
  (`LocalWeightsStore._changes_file`) was read and when every journal was last checked;
- then one line per key ("<criterion>/<dataset or ''>"):
  ``{"key": k, "bests": [run index, iteration, value, pinned, ...]}``, four values per run.

Flat arrays parse ten times faster than nested objects, and only the line of the key a
leaderboard asks for is parsed, so a cold process reads 10,000 runs in a few tens of ms.
"""

from __future__ import annotations

import json
from typing import Any

Sig = tuple[int, int, int, int]
NO_LEGACY = -1


class BestsSummary:
    """Runs' journal signatures and bests by key; key lines stay unparsed until asked for."""

    def __init__(self) -> None:
        self.sigs: dict[str, Sig] = {}
        #: [change log inode, offset read up to, time of the last check of every journal], or None
        self.log: list[float] | None = None
        self._names: list[str] = []
        self._lines: dict[str, bytes] = {}
        self._keys: dict[str, dict[str, list]] = {}

    @classmethod
    def parse(cls, data: bytes) -> BestsSummary:
        """Read a summary file; ValueError (or KeyError, TypeError) if it is not one."""
        summary = cls()
        lines = data.split(b"\n")
        head = json.loads(lines[0])
        if head.get("version") != 2:
            raise ValueError("not a version 2 summary")
        names, flat = head["names"], head["sigs"]
        if len(flat) != 4 * len(names):
            raise ValueError("names and signatures differ in length")
        summary._names = names
        log = head.get("log")
        summary.log = list(log) if isinstance(log, list) and len(log) == 3 else None
        summary.sigs = {name: tuple(flat[4 * i : 4 * i + 4]) for i, name in enumerate(names)}  # type: ignore[misc]
        prefix = b'{"key":'
        for line in lines[1:]:
            if line.startswith(prefix):
                key_end = line.index(b',"bests":')
                summary._lines[json.loads(line[len(prefix) : key_end])] = line
        return summary

    def key(self, key: str) -> dict[str, list]:
        """run -> [iteration, value, pinned] for one key."""
        table = self._keys.get(key)
        if table is None:
            table = {}
            line = self._lines.pop(key, None)
            if line is not None:
                flat = json.loads(line)["bests"]
                names = self._names
                for i in range(0, len(flat), 4):
                    table[names[flat[i]]] = [flat[i + 1], flat[i + 2], bool(flat[i + 3])]
            self._keys[key] = table
        return table

    def _parse_all(self) -> None:
        for key in list(self._lines):
            self.key(key)

    def run_bests(self, name: str) -> dict[str, list]:
        """One run's bests by key."""
        self._parse_all()
        return {key: table[name] for key, table in self._keys.items() if name in table}

    def set_run(self, name: str, sig: Sig, bests: dict[str, list]) -> None:
        """Replace a run's signature and bests."""
        self.drop_run(name)
        self.sigs[name] = sig
        for key, best in bests.items():
            self.key(key)[name] = list(best)

    def drop_run(self, name: str) -> None:
        self._parse_all()
        self.sigs.pop(name, None)
        for table in self._keys.values():
            table.pop(name, None)

    def dumps(self) -> bytes:
        """The file's bytes."""
        self._parse_all()
        names = list(self.sigs)
        position = {name: i for i, name in enumerate(names)}
        head = {
            "version": 2,
            "names": names,
            "sigs": [x for name in names for x in self.sigs[name]],
            "log": self.log,
        }
        lines = [json.dumps(head, separators=(",", ":"))]
        for key, table in sorted(self._keys.items()):
            flat: list[Any] = []
            for name, (iteration, value, pinned) in table.items():
                if name in position:
                    flat += [position[name], iteration, value, int(pinned)]
            if flat:
                lines.append(json.dumps({"key": key, "bests": flat}, separators=(",", ":")))
        return ("\n".join(lines) + "\n").encode()
