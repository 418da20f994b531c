"""State dicts to bytes and back without pickle: safetensors for models, weights-only torch for optimizers.

The safetensors writer streams the tensors' own memory (no second copy of a large model), and the
reader makes tensors that are views of the buffer it is given, so a checkpoint read once (or mapped)
and verified once is not copied again. Files are standard safetensors: `safetensors.torch.load_file`
reads ours and we read theirs.
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


def safetensors_chunks(state: Mapping[str, Any]) -> Iterator[memoryview | bytes]:
    """Serialize a model state dict as safetensors, yielding the header then each tensor's bytes."""
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
    header: dict[str, Any] = {"__metadata__": {"format": "pt", _KEY_ORDER: json.dumps(list(tensors))}}
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
    return out


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
