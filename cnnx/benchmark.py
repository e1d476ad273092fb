"""Benchmarks that compare cnnx with numpy and PyTorch in one process (``cnnx bench``).

Method (docs/benchmarks.md): every library runs with the same thread count; each case is timed in
alternating blocks (cnnx, numpy, torch, cnnx, ...) after a warm-up, and the median per-call time
of each library is reported, so slow drifts of a shared machine hit all libraries alike. Before
each block the process sleeps briefly: every library's idle worker threads busy-wait for a while
after a call (libgomp for milliseconds, OpenBLAS for about 2^28 cycles), and on two cores that
spinning would otherwise be charged to whichever library runs next. Before timing, the process is
put in a steady allocator state (one ~31 MiB block malloc'd and freed) so no library pays for page
faults another one caused.

numpy's OpenBLAS reads OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE at import; when they are set its
AVX-512 kernels are disabled. Unset them in the command that runs this benchmark
(``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE cnnx bench gemm``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

PEAK_GFLOPS = 535.0  # 2 Zen 5 cores, FP32 FMA (docs/PERFORMANCE.md); override with --peak


@dataclass
class Case:
    name: str
    m: int
    n: int
    k: int
    trans_a: bool = False
    trans_b: bool = False

    @property
    def gflop(self) -> float:
        return 2.0 * self.m * self.n * self.k * 1e-9


# Square sizes and the im2col products of a ResNet-50 forward (weights @ columns), as in
# PERFORMANCE.md, plus the transposed products of a convolution backward.
GEMM_CASES = [
    Case("gemm_256", 256, 256, 256),
    Case("gemm_512", 512, 512, 512),
    Case("gemm_1024", 1024, 1024, 1024),
    Case("gemm_2048", 2048, 2048, 2048),
    Case("gemm_r50_conv1", 64, 12544, 147),
    Case("gemm_r50_l1_3x3", 64, 3136, 576),
    Case("gemm_r50_l4_3x3", 512, 49, 4608),
    Case("gemm_r50_l1_dw_ABt", 64, 576, 3136, trans_b=True),
    Case("gemm_r50_l1_dx_AtB", 576, 3136, 64, trans_a=True),
]


@dataclass
class Result:
    case: Case
    ms: dict[str, float] = field(default_factory=dict)


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


def _torch(threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def bench_gemm(threads: int, rounds: int, cases: list[Case] | None = None,
               dtype=np.float32) -> list[Result]:
    import cnnx

    cnnx.set_num_threads(threads)
    torch = _torch(threads)
    rng = np.random.default_rng(0)
    results = []
    for case in cases or GEMM_CASES:
        a_shape = (case.k, case.m) if case.trans_a else (case.m, case.k)
        b_shape = (case.n, case.k) if case.trans_b else (case.k, case.n)
        a = rng.standard_normal(a_shape, dtype=np.float32).astype(dtype)
        b = rng.standard_normal(b_shape, dtype=np.float32).astype(dtype)
        an, bn = (a.T if case.trans_a else a), (b.T if case.trans_b else b)
        fns = {
            "cnnx": lambda: cnnx.kernels.gemm(a, b, trans_a=case.trans_a, trans_b=case.trans_b),
            "numpy": lambda: an @ bn,
        }
        if torch is not None:
            at, bt = torch.from_numpy(a), torch.from_numpy(b)
            at, bt = (at.t() if case.trans_a else at), (bt.t() if case.trans_b else bt)
            fns["torch"] = lambda: torch.mm(at, bt)
        got = fns["cnnx"]()
        ref = an.astype(np.float64) @ bn
        bound = case.k * np.finfo(dtype).eps * (np.abs(an).astype(np.float64) @ np.abs(bn)) + 1e-30
        if not np.all(np.abs(got - ref) <= bound):
            raise RuntimeError(f"{case.name}: cnnx result outside the error bound")
        steady_allocator()
        results.append(Result(case, {k: v * 1e3 for k, v in time_alternating(fns, rounds=rounds).items()}))
    return results


def format_gemm(results: list[Result], peak: float, markdown: bool = False) -> str:
    libs = [lib for lib in ("cnnx", "numpy", "torch") if lib in results[0].ms]
    head = ["case", "m x n x k", "GFLOP"] + [f"{lib} ms" for lib in libs] + \
           [f"{lib} GFLOP/s" for lib in libs] + ["cnnx % peak"] + \
           [f"cnnx vs {lib}" for lib in libs if lib != "cnnx"]
    rows = []
    for r in results:
        c = r.case
        gf = {lib: c.gflop / (r.ms[lib] * 1e-3) for lib in libs}
        rows.append([c.name, f"{c.m}x{c.n}x{c.k}", f"{c.gflop:.4g}"] +
                    [f"{r.ms[lib]:.4f}" for lib in libs] + [f"{gf[lib]:.0f}" for lib in libs] +
                    [f"{100 * gf['cnnx'] / peak:.0f}%"] +
                    [f"{r.ms[lib] / r.ms['cnnx']:.2f}x" for lib in libs if lib != "cnnx"])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join(fmt.format(*row) for row in [head] + rows)


def environment_line(threads: int) -> str:
    import cnnx

    cfg = cnnx.show_config()
    torch = _torch(threads)
    blas_env = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.get(v)]
    line = (f"cnnx {cfg['version']} isa={cfg['isa']} threads={threads}; numpy {np.__version__}; "
            f"torch {torch.__version__ if torch else 'not installed'}")
    if blas_env:
        line += f"\nwarning: {', '.join(blas_env)} set: numpy's OpenBLAS runs throttled"
    return line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=["gemm"], help="what to benchmark")
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds (default 7)")
    parser.add_argument("--case", default="", help="only cases whose name contains this")
    parser.add_argument("--double", action="store_true", help="float64 instead of float32")
    parser.add_argument("--peak", type=float, default=PEAK_GFLOPS, help="peak GFLOP/s for the %% column")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")


def main(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise SystemExit("cnnx bench: --threads must be >= 1")
    print(environment_line(args.threads))
    cases = [c for c in GEMM_CASES if args.case in c.name]
    results = bench_gemm(args.threads, args.rounds, cases, np.float64 if args.double else np.float32)
    print(format_gemm(results, args.peak, markdown=args.markdown))
    return 0
