"""Elementwise arithmetic with numpy broadcasting: add, sub, mul, div, pow, neg, exp, log, sqrt, abs.

The operators (``a + b``, ...) take a Tensor, a numpy array or a Python number on either side
(numbers are "weak": float32 op 2.5 stays float32). The functional forms at the end (``cnnx.add``,
``cnnx.sub``, ``cnnx.mul``, ``cnnx.div``, ``cnnx.neg``, ``cnnx.pow``, and the Tensor methods of
those names) follow PyTorch's signatures: Tensors and real numbers only, ``alpha=`` for add/sub.
Gradients are summed back to each operand's shape and cast to its dtype, so a broadcast bias or a
float32 tensor combined with a float64 one gets a gradient it can hold.
Forward saves only what its backward reads (operand values for mul/div/pow, outputs for exp/sqrt).
add of two dense float32/float64 arrays of one shape and dtype (ResNet's residual add) runs the C++
kernel ``cnnx._C.add`` (multithreaded, output from the allocator cache: no page faults); every other
combination (broadcasting, numbers, mixed dtypes, strided views) is numpy's ``a + b``.
Operands whose shapes do not broadcast raise a ValueError naming the op and both shapes (PyTorch's
"size of tensor a must match the size of tensor b" check, as cnnx's contract type) instead of numpy's
raw message; the check runs only after numpy has failed, so it costs the hot path nothing.
"""
from __future__ import annotations

from typing import NoReturn

import numpy as np

from .. import _C
from ..autograd import Function
from ..tensor import Tensor
from ._args import kernel_array

__all__ = ["Add", "Sub", "Mul", "Div", "Pow", "Neg", "Exp", "Log", "Sqrt", "Abs", "add", "sub", "mul", "div", "neg",
           "pow"]


def broadcast_error(op: str, a, b, inplace: bool = False) -> ValueError | None:
    """The ValueError for operands ``a``, ``b`` (arrays or numbers) whose shapes do not broadcast,
    or None when they do. Like PyTorch, it names the first mismatching dimension from the right.
    ``inplace``: ``a`` is overwritten, so ``b`` must broadcast to ``a``'s shape as it is."""
    sa, sb = tuple(np.shape(a)), tuple(np.shape(b))
    if inplace:
        if len(sb) <= len(sa) and all(y in (1, x) for x, y in zip(sa[::-1], sb[::-1])):
            return None
        return ValueError(f"{op}(): argument 'other' of shape {sb} cannot be broadcast to the shape {sa} of "
                          "the tensor updated in place")
    ndim = max(len(sa), len(sb))
    for i in range(1, min(len(sa), len(sb)) + 1):
        x, y = sa[-i], sb[-i]
        if x != y and x != 1 and y != 1:
            return ValueError(f"{op}(): shapes {sa} and {sb} cannot be broadcast together: the size of tensor a "
                              f"({x}) must match the size of tensor b ({y}) at non-singleton dimension {ndim - i}")
    return None


def reraise_broadcast(exc: ValueError, op: str, a, b, inplace: bool = False) -> NoReturn:
    """Raise ``broadcast_error`` for numpy's failure ``exc`` when the shapes are the cause, else ``exc``.
    Called only from an ``except`` (here and in Tensor's comparisons and in-place methods): the
    fast paths keep numpy's bare operators."""
    err = broadcast_error(op, a, b, inplace)
    if err is None:
        raise exc
    raise err from None


def _meta(x, needed: bool):
    """(shape, dtype) of an operand whose gradient is wanted, for ``_sum_to``."""
    return (x.shape, x.dtype) if needed else None


def _sum_to(g, meta):
    """Reduce a broadcast gradient ``g`` to the operand's (shape, dtype)."""
    shape, dtype = meta
    if g.shape != shape:
        lead = g.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                          if n == 1 and g.shape[lead + i] != 1)
        g = g.sum(axis=axes, keepdims=True).reshape(shape)
    if g.dtype != dtype:
        g = g.astype(dtype)
    return g


class Add(Function):
    __slots__ = ("meta",)

    def forward(ctx, a, b):
        n = ctx.needs_input_grad
        ctx.meta = (_meta(a, n[0]), _meta(b, n[1]))
        if kernel_array(a) and kernel_array(b) and a.shape == b.shape and a.dtype == b.dtype:
            return _C.add(a, b, None)
        try:
            return a + b
        except ValueError as e:
            reraise_broadcast(e, "add", a, b)

    def backward(ctx, g):
        ma, mb = ctx.meta
        return (_sum_to(g, ma) if ma else None, _sum_to(g, mb) if mb else None)


class Sub(Function):
    __slots__ = ("meta",)

    def forward(ctx, a, b):
        n = ctx.needs_input_grad
        ctx.meta = (_meta(a, n[0]), _meta(b, n[1]))
        try:
            return a - b
        except ValueError as e:
            reraise_broadcast(e, "sub", a, b)

    def backward(ctx, g):
        ma, mb = ctx.meta
        return (_sum_to(g, ma) if ma else None, _sum_to(-g, mb) if mb else None)


class Mul(Function):
    __slots__ = ("meta",)

    def forward(ctx, a, b):
        n = ctx.needs_input_grad
        ctx.meta = (_meta(a, n[0]), _meta(b, n[1]))
        ctx.save_for_backward(b if n[0] else None, a if n[1] else None)
        try:
            return a * b
        except ValueError as e:
            reraise_broadcast(e, "mul", a, b)

    def backward(ctx, g):
        ma, mb = ctx.meta
        b, a = ctx.saved_tensors
        return (_sum_to(g * b, ma) if ma else None, _sum_to(g * a, mb) if mb else None)


class Div(Function):
    __slots__ = ("meta",)

    def forward(ctx, a, b):
        n = ctx.needs_input_grad
        ctx.meta = (_meta(a, n[0]), _meta(b, n[1]))
        ctx.save_for_backward(a if n[1] else None, b)
        try:
            return a / b
        except ValueError as e:
            reraise_broadcast(e, "div", a, b)

    def backward(ctx, g):
        ma, mb = ctx.meta
        a, b = ctx.saved_tensors
        ga = g / b
        # d(a/b)/db = -a/b^2 = -(g/b) * a/b
        return (_sum_to(ga, ma) if ma else None, _sum_to(-ga * a / b, mb) if mb else None)


class Pow(Function):
    """``a ** b``; either side may be a number. d/da = b a^(b-1); d/db = a^b log(a), taken as 0
    where a == 0 and b >= 0 (PyTorch's convention, so 0 ** 2 has a finite gradient)."""

    __slots__ = ("meta",)

    def forward(ctx, a, b):
        n = ctx.needs_input_grad
        ctx.meta = (_meta(a, n[0]), _meta(b, n[1]))
        try:
            out = a ** b
        except ValueError as e:
            reraise_broadcast(e, "pow", a, b)
        ctx.save_for_backward(a, b, out if n[1] else None)
        return out

    def backward(ctx, g):
        ma, mb = ctx.meta
        a, b, out = ctx.saved_tensors
        ga = gb = None
        if ma:
            ga = _sum_to(g * (2 * a if isinstance(b, (int, float)) and b == 2 else b * a ** (b - 1)), ma)
        if mb:
            log_a = np.log(np.where(a == 0, 1, a)) if np.any(a == 0) else np.log(a)
            gb = g * out * log_a
            gb = _sum_to(np.where((a == 0) & (b >= 0), 0, gb), mb)
        return ga, gb


class Neg(Function):
    __slots__ = ()

    def forward(ctx, a):
        return -a

    def backward(ctx, g):
        return -g


class Exp(Function):
    __slots__ = ()

    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


class Log(Function):
    __slots__ = ()

    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)

    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g / a


class Sqrt(Function):
    __slots__ = ()

    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g / (2 * out)


class Abs(Function):
    """|a|; the gradient at 0 is 0 (sign(0) = 0), as in PyTorch."""

    __slots__ = ()

    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g * np.sign(a)


# ---- functional forms (PyTorch's torch.add, torch.sub, ...) ----------------------------------------

def _operand(fn: str, name: str, value):
    """A Tensor as it is, a real number as a Python number; a TypeError naming ``name`` otherwise.
    numpy scalars become Python numbers so they stay "weak" like PyTorch's scalars (float32 tensor
    plus ``np.float64(2)`` stays float32; numpy would promote it)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.generic):  # before the Python types: np.float64 subclasses float
        if value.dtype.kind in "biuf":
            return value.item()
    elif isinstance(value, (bool, int, float)):
        return value
    raise TypeError(f"{fn}(): argument '{name}' must be a Tensor or a real number, got {type(value).__name__}")


def _operands(fn: str, input, other, other_name: str = "other"):
    """Both operands checked; at least one must be a Tensor (``torch.add(2, 3)`` is a TypeError too)."""
    input, other = _operand(fn, "input", input), _operand(fn, other_name, other)
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        raise TypeError(f"{fn}(): argument 'input' must be a Tensor when '{other_name}' is a number, "
                        f"got {type(input).__name__}")
    return input, other


def _kind(x) -> str:
    """numpy's kind letter of an operand: 'b', 'i', 'u' or 'f'."""
    if isinstance(x, Tensor):
        return x.dtype.kind
    return "b" if isinstance(x, bool) else "i" if isinstance(x, int) else "f"


def _alpha(fn: str, alpha, input, other):
    """``alpha`` as a Python number, with PyTorch's rules: a real number or a one-element Tensor; an
    int (or bool) when both operands are integers or bools, since the result is; a bool only when
    both operands are bools."""
    if isinstance(alpha, Tensor):
        if alpha.numel() != 1:
            raise TypeError(f"{fn}(): argument 'alpha' must be a number or a one-element Tensor, got a Tensor "
                            f"of shape {tuple(alpha.shape)}")
        alpha = alpha.item()
    alpha = _operand(fn, "alpha", alpha)
    kinds = {_kind(input), _kind(other)}
    if isinstance(alpha, bool) and kinds != {"b"}:
        raise TypeError(f"{fn}(): argument 'alpha' is a bool, which is only supported when both operands are "
                        f"bool (PyTorch's rule), got {alpha!r}")
    if isinstance(alpha, float) and kinds <= {"b", "i", "u"}:
        raise TypeError(f"{fn}(): argument 'alpha' must be an int for integer operands (the result is an "
                        f"integer), got {alpha!r}")
    return alpha


def _scaled(x, alpha):
    """``alpha * x`` for an operand (a recorded Mul when ``x`` is a Tensor, so its gradient is scaled too)."""
    return Mul.apply(x, alpha) if isinstance(x, Tensor) else x * alpha


def _alpha_operands(fn: str, input, other, alpha):
    """add's and sub's checked operands, ``other`` scaled by ``alpha`` (skipped for the plain 1)."""
    input, other = _operands(fn, input, other)
    if not (type(alpha) is int and alpha == 1):
        alpha = _alpha(fn, alpha, input, other)
        if alpha != 1:
            other = _scaled(other, alpha)
    return input, other


def add(input, other, *, alpha=1) -> Tensor:
    """``input + alpha * other``, broadcasting. ``input``/``other``: Tensors or real numbers (not
    both numbers); ``alpha``: a number (an int for integer operands)."""
    return Add.apply(*_alpha_operands("add", input, other, alpha))


def sub(input, other, *, alpha=1) -> Tensor:
    """``input - alpha * other``, broadcasting; arguments as ``add``."""
    return Sub.apply(*_alpha_operands("sub", input, other, alpha))


def mul(input, other) -> Tensor:
    """``input * other``, broadcasting; Tensors or real numbers (not both numbers)."""
    return Mul.apply(*_operands("mul", input, other))


def div(input, other, *, rounding_mode=None) -> Tensor:
    """``input / other`` (true division), broadcasting; Tensors or real numbers (not both numbers).
    ``rounding_mode`` must be None: PyTorch's "trunc" and "floor" modes are not implemented."""
    if rounding_mode is not None:
        raise ValueError(f"div(): argument 'rounding_mode' must be None (true division); cnnx does not implement "
                         f"{rounding_mode!r}")
    return Div.apply(*_operands("div", input, other))


def pow(input, exponent) -> Tensor:  # noqa: A001 - torch name
    """``input ** exponent``, broadcasting; either may be a number (not both), as ``torch.pow``."""
    return Pow.apply(*_operands("pow", input, exponent, "exponent"))


def neg(input: Tensor) -> Tensor:
    """``-input``."""
    if not isinstance(input, Tensor):
        raise TypeError(f"neg(): argument 'input' must be a Tensor, got {type(input).__name__}")
    return Neg.apply(input)
