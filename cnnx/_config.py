"""Build and runtime configuration: what was compiled in, what runs, with how many threads."""
from __future__ import annotations

import builtins
import numbers
import platform

from . import _C
from ._version import __version__


def show_config(print: bool = False) -> dict:
    """Return the build and runtime configuration as a dict; with ``print=True`` also print it.

    Keys: ``version``, ``compiler``, ``isa`` (the path in use, e.g. ``"avx512"``), ``isa_built``,
    ``isa_available`` (paths this CPU can run, best first; ``"ref"`` is the reference loops),
    ``openmp``, ``num_threads``, ``cuda_built``, ``cuda_available``, ``python``, ``numpy``.
    """
    import numpy

    config = {
        "version": __version__,
        "compiler": _C.compiler(),
        "isa": _C.isa(),
        "isa_built": list(_C.built_isas()),
        "isa_available": list(_C.available_isas()),
        "openmp": bool(_C.openmp()),
        "num_threads": int(_C.get_num_threads()),
        "cuda_built": False,
        "cuda_available": False,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
    }
    if print:
        width = max(len(k) for k in config)
        for key, value in config.items():
            if isinstance(value, list):
                value = ", ".join(value)
            builtins.print(f"{key:<{width}}  {value}")
    return config


def set_num_threads(n: int) -> None:
    """Set how many threads each kernel may use (``n >= 1``; default: OpenMP's maximum)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads(): n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads(): n must be >= 1, got {n}")
    _C.set_num_threads(int(n))


def get_num_threads() -> int:
    """How many threads each kernel may use."""
    return int(_C.get_num_threads())
