"""Search runs by config values: `PATH OP VALUE` expressions, read once, asked on every face.

`dacapo-store list runs --where`, `where=` on `/api/v1/runs` (and the runs table's search box), the
catalog and `ConfigStore.retrieve_run_config_names(where=[...])` all parse here and match by the
same rules; MongoDB gets the same rules as a query (`mongo_filter`). No I/O.

- PATH is dotted into the run's document: `trainer_config.learning_rate`, `task_config.channels`,
  `datasplit_config.validate_configs.0.name` (a number indexes a list). As in MongoDB, a path that
  meets a list without an index looks into each of its elements (`datasplit_config.validate_configs.name`
  is every validation dataset's name), and a list at the end is compared as a whole and element by
  element. A missing field is null.
- OP: `==` `!=` `<` `<=` `>` `>=` and `~` (the value is a substring of a string there, or an
  element of a list there). `!=` holds where no value there equals it (a missing field too).
  `<` and friends compare numbers with numbers and strings with strings, never across.
- VALUE: a JSON literal (`32`, `1e-4`, `true`, `null`, `"a b"`, `[1, 2]`), else the bare text.

Several expressions all have to hold (AND).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "~")
#: Storage keys of a stored document (`_id`, our metadata): not part of a run's config.
_STORAGE = frozenset({"_id", "__dacapo_store__"})
_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+")
_SPLIT = re.compile(r"\s*(==|!=|<=|>=|<|>|~)\s*")
_MONGO_OP = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
USAGE = "write PATH OP VALUE, e.g. 'trainer_config.learning_rate < 0.001' (OP: " + " ".join(OPERATORS) + ")"


class WhereError(ValueError):
    """An expression that can't be read; the message names the part."""


@attrs.frozen
class Condition:
    """One `PATH OP VALUE`: the path's segments, the operator, the value (parsed)."""

    path: tuple[str, ...]
    op: str
    #: compared and hashed through `text` (a value may be a list: the condition stays hashable)
    value: Any = attrs.field(eq=False)
    text: str = ""

    def __str__(self) -> str:
        return self.text


def parse(expression: object) -> Condition:
    """One expression as a Condition; WhereError naming the part it couldn't read."""
    if not isinstance(expression, str):
        raise WhereError(f"a where expression is text, got {type(expression).__name__}: {expression!r}")
    text = expression.strip()
    parts = _SPLIT.split(text, maxsplit=1)
    if len(parts) != 3:
        raise WhereError(f"no operator in where expression {expression!r}: {USAGE}")
    path_text, op, value_text = parts
    if not path_text:
        raise WhereError(f"no path before {op!r} in where expression {expression!r}: {USAGE}")
    segments = tuple(path_text.split("."))
    bad = next((s for s in segments if not _SEGMENT.fullmatch(s)), None)
    if bad is not None:
        raise WhereError(
            f"can't read path {path_text!r} in where expression {expression!r} (at {bad!r}): "
            "a path is field names joined by '.', list positions as numbers"
        )
    if segments[0] in _STORAGE:
        raise WhereError(f"path {path_text!r} in {expression!r} is not part of a run's config")
    if not value_text:
        raise WhereError(f"no value after {op!r} in where expression {expression!r}: {USAGE}")
    if value_text[:1] in ("<", ">", "=", "!", "~"):
        raise WhereError(
            f"can't read operator {op + value_text.split()[0]!r} in where expression {expression!r}: {USAGE}"
        )
    try:
        value = json.loads(value_text)
    except ValueError:
        value = value_text  # a bare string
    if isinstance(value, float) and not math.isfinite(value):
        raise WhereError(f"value {value_text!r} in where expression {expression!r} is not a finite number")
    if op in _MONGO_OP and not _comparable(value):
        raise WhereError(
            f"{op!r} compares numbers or text, not {value_text!r} in where expression {expression!r}"
        )
    return Condition(segments, op, value, f"{path_text} {op} {value_text}")


def parse_all(expressions: Iterable[object] | None) -> tuple[Condition, ...]:
    """Every expression parsed (a bare string is one expression); the first bad one raises."""
    if expressions is None:
        return ()
    if isinstance(expressions, (str, Condition)):
        expressions = [expressions]
    return tuple(e if isinstance(e, Condition) else parse(e) for e in expressions)


# ---------------------------------------------------------------------------------- matching


def matches(document: Mapping[str, Any] | None, conditions: Sequence[Condition]) -> bool:
    """Whether every condition holds on the run's document (the rules of the module docstring)."""
    if document is None:
        return not conditions
    return all(_holds(c, _values(document, c.path)) for c in conditions)


def _values(node: Any, path: Sequence[str]) -> list[Any]:
    """Every value the path reaches (MongoDB's: lists are looked into); [None] if none."""
    found = _reach(node, path)
    return found if found else [None]


def _reach(node: Any, path: Sequence[str]) -> list[Any]:
    if not path:
        return [node, *node] if isinstance(node, (list, tuple)) else [node]
    head, rest = path[0], path[1:]
    if isinstance(node, Mapping):
        return _reach(node[head], rest) if head in node else []
    if isinstance(node, (list, tuple)):
        out = []
        if head.isdigit() and int(head) < len(node):
            out += _reach(node[int(head)], rest)
        for element in node:
            if isinstance(element, Mapping):
                out += _reach(element, path)
        return out
    return []


def _holds(c: Condition, values: list[Any]) -> bool:
    if c.op == "==":
        return any(_equal(v, c.value) for v in values)
    if c.op == "!=":
        return not any(_equal(v, c.value) for v in values)
    if c.op == "~":
        needle = c.value if isinstance(c.value, str) else None
        return any(
            _equal(v, c.value) or (needle is not None and isinstance(v, str) and needle in v) for v in values
        )
    return any(_compare(v, c.op, c.value) for v in values)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _comparable(v: Any) -> bool:
    return _number(v) or isinstance(v, str)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _number(a) and _number(b):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _compare(a: Any, op: str, b: Any) -> bool:
    if not ((_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


# ---------------------------------------------------------------------------------- MongoDB


def mongo_filter(conditions: Sequence[Condition]) -> dict[str, Any]:
    """The conditions as one MongoDB query on the runs collection (the same rules as `matches`)."""
    clauses = []
    for c in conditions:
        path = ".".join(c.path)
        if c.op == "==":
            clauses.append({path: {"$eq": c.value}})
        elif c.op == "!=":
            clauses.append({path: {"$not": {"$eq": c.value}}})
        elif c.op == "~":
            either: list[dict[str, Any]] = [{path: {"$eq": c.value}}]
            if isinstance(c.value, str):
                either.append({path: {"$regex": re.escape(c.value)}})
            clauses.append({"$or": either})
        else:
            clauses.append({path: {_MONGO_OP[c.op]: c.value}})
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


__all__ = ["OPERATORS", "Condition", "WhereError", "matches", "mongo_filter", "parse", "parse_all"]
