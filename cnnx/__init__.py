"""cnnx: a compact CNN library with a C++ core.

C++17 kernels (OpenMP + SIMD) for GEMM, convolution, pooling and LRN, chosen at import for the
best instruction set this CPU supports, under a small PyTorch-shaped Python API.
"""
from __future__ import annotations

import warnings as _warnings

from . import _C
from ._config import get_num_threads, set_num_threads, show_config
from ._version import __version__
from . import kernels
from ._storage import device
from .tensor import Tensor
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .random import initial_seed, manual_seed, seed
from .creation import (arange, as_tensor, cat, empty, from_numpy, full, full_like, ones, ones_like, rand, randint,
                       randn, randperm, stack, tensor, zeros, zeros_like)
from .creation import bool_ as bool  # noqa: A001 - torch.bool
from .creation import float16, float32, float64, int32, int64, uint8
# PyTorch's top-level functional forms (torch.add, torch.sum, ...): the functions the Tensor methods call.
from .ops.elementwise import add, div, mul, neg, pow, sub  # noqa: A004 - torch.pow
from .ops.reduce import max, mean, sum  # noqa: A004 - torch.max, torch.sum
from .ops.shape import flatten, permute, reshape, transpose
from .ops.linalg import matmul
from . import nn, testing
from . import models
from .summary import summary
from .io import load, save
from . import data, optim, train

float = float32  # noqa: A001 - torch.float
double = float64
long = int64

if _C.isa_note():
    _warnings.warn(_C.isa_note(), RuntimeWarning, stacklevel=2)

__all__ = ["__version__", "show_config", "set_num_threads", "get_num_threads", "kernels", "device", "Tensor",
           "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
           "full_like", "randn", "rand", "randint", "randperm", "arange", "cat", "stack", "flatten", "reshape",
           "transpose", "permute", "add", "sub", "mul", "div", "neg", "pow", "sum", "mean", "max", "matmul",
           "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "manual_seed", "seed", "initial_seed",
           "float16", "float32", "float64", "float", "double", "int32", "int64", "long", "uint8", "bool", "nn",
           "testing", "models", "summary", "optim", "data", "train", "save", "load"]
