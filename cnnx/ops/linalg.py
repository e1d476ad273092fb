"""Matrix products on the GEMM kernel: ``matmul`` and ``linear``.

Forward and both backward products are single ``_C.gemm`` calls with transpose flags (no
transposed copies): for ``y = x @ w.T``, ``dx = dy @ w`` and ``dw = dy.T @ x``. ``_C.gemm`` is
called directly rather than through ``cnnx.kernels.gemm``: the arguments here are known to be valid
(float32/float64 2-D arrays of one dtype), and the wrapper's Python checks cost about a microsecond
per call, which small models feel (docs/autograd.md). The binding still validates shapes, and
copies operands whose strides it cannot read (e.g. a broadcast gradient).
"""
from __future__ import annotations

import numpy as np

from .. import _C
from ..autograd import Function
from ..tensor import Tensor

__all__ = ["MatMul", "BatchedMatMul", "Linear", "matmul", "linear"]

_GEMM_DTYPES = (np.float32, np.float64)


def _gemm(a, b, trans_a=False, trans_b=False):
    return _C.gemm(a, b, None, trans_a, trans_b, 1.0, 0.0)


class MatMul(Function):
    """(m, k) @ (k, n) -> (m, n)."""

    __slots__ = ()

    def forward(ctx, a, b):
        n = ctx.needs_input_grad
        ctx.save_for_backward(a if n[1] else None, b if n[0] else None)
        return _gemm(a, b)

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        return (_gemm(g, b, trans_b=True) if n[0] else None,
                _gemm(a, g, trans_a=True) if n[1] else None)


class BatchedMatMul(Function):
    """(..., m, k) @ (..., k, n) with broadcast batch dimensions: one GEMM per batch element."""

    __slots__ = ("shapes",)

    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a3 = np.broadcast_to(a, batch + a.shape[-2:]).reshape(-1, *a.shape[-2:])
        b3 = np.broadcast_to(b, batch + b.shape[-2:]).reshape(-1, *b.shape[-2:])
        out = np.empty((a3.shape[0], a.shape[-2], b.shape[-1]), dtype=a.dtype)
        for i in range(out.shape[0]):
            _C.gemm(a3[i], b3[i], out[i], False, False, 1.0, 0.0)
        n = ctx.needs_input_grad
        ctx.save_for_backward(a3 if n[1] else None, b3 if n[0] else None)
        return out.reshape(batch + out.shape[1:])

    def backward(ctx, g):
        a3, b3 = ctx.saved_tensors
        a_shape, b_shape = ctx.shapes
        g3 = g.reshape(-1, *g.shape[-2:])
        n = ctx.needs_input_grad
        ga = gb = None
        if n[0]:
            ga = np.stack([_gemm(g3[i], b3[i], trans_b=True) for i in range(g3.shape[0])])
            ga = _sum_batch(ga.reshape(g.shape[:-2] + ga.shape[-2:]), a_shape)
        if n[1]:
            gb = np.stack([_gemm(a3[i], g3[i], trans_a=True) for i in range(g3.shape[0])])
            gb = _sum_batch(gb.reshape(g.shape[:-2] + gb.shape[-2:]), b_shape)
        return ga, gb


def _sum_batch(g, shape):
    """Sum a gradient over the batch dimensions that were broadcast."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape[:-2]) if s == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g


class Linear(Function):
    """y = x @ weight.T + bias over the last dimension of x (any number of leading dimensions)."""

    __slots__ = ()

    def forward(ctx, x, weight, bias):
        x2 = x.reshape(-1, x.shape[-1])
        out = _gemm(x2, weight, trans_b=True)
        if bias is not None:
            out += bias
        n = ctx.needs_input_grad
        ctx.save_for_backward(x2 if n[1] else None, weight if n[0] else None)
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(ctx, g):
        x2, weight = ctx.saved_tensors
        n = ctx.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])
        gx = _gemm(g2, weight).reshape(g.shape[:-1] + (weight.shape[1],)) if n[0] else None
        gw = _gemm(g2, x2, trans_a=True) if n[1] else None
        gb = g2.sum(axis=0) if n[2] else None
        return gx, gw, gb


def _require_tensor(fn: str, name: str, value) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be a Tensor, got {type(value).__name__}")


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with PyTorch's rules: 1-D operands are promoted to matrices and the added
    dimension removed afterwards; dimensions before the last two broadcast as a batch."""
    if not isinstance(input, Tensor):
        input = _as_tensor(input)
    if not isinstance(other, Tensor):
        other = _as_tensor(other)
    a, b = input._data, other._data
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul(): both arguments need at least 1 dimension, got a 0-d tensor")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul(): expected both operands to have the same dtype, got {a.dtype} and {b.dtype}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul(): shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                         f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]}): argument 'other' must have "
                         f"{a.shape[-1]} rows")
    if a.dtype not in _GEMM_DTYPES:  # integer matmul: no kernel and no gradient
        return _as_tensor(np.matmul(a, b))
    if a.ndim == 1 or b.ndim == 1:  # promote to matrices, then drop the added dimensions
        out = matmul(input.unsqueeze(0) if a.ndim == 1 else input, other.unsqueeze(1) if b.ndim == 1 else other)
        if b.ndim == 1:
            out = out.squeeze(-1)
        return out.squeeze(-1 if b.ndim == 1 else -2) if a.ndim == 1 else out
    if a.ndim == 2 and b.ndim == 2:
        return MatMul.apply(input, other)
    if b.ndim == 2:  # (..., m, k) @ (k, n): one GEMM over all rows
        return MatMul.apply(input.reshape(-1, a.shape[-1]), other).reshape(*a.shape[:-1], b.shape[-1])
    return BatchedMatMul.apply(input, other)


def _as_tensor(x) -> Tensor:
    from ..creation import as_tensor

    return as_tensor(x)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = input @ weight.T + bias. input (*, in_features), weight (out_features, in_features),
    bias (out_features,) or None."""
    _require_tensor("linear", "input", input)
    _require_tensor("linear", "weight", weight)
    x, w = input._data, weight._data
    if w.ndim != 2:
        raise ValueError(f"linear(): weight must be 2-D (out_features, in_features), got shape {tuple(w.shape)}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear(): input shape {tuple(x.shape)} does not match weight shape {tuple(w.shape)}: "
                         f"the last dimension of input must be in_features = {w.shape[1]}")
    if x.dtype != w.dtype:
        raise TypeError(f"linear(): input is {x.dtype} but weight is {w.dtype}")
    if bias is not None:
        _require_tensor("linear", "bias", bias)
        if bias.shape != (w.shape[0],):
            raise ValueError(f"linear(): bias must have shape ({w.shape[0]},), got {tuple(bias.shape)}")
        if bias.dtype != w.dtype:
            raise TypeError(f"linear(): bias is {bias.dtype} but weight is {w.dtype}")
    if x.dtype not in _GEMM_DTYPES:
        raise TypeError(f"linear(): only float32 and float64 are supported, got {x.dtype}")
    if x.ndim == 1:
        return Linear.apply(input.unsqueeze(0), weight, bias).squeeze(0)
    return Linear.apply(input, weight, bias)
