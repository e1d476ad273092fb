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

if _C.isa_note():
    _warnings.warn(_C.isa_note(), RuntimeWarning, stacklevel=2)

__all__ = ["__version__", "show_config", "set_num_threads", "get_num_threads", "kernels"]
