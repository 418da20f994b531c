"""Reading and writing config documents as YAML that both dacapo_store and DaCapo read.

Written documents are YAML in flow style shaped like indented JSON: PyYAML (DaCapo's
`full_load`) reads them as YAML, while we read them with `json.loads`, many times faster
than any YAML parser. Floats are written so that YAML 1.1 sees floats too (`1.0e-05`, not
`1e-05`), and what JSON can't say (non-finite floats, characters beyond the BMP) is
written with YAML escapes, which sends our reader down the YAML path for that file.

A tuple is tagged `!!python/tuple`, as DaCapo's `yaml.dump` writes it, so that DaCapo's
`full_load` gives back a tuple and its `==` comparison on re-store holds. A tagged sequence
ends in `,]` (a trailing comma, which YAML allows) and nothing else does: our writer
escapes `[` and `]` inside strings. So the fast path needs three `str.replace` calls to make
each tuple a marked JSON object, and `json.loads` hands it back as a tuple.

DaCapo's own files are block YAML: they are read with a safe loader (the C one when PyYAML
has it) that accepts exactly one Python tag, `!!python/tuple`, as a tuple.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DacapoYamlLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """Safe YAML loader that also takes DaCapo's `!!python/tuple`, as a tuple, and nothing else."""


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> tuple:
    return tuple(loader.construct_sequence(node, deep=True))


DacapoYamlLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)

_json_string = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]

TUPLE_TAG = "!!python/tuple "
#: What the fast path puts in place of a tag: a JSON object with a key our writer refuses in
#: documents (it holds NUL), so an object holding it is always a tuple.
_TUPLE_KEY = "\x00tuple"
_OPEN_TUPLE = '{"\\u0000tuple": ['
_EMPTY_TUPLE = '{"\\u0000tuple": []}'
_BRACKETS = str.maketrans({"[": "\\u005b", "]": "\\u005d"})


def _string(s: str) -> str:
    out = _json_string(s).translate(_BRACKETS)
    if any(ord(c) > 0xFFFF for c in s):
        # JSON would write a surrogate pair, which YAML reads as two broken characters.
        out = '"' + "".join(f"\\U{ord(c):08x}" if ord(c) > 0xFFFF else _json_string(c)[1:-1] for c in s) + '"'
        out = out.translate(_BRACKETS)
    return out


def _float(x: float) -> str:
    if math.isnan(x):
        return ".nan"
    if math.isinf(x):
        return ".inf" if x > 0 else "-.inf"
    text = repr(x)
    if "e" in text and "." not in text:
        text = text.replace("e", ".0e")
    return text


def _emit(value: Any, indent: str, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = indent + "  "
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if not isinstance(k, str) or "\x00" in k:
                raise TypeError(f"document keys must be str without NUL, got {k!r}")
            out.append(("\n" if i == 0 else ",\n") + inner + _string(k) + ": ")
            _emit(v, inner, out)
        out.append("\n" + indent + "}")
    elif isinstance(value, (list, tuple)):
        tagged = isinstance(value, tuple)
        if tagged:
            out.append(TUPLE_TAG)
        if not value:
            out.append("[]")
            return
        if all(isinstance(v, (int, float, str, bool)) or v is None for v in value):
            out.append("[")
            for i, v in enumerate(value):
                if i:
                    out.append(", ")
                _emit(v, indent, out)
            out.append(",]" if tagged else "]")
            return
        inner = indent + "  "
        out.append("[")
        for i, v in enumerate(value):
            out.append(("\n" if i == 0 else ",\n") + inner)
            _emit(v, inner, out)
        out.append("\n" + indent + (",]" if tagged else "]"))
    else:
        raise TypeError(f"can't write a {type(value).__name__} into a config document: {value!r}")


_PYTHON_TAG = "tag:yaml.org,2002:python/"


def python_tag(exc: BaseException) -> str | None:
    """`!!python/...` if the loader refused a Python tag other than the tuple (nothing ran), else None."""
    if isinstance(exc, yaml.constructor.ConstructorError) and exc.problem and _PYTHON_TAG in exc.problem:
        tag = exc.problem[exc.problem.index(_PYTHON_TAG) :].split("'")[0]
        return "!!" + tag.removeprefix("tag:yaml.org,2002:")
    return None


def dump(doc: dict[str, Any]) -> str:
    """The text of one document: YAML for DaCapo, JSON for us when JSON can say it."""
    out: list[str] = []
    _emit(doc, "", out)
    out.append("\n")
    return "".join(out)


def _tuple_hook(obj: dict) -> Any:
    if len(obj) == 1 and _TUPLE_KEY in obj:
        return tuple(obj[_TUPLE_KEY])
    return obj


def load(text: str) -> Any:
    """Parse a document written by dacapo_store or by DaCapo; raises yaml.YAMLError or ValueError."""
    if text.startswith("{"):
        try:
            if TUPLE_TAG in text:
                marked = text.replace(TUPLE_TAG + "[]", _EMPTY_TUPLE).replace(TUPLE_TAG + "[", _OPEN_TUPLE)
                return json.loads(marked.replace(",]", "]}"), object_hook=_tuple_hook)
            return json.loads(text)
        except ValueError:
            pass  # YAML escapes or a hand edit: the YAML parser decides.
    return yaml.load(text, Loader=DacapoYamlLoader)
