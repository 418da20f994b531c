"""Strict query parameters: an unknown key, a bad number or a bad name is a 400, never ignored."""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import QueryParams

from ..criteria import check_criterion
from ..names import check_name


class BadRequest(ValueError):
    """A request the dashboard can't answer as asked (400)."""


class NotFound(LookupError):
    """Something the request names is not in the store (404)."""


class Params:
    """The query string of one request, read through typed getters; `done()` rejects leftovers."""

    def __init__(self, query: QueryParams, allowed: Collection[str]) -> None:
        unknown = sorted(set(query.keys()) - set(allowed))
        if unknown:
            takes = ", ".join(sorted(allowed)) or "none"
            raise BadRequest(f"unknown query parameter {unknown[0]!r}; this page takes: {takes}")
        self.query = query

    def _values(self, key: str) -> list[str]:
        out = []
        for value in self.query.getlist(key):
            out += [v.strip() for v in value.split(",") if v.strip()]
        return out

    def strings(self, key: str) -> tuple[str, ...]:
        """Every value of a repeatable parameter (a value may also list several, comma-separated)."""
        return tuple(dict.fromkeys(self._values(key)))

    def string(self, key: str) -> str | None:
        values = self._values(key) if key != "name" else [v for v in self.query.getlist(key) if v.strip()]
        if len(values) > 1:
            raise BadRequest(f"{key} takes one value, got {len(values)}")
        return values[0].strip() if values else None

    def names(self, key: str, what: str) -> tuple[str, ...]:
        values = self._values(key)
        for v in values:
            try:
                check_name(v, what)
            except (ValueError, TypeError) as exc:
                raise BadRequest(str(exc)) from None
        return tuple(dict.fromkeys(values))

    def name(self, key: str, what: str) -> str | None:
        names = self.names(key, what)
        if len(names) > 1:
            raise BadRequest(f"{key} takes one value, got {len(names)}")
        return names[0] if names else None

    def choice(self, key: str, choices: Collection[str], default: str | None = None) -> str | None:
        value = self.string(key)
        if value is None:
            return default
        if value not in choices:
            raise BadRequest(f"unknown {key} {value!r}: use one of {', '.join(choices)}")
        return value

    def choices(self, key: str, choices: Collection[str]) -> tuple[str, ...]:
        values = self._values(key)
        for value in values:
            if value not in choices:
                raise BadRequest(f"unknown {key} {value!r}: use one of {', '.join(choices)}")
        return tuple(dict.fromkeys(values))

    def integer(self, key: str, default: int, low: int, high: int | None = None) -> int:
        value = self.string(key)
        if value is None:
            return default
        if not (value.isascii() and value.isdigit()) or len(value) > 12:
            raise BadRequest(f"{key} must be a non-negative integer, got {value!r}")
        number = int(value)
        if number < low or (high is not None and number > high):
            upper = f" and at most {high}" if high is not None else ""
            raise BadRequest(f"{key} must be at least {low}{upper}, got {number}")
        return number

    def criterion(self, key: str = "criterion") -> str | None:
        value = self.string(key)
        if value is None:
            return None
        try:
            return check_criterion(value)
        except (ValueError, TypeError) as exc:
            raise BadRequest(str(exc)) from None

    def criteria(self, key: str = "criterion") -> tuple[str, ...]:
        """Every criterion a repeatable parameter names, each checked as `criterion` checks one."""
        out = []
        for value in self.strings(key):
            try:
                out.append(check_criterion(value))
            except (ValueError, TypeError) as exc:
                raise BadRequest(str(exc)) from None
        return tuple(out)
