"""Shared pieces of the config classes: Coordinate, the field helper, the family registry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import attrs

T = TypeVar("T", bound=type)

TYPE_KEY = "__type__"

#: The two document dialects: DaCapo 0.3.5 (PyPI's newest release) and DaCapo's main branch.
#: One class holds the union of both; its fields' metadata say how each dialect writes them.
DIALECTS: tuple[str, ...] = ("0.3.5", "main")
#: `field(keys=...)` of a field one dialect lacks.
ONLY_035: dict[str, str | None] = {"main": None}
ONLY_MAIN: dict[str, str | None] = {"0.3.5": None}


class Coordinate(tuple):
    """A tuple of ints (a shape, a factor, an offset), as funlib's Coordinate; accepts lists."""

    __slots__ = ()

    def __new__(cls, *values: Any) -> Coordinate:
        if len(values) == 1 and isinstance(values[0], Iterable):
            values = tuple(values[0])
        for v in values:
            if type(v) is not int:
                raise TypeError(f"a Coordinate holds ints, got {v!r}")
        return super().__new__(cls, values)

    @property
    def dims(self) -> int:
        return len(self)

    def __repr__(self) -> str:
        return f"Coordinate{tuple.__repr__(self)}"


class Roi(tuple):
    """A region of interest: `(offset, shape)`, two Coordinates, as funlib's Roi is stored."""

    __slots__ = ()

    def __new__(cls, offset: Any, shape: Any = None) -> Roi:
        if shape is None:  # Roi((offset, shape)) as well as Roi(offset, shape)
            offset, shape = offset
        offset, shape = to_coordinate(offset), to_coordinate(shape)
        if len(offset) != len(shape):
            raise ValueError(f"a Roi's offset and shape need the same dims, got {offset} and {shape}")
        return super().__new__(cls, (offset, shape))

    @property
    def offset(self) -> Coordinate:
        return self[0]

    @property
    def shape(self) -> Coordinate:
        return self[1]

    def __repr__(self) -> str:
        return f"Roi(offset={tuple(self[0])}, shape={tuple(self[1])})"


def to_roi(value: Any) -> Roi:
    return value if isinstance(value, Roi) else Roi(value)


def to_tuple(value: Any) -> tuple:
    """For fields DaCapo types as tuples: its documents hold them as tuples."""
    return value if type(value) is tuple else tuple(value)


def to_groupings(values: Any) -> list[tuple[str, list[int]]]:
    """`[(name, [ids...]), ...]`, DaCapo's `List[Tuple[str, List[int]]]`."""
    out = []
    for item in values:
        name, ids = item
        out.append((name, list(ids)))
    return out


def to_coordinate(value: Any) -> Coordinate:
    return value if isinstance(value, Coordinate) else Coordinate(value)


def to_optional_coordinate(value: Any) -> Coordinate | None:
    return None if value is None else to_coordinate(value)


def to_coordinates(values: Any) -> list[Coordinate]:
    return [to_coordinate(v) for v in values]


def to_optional_coordinates(values: Any) -> list[Coordinate] | None:
    return None if values is None else to_coordinates(values)


def to_optional_nested_coordinates(values: Any) -> list[list[Coordinate]] | None:
    return None if values is None else [to_coordinates(v) for v in values]


def field(
    help_text: str,
    *,
    keys: dict[str, str | None] | None = None,
    required_in: tuple[str, ...] = (),
    **kwargs: Any,
) -> Any:
    """An attrs field carrying its `help_text` in metadata, as DaCapo's configs do.

    `keys` says how a dialect writes the field where it differs from the attribute name: a
    document key, or None where that dialect has no such field. `required_in` names the
    dialects whose documents must hold the field with a value other than None.
    """
    metadata: dict[str, Any] = {"help_text": help_text}
    if keys:
        unknown = set(keys) - set(DIALECTS)
        if unknown:
            raise ValueError(f"unknown dialect(s) {sorted(unknown)}; dialects: {', '.join(DIALECTS)}")
        metadata["dialect_keys"] = dict(keys)
    if required_in:
        metadata["required_in"] = tuple(required_in)
    return attrs.field(metadata=metadata, **kwargs)


def document_key(attribute: attrs.Attribute, dialect: str) -> str | None:
    """The key under which `dialect` writes an attrs field, or None if it has no such field."""
    keys = attribute.metadata.get("dialect_keys") or {}
    return keys.get(dialect, attribute.name) if dialect in keys else attribute.name


def required_in(attribute: attrs.Attribute, dialect: str) -> bool:
    """Whether `dialect`'s documents must hold the field, not None."""
    return dialect in attribute.metadata.get("required_in", ())


def dialect_only(dialect: str):
    """Mark a config class that exists in one dialect only (DaCapo main's new classes)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; dialects: {', '.join(DIALECTS)}")

    def mark(cls: T) -> T:
        cls.__dacapo_dialects__ = (dialect,)
        return cls

    return mark


def dialects_of(cls: type) -> tuple[str, ...]:
    """The dialects that have this class."""
    return getattr(cls, "__dacapo_dialects__", DIALECTS)


# --- the registry of families -------------------------------------------------------------

#: family base class -> {bare class name -> class}; the converter reads this live.
FAMILIES: dict[type, dict[str, type]] = {}
_generation = [0]


def registry_generation() -> int:
    """A counter bumped by every registration, so converters know when to rebuild."""
    return _generation[0]


def family_base(family: T) -> T:
    """Mark `family` as a polymorphic family base: its members carry `__type__`."""
    FAMILIES.setdefault(family, {})[family.__name__] = family
    _generation[0] += 1
    return family


def family_of(cls: type) -> type | None:
    """The family base `cls` belongs to, or None."""
    for klass in cls.__mro__:
        if klass in FAMILIES:
            return klass
    return None


def register_config(cls: T) -> T:
    """Make an attrs subclass of a family base storable and loadable under its class name.

    Registering the same class twice is a no-op; a different class with the same name in
    the same family is refused, since documents name classes by their bare name.
    """
    # attrs.has() is also true for a plain subclass of an attrs class, whose own annotated
    # fields attrs never saw (they would be silently left out of documents): ask for its own.
    if not isinstance(cls, type) or not attrs.has(cls) or "__attrs_attrs__" not in vars(cls):
        raise TypeError(f"register_config needs an attrs class, got {cls!r}")
    family = family_of(cls)
    if family is None:
        bases = ", ".join(sorted(b.__name__ for b in FAMILIES))
        raise TypeError(f"{cls.__name__} is not a subclass of a config family ({bases})")
    members = FAMILIES[family]
    existing = members.get(cls.__name__)
    if existing is cls:
        return cls
    if existing is not None:
        raise ValueError(
            f"a {family.__name__} named {cls.__name__!r} is already registered "
            f"(from {existing.__module__}); rename {cls.__module__}.{cls.__name__}"
        )
    members[cls.__name__] = cls
    _generation[0] += 1
    return cls


class Verifiable:
    """Mixin giving the base `verify()` answer of DaCapo's config bases."""

    def verify(self) -> tuple[bool, str]:
        return True, f"No validation for this {type(self).__name__}"
