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

Two dialects of documents exist, DaCapo 0.3.5's and DaCapo main's (see
`dacapo_store.dialects` and the README): one converter per dialect, made from the same
classes, whose fields' metadata say how each dialect writes them (a key renamed, a field
left out, a value required). `converter` writes DaCapo 0.3.5's documents and reads both:
`dialect_of` tells a document's dialect by its fields.
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
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception, transform_error

from .configs._base import (
    DIALECTS,
    FAMILIES,
    TYPE_KEY,
    Coordinate,
    Roi,
    dialects_of,
    document_key,
    family_of,
    register_config,
    registry_generation,
    required_in,
)
from .errors import ConfigValidationError, DialectError, UnknownConfigTypeError

if sys.version_info < (3, 11):  # cattrs raises the backport's groups there (its own dependency)
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_POINT_GROUP = "dacapo_store.configs"

#: The dialect `converter` writes: DaCapo 0.3.5's, as the contract says.
DEFAULT_DIALECT = "0.3.5"


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
    """cattrs converter for one dialect of DaCapo documents; rebuilt when a config class is registered.

    `unstructure`, `structure` and `structure_lenient` take `dialect=`: another dialect is
    handed to that dialect's converter; a document read without one is read in the dialect
    `dialect_of` finds in it.
    """

    def __init__(self, dialect: str = DEFAULT_DIALECT) -> None:
        # Configured on first use: importing dacapo_store stays cheap, and plugins that
        # import dacapo_store themselves are loaded only once it is fully imported.
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}: use one of {', '.join(DIALECTS)}")
        self.dialect = dialect
        self._built_for = -1
        self._building = False
        #: (method name, args, kwargs) of every hook registered from outside, replayed on rebuild
        self._user_hooks: list[tuple[str, tuple, dict]] = []

    # -- configuration ---------------------------------------------------------------------

    def _build(self) -> None:
        _load_plugins_once()
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
        # Attrs classes outside the families (RunConfig and its subclasses) get this
        # dialect's keys too.
        self.register_unstructure_hook_factory(_is_plain_config, self._unstructure_plain_factory)
        self.register_structure_hook_factory(_is_plain_config, self._structure_plain_factory)
        # Every class of a family gets both hooks before any per-class function is made, so
        # families that hold themselves (arrays wrapping arrays, a task inside a task) work.
        self._plain_unstructure: dict[type, Any] = {}
        self._plain_structure: dict[type, Any] = {}
        for family, members in FAMILIES.items():
            for cls in members.values():
                allowed = tuple(
                    sorted(
                        m.__name__
                        for m in members.values()
                        if issubclass(m, cls) and self.dialect in dialects_of(m)
                    )
                )
                self.register_unstructure_hook_func(partial(_is, cls), self._unstructure_member)
                self.register_structure_hook_func(
                    partial(_is, cls), partial(self._structure_member, family=family, allowed=allowed)
                )
        for name, args, kwargs in self._user_hooks:  # after ours: a user's hook wins
            getattr(cattrs.Converter, name)(self, *args, **kwargs)
        self._built_for = registry_generation()

    def _overrides(self, cls: type) -> dict[str, Any]:
        """cattrs overrides of `cls`'s fields for this dialect: renamed keys, fields it lacks,
        values it requires."""
        out = {}
        for a in attrs.fields(cls):
            key = document_key(a, self.dialect)
            if key is None:
                out[a.name] = override(omit=True)
            elif key != a.name:
                out[a.name] = override(rename=key)
        return out

    def _required(self, cls: type) -> list[tuple[str, attrs.Attribute]]:
        return [(document_key(a, self.dialect), a) for a in attrs.fields(cls) if required_in(a, self.dialect)]

    def _refuse_other_dialect(self, cls: type) -> None:
        if self.dialect not in dialects_of(cls):
            raise DialectError(
                f"{cls.__name__} exists only in DaCapo {' and '.join(dialects_of(cls))}; "
                f"a DaCapo {self.dialect} document can't hold it"
            )

    def _make_unstructure(self, cls: type) -> Any:
        plain = make_dict_unstructure_fn(cls, self, **self._overrides(cls))
        order = getattr(cls, "__dacapo_key_order__", {}).get(self.dialect)
        if order is None:
            return plain

        def in_dialect_order(obj: Any) -> dict[str, Any]:
            doc = plain(obj)
            ordered = {key: doc[key] for key in order if key in doc}
            ordered.update((k, v) for k, v in doc.items() if k not in ordered)
            return ordered

        return in_dialect_order

    def _make_structure(self, cls: type) -> Any:
        inner = make_dict_structure_fn(cls, self, **self._overrides(cls))
        required = self._required(cls)
        if not required:
            return inner

        def with_required(val: Mapping[str, Any], t: Any) -> Any:
            _check_required(val, cls, required, self.dialect)
            return inner(val, t)

        return with_required

    def _unstructure_member(self, obj: Any) -> dict[str, Any]:
        """`{"__type__": <class name>, **fields}`: the key first, as DaCapo writes it."""
        cls = type(obj)
        plain = self._plain_unstructure.get(cls)
        if plain is None:
            if _is_unregistered_member(cls):
                raise UnknownConfigTypeError(_unregistered_message(cls))
            self._refuse_other_dialect(cls)
            plain = self._plain_unstructure[cls] = self._make_unstructure(cls)
        doc = {TYPE_KEY: cls.__name__}
        doc.update(plain(obj))
        return doc

    def _structure_member(self, val: Any, t: Any, *, family: type, allowed: tuple[str, ...]) -> Any:
        if not isinstance(val, Mapping):
            raise _Mismatch(f"expected a {t.__name__} mapping with '{TYPE_KEY}', got {_describe(val)}")
        tag = val.get(TYPE_KEY)
        if tag not in allowed:
            other = FAMILIES[family].get(tag) if isinstance(tag, str) else None
            if other is not None and issubclass(other, t) and self.dialect not in dialects_of(other):
                raise UnknownConfigTypeError(
                    f"{TYPE_KEY} {tag!r} is a DaCapo {' and '.join(dialects_of(other))} class, "
                    f"not one of DaCapo {self.dialect}"
                )
            what = f"unknown {TYPE_KEY} {_describe(tag)}" if tag is not None else f"missing {TYPE_KEY}"
            raise UnknownConfigTypeError(f"{what} for a {t.__name__}; registered: {', '.join(allowed)}")
        cls = FAMILIES[family][tag]
        inner = self._plain_structure.get(cls)
        if inner is None:
            inner = self._plain_structure[cls] = self._make_structure(cls)
        return inner({k: v for k, v in val.items() if k != TYPE_KEY}, cls)

    def _unstructure_plain_factory(self, cls: type) -> Any:
        return self._make_unstructure(cls)

    def _structure_plain_factory(self, cls: type) -> Any:
        return self._make_structure(cls)

    def _ensure_current(self) -> None:
        if self._built_for != registry_generation() and not self._building:
            log.debug("building the DaCapo %s converter for the registered config classes", self.dialect)
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

    def unstructure(self, obj: Any, unstructure_as: Any = None, *, dialect: str | None = None) -> Any:
        """The document of `obj` in `dialect` (this converter's own by default: DaCapo 0.3.5's for
        `converter`); DialectError for a class that dialect doesn't have."""
        if dialect is not None and dialect != self.dialect:
            return converter_for(dialect).unstructure(obj, unstructure_as)
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

    def structure(self, obj: Any, cl: type[T], *, dialect: str | None = None) -> T:
        """Structure `obj` as `cl`; raise ConfigValidationError naming every bad field.

        `dialect=None` reads the document in whichever dialect it is written in (`dialect_of`):
        a document with fields of both is a DialectError naming them.
        """
        if dialect is not None:
            return converter_for(dialect)._structure_strict(obj, cl)
        return _structure_any(obj, cl)

    def _structure_strict(self, obj: Any, cl: type[T]) -> T:
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
            raise _translate(_with_document_keys(exc, self.dialect), cl) from exc

    def structure_lenient(self, obj: Any, cl: type[T], *, dialect: str | None = None) -> tuple[T, list[str]]:
        """Structure a stored document as DaCapo 0.3.x reads it; (config, notes).

        An unknown key is ignored and a number that converts without loss does
        (`100000.0` in an int field, `1` in a bool field); each such fix is a note naming
        the field path. Anything else fails as in `structure`. Writing stays strict. The
        dialect is the document's own (`dialect_of`) unless given: a key of the other
        dialect is never ignored, it makes the document an error.
        """
        if dialect is None:
            try:
                return _structure_any(obj, cl), []
            except DialectError:
                raise
            except ConfigValidationError:
                dialect = dialect_of(obj, cl) or self.dialect
        conv = converter_for(dialect)
        notes: list[str] = []
        doc = obj
        for _ in range(_MAX_REPAIRS):
            try:
                return conv._structure_strict(doc, cl), notes
            except ConfigValidationError as exc:
                if doc is obj:
                    doc = copy.deepcopy(obj)
                if not _repair(doc, getattr(exc, "leaves", []), notes):
                    raise
        return conv._structure_strict(doc, cl), notes

    def dialect_of(self, doc: Any, cl: type) -> str | None:
        """The dialect of a stored document (see the module function)."""
        return dialect_of(doc, cl)


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


def _is_plain_config(t: Any) -> bool:
    """An attrs class outside the families (RunConfig): no `__type__`, but dialect keys."""
    return isinstance(t, type) and attrs.has(t) and family_of(t) is None


def _check_required(
    val: Mapping[str, Any], cls: type, required: list[tuple[str, attrs.Attribute]], dialect: str
) -> None:
    """Raise what cattrs raises for a missing field, for each field `dialect` requires that `val`
    lacks or holds as None (fields whose attrs default exists for the other dialect's sake)."""
    errors: list[Exception] = []
    for key, a in required:
        if key not in val:
            error: Exception = KeyError(key)
        elif val[key] is None:
            error = _Mismatch(f"DaCapo {dialect} requires a value, got None", a.type, None)
        else:
            continue
        error.__notes__ = [  # type: ignore[attr-defined]
            AttributeValidationNote(f"Structuring class {cls.__qualname__} @ attribute {key}", key, a.type)
        ]
        errors.append(error)
    if errors:
        raise ClassValidationError(f"While structuring {cls.__name__}", errors, cls)


def _with_document_keys(exc: BaseException, dialect: str) -> BaseException:
    """`exc` with the document keys of `dialect` in its notes where cattrs put attribute names
    (`_input_shape`, not `input_shape`, in an error about a DaCapo main document)."""
    if isinstance(exc, ClassValidationError) and attrs.has(exc.cl):
        keys = {a.name: document_key(a, dialect) for a in attrs.fields(exc.cl)}
        for sub in exc.exceptions:
            notes = getattr(sub, "__notes__", None)
            if notes:
                sub.__notes__ = [  # type: ignore[attr-defined]
                    AttributeValidationNote(n, keys[n.name], n.type)
                    if isinstance(n, AttributeValidationNote) and keys.get(n.name) not in (None, n.name)
                    else n
                    for n in notes
                ]
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            _with_document_keys(sub, dialect)
    return exc


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


_plugins_loaded = [False]


def _load_plugins_once() -> None:
    if not _plugins_loaded[0]:
        _plugins_loaded[0] = True
        load_plugins()


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


# --- telling the dialects apart ---------------------------------------------------------------


@attrs.frozen
class _Signature:
    """What shows a class's documents' dialect, as (dialect, test) pairs checked per mapping: the
    class exists in one dialect only; a key only one dialect writes is there; a key a dialect
    requires is absent (a key of its own) or None (then it is the other dialect's)."""

    only_in: tuple[str, ...]  # the dialects that have the class, when not all
    own_keys: tuple[tuple[str, frozenset[str]], ...]  # (dialect, keys only it writes)
    required: tuple[tuple[str, str, bool], ...]  # (other dialect, key, the key is the required one's own)
    shows_nothing: bool


_signatures: dict[type, _Signature] = {}
_by_name: dict[str, type] = {}
_signatures_for = [-1]


def _signature(cls: type) -> _Signature:
    found = _signatures.get(cls)
    if found is None:
        fields = attrs.fields(cls) if attrs.has(cls) else ()
        keys = {d: {document_key(a, d) for a in fields} - {None} for d in DIALECTS}
        only = {d: frozenset(keys[d] - set().union(*(keys[o] for o in DIALECTS if o != d))) for d in DIALECTS}
        required = tuple(
            (other, document_key(a, d), document_key(a, d) in only[d])
            for d in DIALECTS
            for a in fields
            if required_in(a, d)
            for other in DIALECTS
            if other != d
        )
        dialects = dialects_of(cls)
        own = tuple((d, only[d]) for d in DIALECTS if only[d])
        found = _signatures[cls] = _Signature(
            dialects if dialects != DIALECTS else (),
            own,
            required,
            not (own or required or dialects != DIALECTS),
        )
    return found


def class_named(tag: str) -> type | None:
    """The registered config class whose documents carry `__type__` `tag` (any family), or None."""
    if _signatures_for[0] != registry_generation():
        _signatures.clear()
        _by_name.clear()
        for members in FAMILIES.values():
            for name, cls in members.items():
                _by_name.setdefault(name, cls)
        _signatures_for[0] = registry_generation()
    return _by_name.get(tag)


def _evidence(value: Any, cls: type | None, path: list[Any], found: dict[str, str]) -> None:
    """Record in `found` (dialect -> first field showing it) what the document at `path` shows.

    `path` is a stack of the steps down to `value`, joined into text only for a finding."""
    if isinstance(value, dict):
        tag = value.get(TYPE_KEY)
        if tag is not None and isinstance(tag, str):
            cls = _by_name.get(tag)
        if cls is not None:
            sig = _signatures.get(cls) or _signature(cls)
            if not sig.shows_nothing:
                for d in sig.only_in:
                    found.setdefault(d, f"{_text(path)} ({TYPE_KEY} {tag})")
                for d, own in sig.own_keys:
                    if d not in found and not own.isdisjoint(value):
                        found[d] = _text([*path, min(own.intersection(value))])
                for other, key, own in sig.required:
                    if other not in found:
                        if key in value:
                            if value[key] is None:
                                found[other] = f"{_text([*path, key])} (None)"
                        elif own:
                            found[other] = f"{_text([*path, key])} (absent)"
        for key, item in value.items():
            if isinstance(item, (dict, list, tuple)):
                path.append(key)
                _evidence(item, None, path, found)
                path.pop()
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, (dict, list, tuple)):
                path.append(i)
                _evidence(item, None, path, found)
                path.pop()
    elif isinstance(value, Mapping):
        _evidence(dict(value), cls, path, found)


def _text(path: list[Any]) -> str:
    return format_path(tuple(path)) or "<document>"


def dialect_of(doc: Any, cl: type) -> str | None:
    """The dialect a stored document of class `cl` is written in, by its fields: "0.3.5",
    "main", or None when both dialects write it alike (a task, most arrays).

    A document holding fields of both dialects is one neither explains: DialectError
    naming a field of each.
    """
    if not isinstance(doc, Mapping):
        return None
    if _signatures_for[0] != registry_generation():
        class_named("")
    found: dict[str, str] = {}
    _evidence(doc, cl if _is_plain_config(cl) else None, [], found)
    if len(found) > 1:
        shown = "; ".join(f"{where} is DaCapo {d}'s" for d, where in found.items())
        raise DialectError(
            f"a {cl.__name__} document that neither DaCapo dialect explains, it mixes both: {shown}",
            [f"{where}: a DaCapo {d} field" for d, where in found.items()],
        )
    return next(iter(found), None)


#: The converter: `converter.unstructure(config)` / `converter.structure(doc, RunConfig)`.
converter = ConfigConverter()
_converters = {
    DEFAULT_DIALECT: converter,
    **{d: ConfigConverter(d) for d in DIALECTS if d != DEFAULT_DIALECT},
}


#: The dialect tried first by a read that doesn't name one: the last one a document was in.
_tried_first = [DEFAULT_DIALECT]


def _structure_any(obj: Any, cl: type[T]) -> T:
    """`obj` structured strictly in the dialect it is written in.

    A document that reads strictly in one dialect shows no field of the other (such a field is
    an unexpected key there, a missing one, or a None it refuses), so trying the dialects in
    turn is exact; the last one that worked goes first, which makes reading a registry of
    either dialect as fast as reading one. When neither reads it, `dialect_of` says which
    dialect's errors to report, or that it mixes both.
    """
    first = _tried_first[0]
    errors: dict[str, ConfigValidationError] = {}
    for dialect in (first, *(d for d in DIALECTS if d != first)):
        try:
            result = _converters[dialect]._structure_strict(obj, cl)
        except ConfigValidationError as exc:
            errors[dialect] = exc
            continue
        _tried_first[0] = dialect
        return result
    raise errors[dialect_of(obj, cl) or DEFAULT_DIALECT]


def converter_for(dialect: str) -> ConfigConverter:
    """The converter writing `dialect`'s documents ("0.3.5" is `converter` itself)."""
    try:
        return _converters[dialect]
    except KeyError:
        raise ValueError(f"unknown DaCapo dialect {dialect!r}: use one of {', '.join(DIALECTS)}") from None
