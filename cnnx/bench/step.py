"""``cnnx bench step``: the Python-side cost of autograd-lite against PyTorch.

Two parts, both in one process with the same thread count (docs/benchmarks.md):

- per-op overhead: one op on tiny (4x4 / 2x4 / 1x1x5x5) float32 tensors, forward only and forward +
  backward (backward seeded with an explicit gradient, so no extra op is timed). The arithmetic is
  negligible at this size: the figure is the framework's per-op cost in microseconds.
- a LeNet-5 training step (conv 5x5 -> relu -> max-pool -> conv 5x5 -> relu -> max-pool -> 3 linear
  layers, cross-entropy), zero_grad + forward + loss + backward, at batch 1 (overhead-bound) and
  batch 256. Both libraries hold the same weights; the losses are checked to agree before timing.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._timing import format_table, steady_allocator, time_alternating, torch_or_none


@dataclass
class Case:
    name: str
    what: str
    build: Callable  # (cnnx, torch or None, dtype) -> {"cnnx": fn, "torch": fn}


def _tiny(np_dtype):
    rng = np.random.default_rng(0)
    return rng.standard_normal((4, 4)).astype(np_dtype), rng.standard_normal((4, 4)).astype(np_dtype)


def _op_cases():
    def add_fwd(cnnx, torch, dt):
        a, b = _tiny(dt)
        x, y = cnnx.tensor(a, requires_grad=True), cnnx.tensor(b)
        fns = {"cnnx": lambda: x + y}
        if torch:
            tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b)
            fns["torch"] = lambda: tx + ty
        return fns

    def add_fwdbwd(cnnx, torch, dt):
        a, b = _tiny(dt)
        x, y, g = cnnx.tensor(a, requires_grad=True), cnnx.tensor(b), cnnx.tensor(b)
        fns = {"cnnx": lambda: (x + y).backward(g)}
        if torch:
            tx, ty, tg = torch.tensor(a, requires_grad=True), torch.tensor(b), torch.tensor(b)
            fns["torch"] = lambda: (tx + ty).backward(tg)
        return fns

    def relu_fwdbwd(cnnx, torch, dt):
        a, b = _tiny(dt)
        x, g = cnnx.tensor(a, requires_grad=True), cnnx.tensor(b)
        fns = {"cnnx": lambda: cnnx.nn.functional.relu(x).backward(g)}
        if torch:
            tx, tg = torch.tensor(a, requires_grad=True), torch.tensor(b)
            fns["torch"] = lambda: torch.relu(tx).backward(tg)
        return fns

    def linear_fwdbwd(cnnx, torch, dt):
        a, b = _tiny(dt)
        layer = cnnx.nn.Linear(4, 4).to(dt)
        x, g = cnnx.tensor(a[:2]), cnnx.tensor(b[:2])
        fns = {"cnnx": lambda: layer(x).backward(g)}
        if torch:
            tlayer = torch.nn.Linear(4, 4).to(getattr(torch, np.dtype(dt).name))
            tx, tg = torch.tensor(a[:2]), torch.tensor(b[:2])
            fns["torch"] = lambda: tlayer(tx).backward(tg)
        return fns

    def conv_fwdbwd(cnnx, torch, dt):
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((1, 1, 5, 5)).astype(dt), rng.standard_normal((1, 1, 3, 3)).astype(dt)
        layer = cnnx.nn.Conv2d(1, 1, 3).to(dt)
        x, g = cnnx.tensor(a), cnnx.tensor(b)
        fns = {"cnnx": lambda: layer(x).backward(g)}
        if torch:
            tlayer = torch.nn.Conv2d(1, 1, 3).to(getattr(torch, np.dtype(dt).name))
            tx, tg = torch.tensor(a), torch.tensor(b)
            fns["torch"] = lambda: tlayer(tx).backward(tg)
        return fns

    return [Case("op_add", "x + y, 4x4, forward", add_fwd),
            Case("op_add_bwd", "x + y, 4x4, forward + backward", add_fwdbwd),
            Case("op_relu_bwd", "relu, 4x4, forward + backward", relu_fwdbwd),
            Case("op_linear_bwd", "Linear(4, 4), 2x4, forward + backward", linear_fwdbwd),
            Case("op_conv_bwd", "Conv2d(1, 1, 3), 1x1x5x5, forward + backward", conv_fwdbwd)]


def lenet5(nn):
    """LeNet-5 with ReLU and max pooling (the torchvision-era variant), from cnnx.nn or torch.nn."""
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                         nn.ReLU(), nn.Linear(84, 10))


def _lenet_case(batch: int) -> Case:
    def build(cnnx, torch, dt):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, 1, 32, 32)).astype(dt)
        y = rng.integers(0, 10, batch)
        model = lenet5(cnnx.nn).to(dt)
        xs, ys = cnnx.tensor(x), cnnx.tensor(y)
        loss_fn = cnnx.nn.CrossEntropyLoss()

        def step():
            model.zero_grad()
            loss = loss_fn(model(xs), ys)
            loss.backward()
            return loss

        fns = {"cnnx": step}
        if torch:
            tmodel = lenet5(torch.nn).to(getattr(torch, np.dtype(dt).name))
            model.load_state_dict(tmodel.state_dict())
            tx, ty = torch.tensor(x), torch.tensor(y)
            tloss_fn = torch.nn.CrossEntropyLoss()

            def tstep():
                tmodel.zero_grad()
                loss = tloss_fn(tmodel(tx), ty)
                loss.backward()
                return loss

            got, want = step().item(), tstep().item()
            if not abs(got - want) <= 1e-4 * max(1.0, abs(want)):
                raise RuntimeError(f"lenet5 batch {batch}: cnnx loss {got} != torch loss {want}")
            fns["torch"] = tstep
        return fns

    return Case(f"lenet5_b{batch}", f"LeNet-5 step, batch {batch}: zero_grad + forward + loss + backward", build)


CASES = _op_cases() + [_lenet_case(1), _lenet_case(256)]


def bench_step(threads: int, rounds: int, cases: list[Case], dtype=np.float32) -> list[tuple[Case, dict]]:
    import cnnx

    cnnx.set_num_threads(threads)
    torch = torch_or_none(threads)
    results = []
    for case in cases:
        fns = case.build(cnnx, torch, dtype)
        steady_allocator()
        results.append((case, time_alternating(fns, rounds=rounds)))
    return results


def format_step(results, markdown: bool = False) -> str:
    libs = [lib for lib in ("cnnx", "torch") if lib in results[0][1]]
    head = ["case", "what"] + [f"{lib} us" for lib in libs] + (["torch / cnnx"] if "torch" in libs else [])
    rows = []
    for case, secs in results:
        row = [case.name, case.what] + [f"{secs[lib] * 1e6:.1f}" for lib in libs]
        if "torch" in libs:
            row.append(f"{secs['torch'] / secs['cnnx']:.2f}x")
        rows.append(row)
    return format_table(head, rows, markdown)


def run(args: argparse.Namespace) -> str:
    cases = [c for c in CASES if args.case in c.name]
    if not cases:
        raise SystemExit(f"cnnx bench step: no case matches {args.case!r}")
    results = bench_step(args.threads, args.rounds, cases, np.float64 if args.double else np.float32)
    return format_step(results, markdown=args.markdown)
