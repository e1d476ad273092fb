"""``summary(..., profile=True)``: measured forward and backward time per summary row.

Real passes, not estimates: the model runs in training mode on ``batch_size`` random images, and a
backward from the sum of its outputs follows. Per row:

* forward: a leaf layer's time between its forward pre-hook and hook (its kernels plus its Python
  overhead); a kernel a container calls itself (an ``F.<op>`` row) is timed around the kernel.
* backward: the graph nodes a leaf layer created are found when it returns (walking back from its
  output to the nodes that made its inputs); during backward each node's ``backward`` is timed and
  added to that layer. Nodes created outside leaf layers (residual adds, ``cat``, functional ops
  of a container, the loss) are reported together as "outside layers".

Medians over ``runs`` after ``warmup`` runs. Parameters' gradients, buffers (BN running
statistics), train/eval modes and the random generator are restored afterwards.
"""
from __future__ import annotations

import contextlib
import statistics
from collections import Counter
from time import perf_counter

import numpy as np

from . import random as _random
from ._trace import intercept
from .autograd import enable_grad
from .creation import from_numpy
from .summary import ModuleTracer
from .tensor import Tensor

__all__ = ["profile_model"]

_MISSING = object()


def _tensors(value):
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


class _ProfileTracer(ModuleTracer):
    """Row names as in the summary; times instead of counts."""

    def __init__(self, model, batch_size):
        super().__init__(model, batch_size)
        self.forward_s: Counter = Counter()
        self.node_row: dict = {}

    def pre(self, module, args):
        super().pre(module, args)
        frame = self.stack[-1]
        if frame.leaf:
            frame.stop = {t.grad_fn for t in _tensors(args) if t.grad_fn is not None}
            frame.t0 = perf_counter()

    def on_leaf(self, frame, args, output) -> None:
        elapsed = perf_counter() - frame.t0
        name = self.rows[-1].name
        self.forward_s[name] += elapsed
        stack = [t.grad_fn for t in _tensors(output) if t.grad_fn is not None]
        while stack:
            node = stack.pop()
            if node in frame.stop or node in self.node_row:
                continue
            self.node_row[node] = name
            for p in node.parents or ():
                if p is not None and p.grad_fn is not None:
                    stack.append(p.grad_fn)

    def timer(self, name, real, args):
        frame = self.stack[-1] if self.stack else None
        if frame is None or frame.leaf:  # inside a leaf (its hooks time it) or during backward
            return real(*args)
        t0 = perf_counter()
        result = real(*args)
        elapsed = perf_counter() - t0
        op = name[:-len("_forward")] if name.endswith("_forward") else name
        row = self._unique_name((f"{frame.name}." if frame.name else "") + op)
        self.forward_s[row] += elapsed
        return result


@contextlib.contextmanager
def _timed_backward(classes, node_row: dict, acc: Counter):
    """Time ``backward`` of every node of ``classes`` listed in ``node_row`` into ``acc``."""
    originals = {cls: cls.__dict__.get("backward", _MISSING) for cls in classes}
    plain = {cls: cls.backward for cls in classes}  # read all before wrapping any (subclasses)

    def wrap(fn):
        def backward(ctx, grad_output):
            t0 = perf_counter()
            result = fn(ctx, grad_output)
            name = node_row.get(ctx)
            if name is not None:
                acc[name] += perf_counter() - t0
            return result
        return backward
    try:
        for cls in classes:
            cls.backward = wrap(plain[cls])
        yield
    finally:
        for cls, raw in originals.items():
            if raw is _MISSING:
                delattr(cls, "backward")
            else:
                cls.backward = raw


def profile_model(model, summary, sizes, dtype, runs: int = 3, warmup: int = 1) -> dict:
    """Measure the rows of ``summary``; fills ``forward_ms``/``backward_ms`` and returns totals."""
    if runs < 1:
        raise ValueError(f"summary(): profile_runs must be >= 1, got {runs}")
    batch = summary.batch_size
    grads = [(p, p._grad) for p in model.parameters()]
    buffers = [(b, b._data.copy()) for b in model.buffers() if b is not None]
    modes = [(m, m.training) for m in model.modules()]
    rng = _random.get_rng_state()
    gen = _random.generator()
    inputs = [from_numpy(gen.standard_normal((batch, *s)).astype(dtype)) for s in sizes]
    fwd_rows, bwd_rows, fwd_total, bwd_total = [], [], [], []
    try:
        model.train()
        for i in range(warmup + runs):
            tracer = _ProfileTracer(model, batch)
            tracer.attach()
            try:
                with enable_grad(), intercept(timer=tracer.timer):
                    t0 = perf_counter()
                    output = model(*inputs)
                    t1 = perf_counter()
            finally:
                tracer.detach()
            outs = [t for t in _tensors(output) if t.requires_grad]
            bwd = Counter()
            t2 = t3 = 0.0
            if outs:
                loss = outs[0].sum()
                for t in outs[1:]:
                    loss = loss + t.sum()
                classes = {type(n) for n in tracer.node_row}
                with _timed_backward(classes, tracer.node_row, bwd):
                    t2 = perf_counter()
                    loss.backward()
                    t3 = perf_counter()
            model.zero_grad()
            if i >= warmup:
                fwd_rows.append(tracer.forward_s)
                bwd_rows.append(bwd)
                fwd_total.append(t1 - t0)
                bwd_total.append(t3 - t2)
    finally:
        for m, mode in modes:
            m.__dict__["training"] = mode
        for p, g in grads:
            p._grad = g
        for b, data in buffers:
            np.copyto(b._data, data)
        _random.set_rng_state(rng)

    def median_ms(values):
        return 1e3 * statistics.median(values)

    for row in summary.rows:
        if any(row.name in f for f in fwd_rows):
            row.forward_ms = median_ms([f.get(row.name, 0.0) for f in fwd_rows])
        if any(row.name in b for b in bwd_rows):
            row.backward_ms = median_ms([b.get(row.name, 0.0) for b in bwd_rows])
    other_f = [t - sum(f.values()) for t, f in zip(fwd_total, fwd_rows)]
    other_b = [t - sum(b.values()) for t, b in zip(bwd_total, bwd_rows)]
    # Layers that run in training mode only (GoogLeNet's auxiliary heads) have no row in the table.
    names = {row.name for row in summary.rows}
    extra_f = [sum(v for k, v in f.items() if k not in names) for f in fwd_rows]
    extra_b = [sum(v for k, v in b.items() if k not in names) for b in bwd_rows]
    return {"runs": runs, "warmup": warmup, "mode": "training", "batch_size": batch,
            "forward_ms": median_ms(fwd_total), "backward_ms": median_ms(bwd_total),
            "other_forward_ms": max(0.0, median_ms(other_f)), "other_backward_ms": max(0.0, median_ms(other_b)),
            "training_only_forward_ms": median_ms(extra_f), "training_only_backward_ms": median_ms(extra_b)}

