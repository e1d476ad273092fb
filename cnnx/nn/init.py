"""Weight initialisation, as ``torch.nn.init``: same names, arguments, formulas and gains.

Every function fills its tensor in place (outside autograd, like PyTorch's ``no_grad`` bodies)
and returns it. Random values come from cnnx's generator (``cnnx.manual_seed``) or the numpy
``generator`` passed in.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import threading
import warnings

import numpy as np

from .. import random as _random
from ..tensor import Tensor

__all__ = ["no_init", "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]


class _InitMode(threading.local):
    skip = False


_mode = _InitMode()


@contextlib.contextmanager
def no_init():
    """Inside this block (on this thread) the fill functions check their arguments but leave the
    tensor as allocated and draw no random numbers: for building a model only to inspect its
    structure (``cnnx summary vgg16`` would otherwise spend seconds initialising 138 M weights).
    The parameters then hold arbitrary values; initialise or load weights before using the model.
    """
    previous = _mode.skip
    _mode.skip = True
    try:
        yield
    finally:
        _mode.skip = previous


def _check(fn: str, tensor) -> np.ndarray:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}(): expected a Tensor, got {type(tensor).__name__}")
    return tensor._data


def _fill(tensor: Tensor, values) -> Tensor:
    tensor._data[...] = values
    return tensor


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for ``nonlinearity``: 1 for linear/conv/sigmoid, 5/3 for tanh,
    sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu (slope ``param``, default 0.01),
    3/4 for selu."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _fan_in_and_fan_out(fn: str, array: np.ndarray):
    if array.ndim < 2:
        raise ValueError(f"{fn}(): fan in and fan out can not be computed for tensor with fewer than 2 "
                         f"dimensions (shape {array.shape})")
    receptive = int(np.prod(array.shape[2:])) if array.ndim > 2 else 1
    return array.shape[1] * receptive, array.shape[0] * receptive


def _rng(generator):
    return generator if generator is not None else _random.generator()


def _drawable(array: np.ndarray) -> bool:
    """Whether numpy's generator can fill ``array`` in place: a writable, C-contiguous float32 or
    float64 array. Drawing in the array's own dtype skips a float64 temporary and, for float32, is
    several times faster (a VGG16 classifier holds 120 M weights)."""
    return array.dtype in (np.float32, np.float64) and array.flags.c_contiguous and array.flags.writeable


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with values drawn uniformly from [a, b)."""
    array = _check("uniform_", tensor)
    if _mode.skip:
        return tensor
    rng = _rng(generator)
    if not _drawable(array):
        return _fill(tensor, rng.uniform(a, b, array.shape))
    rng.random(dtype=array.dtype, out=array)
    array *= array.dtype.type(b - a)
    array += array.dtype.type(a)
    if a < b:  # rounding in the array's dtype may reach b; keep the interval half-open
        np.minimum(array, np.nextafter(array.dtype.type(b), array.dtype.type(a)), out=array)
    return tensor


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with values drawn from N(mean, std^2)."""
    array = _check("normal_", tensor)
    if _mode.skip:
        return tensor
    rng = _rng(generator)
    if not _drawable(array):
        return _fill(tensor, rng.normal(mean, std, array.shape))
    rng.standard_normal(dtype=array.dtype, out=array)
    array *= array.dtype.type(std)
    array += array.dtype.type(mean)
    return tensor


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """Fill with N(mean, std^2) values redrawn until they lie in [a, b]."""
    array = _check("trunc_normal_", tensor)
    if _mode.skip:
        return tensor
    if not a < b:
        raise ValueError(f"trunc_normal_(): need a < b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in trunc_normal_; the distribution of values "
                      "may be incorrect.", stacklevel=2)
    rng = _rng(generator)
    values = rng.normal(mean, std, array.shape)
    bad = (values < a) | (values > b)
    for _ in range(1000):
        if not bad.any():
            break
        values[bad] = rng.normal(mean, std, int(bad.sum()))
        bad = (values < a) | (values > b)
    np.clip(values, a, b, out=values)  # only reached if [a, b] holds almost no probability
    return _fill(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    _check("constant_", tensor)
    if _mode.skip:
        return tensor
    return _fill(tensor, val)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fan_in_and_fan_out("xavier_uniform_", _check("xavier_uniform_", tensor))
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fan_in_and_fan_out("xavier_normal_", _check("xavier_normal_", tensor))
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(fn: str, tensor, a, mode, nonlinearity) -> float:
    fan_in, fan_out = _fan_in_and_fan_out(fn, _check(fn, tensor))
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{fn}(): mode {mode!r} not supported, please use one of fan_in, fan_out")
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        warnings.warn(f"{fn}(): initializing zero-element tensors is a no-op", stacklevel=3)
        return 0.0
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan) (``a`` is the leaky_relu slope)."""
    std = _kaiming_std("kaiming_uniform_", tensor, a, mode, nonlinearity)
    if tensor.numel() == 0:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    """He normal: N(0, std^2) with std = gain / sqrt(fan)."""
    std = _kaiming_std("kaiming_normal_", tensor, a, mode, nonlinearity)
    if tensor.numel() == 0:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def _calculate_fan_in_and_fan_out(tensor: Tensor):
    """(fan_in, fan_out) of a weight, as PyTorch's private helper of the same name (layers use it)."""
    return _fan_in_and_fan_out("_calculate_fan_in_and_fan_out", _check("_calculate_fan_in_and_fan_out", tensor))
