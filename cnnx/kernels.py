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

__all__ = ["gemm", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"]


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


def _int(fn: str, name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}(): argument '{name}' must be an int, got {type(value).__name__}")
    return int(value)


def _pair(fn: str, name: str, value, *, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{fn}(): argument '{name}' must be an int or a pair of ints, got {value!r}")
        pair = (_int(fn, name, value[0]), _int(fn, name, value[1]))
    else:
        pair = (_int(fn, name, value),) * 2
    if min(pair) < minimum:
        what = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{fn}(): argument '{name}' must be {what}, got {value!r}")
    return pair


def _conv_args(fn: str, stride, padding, dilation, groups):
    return (_pair(fn, "stride", stride, minimum=1), _pair(fn, "padding", padding, minimum=0),
            _pair(fn, "dilation", dilation, minimum=1), _int(fn, "groups", groups))


def conv2d_forward(input: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *,
                   stride=1, padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """2-D convolution (cross-correlation) of an NCHW batch with OIHW weights; PyTorch's semantics.

    ``input`` is ``(N, C, H, W)``, ``weight`` ``(K, C // groups, KH, KW)``, ``bias`` ``(K,)`` or None,
    all float32 or all float64. ``stride``, ``padding`` (zeros, per side) and ``dilation`` are ints or
    ``(h, w)`` pairs. Returns ``(N, K, OH, OW)`` with ``OH = (H + 2*ph - dh*(KH-1) - 1) // sh + 1``.
    Pointwise (1x1) layers run as one GEMM per image, depthwise (``groups == C``) layers on a direct
    kernel, the rest as tiled im2col + GEMM.
    """
    return _C.conv2d_forward(input, weight, bias, *_conv_args("conv2d_forward", stride, padding, dilation, groups))


def conv2d_backward_input(grad_output: np.ndarray, weight: np.ndarray, input_size, *, stride=1, padding=0,
                          dilation=1, groups: int = 1) -> np.ndarray:
    """Gradient of ``conv2d_forward`` with respect to its input (a transposed convolution).

    ``input_size`` is the forward input's ``(H, W)`` (several input sizes give the same output size).
    Returns ``(N, C, H, W)`` with ``C = weight.shape[1] * groups``.
    """
    fn = "conv2d_backward_input"
    size = _pair(fn, "input_size", input_size, minimum=1)
    return _C.conv2d_backward_input(grad_output, weight, size, *_conv_args(fn, stride, padding, dilation, groups))


def conv2d_backward_weight(input: np.ndarray, grad_output: np.ndarray, kernel_size, *, stride=1, padding=0,
                           dilation=1, groups: int = 1, bias: bool = False):
    """Gradients of ``conv2d_forward`` with respect to the weight and (when ``bias``) the bias.

    Returns ``(grad_weight, grad_bias)``: grad_weight ``(K, C // groups, KH, KW)``; grad_bias ``(K,)``,
    the sum of ``grad_output`` over N, OH and OW, or None when ``bias`` is False. The sum over the
    batch runs in a fixed order, so results are bitwise repeatable.
    """
    fn = "conv2d_backward_weight"
    size = _pair(fn, "kernel_size", kernel_size, minimum=1)
    return _C.conv2d_backward_weight(input, grad_output, size, *_conv_args(fn, stride, padding, dilation, groups),
                                     _flag(fn, "bias", bias))
