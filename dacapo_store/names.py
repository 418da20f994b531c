"""Name checks done before any path or query is built from a name."""

from __future__ import annotations

import re

from .errors import InvalidNameError

_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}")

NAME_RULE = "1 to 128 characters of letters, digits, '_', '-', '.', not starting with '.'"


def check_name(name: object, what: str = "name") -> str:
    """Return `name` if it is a valid store name; raise TypeError/InvalidNameError otherwise."""
    if type(name) is not str:
        raise TypeError(f"{what} must be a str, got {type(name).__name__}: {name!r}")
    if _NAME.fullmatch(name) is None:
        raise InvalidNameError(f"invalid {what} {name!r}: use {NAME_RULE}")
    return name
