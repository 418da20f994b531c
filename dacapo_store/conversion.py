"""The one cattrs converter between config objects and DaCapo documents.

Built from cattrs pieces: `include_subclasses` with `configure_tagged_union` (tag
`__type__`, the bare class name) for each family, cattrs' generated per-class functions
(made once and cached), detailed validation, and `transform_error` for the messages.
Nothing taken from a document is ever evaluated or imported: a `__type__` is only looked
up among the registered classes of the family expected at that place.
"""

from __future__ import annotations

import logging
import sys
import typing
from collections.abc import Mapping
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path, PurePath
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.strategies import configure_tagged_union, include_subclasses
from cattrs.v import format_exception, transform_error

from .configs._base import FAMILIES, TYPE_KEY, Coordinate, family_of, register_config, registry_generation
from .errors import ConfigValidationError, UnknownConfigTypeError

if sys.version_info < (3, 11):  # cattrs raises the backport's groups there (its own dependency)
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_POINT_GROUP = "dacapo_store.configs"


class _Mismatch(TypeError):
    """A value of the wrong type; its message is the whole explanation."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _strict(kind: type, accept: tuple[type, ...], cast: Any = None):
    name = kind.__name__

    def structure(value: Any, _: Any) -> Any:
        if type(value) is bool and kind is not bool:
            raise _Mismatch(f"expected {name}, got {_describe(value)}")
        if not isinstance(value, accept):
            raise _Mismatch(f"expected {name}, got {_describe(value)}")
        return cast(value) if cast is not None else value

    return structure


def _structure_coordinate(value: Any, _: Any) -> Coordinate:
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and type(v) is not bool for v in value):
        return Coordinate(int(v) for v in value)  # plain ints: MongoDB may hand back bson Int64
    raise _Mismatch(f"expected a list of ints, got {_describe(value)}")


def _structure_path(value: Any, _: Any) -> Path:
    if isinstance(value, (str, PurePath)):
        return Path(value)
    raise _Mismatch(f"expected a path string, got {_describe(value)}")


def _family_order() -> list[type]:
    """Families sorted so that each comes after the families its members' fields hold.

    cattrs embeds the hook of a field's type when it generates a class's function, so a
    family must be configured before any family whose members contain it.
    """

    def referenced(tp: Any, out: set[type]) -> None:
        if isinstance(tp, type) and family_of(tp) is not None:
            out.add(family_of(tp))
        for arg in typing.get_args(tp):
            referenced(arg, out)

    deps: dict[type, set[type]] = {}
    for family, members in FAMILIES.items():
        found: set[type] = set()
        for cls in members.values():
            for a in attrs.fields(attrs.resolve_types(cls)):
                referenced(a.type, found)
        deps[family] = found - {family}
    order: list[type] = []
    visiting: set[type] = set()

    def visit(family: type) -> None:
        if family in order or family in visiting:
            return
        visiting.add(family)
        for dep in sorted(deps[family], key=lambda f: f.__name__):
            visit(dep)
        order.append(family)

    for family in sorted(deps, key=lambda f: f.__name__):
        visit(family)
    return order


class ConfigConverter(cattrs.Converter):
    """cattrs converter for DaCapo documents; rebuilt when a config class is registered."""

    def __init__(self) -> None:
        # Configured on first use: importing dacapo_store stays cheap, and plugins that
        # import dacapo_store themselves are loaded only once it is fully imported.
        self._built_for = -1
        self._plugins_loaded = False
        self._building = False

    # -- configuration ---------------------------------------------------------------------

    def _build(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            load_plugins()
        # Re-running the base initialiser drops every hook made for the previous registry.
        cattrs.Converter.__init__(
            self,
            detailed_validation=True,
            forbid_extra_keys=True,
            unstruct_collection_overrides={tuple: list},
        )
        for kind, accept, cast in (
            (int, (int,), int),  # int(): a bson Int64 becomes a plain int
            (float, (int, float), float),
            (str, (str,), None),
            (bool, (bool,), None),
        ):
            self.register_structure_hook(kind, _strict(kind, accept, cast))
        self.register_structure_hook(Coordinate, _structure_coordinate)
        self.register_unstructure_hook(Coordinate, list)
        self.register_structure_hook(Path, _structure_path)
        self.register_unstructure_hook(PurePath, str)
        self.register_unstructure_hook_factory(_is_unregistered_member, _refuse_unregistered)
        for family in _family_order():
            self._configure_family(family)
        self._built_for = registry_generation()

    def _configure_family(self, family: type) -> None:
        members = tuple(FAMILIES[family].values())
        subclasses = tuple(m for m in members if m is not family)
        if subclasses:
            include_subclasses(
                family,
                self,
                subclasses=subclasses,
                union_strategy=partial(configure_tagged_union, tag_name=TYPE_KEY),
            )
        else:
            # include_subclasses leaves a family of one class alone; tag it the same way.
            plain = self.get_unstructure_hook(family, cache_result=False)
            self.register_unstructure_hook_func(partial(_is, family), partial(_tagged, plain, family))
        for cls in members:
            allowed = tuple(sorted(m.__name__ for m in members if issubclass(m, cls)))
            inner = self.get_structure_hook(cls)
            hook = partial(_checked_structure, cls=cls, allowed=allowed, inner=inner, leaf=len(allowed) == 1)
            self.register_structure_hook_func(partial(_is, cls), hook)

    def _ensure_current(self) -> None:
        if self._built_for != registry_generation() and not self._building:
            log.debug("building the converter for the registered config classes")
            self._building = True
            try:
                self._build()
            finally:
                self._building = False

    # -- the public operations ---------------------------------------------------------------

    def get_structure_hook(self, cl: Any, cache_result: bool = True) -> Any:
        self._ensure_current()
        return super().get_structure_hook(cl, cache_result)

    def get_unstructure_hook(self, type: Any, cache_result: bool = True) -> Any:
        self._ensure_current()
        return super().get_unstructure_hook(type, cache_result)

    def unstructure(self, obj: Any, unstructure_as: Any = None) -> Any:
        if self._built_for != registry_generation():
            self._ensure_current()
        try:
            return super().unstructure(obj, unstructure_as)
        except KeyError as exc:
            # A family's tagged-union hook looks members up by class: an unregistered
            # subclass held in a field typed as the family surfaces as a KeyError.
            missing = exc.args[0] if exc.args else None
            if isinstance(missing, type) and _is_unregistered_member(missing):
                raise UnknownConfigTypeError(_unregistered_message(missing)) from None
            raise

    def structure(self, obj: Any, cl: type[T]) -> T:
        """Structure `obj` as `cl`; raise ConfigValidationError naming every bad field."""
        if self._built_for != registry_generation():
            self._ensure_current()
        if attrs.has(cl) and not isinstance(obj, Mapping):
            raise ConfigValidationError(
                f"expected a mapping for {cl.__name__}, got {type(obj).__name__} {_describe(obj)}"
            )
        try:
            return super().structure(obj, cl)
        except UnknownConfigTypeError:
            raise
        except (
            ClassValidationError,
            IterableValidationError,
            KeyError,
            TypeError,
            ValueError,
        ) as exc:
            raise _translate(exc, cl) from exc


def _is(cls: type, t: Any) -> bool:
    return t is cls


def _tagged(plain: Any, family: type, obj: Any) -> dict:
    if type(obj) is not family:
        # A field typed as a one-class family hands any subclass here; its own fields would be lost.
        raise UnknownConfigTypeError(_unregistered_message(type(obj)))
    doc = plain(obj)
    doc[TYPE_KEY] = family.__name__
    return doc


def _is_unregistered_member(t: Any) -> bool:
    if not isinstance(t, type):
        return False
    family = family_of(t)
    return family is not None and FAMILIES[family].get(t.__name__) is not t


def _unregistered_message(cls: type) -> str:
    return (
        f"{cls.__module__}.{cls.__qualname__} is not a registered config class; "
        "decorate it with @dacapo_store.register_config"
    )


def _refuse_unregistered(t: type):
    def refuse(obj: Any) -> Any:
        raise UnknownConfigTypeError(_unregistered_message(type(obj)))

    return refuse


def _checked_structure(
    val: Any, t: Any, *, cls: type, allowed: tuple[str, ...], inner: Any, leaf: bool
) -> Any:
    if not isinstance(val, Mapping):
        raise _Mismatch(f"expected a {cls.__name__} mapping with '{TYPE_KEY}', got {_describe(val)}")
    tag = val.get(TYPE_KEY)
    if tag not in allowed:
        what = f"unknown {TYPE_KEY} {_describe(tag)}" if tag is not None else f"missing {TYPE_KEY}"
        raise UnknownConfigTypeError(f"{what} for a {cls.__name__}; registered: {', '.join(allowed)}")
    if leaf:
        # A class without subclasses has no union hook to strip the tag for it.
        val = {k: v for k, v in val.items() if k != TYPE_KEY}
    return inner(val, t)


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, (_Mismatch, UnknownConfigTypeError)):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unexpected key(s): {', '.join(sorted(map(str, exc.extra_fields)))}"
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ValueError):
        return str(exc)
    return format_exception(exc, type_)


def _translate(exc: BaseException, cl: type) -> ConfigValidationError:
    """One error naming every bad field as `path: problem`; the unknown-type kind if any is."""
    leaves: list[BaseException] = []

    def collect(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                collect(sub)
        else:
            leaves.append(e)

    collect(exc)
    errors = []
    for line in transform_error(exc, path="$", format_exception=_format):
        message, _, path = line.rpartition(" @ ")
        path = path.removeprefix("$").removeprefix(".")
        errors.append(f"{path}: {message}" if path else message)
    kind = (
        UnknownConfigTypeError
        if any(isinstance(e, UnknownConfigTypeError) for e in leaves)
        else ConfigValidationError
    )
    summary = f"invalid {cl.__name__} document: " + "; ".join(errors)
    return kind(summary, errors)


def load_plugins() -> list[str]:
    """Import the entry points of group `dacapo_store.configs`; a class found is registered.

    A plugin that fails to load is logged and skipped, so one broken package can't make
    the registry unreadable.
    """
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, type):
                register_config(obj)
            loaded.append(ep.name)
        except Exception:
            log.exception("config plugin %r (%s) failed to load", ep.name, ep.value)
    return loaded


#: The converter: `converter.unstructure(config)` / `converter.structure(doc, RunConfig)`.
converter = ConfigConverter()
