"""``cnnx.nn.functional``: PyTorch's functional API (same names, arguments and defaults).

Each function validates its arguments and calls one ``Function`` from ``cnnx/ops/`` (one module
per op family, where forward and backward sit side by side). ``DIFFERENTIABLE`` lists the functions
with a backward; the test suite checks each of them with ``cnnx.testing.gradcheck``.
"""
from __future__ import annotations

from ..ops.activation import dropout, log_softmax, relu, relu_, sigmoid, softmax, tanh
from ..ops.conv import conv2d
from ..ops.linalg import linear
from ..ops.loss import cross_entropy, mse_loss, nll_loss
from ..ops.norm import batch_norm, local_response_norm
from ..ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from ..ops.shape import pad

DIFFERENTIABLE = ("conv2d", "linear", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "local_response_norm",
                  "batch_norm", "relu", "relu_", "tanh", "sigmoid", "dropout", "softmax", "log_softmax",
                  "cross_entropy", "nll_loss", "mse_loss", "pad")

__all__ = list(DIFFERENTIABLE)
