"""Name checks done before any path or query is built from a name.

The rule is DaCapo's, made safe: DaCapo's `DataSplitGenerator` makes names with `&`, `[`,
`]` and over 128 characters, and puts `/` in dataset and array names. Such names are
values in MongoDB queries; on the files backend a name is a file name (`<name>.yaml`), so
there it can't hold `/` and must fit in 255 bytes with its suffix.
"""

from __future__ import annotations

from .errors import InvalidNameError

#: Longest name in UTF-8 bytes: `<name>.yaml` and `<name>.json` still fit a file name.
MAX_NAME_BYTES = 250

NAME_RULE = (
    "a non-empty string of printable characters without '\\', not '.' or '..', not starting "
    f"with '.', at most {MAX_NAME_BYTES} bytes in UTF-8 ('/' only on MongoDB)"
)


def name_problem(name: str, *, slash_ok: bool = False) -> str | None:
    """Why `name` is not a valid name, or None if it is."""
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "it is '.' or '..'"
    if name.startswith("."):
        return "it starts with '.'"
    if "\\" in name:
        return "it holds '\\'"
    if not name.isprintable():
        bad = next(c for c in name if not c.isprintable())
        return f"it holds the non-printable character {bad!r}"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid unicode"
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long in UTF-8 (at most {MAX_NAME_BYTES})"
    if "/" in name and not slash_ok:
        return "it holds '/', which names a sub-folder on the files backend (only MongoDB stores such names)"
    return None


def check_name(name: object, what: str = "name", *, slash_ok: bool = False) -> str:
    """Return `name` if it is a valid store name; raise TypeError/InvalidNameError otherwise.

    `slash_ok=True` where the name is only ever a value (MongoDB), never part of a path.
    """
    if type(name) is not str:
        raise TypeError(f"{what} must be a str, got {type(name).__name__}: {name!r}")
    problem = name_problem(name, slash_ok=slash_ok)
    if problem is not None:
        raise InvalidNameError(f"invalid {what} {name!r}: {problem}; a name is {NAME_RULE}")
    return name


#: What the files layout keeps at the top of a registry, beside the run folders: a run of one of
#: these names would put its checkpoints into it.
RESERVED_RUN_NAMES = frozenset({"configs", "stats"})


def run_name_problem(name: str, reserved: frozenset[str] = RESERVED_RUN_NAMES) -> str | None:
    """Why a valid name can't name a run whose folder sits beside `reserved` folders, or None."""
    if "/" in name:
        return "a run's name names the folder of its checkpoints, so it can't hold '/' on any backend"
    if name in reserved:
        return (
            f"the files layout keeps its {name}/ folder at the top of a registry, beside the run "
            "folders, so no run can be named so there; choose another name"
        )
    return None
