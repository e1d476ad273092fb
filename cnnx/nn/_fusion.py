"""Inference fusion: convolution -> batch norm (evaluation) -> ReLU as one kernel call.

In evaluation mode a BatchNorm2d applies fixed per-channel coefficients ``y * a + b``; when nothing
is being recorded for backward, the convolution kernel applies them, and the ReLU, in its epilogue
while each output tile is still in cache (``cnnx.kernels.conv2d_forward``'s ``scale``, ``shift`` and
``relu``), instead of two more passes over the activations. The coefficients are made exactly as
the batch-norm kernel makes them, so the result is bitwise equal to calling the modules in turn.

``conv_bn(conv, bn, relu, x)`` returns the fused output, or None when the modules must run one by
one: training mode, a graph being recorded, forward hooks on any of the modules (they must see each
call), subclasses (they may override forward), string padding, or inputs the modules would reject
(those then raise their usual errors). Containers and model blocks call it; ``ENABLED = False``
turns it off (the tests compare both ways).
"""
from __future__ import annotations

import numpy as np

from .. import _C
from ..autograd import is_grad_enabled
from ..tensor import Tensor, _wrap
from . import functional as F
from .activation import ReLU
from .conv import Conv2d
from .normalization import BatchNorm2d

ENABLED = True


def _plain(module, cls) -> bool:
    return type(module) is cls and not module._forward_hooks and not module._forward_pre_hooks


def conv_bn(conv, bn, relu, x):
    """The output of ``relu(bn(conv(x)))`` computed in one kernel, or None. ``relu``: a ReLU module,
    True (the functional relu), or None (no ReLU)."""
    if not ENABLED or bn.training or not isinstance(x, Tensor) or x.ndim != 4:
        return None
    if not (_plain(conv, Conv2d) and _plain(bn, BatchNorm2d) and (relu is None or relu is True or _plain(relu, ReLU))):
        return None
    mean, var, weight, bias = bn.running_mean, bn.running_var, bn.weight, bn.bias
    if mean is None or var is None or isinstance(conv.padding, str) or bn.num_features != conv.out_channels:
        return None
    params = [conv.weight, conv.bias, weight, bias]
    if is_grad_enabled() and (x.requires_grad or any(p is not None and p.requires_grad for p in params)):
        return None
    dtype = x.dtype
    if dtype not in (np.float32, np.float64) or any(p is not None and p.dtype != dtype for p in params):
        return None
    # The batch-norm kernel's evaluation coefficients, in float64 then rounded once (batch_norm.cpp).
    ad = (1.0 / np.sqrt(var._data.astype(np.float64) + bn.eps))
    if weight is not None:
        ad = weight._data.astype(np.float64) * ad
    shift = (bias._data.astype(np.float64) if bias is not None else 0.0) - mean._data.astype(np.float64) * ad
    y = _C.conv2d_forward(x._data, conv.weight._data, None if conv.bias is None else conv.bias._data,
                          conv.stride, conv.padding, conv.dilation, conv.groups,
                          ad.astype(dtype), shift.astype(dtype), relu is not None)
    return _wrap(y)


def run_sequence(modules, x):
    """Modules applied in order, each Conv2d -> BatchNorm2d (-> ReLU) run fused where it can be."""
    i, n = 0, len(modules)
    while i < n:
        m = modules[i]
        if ENABLED and type(m) is Conv2d and i + 1 < n and type(modules[i + 1]) is BatchNorm2d:
            relu = modules[i + 2] if i + 2 < n and type(modules[i + 2]) is ReLU else None
            y = conv_bn(m, modules[i + 1], relu, x)
            if y is not None:
                x = y
                i += 3 if relu is not None else 2
                continue
        x = m(x)
        i += 1
    return x


def conv_bn_act(conv, bn, relu, x):
    """``relu(bn(conv(x)))`` (``relu`` as in conv_bn; True applies ``F.relu(..., inplace=True)``): fused
    where conv_bn allows, else the modules called in turn (hooks, autograd and errors as usual)."""
    y = conv_bn(conv, bn, relu, x)
    if y is not None:
        return y
    y = bn(conv(x))
    if relu is True:
        return F.relu(y, inplace=True)
    return relu(y) if relu is not None else y
