"""Reading DaCapo's pickles without running code: checkpoints (torch zip files) and stats files.

A restricted `pickle.Unpickler` admits exactly the globals DaCapo 0.3.5 writes and maps each to a
stand-in of ours; any other global raises `PickleCheckpointError` naming it, before anything is
called. Checkpoints are torch's zip format: `<archive>/data.pkl` refers to tensor storages by key
(`<archive>/data/<key>`); a storage used by several tensors (shared-storage aliases) is built once,
so the tensors stay views of one buffer, as torch.load gives them.
"""

from __future__ import annotations

import io
import logging
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CorruptWeightsError, PickleCheckpointError

log = logging.getLogger(__name__)


class DacapoWeights:
    """Stand-in for `dacapo.store.weights_store.Weights`: a holder of `model` and `optimizer` dicts."""

    model: Any = None
    optimizer: Any = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("dacapo Weights state is not a dict")
        unknown = set(state) - {"model", "optimizer"}
        if unknown:
            raise pickle.UnpicklingError(f"dacapo Weights has unexpected attributes {sorted(unknown)}")
        self.model = state.get("model")
        self.optimizer = state.get("optimizer")


class _StorageType:
    """Stand-in for `torch.FloatStorage` and friends: only names the dtype of a storage."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, _STORAGE_DTYPES[self.name])


# torch's legacy typed storage classes and the dtype each holds
_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> Any:
    """Our own `torch._utils._rebuild_tensor_v2`: a view of `storage` with that layout."""
    import torch

    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor must be rebuilt from a storage record")
    for what, value in (("size", size), ("stride", stride)):
        if not isinstance(value, tuple) or not all(type(v) is int and v >= 0 for v in value):
            raise pickle.UnpicklingError(f"bad tensor {what} {value!r}")
    if type(storage_offset) is not int or storage_offset < 0 or len(size) != len(stride):
        raise pickle.UnpicklingError("bad tensor layout")
    if backward_hooks:
        raise pickle.UnpicklingError("tensors with backward hooks are not supported")
    extent = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1
    if all(size) and extent > storage.numel:
        raise pickle.UnpicklingError(f"tensor of size {size} does not fit its storage")
    tensor = torch.empty((0,), dtype=storage.dtype)
    tensor.set_(storage.untyped, storage_offset, torch.Size(size), stride)
    return tensor


class _Storage:
    """A storage record of the archive seen as `dtype` (tensors sharing it share its bytes)."""

    def __init__(self, untyped: Any, dtype: Any) -> None:
        self.untyped = untyped
        self.dtype = dtype
        self.numel = untyped.nbytes() // dtype.itemsize


class _DType:
    """Stand-in for `numpy.dtype` as pickled: a numeric dtype name and, after BUILD, its byte order."""

    _NAMES = frozenset({"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"})

    def __init__(self, name: Any, align: Any = False, copy: Any = True) -> None:
        if name not in self._NAMES:
            raise pickle.UnpicklingError(f"numpy dtype {name!r} is not a plain number type")
        self.name = name
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.byteorder = state[1]


def _numpy_scalar(dtype: Any, data: Any = None) -> float | int | bool:
    """Stand-in for `numpy.core.multiarray.scalar`: the plain Python number the bytes hold."""
    import numpy as np

    if not isinstance(dtype, _DType) or not isinstance(data, bytes):
        raise pickle.UnpicklingError("a numpy scalar needs a numeric dtype and its bytes")
    order = "" if dtype.byteorder in ("|", "=") else dtype.byteorder
    real = np.dtype(order + dtype.name)
    if len(data) != real.itemsize:
        raise pickle.UnpicklingError(f"{len(data)} bytes for a numpy {dtype.name} scalar")
    return np.frombuffer(data, dtype=real)[0].item()


#: What DaCapo 0.3.5's checkpoints hold (module, name) -> our stand-in.
CHECKPOINT_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("dacapo.store.weights_store", "Weights"): DacapoWeights,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}
#: What DaCapo 0.3.5's stats pickles hold: numpy.float64 scores (numpy 1 and 2 module names).
STATS_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _DType,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only allow-listed globals, to stand-ins, and storages by key."""

    def __init__(
        self,
        file: Any,
        allowed: dict[tuple[str, str], Any],
        what: str,
        storage: Callable[[Any, str], Any] | None = None,
    ) -> None:
        super().__init__(file)
        self._allowed = allowed
        self._what = what
        self._storage = storage

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise PickleCheckpointError(
                f"{self._what} names the global {module}.{name}, which is not among what DaCapo's "
                "files hold; nothing was run. Pass allow_pickle=True only if you trust the file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._storage is None:
            raise pickle.UnpicklingError(f"{self._what} refers to external data")
        if (
            not isinstance(pid, tuple)
            or len(pid) != 5
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
            or not isinstance(pid[2], str)
        ):
            raise pickle.UnpicklingError(f"{self._what}: unsupported persistent id {pid!r:.100}")
        _, storage_type, key, _location, numel = pid
        return self._storage(storage_type, key, numel)


def unpickle(data: bytes, allowed: dict[tuple[str, str], Any], what: str, storage: Any = None) -> Any:
    """`data` unpickled with only the `allowed` globals; PickleCheckpointError names any other."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), allowed, what, storage).load()
    except PickleCheckpointError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
    ) as exc:
        raise CorruptWeightsError(f"{what} can't be read: {type(exc).__name__}: {exc}") from None


def load_stats_pickle(path: Path) -> Any:
    """A DaCapo stats file (a pickled list of dicts, numpy scalars as plain numbers)."""
    return unpickle(path.read_bytes(), STATS_GLOBALS, f"DaCapo stats file {path}")


def load_checkpoint(path: Path) -> tuple[dict[str, Any], Any]:
    """(model state dict, optimizer state dict or None) of a DaCapo checkpoint, nothing executed.

    Accepts DaCapo 0.3.5's pickled `Weights` and a plain `{"model": ..., "optimizer": ...}` dict.
    """
    import torch

    what = f"DaCapo checkpoint {path}"
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise PickleCheckpointError(
            f"{what} is not in torch's zip format (an older pickle); pass allow_pickle=True only if you "
            "trust it"
        )
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptWeightsError(f"{what} is damaged: {exc}") from None
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise CorruptWeightsError(f"{what} has no single data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        order = archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
        if order != "little":
            raise CorruptWeightsError(f"{what}: byte order {order!r} is not supported (only little-endian)")
        storages: dict[str, Any] = {}

        def storage(storage_type: _StorageType, key: str, numel: Any) -> _Storage:
            if key not in storages:
                try:
                    raw = archive.read(f"{prefix}data/{key}")
                except KeyError:
                    raise CorruptWeightsError(f"{what} lacks storage record {key!r}") from None
                storages[key] = torch.UntypedStorage.from_buffer(bytearray(raw), dtype=torch.uint8)
            found = _Storage(storages[key], storage_type.dtype)
            if type(numel) is not int or numel > found.numel:
                raise CorruptWeightsError(f"{what}: storage {key!r} is shorter than its record says")
            return found

        data = unpickle(archive.read(pkl[0]), CHECKPOINT_GLOBALS, what, storage)
    if isinstance(data, DacapoWeights):
        model, optimizer = data.model, data.optimizer
    elif isinstance(data, dict) and "model" in data:
        model, optimizer = data["model"], data.get("optimizer")
    else:
        raise CorruptWeightsError(f"{what} holds a {type(data).__name__}, not DaCapo weights")
    if not isinstance(model, dict) or not all(isinstance(k, str) for k in model):
        raise CorruptWeightsError(f"{what}: its model is not a state dict")
    return dict(model), optimizer
