"""State dicts to bytes and back without pickle: safetensors for models and optimizers.

The safetensors writer streams the tensors' own memory (no second copy of a large model), and the
reader makes tensors that are views of the buffer it is given, so a checkpoint read once (or mapped)
and verified once is not copied again. Files are standard safetensors: `safetensors.torch.load_file`
reads ours and we read theirs.

An optimizer state dict is a tree of dicts (with int keys), lists, tuples, numbers and tensors:
its tensors go into a safetensors file as `t0`, `t1`, ..., and the tree, with each tensor
replaced by its name, into the file's metadata as JSON (`optimizer_chunks`, `load_optimizer`).
Optimizers stored before that are weights-only `torch.save` data, still read (`load_torch`).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator, Mapping
from typing import Any

import torch

# safetensors dtype names; the order of `_DTYPES` is irrelevant, alignment comes from itemsize.
_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "C64": torch.complex64,
}
for _name, _attr in [
    ("U16", "uint16"),
    ("U32", "uint32"),
    ("U64", "uint64"),
    ("F8_E4M3", "float8_e4m3fn"),
    ("F8_E5M2", "float8_e5m2"),
]:
    if hasattr(torch, _attr):
        _DTYPES[_name] = getattr(torch, _attr)
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}

_KEY_ORDER = "dacapo_store.key_order"
#: safetensors metadata key of an optimizer's state tree (JSON, tensors replaced by their names)
_OPTIMIZER_TREE = "dacapo_store.optimizer"
_MAX_HEADER = 100 * 1024 * 1024


class FormatError(ValueError):
    """A blob is not the safetensors/torch data it claims to be."""


def as_state_dict(obj: Any, what: str) -> Mapping[str, Any]:
    """The state dict of a module/optimizer, or `obj` itself if it is already a mapping."""
    if isinstance(obj, Mapping):
        return obj
    state_dict = getattr(obj, "state_dict", None)
    if callable(state_dict):
        return state_dict()
    raise TypeError(f"{what} must be a torch module/optimizer or a state dict, got {type(obj).__name__}")


def safetensors_chunks(
    state: Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> Iterator[memoryview | bytes]:
    """Serialize a model state dict as safetensors, yielding the header then each tensor's bytes.

    `metadata` (str -> str) goes into the header's `__metadata__` beside ours.
    """
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"state dict keys must be str, got {key!r}")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"model state {key!r} is a {type(value).__name__}, not a tensor; can't store it")
        if value.dtype not in _NAMES:
            raise TypeError(f"model state {key!r} has dtype {value.dtype}, which safetensors can't hold")
        tensors[key] = value.detach().to("cpu").contiguous()
    # largest items first keeps every tensor aligned to its item size, as safetensors itself does
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header: dict[str, Any] = {
        "__metadata__": {**(metadata or {}), "format": "pt", _KEY_ORDER: json.dumps(list(tensors))}
    }
    offset = 0
    for key in order:
        t = tensors[key]
        size = t.numel() * t.element_size()
        header[key] = {
            "dtype": _NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    yield struct.pack("<Q", len(raw)) + raw
    for key in order:
        t = tensors[key]
        if t.numel():
            yield memoryview(t.reshape(-1).view(torch.uint8).numpy())


def load_safetensors(buffer: Any) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors buffer, as views of it where aligned (copies otherwise).

    A writable buffer (bytearray, private mmap) gives writable tensors that keep it alive.
    """
    return _read_safetensors(buffer)[0]


def _read_safetensors(buffer: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, the header's `__metadata__`) of a safetensors buffer."""
    view = memoryview(buffer).cast("B")
    if len(view) < 8:
        raise FormatError("too short for safetensors")
    (n,) = struct.unpack("<Q", view[:8])
    if n > min(_MAX_HEADER, len(view) - 8):
        raise FormatError(f"header length {n} does not fit in {len(view)} bytes")
    try:
        header = json.loads(bytes(view[8 : 8 + n]))
    except ValueError as exc:
        raise FormatError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise FormatError("header is not a mapping")
    start = 8 + n
    data_len = len(view) - start
    metadata = header.pop("__metadata__", None) or {}
    out: dict[str, torch.Tensor] = {}
    for key, info in header.items():
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = [int(d) for d in info["shape"]]
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"bad header entry for {key!r}: {exc!r}") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        numel = 1
        for d in shape:
            if d < 0:
                raise FormatError(f"negative dimension in {key!r}")
            numel *= d
        if not 0 <= begin <= end <= data_len or end - begin != numel * itemsize:
            raise FormatError(f"offsets {begin}..{end} of {key!r} do not fit its shape or the data")
        if numel == 0:
            out[key] = torch.empty(shape, dtype=dtype)
            continue
        if (start + begin) % itemsize == 0 and not view.readonly:
            flat = torch.frombuffer(buffer, dtype=dtype, count=numel, offset=start + begin)
        else:
            flat = torch.frombuffer(bytearray(view[start + begin : start + end]), dtype=dtype)
        out[key] = flat.view(shape)
    order = metadata.get(_KEY_ORDER) if isinstance(metadata, dict) else None
    if isinstance(order, str):
        try:
            keys = json.loads(order)
        except ValueError:
            keys = None
        if isinstance(keys, list) and sorted(map(str, keys)) == sorted(out):
            out = {k: out[k] for k in keys}
    return out, metadata if isinstance(metadata, dict) else {}


def optimizer_chunks(state: Mapping[str, Any]) -> Iterator[memoryview | bytes]:
    """An optimizer state dict as safetensors: its tensors, and its tree in the metadata.

    Raises TypeError, before anything is yielded, for a value that can't be kept without pickle
    (only tensors, str, int, float, bool, None, lists, tuples and dicts with such keys can).
    """
    tensors: dict[str, torch.Tensor] = {}
    tree = json.dumps(_encode(state, tensors, "optimizer"), separators=(",", ":"), allow_nan=True)
    return safetensors_chunks(tensors, {_OPTIMIZER_TREE: tree})


def load_optimizer(buffer: Any) -> Any:
    """An optimizer state dict from `optimizer_chunks` data (tensors are views of `buffer`), or
    from a weights-only `torch.save` file as stored before (see `load_torch`)."""
    head = bytes(memoryview(buffer)[:4])
    if head == b"PK\x03\x04":  # a zip: torch.save's format
        return load_torch(buffer)
    tensors, metadata = _read_safetensors(buffer)
    tree = metadata.get(_OPTIMIZER_TREE)
    if not isinstance(tree, str):
        raise FormatError("safetensors data without an optimizer state tree")
    try:
        return _decode(json.loads(tree), tensors)
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"the optimizer state tree does not fit its tensors: {exc!r}") from None


# tags of the tree: a tensor by name, a tuple, a dict whose keys JSON can't hold as they are
_TENSOR, _TUPLE, _PAIRS = "__tensor__", "__tuple__", "__pairs__"
_TAGS = frozenset({_TENSOR, _TUPLE, _PAIRS})
_LEAVES = (str, int, float, bool, type(None))


def _encode(value: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value
        return {_TENSOR: name}
    if type(value) in _LEAVES:
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, tensors, f"{path}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if all(type(k) is str for k in value) and not (len(value) == 1 and next(iter(value)) in _TAGS):
            return {k: _encode(v, tensors, f"{path}.{k}") for k, v in value.items()}
        pairs = []
        for k, v in value.items():
            if type(k) not in _LEAVES:
                raise TypeError(
                    f"{path} has a key of type {type(k).__name__}, which can't be stored without pickle"
                )
            pairs.append([k, _encode(v, tensors, f"{path}[{k!r}]")])
        return {_PAIRS: pairs}
    raise TypeError(
        f"{path} is a {type(value).__name__}; an optimizer state can hold only tensors, numbers, str, "
        "None, lists, tuples and dicts to be stored without pickle"
    )


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if isinstance(node, dict):
        if len(node) == 1:
            ((tag, inner),) = node.items()
            if tag == _TENSOR:
                return tensors[inner]
            if tag == _TUPLE:
                return tuple(_decode(v, tensors) for v in inner)
            if tag == _PAIRS:
                return {k: _decode(v, tensors) for k, v in inner}
        return {k: _decode(v, tensors) for k, v in node.items()}
    return node


def torch_bytes(state: Mapping[str, Any]) -> bytes:
    """An optimizer state dict as `torch.save` bytes (tensors moved to the CPU)."""
    buffer = io.BytesIO()
    torch.save(_to_cpu(state), buffer)
    return buffer.getvalue()


def load_torch(buffer: Any) -> Any:
    """`torch.load` with `weights_only=True`: plain containers and tensors, never arbitrary objects."""
    try:
        return torch.load(io.BytesIO(buffer), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad data
        raise FormatError(f"not a weights-only torch file: {type(exc).__name__}: {exc}") from None


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(v) for v in obj)
    return obj
