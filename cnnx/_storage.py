"""Where tensor data lives: the one module that knows which array type backs which device.

A ``Tensor`` holds one array (``Tensor._data``). On ``"cpu"`` that array is a ``numpy.ndarray``;
a CUDA buffer type would register here beside it. The autograd core (``cnnx.autograd``) touches
data only through this module and through the array operators every backend provides
(``a + b``, ``a.shape``, ``a.dtype``), so adding a device means adding a backend here and the
device's kernels to the ``Function``s, not changing the tape.
"""
from __future__ import annotations

import numpy as np

__all__ = ["device"]


class device:
    """A device name, as in ``torch.device``: ``device("cpu")``, ``device("cuda:0")``.

    Compares equal to its string form, so ``t.device == "cpu"`` works.
    """

    __slots__ = ("type", "index")

    def __init__(self, spec: str | device, index: int | None = None):
        if isinstance(spec, device):
            spec, index = spec.type, spec.index if index is None else index
        if not isinstance(spec, str):
            raise TypeError(f"device(): expected a string such as 'cpu', got {type(spec).__name__}")
        kind, _, idx = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device(): unknown device type {kind!r} (expected 'cpu' or 'cuda')")
        if idx:
            if not idx.isdigit():
                raise ValueError(f"device(): bad device index in {spec!r}")
            index = int(idx)
        self.type = kind
        self.index = index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type={self.type!r}" + ("" if self.index is None else f", index={self.index}") + ")"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = device("cpu")

# The array type of the default backend (what Functions return on the CPU); the tape compares
# against it before paying for ensure_array().
ARRAY_TYPE = np.ndarray

# The array type of every available backend, mapped to its device.
_DEVICE_OF_ARRAY_TYPE = {np.ndarray: CPU}


def device_of(array) -> device:
    """The device of a backend array."""
    return _DEVICE_OF_ARRAY_TYPE[type(array)]


def resolve_device(spec) -> device:
    """Validate a user's ``device=`` argument; only devices with a backend are accepted."""
    dev = spec if isinstance(spec, device) else device(spec)
    if dev.type != "cpu":
        raise RuntimeError(f"device {str(dev)!r} is not available: this build of cnnx has no CUDA backend")
    return CPU


def ensure_array(value):
    """``value`` as a backend array: numpy returns scalars (``np.float32``) from some operations on
    0-d arrays; a Tensor's data is always an array."""
    return value if type(value) is np.ndarray else np.asarray(value)


def ones_like(array):
    """An array of ones with the shape, dtype and device of ``array`` (seeds ``backward()``)."""
    return np.ones_like(array)


def is_floating(dtype) -> bool:
    return dtype.kind == "f"
