"""Reductions: sum, mean, max (whole tensor or along a dimension), argmax.

Backward broadcasts the incoming gradient back over the reduced dimensions (a read-only view, no
copy). ``max()`` of the whole tensor splits the gradient evenly between tied maxima (PyTorch's
rule); ``max(dim)`` sends it to the index it returned (the first maximum). ``sum`` and ``mean`` take
PyTorch's ``dtype=`` (float32 or float64): the input is cast first, and the gradient is cast back.
"""
from __future__ import annotations

import warnings
from collections import namedtuple

import numpy as np

from ..autograd import Function
from ..tensor import Tensor, _wrap
from ._args import _is_int, float_dtype

__all__ = ["Sum", "Mean", "Amax", "MaxDim", "sum", "mean", "max", "argmax"]

max_result = namedtuple("max", ["values", "indices"])


def _dims(fn: str, dim, ndim: int):
    """``dim`` (None, an int or a sequence) as a sorted tuple of non-negative axes, or None."""
    if dim is None:
        return None
    if _is_int(dim):
        dims = (dim,)
    elif isinstance(dim, (tuple, list)) and all(_is_int(d) for d in dim):
        dims = tuple(dim)
    else:
        raise TypeError(f"{fn}(): argument 'dim' must be an int or a tuple of ints, got {dim!r}")
    n = ndim if ndim > 0 else 1  # (0-d tensors accept dim 0 and -1, as in PyTorch)
    out = []
    for d in dims:
        if not -n <= d < n:
            raise IndexError(f"{fn}(): dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                             f"but got {d})")
        out.append(int(d) % n)
    if len(set(out)) != len(out):
        raise ValueError(f"{fn}(): dim {dim} names a dimension twice")
    return tuple(sorted(out)) if ndim else None


def _expand(g, shape, dims, keepdim):
    """The gradient of a reduction over ``dims`` broadcast back to the input ``shape``."""
    if not keepdim and dims is not None:
        g = np.expand_dims(g, dims)
    return np.broadcast_to(g, shape)


class Sum(Function):
    __slots__ = ("shape", "dims", "keepdim")

    def forward(ctx, x, dims, keepdim):
        ctx.shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        return x.sum(axis=dims, keepdims=keepdim)

    def backward(ctx, g):
        return _expand(g, ctx.shape, ctx.dims, ctx.keepdim)


class Mean(Function):
    __slots__ = ("shape", "dims", "keepdim")

    def forward(ctx, x, dims, keepdim):
        ctx.shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        if x.size == 0:  # NaN, as in PyTorch, without numpy's empty-slice warning
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return x.mean(axis=dims, keepdims=keepdim)
        return x.mean(axis=dims, keepdims=keepdim)

    def backward(ctx, g):
        shape, dims = ctx.shape, ctx.dims
        count = int(np.prod([shape[d] for d in dims]) if dims is not None else np.prod(shape))
        return _expand(g / (count or 1), shape, dims, ctx.keepdim)


class Amax(Function):
    """The largest element of the whole tensor."""

    __slots__ = ()

    def forward(ctx, x):
        out = x.max()
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x == out)
        return out

    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return mask * (g / int(mask.sum()))


class MaxDim(Function):
    """Largest elements along one dimension, and their (first) indices."""

    __slots__ = ("shape", "dim", "keepdim")

    def forward(ctx, x, dim, keepdim):
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        idx = np.expand_dims(np.argmax(x, axis=dim), dim)
        values = np.take_along_axis(x, idx, axis=dim)
        ctx.save_for_backward(idx)
        if not keepdim:
            values, idx = values.squeeze(dim), idx.squeeze(dim)
        return values, idx

    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        gx = np.zeros(ctx.shape, dtype=g.dtype)
        np.put_along_axis(gx, idx, g if ctx.keepdim else np.expand_dims(g, ctx.dim), axis=ctx.dim)
        return gx


def _check(fn: str, input) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}(): argument 'input' must be a Tensor, got {type(input).__name__}")


def sum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A001 - torch name
    """Sum of the elements over ``dim`` (int or tuple; every dimension when None). ``dtype``
    (float32 or float64): cast the input to it first, e.g. to sum float32 values in float64."""
    _check("sum", input)
    if dtype is not None:
        input = input.to(float_dtype("sum", dtype))
    return Sum.apply(input, _dims("sum", dim, input.ndim), bool(keepdim))


def mean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Mean of the elements over ``dim`` (int or tuple; every dimension when None). ``dtype``
    (float32 or float64): cast the input to it first (which also allows integer inputs)."""
    _check("mean", input)
    if dtype is not None:
        input = input.to(float_dtype("mean", dtype))
    if input.dtype.kind != "f":
        raise TypeError(f"mean(): only floating point tensors are supported, got {input.dtype}")
    return Mean.apply(input, _dims("mean", dim, input.ndim), bool(keepdim))


def max(input: Tensor, dim=None, keepdim: bool = False):  # noqa: A001 - torch name
    """The largest element (``dim`` None), or the named tuple ``(values, indices)`` along ``dim``
    (an int). PyTorch's third form, the elementwise ``max(input, other)``, is not implemented."""
    _check("max", input)
    if dim is not None and not _is_int(dim):
        extra = " (the elementwise max of two tensors is not implemented)" if isinstance(dim, Tensor) else ""
        raise TypeError(f"max(): argument 'dim' must be an int or None, got {type(dim).__name__}{extra}")
    if input.numel() == 0:
        raise RuntimeError("max(): expected a non-empty tensor")
    if dim is None:
        return Amax.apply(input)
    (d,) = _dims("max", (dim,), input.ndim) or (0,)
    if input.ndim == 0:
        return max_result(input, _wrap(np.zeros((), np.int64)))
    values, indices = MaxDim.apply(input, d, bool(keepdim))
    return max_result(values, indices)


def argmax(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the largest element (into the flattened tensor when ``dim`` is None); int64."""
    _check("argmax", input)
    if dim is not None and not _is_int(dim):
        raise TypeError(f"argmax(): argument 'dim' must be an int or None, got {type(dim).__name__}")
    a = input._data
    if dim is None:
        out = np.asarray(np.argmax(a))
        return _wrap(out.reshape((1,) * a.ndim) if keepdim else out)
    (d,) = _dims("argmax", (dim,), a.ndim) or (0,)
    out = np.argmax(a, axis=d, keepdims=bool(keepdim)) if a.ndim else np.zeros((), np.int64)
    return _wrap(np.asarray(out, dtype=np.int64))
