"""``cnnx bench models``: whole networks, training step and inference, images/s against PyTorch.

Each case builds a model from ``cnnx.models`` and its PyTorch twin, copies the weights across by name
and checks that both give the same outputs before timing (docs/benchmarks.md). The twin is made by
running cnnx's own model code against ``torch.nn`` (``torch_twin``): the model modules only use the
names PyTorch also has (``nn.Conv2d``, ``init.kaiming_normal_``, ``F.relu``, ``cat``), so rebinding those
globals gives the same architecture, layer for layer, without a second copy of six model
definitions (and without torchvision).

- ``train``: ``zero_grad`` + forward + cross-entropy (plus 0.3 x each auxiliary head in GoogLeNet's
  training mode) + backward + ``SGD(momentum=0.9)`` step, in training mode.
- ``infer``: forward in eval mode without autograd (``no_grad`` / ``torch.inference_mode``).

``--mode fwd`` times inference only, ``--mode fwdbwd`` the training step only. ``--peak-memory`` adds the peak resident memory of VGG16 inference at batch 1, measured in a fresh
process per library (weights 553 MB + activations 61 MB is the floor the seed gives).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import types
from dataclasses import dataclass

import numpy as np

from ._timing import format_table, steady_allocator, time_alternating, torch_or_none


@dataclass
class Case:
    name: str
    model: str
    kwargs: dict
    batch: int
    size: int
    rounds: int  # most timing rounds (the large networks take seconds per step)


CASES = [
    Case("lenet5_b256", "lenet5", {}, 256, 32, 7),
    Case("resnet18_small_b64", "resnet18", {"small_input": True}, 64, 32, 5),
    Case("mobilenet_v1_b8", "mobilenet_v1", {}, 8, 224, 5),
    Case("alexnet_paper_b8", "alexnet", {"variant": "paper"}, 8, 227, 3),
    Case("googlenet_b8", "googlenet", {}, 8, 224, 3),
    Case("vgg16_b8", "vgg16", {}, 8, 224, 3),
    Case("resnet50_b8", "resnet50", {}, 8, 224, 3),
]


def torch_twin(name: str, torch, **kwargs):
    """The PyTorch version of ``cnnx.models.get_model(name, **kwargs)``: cnnx's model code with ``nn``,
    ``init``, ``F`` and ``cat`` bound to PyTorch's (see the module docstring)."""
    import cnnx.models as models

    factory = getattr(models, name)
    source = sys.modules[factory.__module__]
    namespace = dict(vars(source))
    tnn = types.ModuleType("torch_nn_for_cnnx_models")  # torch.nn plus cnnx's extra constructors
    tnn.__dict__.update(vars(torch.nn))

    class LocalResponseNorm(torch.nn.LocalResponseNorm):
        @classmethod
        def alexnet_paper(cls, size=5, alpha=1e-4, beta=0.75, k=2.0):
            return cls(size, alpha * size, beta, k)

    tnn.LocalResponseNorm = LocalResponseNorm
    namespace.update(nn=tnn, init=torch.nn.init, F=torch.nn.functional, cat=torch.cat)
    twins: dict[type, type] = {}

    def rebind(fn, owner=None, twin=None):
        cells = None
        if fn.__closure__:
            cells = tuple(types.CellType(twin if c.cell_contents is owner else c.cell_contents)
                          for c in fn.__closure__)
        new = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, cells)
        new.__kwdefaults__ = fn.__kwdefaults__
        return new

    def twin_of(cls: type) -> type:
        if cls in twins:
            return twins[cls]
        if cls.__module__ != source.__name__:  # a cnnx.nn class: PyTorch's of the same name
            return getattr(tnn, cls.__name__)
        twin = type(cls.__name__, tuple(twin_of(b) for b in cls.__bases__), {"__module__": __name__})
        twins[cls] = twin
        for key, value in cls.__dict__.items():
            if key in ("__dict__", "__weakref__", "__module__", "__doc__"):
                continue
            if isinstance(value, types.FunctionType):
                value = rebind(value, cls, twin)
            elif isinstance(value, (staticmethod, classmethod)):
                value = type(value)(rebind(value.__func__, cls, twin))
            setattr(twin, key, value)
        return twin

    from ..nn import Module

    def convert(value):
        """Module-level values: cnnx layer classes (also inside dicts, lists and tuples, such as
        ``_ACTIVATIONS = {"tanh": nn.Tanh}``) become PyTorch's; local classes and functions twins."""
        if isinstance(value, type) and issubclass(value, Module):
            return twin_of(value)
        if isinstance(value, types.FunctionType) and value.__module__ == source.__name__:
            return rebind(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(convert(v) for v in value)
        return value

    for key, value in list(namespace.items()):
        if not key.startswith("__"):
            namespace[key] = convert(value)
    return namespace[factory.__name__](**kwargs)


def _pair(case: Case, torch, threads: int):
    """(cnnx model, torch model) with the same weights, checked to agree in eval mode."""
    import cnnx
    from cnnx import models

    cnnx.manual_seed(0)
    model = models.get_model(case.model, **case.kwargs)
    twin = torch_twin(case.model, torch, **case.kwargs)
    state = {k: torch.from_numpy(np.array(v.numpy())) for k, v in model.state_dict().items()}
    twin.load_state_dict(state, strict=True)
    x = np.random.default_rng(0).standard_normal((2, models.INPUT_SIZES[case.model][0], case.size, case.size))
    x = x.astype(np.float32)
    model.eval()
    twin.eval()
    with cnnx.no_grad(), torch.no_grad():
        got, want = model(cnnx.tensor(x)).numpy(), twin(torch.from_numpy(x)).numpy()
    scale = max(1.0, float(np.abs(want).max()))
    if not np.allclose(got, want, rtol=1e-3, atol=1e-3 * scale):
        raise RuntimeError(f"{case.name}: cnnx and PyTorch outputs differ by {np.abs(got - want).max():g}")
    return model, twin


def _fns(case: Case, cnnx, torch, threads: int, mode: str) -> dict:
    from cnnx import models, optim

    channels = models.INPUT_SIZES[case.model][0]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((case.batch, channels, case.size, case.size)).astype(np.float32)
    y = rng.integers(0, 1000 if case.model != "lenet5" else 10, case.batch)
    if torch is None:
        cnnx.manual_seed(0)
        model, twin = models.get_model(case.model, **case.kwargs), None
    else:
        model, twin = _pair(case, torch, threads)
    xs, ys = cnnx.tensor(x), cnnx.tensor(y)
    fns = {}
    if mode == "infer":
        model.eval()

        def infer():
            with cnnx.no_grad():
                return model(xs)

        fns["cnnx"] = infer
        if twin is not None:
            twin.eval()
            tx = torch.from_numpy(x)

            def tinfer():
                with torch.inference_mode():
                    return twin(tx)

            fns["torch"] = tinfer
        return fns

    model.train()
    loss_fn = cnnx.nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        opt.zero_grad()
        out = model(xs)
        if isinstance(out, tuple):
            loss = loss_fn(out[0], ys) + 0.3 * sum((loss_fn(o, ys) for o in out[1:]), 0.0)
        else:
            loss = loss_fn(out, ys)
        loss.backward()
        opt.step()

    fns["cnnx"] = step
    if twin is not None:
        twin.train()
        tloss_fn = torch.nn.CrossEntropyLoss()
        topt = torch.optim.SGD(twin.parameters(), lr=1e-4, momentum=0.9)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def tstep():
            topt.zero_grad()
            out = twin(tx)
            if isinstance(out, tuple):
                loss = tloss_fn(out[0], ty) + 0.3 * sum(tloss_fn(o, ty) for o in out[1:])
            else:
                loss = tloss_fn(out, ty)
            loss.backward()
            topt.step()

        fns["torch"] = tstep
    return fns


def bench_models(threads: int, rounds: int, cases: list[Case], modes=("train", "infer")) -> list:
    import cnnx

    cnnx.set_num_threads(threads)
    torch = torch_or_none(threads)
    results = []
    for case in cases:
        for mode in modes:
            fns = _fns(case, cnnx, torch, threads, mode)
            steady_allocator()
            secs = time_alternating(fns, rounds=min(rounds, case.rounds), warmup=1)
            results.append((case, mode, secs))
            del fns
    return results


def format_models(results, markdown: bool = False) -> str:
    libs = [lib for lib in ("cnnx", "torch") if lib in results[0][2]]
    head = ["case", "mode", "batch"] + [f"{lib} img/s" for lib in libs] + (["cnnx / torch"] if "torch" in libs else [])
    rows = []
    for case, mode, secs in results:
        row = [case.name, mode, str(case.batch)] + [f"{case.batch / secs[lib]:.1f}" for lib in libs]
        if "torch" in libs:
            row.append(f"{secs['torch'] / secs['cnnx']:.2f}x")
        rows.append(row)
    return format_table(head, rows, markdown)


_PEAK_SCRIPT = """
import resource, sys, numpy as np
lib, threads = sys.argv[1], int(sys.argv[2])
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
if lib == "cnnx":
    import cnnx
    from cnnx import models
    cnnx.set_num_threads(threads)
    model = models.vgg16().eval()
    with cnnx.no_grad():
        model(cnnx.tensor(x))
else:
    import torch
    from cnnx.bench.models import torch_twin
    torch.set_num_threads(threads)
    model = torch_twin("vgg16", torch).eval()
    with torch.inference_mode():
        model(torch.from_numpy(x))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory_mb(lib: str, threads: int) -> float:
    """Peak resident memory (MB) of a fresh process that builds VGG16 and runs one batch-1 inference."""
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, lib, str(threads)], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1]) / 1024 * 1.048576  # ru_maxrss is in KiB on Linux


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peak-memory", action="store_true",
                        help="models suite: also measure VGG16 batch-1 inference peak memory")


def run(args: argparse.Namespace) -> str:
    cases = [c for c in CASES if args.case in c.name]
    if not cases:
        raise SystemExit(f"cnnx bench models: no case matches {args.case!r}; cases: "
                         f"{', '.join(c.name for c in CASES)}")
    # --mode is shared with the conv suite: fwd = inference, fwdbwd = training step.
    modes = {"fwd": ("infer",), "fwdbwd": ("train",)}.get(getattr(args, "mode", "both"), ("train", "infer"))
    text = format_models(bench_models(args.threads, args.rounds, cases, modes), markdown=args.markdown)
    if args.peak_memory:
        lines = [f"VGG16 inference, batch 1, peak resident memory: cnnx {peak_memory_mb('cnnx', args.threads):.0f} MB"]
        if torch_or_none(args.threads) is not None:
            lines.append(f"torch {peak_memory_mb('torch', args.threads):.0f} MB")
        text += "\n" + "; ".join(lines) + " (target: within 1.2 x of 553 MB weights + 61 MB activations = 737 MB)"
    return text
