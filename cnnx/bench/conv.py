"""``cnnx bench conv``: cnnx.kernels.conv2d_* vs torch.nn.functional.conv2d (oneDNN), forward and
forward+backward (input and weight gradients), on the cases of PERFORMANCE.md."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from ._timing import PEAK_GBS, format_table, steady_allocator, time_alternating, torch_or_none


@dataclass(frozen=True)
class ConvCase:
    name: str
    c: int
    hw: int
    k: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    batches: tuple[int, ...] = (1, 32)

    def out_hw(self) -> int:
        return (self.hw + 2 * self.padding - self.kernel) // self.stride + 1

    def gflop(self, n: int) -> float:
        """Forward GFLOP (2 per multiply-add)."""
        return 2e-9 * n * self.k * self.out_hw() ** 2 * (self.c // self.groups) * self.kernel ** 2

    def gbytes(self, n: int, itemsize: int) -> float:
        """Forward bytes moved at the least: read input and weights, write output."""
        return 1e-9 * itemsize * (n * self.c * self.hw ** 2 + n * self.k * self.out_hw() ** 2 +
                                  self.k * (self.c // self.groups) * self.kernel ** 2)

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.c


CONV_CASES = [
    ConvCase("alexnet_conv1", 3, 227, 96, 11, stride=4),
    ConvCase("alexnet_conv2", 96, 27, 256, 5, padding=2),
    ConvCase("vgg16_conv1_2", 64, 224, 64, 3, padding=1, batches=(1, 8)),
    ConvCase("vgg16_conv3_2", 256, 56, 256, 3, padding=1, batches=(1, 8)),
    ConvCase("vgg16_conv5_1", 512, 14, 512, 3, padding=1),
    ConvCase("resnet50_1x1_64_256", 64, 56, 256, 1),
    ConvCase("resnet50_3x3_s2", 128, 56, 128, 3, stride=2, padding=1),
    ConvCase("resnet18_cifar_3x3", 64, 32, 64, 3, padding=1),
    ConvCase("lenet5_c1", 1, 32, 6, 5, batches=(1, 256)),
    ConvCase("googlenet_3a_1x1", 192, 28, 64, 1),
    ConvCase("googlenet_3a_3x3", 96, 28, 128, 3, padding=1),
    ConvCase("googlenet_3a_5x5", 16, 28, 32, 5, padding=2),
    ConvCase("mobilenet_dw_112x32", 32, 112, 32, 3, padding=1, groups=32),
    ConvCase("mobilenet_dw_112x64_s2", 64, 112, 64, 3, stride=2, padding=1, groups=64),
    ConvCase("mobilenet_dw_56x128", 128, 56, 128, 3, padding=1, groups=128),
    ConvCase("mobilenet_dw_14x512", 512, 14, 512, 3, padding=1, groups=512),
    ConvCase("mobilenet_dw_7x1024", 1024, 7, 1024, 3, padding=1, groups=1024),
    ConvCase("mobilenet_pw_112_32_64", 32, 112, 64, 1),
    ConvCase("mobilenet_pw_14_512_512", 512, 14, 512, 1),
]


def bench_conv(threads: int, rounds: int, cases: list[ConvCase], modes: list[str], batches: list[int] | None,
               dtype=np.float32) -> list[dict]:
    import cnnx
    from cnnx import kernels

    cnnx.set_num_threads(threads)
    torch = torch_or_none(threads)
    rng = np.random.default_rng(0)
    rows = []
    for case in cases:
        for n in case.batches if batches is None else [b for b in batches]:
            x = rng.standard_normal((n, case.c, case.hw, case.hw), dtype=np.float32).astype(dtype)
            w = rng.standard_normal((case.k, case.c // case.groups, case.kernel, case.kernel),
                                    dtype=np.float32).astype(dtype) * 0.1
            b = rng.standard_normal(case.k, dtype=np.float32).astype(dtype)
            args = dict(stride=case.stride, padding=case.padding, groups=case.groups)
            oh = case.out_hw()
            dy = rng.standard_normal((n, case.k, oh, oh), dtype=np.float32).astype(dtype)
            for mode in modes:
                if mode == "fwd":
                    fns = {"cnnx": lambda: kernels.conv2d_forward(x, w, b, **args)}
                else:
                    def cnnx_fwdbwd():
                        kernels.conv2d_forward(x, w, b, **args)
                        kernels.conv2d_backward_input(dy, w, (case.hw, case.hw), **args)
                        kernels.conv2d_backward_weight(x, dy, case.kernel, bias=True, **args)
                    fns = {"cnnx": cnnx_fwdbwd}
                if torch is not None:
                    F = torch.nn.functional
                    xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
                    if mode == "fwd":
                        def torch_fwd():
                            with torch.no_grad():
                                return F.conv2d(xt, wt, bt, **args)
                        fns["torch"] = torch_fwd
                    else:
                        xg, wg, bg = (t.clone().requires_grad_() for t in (xt, wt, bt))

                        def torch_fwdbwd():
                            y = F.conv2d(xg, wg, bg, **args)
                            return torch.autograd.grad(y, (xg, wg, bg), dyt)
                        fns["torch"] = torch_fwdbwd
                    if mode == "fwd":  # the same numbers, or the comparison is meaningless
                        ref = fns["torch"]().numpy()
                        got = fns["cnnx"]()
                        scale = np.abs(ref).max() + 1e-30
                        if np.abs(got - ref).max() > 1e-3 * scale:
                            raise RuntimeError(f"{case.name}: cnnx and torch disagree")
                steady_allocator()
                ms = {k: v * 1e3 for k, v in time_alternating(fns, rounds=rounds).items()}
                factor = 1 if mode == "fwd" else 3
                rows.append(dict(case=case, n=n, mode=mode, ms=ms, gflop=case.gflop(n) * factor,
                                 gbytes=case.gbytes(n, np.dtype(dtype).itemsize) * factor))
    return rows


def format_conv(rows: list[dict], peak: float, markdown: bool = False) -> str:
    has_torch = any("torch" in r["ms"] for r in rows)
    head = ["case", "mode", "batch", "GFLOP", "cnnx ms"] + (["torch ms"] if has_torch else []) + \
           ["cnnx GFLOP/s", "% peak", "cnnx GB/s"] + (["torch GFLOP/s", "cnnx vs torch"] if has_torch else [])
    out = []
    for r in rows:
        ms = r["ms"]
        gf = r["gflop"] / (ms["cnnx"] * 1e-3)
        line = [r["case"].name, r["mode"], str(r["n"]), f"{r['gflop']:.4g}", f"{ms['cnnx']:.4f}"]
        if has_torch:
            line.append(f"{ms['torch']:.4f}")
        gbs = r["gbytes"] / (ms["cnnx"] * 1e-3)
        line += [f"{gf:.0f}", f"{100 * gf / peak:.0f}%",
                 f"{gbs:.1f} ({100 * gbs / PEAK_GBS:.0f}%)" if r["case"].depthwise else "-"]
        if has_torch:
            line += [f"{r['gflop'] / (ms['torch'] * 1e-3):.0f}", f"{ms['torch'] / ms['cnnx']:.2f}x"]
        out.append(line)
    return format_table(head, out, markdown)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=["fwd", "fwdbwd", "both"], default="both")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default: each case's)")


def run(args: argparse.Namespace) -> str:
    cases = [c for c in CONV_CASES if args.case in c.name]
    modes = ["fwd", "fwdbwd"] if args.mode == "both" else [args.mode]
    rows = bench_conv(args.threads, args.rounds, cases, modes, args.batch,
                      np.float64 if args.double else np.float32)
    return format_conv(rows, args.peak, markdown=args.markdown)
