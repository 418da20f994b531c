"""Name checks done before any path or query is built from a name."""

from __future__ import annotations

import unicodedata

from .errors import InvalidNameError

_MAX_BYTES = 250

NAME_RULE = (
    "a non-empty name of printable characters without '\\', '/' or control characters, "
    "not '.' or '..', not starting with '.', at most 250 bytes in UTF-8"
)


def check_name(name: object, what: str = "name", *, allow_slash: bool = False) -> str:
    """Return `name` if it is a valid store name (CONTRACT.md "Names"); raise TypeError/InvalidNameError.

    DaCapo's generated names (with `&`, `[`, `]`, over 128 characters) are valid. `/` only where the
    backend can hold it (`allow_slash`), never in a file name.
    """
    if type(name) is not str:
        raise TypeError(f"{what} must be a str, got {type(name).__name__}: {name!r}")
    if (
        not name
        or name.startswith(".")
        or len(name.encode("utf-8", "surrogatepass")) > _MAX_BYTES
        or "\\" in name
        or ("/" in name and not allow_slash)
        or any(unicodedata.category(ch).startswith("C") for ch in name)
    ):
        raise InvalidNameError(f"invalid {what} {name!r}: use {NAME_RULE}")
    return name
