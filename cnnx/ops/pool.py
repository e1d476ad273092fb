"""2-D pooling on the C++ kernels: ``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d``.

max_pool2d saves the kernel's argmax indices (int64, flat ``h * W + w`` within each (n, c) plane,
PyTorch's convention) and its backward scatters the gradient there; avg pooling saves nothing but
sizes. Inputs are (N, C, H, W) or unbatched (C, H, W).

Reference: https://pytorch.org/docs/stable/nn.functional.html#pooling-functions
"""
from __future__ import annotations

import numbers

from ..autograd import Function
from ..tensor import Tensor
from .. import _C
from ._args import check_tensor, pair

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]


class MaxPool2d(Function):
    __slots__ = ("input_size",)

    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        ctx.input_size = x.shape[2:]
        out, indices = _C.max_pool2d_forward(x, *kernel_size, *stride, *padding, *dilation, ceil_mode)
        ctx.save_for_backward(indices)
        return out, indices

    def backward(ctx, g):
        (indices,) = ctx.saved_tensors
        return _C.max_pool2d_backward(g, indices, *ctx.input_size)


class AvgPool2d(Function):
    __slots__ = ("input_size", "args")

    def forward(ctx, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor):
        ctx.input_size = x.shape[2:]
        ctx.args = (*kernel_size, *stride, *padding, ceil_mode, count_include_pad, divisor)
        return _C.avg_pool2d_forward(x, *ctx.args)

    def backward(ctx, g):
        return _C.avg_pool2d_backward(g, *ctx.input_size, *ctx.args)


class AdaptiveAvgPool2d(Function):
    __slots__ = ("input_size",)

    def forward(ctx, x, output_size):
        ctx.input_size = x.shape[2:]
        return _C.adaptive_avg_pool2d_forward(x, *output_size)

    def backward(ctx, g):
        return _C.adaptive_avg_pool2d_backward(g, *ctx.input_size)


def _batched(fn: str, input: Tensor):
    """(input as 4-D, whether a batch dimension was added)."""
    check_tensor(fn, "input", input)
    if input.ndim == 4:
        return input, False
    if input.ndim == 3:
        return input.unsqueeze(0), True
    raise ValueError(f"{fn}(): expected 3-D (unbatched) or 4-D (batched) input, got shape {input.shape}")


def _stride(fn: str, stride, kernel_size):
    if stride is None or stride == [] or stride == ():
        return kernel_size
    return pair(fn, "stride", stride, minimum=1)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over kH x kW windows (``stride`` defaults to ``kernel_size``; padding counts as -inf).

    With ``return_indices=True`` also returns the argmax of each window as int64 indices
    ``h * W + w`` into its input plane (what ``max_unpool2d`` in PyTorch takes).
    """
    fn = "max_pool2d"
    x, unbatched = _batched(fn, input)
    kernel_size = pair(fn, "kernel_size", kernel_size, minimum=1)
    out, indices = MaxPool2d.apply(x, kernel_size, _stride(fn, stride, kernel_size),
                                   pair(fn, "padding", padding, minimum=0), pair(fn, "dilation", dilation, minimum=1),
                                   bool(ceil_mode))
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over kH x kW windows (``stride`` defaults to ``kernel_size``). ``count_include_pad``:
    padded zeros count in the divisor; ``divisor_override``: divide by this instead."""
    fn = "avg_pool2d"
    x, unbatched = _batched(fn, input)
    kernel_size = pair(fn, "kernel_size", kernel_size, minimum=1)
    divisor = 0  # the kernel's "no override"
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) \
                or divisor_override == 0:
            raise ValueError(f"{fn}(): divisor_override must be a non-zero int or None, got {divisor_override!r}")
        divisor = int(divisor_override)
    out = AvgPool2d.apply(x, kernel_size, _stride(fn, stride, kernel_size), pair(fn, "padding", padding, minimum=0),
                          bool(ceil_mode), bool(count_include_pad), divisor)
    return out.squeeze(0) if unbatched else out


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Mean pooling to a fixed ``output_size`` (int or (h, w); None keeps that input size). Window i
    spans floor(i*H/OH) .. ceil((i+1)*H/OH), as in PyTorch."""
    x, unbatched = _batched("adaptive_avg_pool2d", input)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(output_size))
    out = AdaptiveAvgPool2d.apply(x, pair("adaptive_avg_pool2d", "output_size", output_size, minimum=1))
    return out.squeeze(0) if unbatched else out
