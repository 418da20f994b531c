"""The one cattrs converter between config objects and DaCapo documents.

A `cattrs.Converter` with detailed validation and forbidden extra keys, configured with:
strict hooks for the primitives, `Coordinate`, `Roi` and `Path`; per family, a predicate hook
that reads the `__type__` tag (the bare class name, first in every document, as DaCapo writes
it) and dispatches to cattrs' generated per-class function (`make_dict_structure_fn` /
`make_dict_unstructure_fn`, made once per class and cached); and cattrs' `transform_error`
behind the messages. Nothing taken from a document is ever evaluated or imported: a `__type__`
is only looked up among the registered classes of the family expected at that place.

It is built on first use and rebuilt when a config class registers; hooks a user registered on
it are registered again after each rebuild, so a class registered later never drops them.
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Mapping
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path, PurePath
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn
from cattrs.v import format_exception, transform_error

from .configs._base import (
    FAMILIES,
    TYPE_KEY,
    Coordinate,
    Roi,
    family_of,
    register_config,
    registry_generation,
)
from .errors import ConfigValidationError, UnknownConfigTypeError

if sys.version_info < (3, 11):  # cattrs raises the backport's groups there (its own dependency)
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_POINT_GROUP = "dacapo_store.configs"


class _Mismatch(TypeError):
    """A value of the wrong type; its message is the whole explanation.

    `expected` and `value` let lenient reading decide whether the value converts without loss.
    """

    def __init__(self, message: str, expected: Any = None, value: Any = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.value = value


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    """An int or an int subclass such as bson's Int64, but not a bool."""
    return isinstance(value, int) and type(value) is not bool


def _strict(kind: type, accept: tuple[type, ...]):
    name = kind.__name__

    def structure(value: Any, _: Any) -> Any:
        # A value is kept as it is: DaCapo writes the int 1 into some float fields (its
        # defaults), and the document read back must unstructure to the same bytes.
        if (type(value) is bool and kind is not bool) or not isinstance(value, accept):
            raise _Mismatch(f"expected {name}, got {_describe(value)}", kind, value)
        # pymongo hands back ints >= 2**31 as bson Int64: a plain int here.
        return int(value) if _is_int(value) and type(value) is not int else value

    return structure


def _structure_coordinate(value: Any, _: Any) -> Coordinate:
    if isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
        return Coordinate(int(v) for v in value)  # plain ints: MongoDB may hand back bson Int64
    raise _Mismatch(f"expected a list of ints, got {_describe(value)}", Coordinate, value)


def _structure_roi(value: Any, _: Any) -> Roi:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        offset, shape = (_structure_coordinate(v, None) for v in value)
        if len(offset) == len(shape):
            return Roi(offset, shape)
    raise _Mismatch(f"expected [offset, shape], two lists of ints, got {_describe(value)}", Roi, value)


def _structure_path(value: Any, _: Any) -> Path:
    if isinstance(value, (str, PurePath)):
        return Path(value)
    raise _Mismatch(f"expected a path string, got {_describe(value)}", Path, value)


def _unstructure_roi(roi: Roi) -> tuple:
    return (tuple(roi[0]), tuple(roi[1]))


class ConfigConverter(cattrs.Converter):
    """cattrs converter for DaCapo documents; rebuilt when a config class is registered."""

    def __init__(self) -> None:
        # Configured on first use: importing dacapo_store stays cheap, and plugins that
        # import dacapo_store themselves are loaded only once it is fully imported.
        self._built_for = -1
        self._plugins_loaded = False
        self._building = False
        #: (method name, args, kwargs) of every hook registered from outside, replayed on rebuild
        self._user_hooks: list[tuple[str, tuple, dict]] = []

    # -- configuration ---------------------------------------------------------------------

    def _build(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            load_plugins()
        # Re-running the base initialiser drops every hook made for the previous registry.
        # No collection overrides: like DaCapo's converter, a tuple field stays a tuple.
        cattrs.Converter.__init__(self, detailed_validation=True, forbid_extra_keys=True)
        for kind, accept in ((int, (int,)), (float, (int, float)), (str, (str,)), (bool, (bool,))):
            self.register_structure_hook(kind, _strict(kind, accept))
        self.register_structure_hook(Coordinate, _structure_coordinate)
        self.register_unstructure_hook(Coordinate, tuple)
        self.register_structure_hook(Roi, _structure_roi)
        self.register_unstructure_hook(Roi, _unstructure_roi)
        self.register_structure_hook(Path, _structure_path)
        self.register_unstructure_hook(PurePath, str)
        self.register_unstructure_hook_factory(_is_unregistered_member, _refuse_unregistered)
        # Every class of a family gets both hooks before any per-class function is made, so
        # families that hold themselves (arrays wrapping arrays, a task inside a task) work.
        self._plain_unstructure: dict[type, Any] = {}
        self._plain_structure: dict[type, Any] = {}
        for family, members in FAMILIES.items():
            for cls in members.values():
                allowed = tuple(sorted(m.__name__ for m in members.values() if issubclass(m, cls)))
                self.register_unstructure_hook_func(partial(_is, cls), self._unstructure_member)
                self.register_structure_hook_func(
                    partial(_is, cls), partial(self._structure_member, family=family, allowed=allowed)
                )
        for name, args, kwargs in self._user_hooks:  # after ours: a user's hook wins
            getattr(cattrs.Converter, name)(self, *args, **kwargs)
        self._built_for = registry_generation()

    def _unstructure_member(self, obj: Any) -> dict[str, Any]:
        """`{"__type__": <class name>, **fields}`: the key first, as DaCapo writes it."""
        cls = type(obj)
        plain = self._plain_unstructure.get(cls)
        if plain is None:
            if _is_unregistered_member(cls):
                raise UnknownConfigTypeError(_unregistered_message(cls))
            plain = self._plain_unstructure[cls] = make_dict_unstructure_fn(cls, self)
        doc = {TYPE_KEY: cls.__name__}
        doc.update(plain(obj))
        return doc

    def _structure_member(self, val: Any, t: Any, *, family: type, allowed: tuple[str, ...]) -> Any:
        if not isinstance(val, Mapping):
            raise _Mismatch(f"expected a {t.__name__} mapping with '{TYPE_KEY}', got {_describe(val)}")
        tag = val.get(TYPE_KEY)
        if tag not in allowed:
            what = f"unknown {TYPE_KEY} {_describe(tag)}" if tag is not None else f"missing {TYPE_KEY}"
            raise UnknownConfigTypeError(f"{what} for a {t.__name__}; registered: {', '.join(allowed)}")
        cls = FAMILIES[family][tag]
        inner = self._plain_structure.get(cls)
        if inner is None:
            inner = self._plain_structure[cls] = make_dict_structure_fn(cls, self)
        return inner({k: v for k, v in val.items() if k != TYPE_KEY}, cls)

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

    def structure_lenient(self, obj: Any, cl: type[T]) -> tuple[T, list[str]]:
        """Structure a stored document as DaCapo 0.3.x reads it; (config, notes).

        An unknown key is ignored and a number that converts without loss does
        (`100000.0` in an int field, `1` in a bool field); each such fix is a note naming
        the field path. Anything else fails as in `structure`. Writing stays strict.
        """
        notes: list[str] = []
        doc = obj
        for _ in range(_MAX_REPAIRS):
            try:
                return self.structure(doc, cl), notes
            except ConfigValidationError as exc:
                if doc is obj:
                    doc = copy.deepcopy(obj)
                if not _repair(doc, getattr(exc, "leaves", []), notes):
                    raise
        return self.structure(doc, cl), notes


def _kept_across_rebuilds(name: str) -> Any:
    """A hook registration that the converter records, to register it again after a rebuild."""
    base = getattr(cattrs.Converter, name)

    def register(self: ConfigConverter, *args: Any, **kwargs: Any) -> Any:
        # the decorator forms call again with the hook: only calls that give one are recorded
        given = len(args) >= 2 or any(kwargs.get(k) is not None for k in ("func", "factory"))
        if given and not self._building:
            self._ensure_current()
            self._user_hooks.append((name, args, kwargs))
        return base(self, *args, **kwargs)

    register.__name__ = register.__qualname__ = name
    register.__doc__ = base.__doc__
    return register


for _name in (
    "register_structure_hook",
    "register_unstructure_hook",
    "register_structure_hook_func",
    "register_unstructure_hook_func",
    "register_structure_hook_factory",
    "register_unstructure_hook_factory",
):
    setattr(ConfigConverter, _name, _kept_across_rebuilds(_name))


#: Rounds of lenient fixes before giving up (each round fixes every error cattrs reported).
_MAX_REPAIRS = 8


def _is(cls: type, t: Any) -> bool:
    return t is cls


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


def _leaves(exc: BaseException, path: tuple = ()) -> list[tuple[tuple, BaseException]]:
    """Every leaf error of a cattrs exception tree with its path (field names and indices)."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        out = []
        for sub, note in with_notes:
            step = note.name if isinstance(exc, ClassValidationError) else note.index
            out += _leaves(sub, (*path, step))
        for sub in without:
            out += _leaves(sub, path)
        return out
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub, path)]
    return [(path, exc)]


def format_path(path: tuple) -> str:
    """`trainer_config.augments[0].subsample` for ("trainer_config", "augments", 0, "subsample")."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


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
    error = kind(summary, errors)
    error.leaves = _leaves(exc)  # type: ignore[attr-defined] -- for lenient reading
    return error


def _lossless(expected: Any, value: Any) -> tuple[bool, Any]:
    """(True, converted) when `value` becomes an `expected` without losing anything."""
    if expected is int and type(value) is float and value.is_integer():
        return True, int(value)
    if expected is bool and type(value) is int and value in (0, 1):
        return True, bool(value)
    if (
        expected is Coordinate
        and isinstance(value, (list, tuple))
        and all(type(v) is int or (type(v) is float and v.is_integer()) for v in value)
    ):
        return True, type(value)(int(v) for v in value)
    return False, None


def _repair(doc: Any, leaves: list[tuple[tuple, BaseException]], notes: list[str]) -> bool:
    """Fix in `doc` what converts without loss; add a note per fix; False if nothing could be."""
    fixed = False
    for path, exc in leaves:
        try:
            parent = doc
            for step in path[:-1] if path else ():
                parent = parent[step]
            if isinstance(exc, ForbiddenExtraKeysError):
                target = parent[path[-1]] if path else doc
                for key in sorted(exc.extra_fields):
                    target.pop(key, None)
                    notes.append(f"{format_path((*path, key))}: unknown key ignored")
                fixed = True
            elif isinstance(exc, _Mismatch) and path:
                ok, value = _lossless(exc.expected, exc.value)
                if ok:
                    parent[path[-1]] = value
                    notes.append(f"{format_path(path)}: {exc.value!r} read as {value!r}")
                    fixed = True
        except (KeyError, IndexError, TypeError):
            continue
    return fixed


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
