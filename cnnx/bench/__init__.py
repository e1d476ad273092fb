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

from ._timing import environment_line, measure_peak

SUITES = {
    "gemm": "cnnx.bench.gemm",
    "conv": "cnnx.bench.conv",
    "step": "cnnx.bench.step",
    "layers": "cnnx.bench.layers",
    "models": "cnnx.bench.models",
    "threads": "cnnx.bench.threads",
    "optim": "cnnx.bench.optim",
}
PEAK_SUITES = ("conv", "gemm")  # the suites with a % peak column


def _peak(text: str) -> float | None:
    """--peak: GFLOP/s, or 'measure' (None) to measure it in the run."""
    if text == "measure":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GFLOP/s or 'measure', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=sorted(SUITES), help="what to benchmark")
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds (default 7)")
    parser.add_argument("--case", default="", help="only cases whose name contains this")
    parser.add_argument("--double", action="store_true", help="float64 instead of float32")
    parser.add_argument("--peak", type=_peak, default=None, metavar="GFLOPS|measure",
                        help="peak GFLOP/s for the %% column (default: measure it at the start of the run, "
                             "with register-only FMA chains on --threads threads)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    for module in SUITES.values():  # suite-specific options
        extra = getattr(importlib.import_module(module), "add_arguments", None)
        if extra is not None:
            extra(parser)


def main(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise SystemExit("cnnx bench: --threads must be >= 1")
    print(environment_line(args.threads))
    measured = args.suite in PEAK_SUITES and args.peak is None
    if measured:
        args.peak = measure_peak(args.threads, args.double)
    print(importlib.import_module(SUITES[args.suite]).run(args))
    if measured:  # again at the end: a figure that moved says the machine's state moved during the run
        end = measure_peak(args.threads, args.double)
        print(f"% peak of {args.peak:.0f} GFLOP/s, measured at the start ({end:.0f} at the end): "
              f"{'float64' if args.double else 'float32'} FMA chains, {args.threads} threads")
    return 0
