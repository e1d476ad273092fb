"""2-D convolution on the C++ kernels: ``conv2d`` (cross-correlation, NCHW input, OIHW weight).

forward:  ``conv2d_forward`` (``cnnx._C``, documented in ``cnnx.kernels``); saves the input (for the weight gradient) and the weight (for
the input gradient), each only when that gradient is wanted.
backward: ``conv2d_backward_input`` only when the input needs a gradient (never for the network's
input), ``conv2d_backward_weight`` (which also returns the bias gradient) when the weight does.

Reference: https://pytorch.org/docs/stable/generated/torch.nn.functional.conv2d.html
"""
from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor
from .. import _C
from ._args import check_tensor, pair
from .shape import pad as _pad

__all__ = ["Conv2d", "conv2d"]


class Conv2d(Function):
    __slots__ = ("input_size", "kernel_size", "stride", "padding", "dilation", "groups")

    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        n = ctx.needs_input_grad
        ctx.input_size = x.shape[2:]
        ctx.kernel_size = weight.shape[2:]
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups
        ctx.save_for_backward(x if n[1] else None, weight if n[0] else None)
        return _C.conv2d_forward(x, weight, bias, stride, padding, dilation, groups)

    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        n = ctx.needs_input_grad
        gx = gw = gb = None
        if n[0]:
            gx = _C.conv2d_backward_input(g, weight, ctx.input_size, ctx.stride, ctx.padding, ctx.dilation,
                                                 ctx.groups)
        if n[1]:
            gw, gb = _C.conv2d_backward_weight(x, g, ctx.kernel_size, ctx.stride, ctx.padding, ctx.dilation,
                                                      ctx.groups, n[2])
        elif n[2]:
            gb = g.sum(axis=(0, 2, 3))
        return gx, gw, gb


def _same_padding(fn: str, weight_shape, stride, dilation):
    """PyTorch's padding='same': total padding d*(k-1) per dimension, the odd pixel at the end.

    Returns (symmetric padding for the kernel, extra (bottom, right) padding to apply to the input).
    """
    if stride != (1, 1):
        raise ValueError(f"{fn}(): padding='same' is not supported for strided convolutions (stride={stride})")
    total = [d * (k - 1) for d, k in zip(dilation, weight_shape[2:])]
    return tuple(t // 2 for t in total), tuple(t % 2 for t in total)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D convolution of ``input`` (N, C_in, H, W) or unbatched (C_in, H, W) with ``weight``
    (C_out, C_in / groups, kH, kW) plus ``bias`` (C_out,).

    ``stride``, ``dilation``: int or (h, w). ``padding``: int, (h, w), ``"valid"`` (no padding) or
    ``"same"`` (output size = input size; stride 1 only; when d*(k-1) is odd the extra row/column
    goes at the bottom/right, as in PyTorch).
    """
    check_tensor("conv2d", "input", input)
    check_tensor("conv2d", "weight", weight)
    check_tensor("conv2d", "bias", bias, optional=True)
    stride = pair("conv2d", "stride", stride, minimum=1)
    dilation = pair("conv2d", "dilation", dilation, minimum=1)
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"conv2d(): argument 'groups' must be an int, got {groups!r}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d(): weight must be 4-D (C_out, C_in/groups, kH, kW), got shape {weight.shape}")
    if input.ndim not in (3, 4):
        raise ValueError(f"conv2d(): expected 3-D (unbatched) or 4-D (batched) input, got shape {input.shape}")
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            padding, extra = _same_padding("conv2d", weight.shape, stride, dilation)
            if any(extra):
                input = _pad(input, (0, extra[1], 0, extra[0]))
        else:
            raise ValueError(f"conv2d(): padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        padding = pair("conv2d", "padding", padding, minimum=0)
    out = Conv2d.apply(input, weight, bias, stride, padding, dilation, groups)
    return out.squeeze(0) if unbatched else out
