"""Shared machinery of ``cnnx bench``: alternating timing, allocator steady state, table output.

Method (docs/benchmarks.md): every library runs with the same thread count; each case is timed in
alternating blocks (cnnx, numpy, torch, cnnx, ...) after a warm-up, and the median per-call time
of each library is reported, so slow drifts of a shared machine hit all libraries alike. Before
each block the process sleeps briefly: every library's idle worker threads busy-wait for a while
after a call (libgomp for milliseconds, OpenBLAS for about 2^28 cycles), and on two cores that
spinning would otherwise be charged to whichever library runs next. Before timing, the process is
put in a steady allocator state (one ~31 MiB block malloc'd and freed) so no library pays for page
faults another one caused.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Sequence

import numpy as np

PEAK_GBS = 77.0      # STREAM triad, 2 threads (PERFORMANCE.md)


def steady_allocator() -> None:
    """Malloc and free one ~31 MiB block so glibc's dynamic mmap threshold settles up front."""
    block = np.empty(31 * 2**20, dtype=np.uint8)
    block[::4096] = 1
    del block


def time_alternating(fns: dict[str, Callable[[], object]], *, min_block_s: float = 0.02,
                     rounds: int = 7, warmup: int = 2, gap_s: float = 0.15) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternating blocks."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    calls = {}
    for name, fn in fns.items():  # size each block to take about min_block_s
        time.sleep(gap_s)
        fn()
        t0 = time.perf_counter()
        fn()
        calls[name] = max(1, int(min_block_s / max(time.perf_counter() - t0, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            n = calls[name]
            time.sleep(gap_s)  # let the previous library's spinning workers go to sleep
            fn()  # wake this library's workers
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: statistics.median(s) for name, s in samples.items()}


def torch_or_none(threads: int):
    """PyTorch with `threads` threads, or None when it is not installed (it is only an anchor)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def measure_peak(threads: int, double: bool = False, seconds: float = 0.3) -> float:
    """GFLOP/s of register-only FMA chains of the active ISA on `threads` threads, right now.

    The ceiling for the % peak columns: on a shared VM it moves from minute to minute (77-98% of the
    nominal figure has been seen on one core), so it is measured in the run it describes.
    """
    from .. import _C

    return _C.fma_peak(threads, seconds, "float64" if double else "float32")


def environment_line(threads: int) -> str:
    import cnnx

    cfg = cnnx.show_config()
    torch = torch_or_none(threads)
    blas_env = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.get(v)]
    line = (f"cnnx {cfg['version']} isa={cfg['isa']} threads={threads}; numpy {np.__version__}; "
            f"torch {torch.__version__ if torch else 'not installed'}")
    if blas_env:
        line += f"\nwarning: {', '.join(blas_env)} set: numpy's OpenBLAS runs throttled"
    return line


def format_table(head: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """Right-aligned plain text, or a markdown table for docs/benchmarks.md."""
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join(fmt.format(*row) for row in [head, *rows])
