"""Normalisation on the C++ kernels: ``local_response_norm`` and ``batch_norm``.

local_response_norm uses PyTorch's (and Caffe's) convention, alpha divided by the window size:
``b_c = a_c * (k + alpha / size * sum_{c' in window(c)} a_c'^2) ^ -beta``, the window spanning
channels c - size//2 .. c + (size-1)//2. (The AlexNet paper writes alpha without the division and
k = 2: ``nn.LocalResponseNorm.alexnet_paper`` converts.) Forward saves input, output and the
kernel's ``scale`` (the bracket) for backward.

batch_norm normalises over every dimension but the channel dimension 1. In training it uses the
batch statistics and, when running statistics are given, the kernel updates them in place
(``running = (1 - momentum) * running + momentum * batch``, the variance unbiased); in evaluation it
uses the running statistics. Forward saves the input, the weight and the kernel's per-channel mean
and 1/std. Inputs of any rank >= 2 are viewed as (N, C, L, 1) for the 4-D kernels.

Reference: https://pytorch.org/docs/stable/nn.functional.html#normalization-functions
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .. import _C
from ._args import check_tensor

__all__ = ["LocalResponseNorm", "BatchNorm", "local_response_norm", "batch_norm"]


def _as_4d(shape):
    """(N, C, ...) as the (N, C, H, W) the kernels take: extra dimensions merged into H, W = 1."""
    if len(shape) == 4:
        return shape
    return (shape[0], shape[1], int(np.prod(shape[2:], dtype=np.int64)), 1)


class LocalResponseNorm(Function):
    __slots__ = ("shape", "args")

    def forward(ctx, x, size, alpha, beta, k):
        ctx.shape = x.shape
        ctx.args = (size, alpha, beta, k)
        x4 = x.reshape(_as_4d(x.shape))
        out, scale = _C.local_response_norm_forward(x4, size, alpha, beta, k)
        ctx.save_for_backward(x4, out, scale)
        return out.reshape(x.shape)

    def backward(ctx, g):
        x4, out, scale = ctx.saved_tensors
        gx = _C.local_response_norm_backward(g.reshape(x4.shape), x4, out, scale, *ctx.args)
        return gx.reshape(ctx.shape)


class BatchNorm(Function):
    __slots__ = ("shape", "training")

    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        ctx.shape, ctx.training = x.shape, training
        x4 = x.reshape(_as_4d(x.shape))
        out, mean, invstd = _C.batch_norm_forward(x4, weight, bias, running_mean, running_var,
                                                         training, momentum, eps)
        ctx.save_for_backward(x4, weight, mean, invstd)
        return out.reshape(x.shape)

    def backward(ctx, g):
        x4, weight, mean, invstd = ctx.saved_tensors
        gx, gw, gb = _C.batch_norm_backward(g.reshape(x4.shape), x4, weight, mean, invstd, ctx.training)
        n = ctx.needs_input_grad
        return (gx.reshape(ctx.shape) if n[0] else None, gw if n[1] else None, gb if n[2] else None)


def _real(fn: str, name: str, value, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{fn}(): argument '{name}' must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{fn}(): argument '{name}' must be > 0, got {value!r}")
    return float(value)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """Local response normalisation across channels of ``input`` (N, C, *) (3-D or more), PyTorch's
    formula: ``a_c / (k + alpha / size * sum of a^2 over size neighbouring channels) ** beta``."""
    check_tensor("local_response_norm", "input", input)
    if input.ndim < 3:
        raise ValueError(f"local_response_norm(): expected 3D or higher dimensionality input, got shape "
                         f"{input.shape}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"local_response_norm(): argument 'size' must be a positive int, got {size!r}")
    return LocalResponseNorm.apply(input, int(size), _real("local_response_norm", "alpha", alpha),
                                   _real("local_response_norm", "beta", beta),
                                   _real("local_response_norm", "k", k))


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over channel dimension 1 of ``input`` (N, C, *): ``(x - mean) /
    sqrt(var + eps) * weight + bias`` with batch statistics when ``training`` (updating the running
    ones in place when given) and the running statistics otherwise."""
    fn = "batch_norm"
    check_tensor(fn, "input", input)
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        check_tensor(fn, name, t, optional=True)
        if t is not None and t.shape != (input.shape[1] if input.ndim > 1 else -1,):
            raise ValueError(f"{fn}(): {name} must have shape ({input.shape[1] if input.ndim > 1 else 'C'},), "
                             f"got {t.shape}")
    if input.ndim < 2:
        raise ValueError(f"{fn}(): expected input of at least 2 dimensions (N, C, ...), got shape {input.shape}")
    if training:
        per_channel = input.numel() // input.shape[1] if input.shape[1] else 0
        if per_channel <= 1:
            raise ValueError(f"{fn}(): expected more than 1 value per channel when training, got input of "
                             f"shape {input.shape}")
    elif running_mean is None or running_var is None:
        raise ValueError(f"{fn}(): running_mean and running_var are required when training is False")
    return BatchNorm.apply(input, weight, bias, running_mean, running_var, bool(training),
                           _real(fn, "momentum", momentum), _real(fn, "eps", eps, positive=True))
