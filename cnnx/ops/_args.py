"""Argument helpers shared by the convolution, pooling and normalisation wrappers."""
from __future__ import annotations

import numbers

from .. import kernels
from ..tensor import Tensor


def pair(fn: str, name: str, value) -> tuple:
    """An int or a pair of ints as ``(h, w)``; anything else is a TypeError naming the argument."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{fn}(): argument '{name}' must be an int or a pair of ints, got {value!r}")


def check_tensor(fn: str, name: str, value, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Tensor):
        kind = "a Tensor or None" if optional else "a Tensor"
        raise TypeError(f"{fn}(): argument '{name}' must be {kind}, got {type(value).__name__}")


def kernel(name: str):
    """``cnnx.kernels.<name>``, or a RuntimeError saying this build lacks that kernel."""
    try:
        return getattr(kernels, name)
    except AttributeError:
        raise RuntimeError(f"cnnx.kernels.{name} is not available in this build of cnnx") from None
