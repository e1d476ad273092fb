"""``cnnx bench optim``: one optimizer step over a large network's parameters, three ways in one run.

- ``kernel``: cnnx's optimizer as it runs by default, one fused C++ pass per parameter
  (``cnnx._C.sgd_step`` / ``adam_step``);
- ``numpy``: the same optimizer object with the fused path switched off (``_fused = False``): the
  numpy code that specifies the update, block by block through scratch arrays;
- ``torch``: ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` with their default (foreach) implementation.

The parameters have the shapes of AlexNet's (the paper variant, 61 M float32 values, 244 MB per
array); the gradients are fixed random arrays, so every call is one more step of the same update.
A step is memory-bound: the table gives the bytes it must move (SGD with momentum reads parameter,
gradient and buffer and writes parameter and buffer: 5 arrays; Adam reads 4 and writes 3: 7 arrays;
AMSGrad one more read and write), divided by the time, and that as a share of the machine's
77 GB/s (STREAM triad, PERFORMANCE.md). Before timing, the kernel and numpy paths are checked to
agree bitwise on a step of the first parameters, and torch to agree with them closely (its update
groups some operations differently).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

from ._timing import PEAK_GBS, format_table, steady_allocator, time_alternating, torch_or_none


@dataclass
class Case:
    name: str
    optimizer: str  # "SGD", "Adam", "AdamW": the class in cnnx.optim and torch.optim
    kwargs: dict
    arrays: int     # arrays moved per element (read + written)
    what: str = ""
    shapes: list = field(default_factory=list)


CASES = [
    Case("sgd_momentum_alexnet", "SGD", {"lr": 1e-3, "momentum": 0.9}, 5, "SGD(momentum=0.9)"),
    Case("sgd_momentum_wd_nesterov_alexnet", "SGD",
         {"lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}, 5,
         "SGD(momentum=0.9, weight_decay=5e-4, nesterov=True)"),
    Case("adam_alexnet", "Adam", {"lr": 1e-3}, 7, "Adam()"),
    Case("adamw_amsgrad_alexnet", "AdamW", {"lr": 1e-3, "amsgrad": True}, 9, "AdamW(amsgrad=True)"),
]


def alexnet_shapes() -> list[tuple]:
    """The parameter shapes of cnnx.models.alexnet() (the paper variant, 1000 classes)."""
    from .. import models

    return [tuple(p.shape) for p in models.alexnet().parameters()]


def _torch_name(dtype) -> str:
    return np.dtype(dtype).name


def _build(case: Case, shapes: list[tuple], cnnx, torch, dtype):
    from .. import optim

    rng = np.random.default_rng(0)
    data = [rng.standard_normal(s, dtype=np.float32).astype(dtype, copy=False) for s in shapes]
    grads = [(rng.standard_normal(s, dtype=np.float32) * 1e-2).astype(dtype, copy=False) for s in shapes]
    params = [cnnx.nn.Parameter(cnnx.tensor(d.copy())) for d in data]
    for p, g in zip(params, grads):
        p.grad = cnnx.tensor(g)
    opt = getattr(optim, case.optimizer)(params, **case.kwargs)

    def kernel():
        opt._fused = True
        opt.step()

    def numpy_path():
        opt._fused = False
        opt.step()

    fns = {"kernel": kernel, "numpy": numpy_path}
    _validate(case, data, grads, cnnx, torch, dtype)
    if torch is not None:
        tparams = [torch.nn.Parameter(torch.from_numpy(d)) for d in data]  # shares `data`: used only here now
        for p, g in zip(tparams, grads):
            p.grad = torch.from_numpy(g)
        topt = getattr(torch.optim, case.optimizer)(tparams, **case.kwargs)
        fns["torch"] = topt.step
    return fns


def _validate(case: Case, data, grads, cnnx, torch, dtype) -> None:
    """Two steps on copies of the first parameters: kernel == numpy bitwise, torch close."""
    from .. import optim

    k = min(len(data), 4)
    results = []
    for fused in (True, False):
        ps = [cnnx.nn.Parameter(cnnx.tensor(d.copy())) for d in data[:k]]
        opt = getattr(optim, case.optimizer)(ps, **case.kwargs)
        opt._fused = fused
        for _ in range(2):
            for p, g in zip(ps, grads[:k]):
                p.grad = cnnx.tensor(g)
            opt.step()
        results.append([p.detach().numpy() for p in ps])
    for a, b in zip(*results):
        if not np.array_equal(a.view(np.uint8), b.view(np.uint8)):
            raise RuntimeError(f"{case.name}: the fused kernel and the numpy path disagree")
    if torch is None:
        return
    tps = [torch.nn.Parameter(torch.from_numpy(d.copy())) for d in data[:k]]
    topt = getattr(torch.optim, case.optimizer)(tps, **case.kwargs)
    for _ in range(2):
        for p, g in zip(tps, grads[:k]):
            p.grad = torch.from_numpy(g.copy())
        topt.step()
    tol = 1e-5 if np.dtype(dtype) == np.float32 else 1e-12
    for a, t in zip(results[0], tps):
        if not np.allclose(a, t.detach().numpy(), rtol=tol, atol=tol):
            raise RuntimeError(f"{case.name}: cnnx and torch disagree beyond {tol}")


def bench_optim(threads: int, rounds: int, cases: list[Case], dtype=np.float32, shapes=None) -> list[tuple]:
    import cnnx

    cnnx.set_num_threads(threads)
    torch = torch_or_none(threads)
    shapes = alexnet_shapes() if shapes is None else shapes
    n = sum(int(np.prod(s)) for s in shapes)
    results = []
    for case in cases:
        fns = _build(case, shapes, cnnx, torch, dtype)
        steady_allocator()
        secs = time_alternating(fns, rounds=rounds, min_block_s=0.05)
        results.append((case, n * case.arrays * np.dtype(dtype).itemsize / 1e6, secs))
        del fns
    return results


def format_optim(results: list[tuple], peak_gbs: float = PEAK_GBS, markdown: bool = False) -> str:
    libs = [lib for lib in ("kernel", "numpy", "torch") if any(lib in secs for _, _, secs in results)]
    head = ["case", "MB moved"] + [f"{lib} ms" for lib in libs] + ["kernel GB/s", "% peak", "numpy / kernel"]
    if "torch" in libs:
        head.append("torch / kernel")
    rows = []
    for case, mb, secs in results:
        gbs = mb / 1e3 / secs["kernel"]
        row = [case.name, f"{mb:.0f}"] + [f"{secs[lib] * 1e3:.1f}" if lib in secs else "-" for lib in libs]
        row += [f"{gbs:.1f}", f"{100 * gbs / peak_gbs:.0f}%", f"{secs['numpy'] / secs['kernel']:.2f}x"]
        if "torch" in libs:
            row.append(f"{secs['torch'] / secs['kernel']:.2f}x" if "torch" in secs else "-")
        rows.append(row)
    return format_table(head, rows, markdown)


def run(args: argparse.Namespace) -> str:
    cases = [c for c in CASES if args.case in c.name]
    if not cases:
        raise SystemExit(f"cnnx bench optim: no case matches {args.case!r}")
    results = bench_optim(args.threads, args.rounds, cases, np.float64 if args.double else np.float32)
    return format_optim(results, markdown=args.markdown)
