"""``cnnx bench gemm``: cnnx.kernels.gemm vs numpy (OpenBLAS) vs torch.mm."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

from ._timing import format_table, steady_allocator, time_alternating, torch_or_none


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








def bench_gemm(threads: int, rounds: int, cases: list[Case] | None = None,
               dtype=np.float32) -> list[Result]:
    import cnnx

    cnnx.set_num_threads(threads)
    torch = torch_or_none(threads)
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
    return format_table(head, rows, markdown)


def run(args: argparse.Namespace) -> str:
    cases = [c for c in GEMM_CASES if args.case in c.name]
    results = bench_gemm(args.threads, args.rounds, cases, np.float64 if args.double else np.float32)
    return format_gemm(results, args.peak, markdown=args.markdown)
