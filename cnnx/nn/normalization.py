"""Normalisation layers: ``BatchNorm2d`` and ``LocalResponseNorm``."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import creation
from ..tensor import _wrap
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["BatchNorm2d", "LocalResponseNorm"]


class BatchNorm2d(Module):
    """Batch normalisation of (N, C, H, W) inputs over N, H, W per channel.

    Parameters ``weight`` (ones) and ``bias`` (zeros) when ``affine`` (no bias with ``bias=False``); buffers ``running_mean``
    (zeros), ``running_var`` (ones) and ``num_batches_tracked`` (int64, counts training batches)
    when ``track_running_stats``. ``momentum=None`` makes the running statistics a cumulative
    average (factor 1 / num_batches_tracked). In eval mode the running statistics are used (batch
    statistics if there are none).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"BatchNorm2d(): argument 'num_features' must be a positive int, got {num_features!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps <= 0:
            raise ValueError(f"BatchNorm2d(): argument 'eps' must be a finite number > 0, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                     or not math.isfinite(momentum)):
            raise ValueError(f"BatchNorm2d(): argument 'momentum' must be a finite number or None, got {momentum!r}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.has_bias = affine and bias
        if affine:
            self.weight = Parameter(creation.empty(num_features, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(creation.empty(num_features, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", creation.ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", _wrap(np.zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        if input.ndim != 4:
            raise ValueError(f"BatchNorm2d: expected 4D input (got {input.ndim}D input)")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked._data += 1
            factor = 1.0 / float(self.num_batches_tracked._data) if self.momentum is None else self.momentum
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.has_bias}, track_running_stats={self.track_running_stats}")


class LocalResponseNorm(Module):
    """Local response normalisation across channels, PyTorch's convention (alpha divided by size):
    ``b_c = a_c / (k + alpha / size * sum of a^2 over the size channels around c) ** beta``.

    For the AlexNet paper's convention (alpha not divided by size, k = 2) use
    ``LocalResponseNorm.alexnet_paper(size=5, alpha=1e-4, beta=0.75, k=2.0)``, which stores
    ``alpha * size`` so the same formula holds.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"LocalResponseNorm(): argument 'size' must be a positive int, got {size!r}")
        for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"LocalResponseNorm(): argument '{name}' must be a finite number, got {value!r}")
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    @classmethod
    def alexnet_paper(cls, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        """The layer for the paper's formula ``a_c / (k + alpha * sum a^2) ** beta`` (Krizhevsky et
        al. 2012, section 3.3): PyTorch-convention alpha = paper alpha * size."""
        return cls(size, alpha * size, beta, k)

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
