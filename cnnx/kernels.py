"""Raw kernels on numpy arrays, for people extending cnnx.

These run the C++ implementation of the active instruction set (``cnnx.show_config()["isa"]``)
with the GIL released. Arrays are never converted silently: a wrong dtype, ndim or shape raises
TypeError/ValueError naming the argument.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _C

__all__ = ["gemm"]


def _flag(fn: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}(): argument '{name}' must be a bool, got {type(value).__name__}")
    return bool(value)


def _scalar(fn: str, name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}(): argument '{name}' must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{fn}(): argument '{name}' must be finite, got {value}")
    return value


def gemm(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
         alpha: float = 1.0, beta: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """General matrix multiply: ``alpha * op(a) @ op(b) + beta * out``.

    ``op(x)`` is ``x.T`` when the matching ``trans_*`` flag is set. ``a`` and ``b`` are 2-D float32
    or float64 arrays of the same dtype. Without ``out`` a new C-ordered array is returned (``beta``
    must then be 0); with ``out`` (same dtype, shape ``(m, n)``, C or Fortran order or a slice of one)
    the result is written there and ``out`` is returned. ``out`` may alias ``a`` or ``b``: the aliased
    operand is copied first. With ``beta == 0`` the old contents of ``out`` are ignored (NaN included).

    Results are bitwise identical for any thread count. Inputs of any strided layout are accepted
    (non-unit-stride ones are copied once).
    """
    trans_a = _flag("gemm", "trans_a", trans_a)
    trans_b = _flag("gemm", "trans_b", trans_b)
    alpha = _scalar("gemm", "alpha", alpha)
    beta = _scalar("gemm", "beta", beta)
    return _C.gemm(a, b, out, trans_a, trans_b, alpha, beta)
