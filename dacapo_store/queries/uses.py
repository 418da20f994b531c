"""Which dataset and array configs a run uses: those its stored document holds, at any depth.

A run names its task, architecture, trainer and datasplit directly; datasets and arrays sit
inside the datasplit (datasets hold arrays, arrays wrap other arrays). A nested mapping's kind
comes from its `__type__`, looked up among our config classes (the family registry, so a class
registered later counts too); a `__type__` no installed class has tells nothing and is skipped.
"""

from __future__ import annotations

from typing import Any

from ..config_store.documents import KIND_CLASSES
from ..configs._base import FAMILIES, TYPE_KEY, registry_generation

#: The kinds a run uses through its document rather than by a field of its own.
NESTED_KINDS: tuple[str, ...] = ("datasets", "arrays")

_kinds: tuple[int, dict[str, str]] = (-1, {})
_CONTAINERS = frozenset({dict, list, tuple})


def _kind_of_type() -> dict[str, str]:
    """Class name -> kind, for the nested kinds' families (names two families share are left out)."""
    global _kinds
    generation = registry_generation()
    if _kinds[0] != generation:
        found: dict[str, set[str]] = {}
        for kind in NESTED_KINDS:
            for name in FAMILIES.get(KIND_CLASSES[kind], {}):
                found.setdefault(name, set()).add(kind)
        _kinds = (generation, {name: kinds.pop() for name, kinds in found.items() if len(kinds) == 1})
    return _kinds[1]


def _walk(doc: Any) -> Any:
    """Every (kind, name, mapping) of a dataset or array config inside a document, depth first.

    Documents are plain dicts and lists (YAML, JSON, BSON), walked without recursion, with
    type() checks rather than isinstance (a run's catalog entry walks its whole document).
    """
    kinds = _kind_of_type()
    stack = [doc]
    pop, push = stack.pop, stack.append
    while stack:
        value = pop()
        if type(value) is dict:
            tag = value.get(TYPE_KEY)
            kind = kinds.get(tag) if type(tag) is str else None
            if kind is not None and type(value.get("name")) is str:
                yield kind, value["name"], value
            items = value.values()
        else:
            items = value
        for item in items:
            if type(item) in _CONTAINERS:
                push(item)


def nested_config(doc: Any, kind: str, name: str) -> dict[str, Any] | None:
    """The dataset or array config of that kind and name inside a run document, None if none."""
    return next((value for k, n, value in _walk(doc) if k == kind and n == name), None)


def nested_configs(doc: Any) -> tuple[tuple[str, str], ...]:
    """(kind, name) of every dataset and array config inside a run document, sorted, each once.

    Any shape is accepted (a document DaCapo wrote, one with unknown classes): never raises.
    """
    return tuple(sorted({(kind, name) for kind, name, _ in _walk(doc)}))
