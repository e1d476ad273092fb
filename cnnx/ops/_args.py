"""Argument helpers shared by the functional wrappers (convolution, pooling, normalisation; the
``dtype=`` of reductions and softmax).

The Functions call the compiled entry points (``cnnx._C``) directly, as the design asks (one `_C`
call per op): the wrappers here have already normalised the Python-level arguments, and the
bindings validate arrays, shapes and ranges. Going through ``cnnx.kernels`` would repeat the
argument checks on every call, which costs tens of microseconds per small-model step.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..tensor import Tensor

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _is_int(v) -> bool:
    return type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool))


def kernel_array(x) -> bool:
    """True when the elementwise kernels of ``cnnx._C`` (relu, add, tanh, sigmoid) take ``x`` as it is: a numpy
    array of native float32/float64 with at least one dimension, C-contiguous and aligned. Numbers,
    0-d values, other dtypes and strided views stay on numpy (the bindings would copy a strided
    input, and refuse one that is written in place)."""
    return (type(x) is np.ndarray and x.ndim > 0 and x.dtype in _KERNEL_DTYPES and x.flags.c_contiguous
            and x.flags.aligned)


def float_dtype(fn: str, dtype) -> np.dtype:
    """The ``dtype=`` argument of a reduction or softmax (the input is cast to it before the op, as
    in PyTorch) as a numpy dtype. cnnx computes in float32 and float64 only, so anything else,
    including PyTorch's valid integer and float16 choices, is a TypeError naming ``dtype``."""
    try:
        d = np.dtype(dtype)
    except (TypeError, ValueError):
        d = None
    # (`is None` first: numpy compares dtype('float64') == None as True, np.dtype(None) being float64)
    if d is None or d not in _KERNEL_DTYPES:
        raise TypeError(f"{fn}(): argument 'dtype' must be cnnx.float32 or cnnx.float64, got {dtype!r}")
    return d


def pair(fn: str, name: str, value, minimum: int | None = None) -> tuple:
    """An int or a pair of ints as ``(h, w)``; a TypeError naming the argument otherwise, and a
    ValueError when an entry is below ``minimum``."""
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        p = value  # the common case (modules store pairs): no further conversion
    elif _is_int(value):
        p = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        p = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{fn}(): argument '{name}' must be an int or a pair of ints, got {value!r}")
    if minimum is not None and (p[0] < minimum or p[1] < minimum):
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{fn}(): argument '{name}' must be {what}, got {value!r}")
    return p


def check_tensor(fn: str, name: str, value, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Tensor):
        kind = "a Tensor or None" if optional else "a Tensor"
        raise TypeError(f"{fn}(): argument '{name}' must be {kind}, got {type(value).__name__}")
