"""Ways to make a Tensor: ``tensor``, ``from_numpy``, ``zeros``, ``randn``, ``arange``, ...

Dtypes follow PyTorch: Python floats become float32 (the default dtype), Python ints int64, bools
bool; a numpy array keeps its dtype. Random constructors draw from ``cnnx.random`` (seeded by
``cnnx.manual_seed``).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _storage
from . import random as _random
from .tensor import Tensor, _shape_arg, _wrap

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like",
           "ones_like", "full_like", "randn", "rand", "randint", "randperm", "arange", "cat", "stack",
           "float32", "float64", "float16", "int64", "int32", "uint8", "bool_"]

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)  # exported as cnnx.bool, like torch.bool

_DEFAULT_FLOAT = float32
_DEFAULT_INT = int64


def _dtype(dtype) -> np.dtype | None:
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a numpy dtype such as cnnx.float32, got {dtype!r}") from None


def _finish(array: np.ndarray, requires_grad, device) -> Tensor:
    if device is not None:
        _storage.resolve_device(device)
    t = _wrap(array)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (a number, nested sequence, numpy array or Tensor).

    Without ``dtype``: Python floats give float32, Python ints int64, bools bool; numpy arrays and
    Tensors keep their dtype.
    """
    dtype = _dtype(dtype)
    if isinstance(data, Tensor):
        array = np.array(data._data, dtype=dtype, copy=True)
    elif isinstance(data, np.ndarray):
        array = np.array(data, dtype=dtype, copy=True)
    else:
        try:
            array = np.array(data, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"tensor(): could not make a tensor: argument 'data' must be a number or a nested "
                            f"sequence of numbers of a regular shape, got a ragged or non-numeric "
                            f"{type(data).__name__}: {e}") from None
        if array.dtype.kind not in "biuf":
            raise TypeError(f"tensor(): could not make a tensor: argument 'data' must hold numbers (bool, int or "
                            f"float), got a {type(data).__name__} giving dtype {array.dtype} (ragged or non-numeric "
                            "data)")
        if dtype is None and array.dtype == np.float64 and not isinstance(data, np.generic):
            array = array.astype(_DEFAULT_FLOAT)
    return _finish(array, requires_grad, device)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with a numpy array or Tensor when no conversion is needed."""
    dtype = _dtype(dtype)
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == dtype else data.to(dtype)
    if isinstance(data, np.ndarray):
        return _finish(np.asarray(data, dtype=dtype), False, device)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (changes to one show in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy(): expected a numpy.ndarray, got {type(array).__name__}")
    return _wrap(array)


def _filled(fill, size, dtype, requires_grad, device, default=_DEFAULT_FLOAT) -> Tensor:
    shape = _shape_arg(size)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in size {shape}")
    dtype = _dtype(dtype) or default
    array = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
    return _finish(array, requires_grad, device)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _filled(0, size, dtype, requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    return _filled(1, size, dtype, requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor whose values are whatever the memory held."""
    return _filled(None, size, dtype, requires_grad, device)


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value`` (dtype from the value when not given, as in PyTorch)."""
    if dtype is None:
        dtype = (bool_ if isinstance(fill_value, (np.bool_, bool)) else
                 _DEFAULT_INT if isinstance(fill_value, numbers.Integral) else _DEFAULT_FLOAT)
    return _filled(fill_value, (size,), dtype, requires_grad, device)


def _like(fill, t: Tensor, dtype, requires_grad) -> Tensor:
    return _filled(fill, (t.shape,), dtype or t.dtype, requires_grad, None)


def zeros_like(input: Tensor, *, dtype=None, requires_grad: bool = False) -> Tensor:
    return _like(0, input, dtype, requires_grad)


def ones_like(input: Tensor, *, dtype=None, requires_grad: bool = False) -> Tensor:
    return _like(1, input, dtype, requires_grad)


def full_like(input: Tensor, fill_value, *, dtype=None, requires_grad: bool = False) -> Tensor:
    return _like(fill_value, input, dtype, requires_grad)


def _float_dtype(dtype, fn: str) -> np.dtype:
    dtype = _dtype(dtype) or _DEFAULT_FLOAT
    if dtype not in (float32, float64):
        raise TypeError(f"{fn}(): dtype must be float32 or float64, got {dtype}")
    return dtype


def randn(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from cnnx's seeded generator."""
    dtype = _float_dtype(dtype, "randn")
    array = _random.generator().standard_normal(_shape_arg(size), dtype=dtype)
    return _finish(array, requires_grad, device)


def rand(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from cnnx's seeded generator."""
    dtype = _float_dtype(dtype, "rand")
    array = _random.generator().random(_shape_arg(size), dtype=dtype)
    return _finish(array, requires_grad, device)


def randint(low: int, high: int | None = None, size=(), *, dtype=None, device=None) -> Tensor:
    """Integers uniform in [low, high) (``randint(high, size)`` means low = 0), int64 by default."""
    if high is None:
        low, high = 0, low
    array = _random.generator().integers(low, high, _shape_arg((size,)), dtype=_dtype(dtype) or _DEFAULT_INT)
    return _finish(array, False, device)


def randperm(n: int, *, dtype=None, device=None) -> Tensor:
    """A random permutation of 0 .. n-1 (int64)."""
    return _finish(_random.generator().permutation(int(n)).astype(_dtype(dtype) or _DEFAULT_INT), False, device)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 unless an argument is a
    float (then float32), as in PyTorch."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = _DEFAULT_INT if is_int else _DEFAULT_FLOAT
    return _finish(np.arange(start, end, step, dtype=_dtype(dtype)), requires_grad, device)


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension ``dim`` (gradients flow to every input)."""
    from .ops.shape import cat as _cat

    return _cat(tensors, dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors of equal shape along a new dimension ``dim``."""
    from .ops.shape import stack as _stack

    return _stack(tensors, dim)
