"""Benchmarks that compare cnnx with numpy and PyTorch in one process (``cnnx bench SUITE``).

One module per suite (``gemm.py``, ``layers.py``, ...); each exposes ``run(args) -> str`` and is listed in
``SUITES``. The timing method lives in ``_timing.py`` and is described in docs/benchmarks.md.

numpy's OpenBLAS reads OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE at import; when they are set its
AVX-512 kernels are disabled. Unset them in the command that runs a benchmark against numpy
(``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE cnnx bench gemm``).
"""
from __future__ import annotations

import argparse
import importlib

from ._timing import PEAK_GFLOPS, environment_line

SUITES = {
    "gemm": "cnnx.bench.gemm",
    "conv": "cnnx.bench.conv",
    "step": "cnnx.bench.step",
    "layers": "cnnx.bench.layers",
    "models": "cnnx.bench.models",
    "threads": "cnnx.bench.threads",
    "optim": "cnnx.bench.optim",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=sorted(SUITES), help="what to benchmark")
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds (default 7)")
    parser.add_argument("--case", default="", help="only cases whose name contains this")
    parser.add_argument("--double", action="store_true", help="float64 instead of float32")
    parser.add_argument("--peak", type=float, default=PEAK_GFLOPS, help="peak GFLOP/s for the %% column")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    for module in SUITES.values():  # suite-specific options
        extra = getattr(importlib.import_module(module), "add_arguments", None)
        if extra is not None:
            extra(parser)


def main(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise SystemExit("cnnx bench: --threads must be >= 1")
    print(environment_line(args.threads))
    print(importlib.import_module(SUITES[args.suite]).run(args))
    return 0
