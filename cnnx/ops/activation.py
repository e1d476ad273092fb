"""Activations and dropout: relu, tanh, sigmoid, softmax, log_softmax, dropout.

Vectorised numpy on the whole array, in the input's dtype (float32 stays float32); relu, tanh and
sigmoid run the C++ elementwise kernels (``cnnx._C.relu_forward`` / ``relu_backward``,
``tanh_*``, ``sigmoid_*``, multithreaded) on dense float32/float64 arrays and numpy on anything
else (strided views, 0-d, other dtypes). The tanh and sigmoid forward kernels are within 2 ulp
(float32) / 4 ulp (float64) of the exact values, not bitwise numpy's; every backward kernel is. relu, tanh,
sigmoid, softmax and log_softmax save their output (their derivative is a function of it);
dropout saves its scaled mask. ``relu(x, inplace=True)`` and ``dropout(x, inplace=True)`` overwrite
``x`` and move its history onto the in-place node, as PyTorch does; they refuse a leaf that
requires grad and a tensor whose producer saved it for its own backward (e.g. the output of tanh).

Reference: https://pytorch.org/docs/stable/nn.functional.html (same names, arguments, defaults).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import _C
from .. import random as _random
from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, _wrap
from ._args import float_dtype, kernel_array

__all__ = ["relu", "relu_", "tanh", "sigmoid", "softmax", "log_softmax", "dropout"]


def _same_dense(g, out) -> bool:
    """Both operands of a backward kernel: dense float arrays of one shape and dtype."""
    return kernel_array(g) and kernel_array(out) and g.shape == out.shape and g.dtype == out.dtype


class ReLU(Function):
    """PyTorch's relu: forward ``0 if x < 0 else x`` (NaN stays NaN); backward
    ``threshold_backward``: ``0 where out <= 0 else g``, so an infinite or NaN gradient is not
    turned into NaN where the output is 0, and a NaN output passes its gradient through. The
    kernel keeps -0.0 as torch does; the numpy fallback (np.maximum) gives +0.0 there."""

    __slots__ = ()
    saves_output = True

    def forward(ctx, x):
        out = _C.relu_forward(x, False) if kernel_array(x) else np.maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        if _same_dense(g, out):
            return _C.relu_backward(g, out, None)
        return np.where(out <= 0, 0, g)


class ReLUInplace(ReLU):
    """ReLU that overwrites its input (the mask is recomputed from the overwritten values)."""

    __slots__ = ()

    def forward(ctx, x):
        if kernel_array(x) and x.flags.writeable:
            _C.relu_forward(x, True)
        else:
            np.maximum(x, 0, out=x)
        ctx.save_for_backward(x)
        return x


class Tanh(Function):
    """Forward: the tanh kernel on dense float32/float64 arrays when cnnx runs on more than one thread
    (within 2 ulp of the exact value for float32, 4 for float64; not bitwise np.tanh), np.tanh
    otherwise. Backward ``g * (1 - y*y)``:
    the kernel gives numpy's bits."""

    __slots__ = ()
    saves_output = True

    def forward(ctx, x):
        # The kernel pays off when it can split across threads; on one thread numpy's own vectorised
        # tanh is faster (64x64x32x32 float32: numpy 1.76 ms, kernel 2.47 ms on one thread, 1.58 ms
        # on two).
        use_kernel = kernel_array(x) and _C.get_num_threads() > 1
        out = _C.tanh_forward(x, False) if use_kernel else np.tanh(x)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        if _same_dense(g, out):
            return _C.tanh_backward(g, out, None)
        if g.shape != out.shape or g.dtype != out.dtype or out.ndim == 0:
            return g * (1 - out * out)
        d = out * out  # one temporary instead of three (measured: 1.11 -> 0.93 ms on LeNet's C1)
        np.subtract(1, d, out=d)
        return np.multiply(g, d, out=d)


class Sigmoid(Function):
    """Forward: the sigmoid kernel on dense float32/float64 arrays (within 2 ulp for float32, 4 for
    float64), the numpy form below otherwise. Backward ``g * y * (1 - y)``: the kernel gives numpy's
    bits."""

    __slots__ = ()
    saves_output = True

    def forward(ctx, x):
        if kernel_array(x):
            out = _C.sigmoid_forward(x, False)
        else:
            # exp(-|x|) never overflows: 1/(1+e) for x >= 0 and e/(1+e) for x < 0 are both exact forms.
            e = np.exp(-np.abs(x))
            r = 1 / (1 + e)
            out = np.where(x >= 0, r, e * r)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        if _same_dense(g, out):
            return _C.sigmoid_backward(g, out, None)
        return g * out * (1 - out)


class Softmax(Function):
    __slots__ = ("dim",)
    saves_output = True

    def forward(ctx, x, dim):
        ctx.dim = dim
        out = np.asarray(x - x.max(axis=dim, keepdims=True))  # (a 0-d difference is a numpy scalar)
        np.exp(out, out=out)
        out /= out.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return out * (g - (g * out).sum(axis=ctx.dim, keepdims=True))


class LogSoftmax(Function):
    __slots__ = ("dim",)
    saves_output = True

    def forward(ctx, x, dim):
        ctx.dim = dim
        out = x - x.max(axis=dim, keepdims=True)
        out -= np.log(np.exp(out).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g - np.exp(out) * g.sum(axis=ctx.dim, keepdims=True)


class Dropout(Function):
    """Multiply by a mask of 0 and 1/(1-p), drawn from cnnx's generator (keep probability 1-p)."""

    __slots__ = ()

    def forward(ctx, x, p):
        mask = _dropout_mask(x, p)
        ctx.save_for_backward(mask)
        return x * mask

    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask


class DropoutInplace(Dropout):
    __slots__ = ()

    def forward(ctx, x, p):
        mask = _dropout_mask(x, p)
        ctx.save_for_backward(mask)
        x *= mask
        return x


def _dropout_mask(x, p: float):
    if p == 1:
        return np.zeros_like(x)
    keep = _random.generator().random(x.shape, dtype=x.dtype if x.dtype == np.float64 else np.float32) >= p
    return keep.astype(x.dtype) * (1.0 / (1.0 - p))


def _check_tensor(fn: str, input) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}(): argument 'input' must be a Tensor, got {type(input).__name__}")


def _inplace(fn_name: str, function: type[Function], input: Tensor, *args) -> Tensor:
    """Apply an in-place Function to ``input``; the result *is* ``input`` (history moved to it)."""
    _check_tensor(fn_name, input)
    if not (is_grad_enabled() and input._rg):
        function.forward(object.__new__(function), input._data, *args)  # nothing to record
        return input
    if input.grad_fn is None:
        raise RuntimeError(f"{fn_name}(inplace=True): a leaf tensor that requires grad can't be modified "
                           "in place (use inplace=False)")
    if input.grad_fn.saves_output:
        raise RuntimeError(f"{fn_name}(inplace=True): the input is the saved output of "
                           f"{input.grad_fn.name()}, which its backward needs; use inplace=False")
    before = _wrap(input._data, True)  # stands for `input` before the operation
    before.grad_fn = input.grad_fn
    out = function.apply(before, *args)
    input.grad_fn = out.grad_fn
    return input


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(input, 0) elementwise (NaN stays NaN)."""
    if inplace:
        return _inplace("relu", ReLUInplace, input)
    return ReLU.apply(input)


def relu_(input: Tensor) -> Tensor:
    """In-place ``relu``."""
    return _inplace("relu", ReLUInplace, input)


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent elementwise."""
    return Tanh.apply(input)


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-input)) elementwise, computed without overflow."""
    return Sigmoid.apply(input)


def _softmax_dim(name: str, input, dim):
    _check_tensor(name, input)
    ndim = input.ndim
    if dim is None:
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to "
                      "include dim=X as an argument.", UserWarning, stacklevel=3)
        dim = 0 if ndim in (0, 1, 3) else 1
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{name}(): dim {dim} is out of range for a tensor with {ndim} dimensions")
    return dim % max(ndim, 1) if ndim else None


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (computed from x - max for stability).
    ``dtype`` (float32 or float64): cast the input to it first (the gradient is cast back)."""
    dim = _softmax_dim("softmax", input, dim)
    if dtype is not None:
        input = input.to(float_dtype("softmax", dtype))
    return Softmax.apply(input, dim)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """log(softmax(x)) along ``dim``, computed as x - max - log(sum(exp(x - max))).
    ``dtype`` (float32 or float64): cast the input to it first (the gradient is cast back)."""
    dim = _softmax_dim("log_softmax", input, dim)
    if dtype is not None:
        input = input.to(float_dtype("log_softmax", dtype))
    return LogSoftmax.apply(input, dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (training only;
    the identity when ``training`` is false or ``p`` is 0)."""
    _check_tensor("dropout", input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    p = float(p)
    if inplace:
        return _inplace("dropout", DropoutInplace, input, p)
    return Dropout.apply(input, p)
