"""``cnnx bench layers``: pooling, LRN, batch norm, ReLU, tanh and the residual add, cnnx.kernels vs
torch.nn.functional (and vs numpy for the elementwise ops, which were numpy before their kernels).

These ops are memory-bound, so besides milliseconds the table reports bandwidth: the bytes the
operation must move (read the input, write the output, and the indices or saved tensors it
produces; for backward also the gradients it reads and writes), divided by the time, and that as
a share of the machine's 77 GB/s (STREAM triad, PERFORMANCE.md). The same byte count is used for
both libraries, so their GB/s compare like their times.

"fwd" is one forward call (cnnx max pooling always returns its indices; PyTorch's inference call
does not compute them). "fwdbwd" is forward plus the input gradient: for PyTorch an autograd
forward and ``backward`` with the same output gradient, as a training step runs it. The elementwise
cases have their own modes: ReLU "fwd" (new output), "inplace" (``relu_``, as ``nn.ReLU(inplace=True)``)
and "bwd" (the input gradient from the saved output: PyTorch's ``threshold_backward``); the residual
add "fwd" (``a + b`` into a new array); tanh "fwd" (new output) and "bwd" (``g * (1 - y*y)`` from the
saved output: PyTorch's ``tanh_backward``).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._timing import PEAK_GBS, format_table, steady_allocator, time_alternating, torch_or_none


@dataclass
class Case:
    name: str
    op: str            # maxpool, avgpool, lrn, batchnorm, relu, add, tanh
    shape: tuple       # input N, C, H, W
    args: dict
    modes: tuple = ("fwd", "fwdbwd")

    def describe(self) -> str:
        n, c, h, w = self.shape
        a = self.args
        if self.op in ("maxpool", "avgpool"):
            oh = (h - a["k"]) // a["s"] + 1
            return f"{n}x{c}x{h}x{w} -> {oh}x{oh}, k{a['k']} s{a['s']}"
        if self.op == "lrn":
            return f"{n}x{c}x{h}x{w}, size {a['size']}"
        if self.op in ("relu", "add", "tanh"):
            return f"{n}x{c}x{h}x{w}"
        return f"{n}x{c}x{h}x{w}, training"


# PERFORMANCE.md's layer cases, plus batch norm at the sizes of ResNet's first stages.
LAYER_CASES = [
    Case("maxpool_3x3s2_alexnet", "maxpool", (1, 96, 55, 55), {"k": 3, "s": 2}),
    Case("maxpool_3x3s2_alexnet", "maxpool", (32, 96, 55, 55), {"k": 3, "s": 2}),
    Case("maxpool_2x2s2_vgg", "maxpool", (1, 64, 224, 224), {"k": 2, "s": 2}),
    Case("maxpool_2x2s2_vgg", "maxpool", (8, 64, 224, 224), {"k": 2, "s": 2}),
    Case("avgpool_7x7_global_resnet", "avgpool", (1, 2048, 7, 7), {"k": 7, "s": 7}),
    Case("avgpool_7x7_global_resnet", "avgpool", (32, 2048, 7, 7), {"k": 7, "s": 7}),
    Case("lrn_alexnet", "lrn", (1, 96, 55, 55), {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}),
    Case("lrn_alexnet", "lrn", (32, 96, 55, 55), {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}),
    Case("batchnorm_resnet_112", "batchnorm", (1, 64, 112, 112), {}),
    Case("batchnorm_resnet_112", "batchnorm", (8, 64, 112, 112), {}),
    Case("batchnorm_resnet_56", "batchnorm", (32, 64, 56, 56), {}),
    # ResNet-18's first stage on 32x32 inputs at batch 64 (16.8 MB float32 activations).
    Case("relu_resnet18_32", "relu", (64, 64, 32, 32), {}, ("fwd", "inplace", "bwd")),
    Case("residual_add_resnet18_32", "add", (64, 64, 32, 32), {}, ("fwd",)),
    # LeNet-5's C1 output at batch 256 (4.8 MB float32), and the ResNet-sized array above.
    Case("tanh_lenet5_c1", "tanh", (256, 6, 28, 28), {}, ("fwd", "bwd")),
    Case("tanh_64x64x32x32", "tanh", (64, 64, 32, 32), {}, ("fwd", "bwd")),
]


@dataclass
class Result:
    case: Case
    mode: str
    mbytes: float
    ms: dict


def _pooled_shape(case: Case) -> tuple:
    n, c, h, w = case.shape
    k, s = case.args["k"], case.args["s"]
    return n, c, (h - k) // s + 1, (w - k) // s + 1


def _bytes(case: Case, itemsize: int) -> dict:
    """Bytes each mode must move (see the module docstring)."""
    x = int(np.prod(case.shape)) * itemsize
    if case.op in ("maxpool", "avgpool"):
        y = int(np.prod(_pooled_shape(case))) * itemsize
        idx = int(np.prod(_pooled_shape(case))) * 8 if case.op == "maxpool" else 0
        fwd = x + y + idx
        return {"fwd": fwd, "fwdbwd": fwd + y + idx + x}
    if case.op == "lrn":
        return {"fwd": 3 * x, "fwdbwd": 3 * x + 5 * x}  # x -> y, scale; g, x, y, scale -> grad
    if case.op == "relu":
        return {"fwd": 2 * x, "inplace": 2 * x, "bwd": 3 * x}  # x -> y; g, y -> grad
    if case.op == "add":
        return {"fwd": 3 * x}                            # a, b -> y
    if case.op == "tanh":
        return {"fwd": 2 * x, "bwd": 3 * x}              # x -> y; g, y -> grad
    return {"fwd": 2 * x, "fwdbwd": 2 * x + 3 * x}      # x -> y; g, x -> grad


def _functions(case: Case, x: np.ndarray, g: np.ndarray, torch) -> dict[str, dict[str, Callable]]:
    """{mode: {library: call}} for one case; each call runs the whole mode once."""
    import cnnx.kernels as K

    a, hw = case.args, case.shape[2:]
    c = case.shape[1]
    fns: dict[str, dict[str, Callable]] = {mode: {} for mode in case.modes}
    if case.op in ("relu", "add", "tanh"):
        return _elementwise_functions(case, x, g, torch, fns)
    if case.op == "maxpool":
        def max_fwdbwd():
            y, idx = K.max_pool2d_forward(x, a["k"], a["s"])
            return K.max_pool2d_backward(g, idx, hw)
        fns["fwd"]["cnnx"] = lambda: K.max_pool2d_forward(x, a["k"], a["s"])
        fns["fwdbwd"]["cnnx"] = max_fwdbwd
    elif case.op == "avgpool":
        def avg_fwdbwd():
            K.avg_pool2d_forward(x, a["k"], a["s"])
            return K.avg_pool2d_backward(g, hw, a["k"], a["s"])
        fns["fwd"]["cnnx"] = lambda: K.avg_pool2d_forward(x, a["k"], a["s"])
        fns["fwdbwd"]["cnnx"] = avg_fwdbwd
    elif case.op == "lrn":
        lrn = (a["size"], a["alpha"], a["beta"], a["k"])

        def lrn_fwdbwd():
            y, scale = K.local_response_norm_forward(x, *lrn)
            return K.local_response_norm_backward(g, x, y, scale, *lrn)
        fns["fwd"]["cnnx"] = lambda: K.local_response_norm_forward(x, *lrn)
        fns["fwdbwd"]["cnnx"] = lrn_fwdbwd
    else:
        w, b = np.ones(c, x.dtype), np.zeros(c, x.dtype)
        rm, rv = np.zeros(c, x.dtype), np.ones(c, x.dtype)

        def bn_fwdbwd():
            _, mean, invstd = K.batch_norm_forward(x, w, b, rm, rv, True)
            return K.batch_norm_backward(g, x, w, mean, invstd, True)
        fns["fwd"]["cnnx"] = lambda: K.batch_norm_forward(x, w, b, rm, rv, True)
        fns["fwdbwd"]["cnnx"] = bn_fwdbwd

    if torch is None:
        return fns
    F = torch.nn.functional
    tx, tg = torch.from_numpy(x), torch.from_numpy(g)
    txg = tx.clone().requires_grad_()
    if case.op == "maxpool":
        op = lambda t: F.max_pool2d(t, a["k"], a["s"])  # noqa: E731
    elif case.op == "avgpool":
        op = lambda t: F.avg_pool2d(t, a["k"], a["s"])  # noqa: E731
    elif case.op == "lrn":
        op = lambda t: F.local_response_norm(t, a["size"], a["alpha"], a["beta"], a["k"])  # noqa: E731
    else:
        tw, tb = torch.ones(c, dtype=tx.dtype, requires_grad=True), torch.zeros(c, dtype=tx.dtype, requires_grad=True)
        trm, trv = torch.zeros(c, dtype=tx.dtype), torch.ones(c, dtype=tx.dtype)
        op = lambda t: F.batch_norm(t, trm, trv, tw, tb, True)  # noqa: E731

    def torch_fwd():
        with torch.no_grad():
            return op(tx)

    def torch_fwdbwd():
        txg.grad = None
        op(txg).backward(tg)
        return txg.grad
    fns["fwd"]["torch"] = torch_fwd
    fns["fwdbwd"]["torch"] = torch_fwdbwd
    return fns


def _elementwise_functions(case: Case, x: np.ndarray, g: np.ndarray, torch, fns: dict) -> dict:
    """ReLU (fwd, inplace, bwd), the residual add (fwd) and tanh (fwd, bwd): cnnx, numpy (the code these ops ran
    before their kernels) and PyTorch. In-place calls repeat on one buffer (after the first call it
    holds no negatives, but every value is still read and written)."""
    import cnnx.kernels as K

    if case.op == "add":
        b = g  # a second operand of the same shape
        fns["fwd"]["cnnx"] = lambda: K.add(x, b)
        fns["fwd"]["numpy"] = lambda: x + b
        if torch is not None:
            tx, tb = torch.from_numpy(x), torch.from_numpy(b)
            fns["fwd"]["torch"] = lambda: tx + tb
        return fns
    if case.op == "tanh":
        y = K.tanh_forward(x)
        fns["fwd"]["cnnx"] = lambda: K.tanh_forward(x)
        fns["fwd"]["numpy"] = lambda: np.tanh(x)
        fns["bwd"]["cnnx"] = lambda: K.tanh_backward(g, y)

        def numpy_bwd():  # Tanh.backward before the kernel
            d = y * y
            np.subtract(1, d, out=d)
            return np.multiply(g, d, out=d)
        fns["bwd"]["numpy"] = numpy_bwd
        if torch is not None:
            tx, tg, ty = torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(y)

            def torch_tanh():
                with torch.no_grad():
                    return torch.tanh(tx)
            fns["fwd"]["torch"] = torch_tanh
            fns["bwd"]["torch"] = lambda: torch.ops.aten.tanh_backward(tg, ty)
        return fns
    y = K.relu_forward(x)
    buf, nbuf = x.copy(), x.copy()
    fns["fwd"]["cnnx"] = lambda: K.relu_forward(x)
    fns["fwd"]["numpy"] = lambda: np.maximum(x, 0)
    fns["inplace"]["cnnx"] = lambda: K.relu_forward(buf, inplace=True)
    fns["inplace"]["numpy"] = lambda: np.maximum(nbuf, 0, out=nbuf)
    fns["bwd"]["cnnx"] = lambda: K.relu_backward(g, y)
    fns["bwd"]["numpy"] = lambda: g * (y > 0)  # ReLU.backward before the kernel
    if torch is not None:
        tx, tg, ty, tbuf = torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(y), torch.from_numpy(x.copy())

        def torch_fwd():
            with torch.no_grad():
                return torch.relu(tx)
        fns["fwd"]["torch"] = torch_fwd
        fns["inplace"]["torch"] = tbuf.relu_
        fns["bwd"]["torch"] = lambda: torch.ops.aten.threshold_backward(tg, ty, 0)
    return fns


def _validate(case: Case, fns: dict, mode: str) -> None:
    """cnnx's result must match PyTorch's before anything is timed."""
    if "torch" not in fns[mode]:
        return
    got, want = fns[mode]["cnnx"](), fns[mode]["torch"]()
    got = got[0] if isinstance(got, tuple) else got
    want = want.detach().numpy()
    if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"{case.name} {mode}: cnnx and PyTorch disagree (max diff {np.abs(got - want).max()})")


def bench_layers(threads: int, rounds: int, cases: list[Case], dtype=np.float32) -> list[Result]:
    import cnnx

    cnnx.set_num_threads(threads)
    torch = torch_or_none(threads)
    rng = np.random.default_rng(0)
    results = []
    for case in cases:
        x = rng.standard_normal(case.shape, dtype=np.float32).astype(dtype)
        out_shape = _pooled_shape(case) if case.op in ("maxpool", "avgpool") else case.shape
        g = rng.standard_normal(out_shape, dtype=np.float32).astype(dtype)
        fns = _functions(case, x, g, torch)
        nbytes = _bytes(case, x.itemsize)
        for mode in case.modes:
            _validate(case, fns, mode)
            steady_allocator()
            ms = {k: v * 1e3 for k, v in time_alternating(fns[mode], rounds=rounds).items()}
            results.append(Result(case, mode, nbytes[mode] / 1e6, ms))
    return results


def format_layers(results: list[Result], peak_gbs: float = PEAK_GBS, markdown: bool = False) -> str:
    has_torch = "torch" in results[0].ms
    has_numpy = any("numpy" in r.ms for r in results)  # the elementwise cases
    head = ["case", "mode", "shape", "MB moved", "cnnx ms", "cnnx GB/s", f"% of {peak_gbs:g} GB/s"]
    if has_torch:
        head += ["torch ms", "torch GB/s", "cnnx vs torch"]
    if has_numpy:
        head += ["numpy ms"]
    rows = []
    for r in results:
        gbs = r.mbytes / r.ms["cnnx"]  # MB/ms = GB/s
        row = [r.case.name, r.mode, r.case.describe(), f"{r.mbytes:.2f}", f"{r.ms['cnnx']:.4f}", f"{gbs:.1f}",
               f"{100 * gbs / peak_gbs:.0f}%"]
        if has_torch:
            row += [f"{r.ms['torch']:.4f}", f"{r.mbytes / r.ms['torch']:.1f}", f"{r.ms['torch'] / r.ms['cnnx']:.1f}x"]
        if has_numpy:
            row += [f"{r.ms['numpy']:.4f}" if "numpy" in r.ms else ""]
        rows.append(row)
    return format_table(head, rows, markdown)


def run(args: argparse.Namespace) -> str:
    cases = [c for c in LAYER_CASES if args.case in c.name]
    results = bench_layers(args.threads, args.rounds, cases, np.float64 if args.double else np.float32)
    return format_layers(results, markdown=args.markdown)
