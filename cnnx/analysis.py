"""The seed's arithmetic (``shared/seed/cnn-architectures.md``) as functions, each checked by a trace.

* ``conv_output_size`` / ``output_size_formula``: ``o = (n + 2p - k) / s + 1``.
* ``alexnet_seed_table()``: the seed's AlexNet table (input, kernels, kernel size, stride, pad,
  output) recomputed layer by layer; where the seed's output differs (Norm2: 27 printed, 13x13
  computed) the row says so.
* ``vgg16_seed_table()``: the seed's VGG16 memory and parameter table and its two conclusions
  (about 60 MB of activations per image, about 526 MB of weights).
* ``receptive_field_comparison()``: two stacked 3x3 convolutions see as far as one 5x5 with fewer
  parameters (on 7x7x3: 6 kernels of 3x3x3 = 162 vs 3 kernels of 5x5x3 = 225).
* ``depthwise_separable_table(model)``: for each depthwise + pointwise pair of a MobileNet, the MACs
  measured by the trace, the MACs of the standard convolution it replaces (traced too), their ratio,
  and the seed's ``1/Dk^2 + 1/Co`` beside it.

Every function returns a ``Table`` (``str()``, ``to_markdown()``, ``to_dict()``; the numbers are in
``table.data``). The networks are built with ``nn.init.no_init()`` and traced with
``cnnx.summary``, so nothing here is typed in twice: the seed's printed values are data to check,
never inputs to the computation.
"""
from __future__ import annotations

from collections import OrderedDict
from fractions import Fraction

from . import nn
from ._table import Table, count, nbytes
from ._trace import output_size
from .summary import Summary, summary

__all__ = ["conv_output_size", "output_size_formula", "receptive_field", "alexnet_seed_table",
           "vgg16_seed_table", "receptive_field_comparison", "depthwise_separable_table", "SEED_ALEXNET",
           "SEED_VGG16"]


def conv_output_size(n: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Output length of a convolution or pooling window along one dimension: the seed's
    ``o = (n + 2p - k) / s + 1`` rounded down (up with ``ceil_mode``, PyTorch's pooling rule), with
    a dilated kernel spanning ``d(k-1) + 1``. ValueError when the kernel does not fit."""
    return output_size(n, kernel_size, stride, padding, dilation, ceil_mode)


def output_size_formula(n: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                        ceil_mode: bool = False) -> str:
    """The formula with numbers, as the seed writes it: ``(227+2*0-11)/4+1 = 55``; a division that
    is not exact shows its rounding: ``(224+2*0-11)/4+1 = 54.25 -> 54 (floor)``."""
    k = dilation * (kernel_size - 1) + 1
    k_text = str(k) if dilation == 1 else f"{dilation}*({kernel_size}-1)+1"
    exact = Fraction(n + 2 * padding - k, stride) + 1
    o = output_size(n, kernel_size, stride, padding, dilation, ceil_mode)
    text = f"({n}+2*{padding}-{k_text})/{stride}+1 = "
    if exact.denominator == 1:
        return text + str(o)
    return text + f"{float(exact):g} -> {o} ({'ceil' if ceil_mode else 'floor'})"


def receptive_field(rows) -> int:
    """Receptive field (pixels along one side) of a chain of conv/pool rows (``Summary.rows``):
    ``r = 1 + sum_i d_i (k_i - 1) * prod_{j<i} s_j``."""
    r, jump = 1, 1
    for row in rows:
        if row.kernel_size is None:
            continue
        d = row.dilation[0] if row.dilation else 1
        r += d * (row.kernel_size[0] - 1) * jump
        jump *= row.stride[0]
    return r


def _hwc(shape) -> str:
    """[N, C, H, W] -> "HxWxC" (the seed's order); [N, F] -> "1xF"."""
    if shape is None:
        return "-"
    if len(shape) == 4:
        return f"{shape[2]}x{shape[3]}x{shape[1]}"
    return "1x" + "x".join(str(s) for s in shape[1:])


def _build(layers) -> nn.Sequential:
    with nn.init.no_init():
        return nn.Sequential(OrderedDict((name, make()) for name, make in layers))


# ---------------------------------------------------------------------------------------------
# AlexNet

# The seed's AlexNet table as printed: (layer, input, kernels, kernel size, stride, pad, output as
# written, what that output evaluates to). Norm2's "27" is the seed's typo.
SEED_ALEXNET = [
    ("Conv1", "227x227x3", "96", "11x11", "4", "0", "(227-11)/4+1", 55),
    ("MaxPool1", "55x55x96", "-", "3x3", "2", "-", "(55-3)/2+1", 27),
    ("Norm1", "27x27x96", "-", "-", "-", "-", "27", 27),
    ("Conv2", "27x27x96", "256", "5x5", "1", "2", "(27+2x2-5)/1+1", 27),
    ("MaxPool2", "27x27x256", "-", "3x3", "2", "-", "(27-3)/2+1", 13),
    ("Norm2", "13x13x256", "-", "-", "-", "-", "27", 27),
    ("Conv3", "13x13x256", "384", "3x3", "1", "1", "(13+2x1-3)/1+1", 13),
    ("Conv4", "13x13x384", "384", "3x3", "1", "1", "(13+2x1-3)/1+1", 13),
    ("Conv5", "13x13x384", "256", "3x3", "1", "1", "(13+2x1-3)/1+1", 13),
    ("MaxPool3", "13x13x256", "-", "3x3", "2", "-", "(13-3)/2+1", 6),
    ("FC6", "6x6x256", "4096", "-", "-", "-", "1x4096", 4096),
    ("FC7", "1x4096", "4096", "-", "-", "-", "1x4096", 4096),
    ("FC8", "1x4096", "1000", "-", "-", "-", "1x1000", 1000),
]


def _seed_alexnet() -> nn.Sequential:
    """The network of the seed's table, in its order (pooling before normalisation, no groups)."""
    lrn = nn.LocalResponseNorm.alexnet_paper
    return _build([
        ("Conv1", lambda: nn.Conv2d(3, 96, 11, stride=4)), ("relu1", nn.ReLU),
        ("MaxPool1", lambda: nn.MaxPool2d(3, 2)), ("Norm1", lrn),
        ("Conv2", lambda: nn.Conv2d(96, 256, 5, padding=2)), ("relu2", nn.ReLU),
        ("MaxPool2", lambda: nn.MaxPool2d(3, 2)), ("Norm2", lrn),
        ("Conv3", lambda: nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU),
        ("Conv4", lambda: nn.Conv2d(384, 384, 3, padding=1)), ("relu4", nn.ReLU),
        ("Conv5", lambda: nn.Conv2d(384, 256, 3, padding=1)), ("relu5", nn.ReLU),
        ("MaxPool3", lambda: nn.MaxPool2d(3, 2)), ("flatten", nn.Flatten),
        ("FC6", lambda: nn.Linear(9216, 4096)), ("relu6", nn.ReLU),
        ("FC7", lambda: nn.Linear(4096, 4096)), ("relu7", nn.ReLU),
        ("FC8", lambda: nn.Linear(4096, 1000)),
    ])


def alexnet_seed_table() -> Table:
    """The seed's AlexNet table recomputed from the output-size formula by a trace; the last
    columns compare each output with the seed's and flag the ones that differ (Norm2)."""
    from . import models

    model = _seed_alexnet()
    s = summary(model, (3, 227, 227))
    with nn.init.no_init():
        grouped = summary(models.alexnet(groups=2), (3, 227, 227))
    rows = {r.name: r for r in s.rows}
    body, records, mismatches = [], [], []
    for name, _, _, _, _, _, seed_text, seed_value in SEED_ALEXNET:
        r = rows[name]
        module = model.get_submodule(name)
        if r.type == "Linear":
            kernels, size, stride, pad = str(module.out_features), "-", "-", "-"
            formula = f"{module.in_features} -> {module.out_features}"
            computed = r.output_shape[1]
        elif r.type == "LocalResponseNorm":
            kernels = size = stride = pad = "-"
            formula = "same size (normalises across channels)"
            computed = r.output_shape[2]
        else:
            kernels = str(r.output_shape[1]) if r.type == "Conv2d" else "-"
            size = f"{r.kernel_size[0]}x{r.kernel_size[1]}"
            stride, pad = str(r.stride[0]), str(r.padding[0])
            formula = output_size_formula(r.input_shape[2], r.kernel_size[0], r.stride[0], r.padding[0])
            computed = r.output_shape[2]
        ok = computed == seed_value
        if not ok:
            mismatches.append(name)
        body.append([name, _hwc(r.input_shape), kernels, size, stride, pad, formula, _hwc(r.output_shape),
                     seed_text, "ok" if ok else f"TYPO: seed prints {seed_value}, computed {computed}"])
        records.append({"layer": name, "input": _hwc(r.input_shape), "output": _hwc(r.output_shape),
                        "computed": computed, "seed": seed_value, "ok": ok})
    notes = [
        "Output size o = (n + 2p - k)/s + 1 (rounded down); pooling and LRN keep the channel count.",
        "Norm2 normalises the 13x13x256 output of MaxPool2, so its output is 13x13x256: the seed's table "
        "prints 27 there (copied from Norm1)." if "Norm2" in mismatches else "All outputs agree with the seed.",
        "The seed's order (max-pool, then LRN) is CS231n's; the paper normalises before pooling, with the "
        "same sizes. The paper also splits conv2, conv4 and conv5 into two groups (one per GPU): same "
        f"shapes, half the weights there: cnnx.models.alexnet(groups=2) has {count(grouped.total_params)} "
        f"parameters and {count(grouped.total_macs)} MACs.",
        f"Why 227 and not the paper's 224: {output_size_formula(224, 11, 4, 0)}; "
        f"{output_size_formula(227, 11, 4, 0)}.",
        f"This network: {count(s.total_params)} params, {count(s.total_macs)} MACs per image "
        f"(FLOPs = 2 x MACs = {count(s.total_flops)}).",
    ]
    return Table("The seed's AlexNet table, recomputed (input 227x227x3)",
                 ["layer", "input", "kernels", "size", "stride", "pad", "output = (n+2p-k)/s+1", "computed",
                  "seed", "check"], body, "llrllllll" + "l", notes,
                 {"rows": records, "mismatches": mismatches, "total_params": s.total_params,
                  "total_macs": s.total_macs})


# ---------------------------------------------------------------------------------------------
# VGG16

# The seed's VGG16 table as printed: (layer, mem, param).
SEED_VGG16 = [
    ("Input", "224x224x3=150K", "0"),
    ("Conv1-1", "224x224x64=3.2M", "64x3x3x3"), ("Conv1-2", "224x224x64=3.2M", "64x3x3x64"),
    ("MaxPool1", "112x112x64=800K", "0"),
    ("Conv2-1", "112x112x128=1.6M", "128x3x3x64"), ("Conv2-2", "112x112x128=1.6M", "128x3x3x128"),
    ("MaxPool2", "56x56x128=400K", "0"),
    ("Conv3-1", "56x56x256=800K", "256x3x3x128"), ("Conv3-2", "56x56x256=800K", "256x3x3x256"),
    ("Conv3-3", "56x56x256=800K", "256x3x3x256"),
    ("MaxPool3", "28x28x256=200K", "0"),
    ("Conv4-1", "28x28x512=400K", "512x3x3x256"), ("Conv4-2", "28x28x512=400K", "512x3x3x512"),
    ("Conv4-3", "28x28x512=400K", "512x3x3x512"),
    ("MaxPool4", "14x14x512=100K", "0"),
    ("Conv5-1", "14x14x512=100K", "512x3x3x512"), ("Conv5-2", "14x14x512=100K", "512x3x3x512"),
    ("Conv5-3", "14x14x512=100K", "512x3x3x512"),
    ("MaxPool5", "7x7x512=25K", "0"),
    ("FC6", "1x4096=4K", "7x7x512x4096=98M"), ("FC7", "1x4096=4K", "4096x4096=16M"),
    ("FC8", "1x1000=1K", "4096x1000=4M"),
]


def _product(text: str) -> int:
    """"224x224x64=3.2M" -> 224*224*64 (the exact product the seed writes before rounding)."""
    p = 1
    for f in text.split("=")[0].split("x"):
        p *= int(f)
    return p


def _seed_vgg16() -> nn.Sequential:
    layers, c = [], 3
    for block, (width, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), 1):
        for i in range(1, n + 1):
            layers.append((f"Conv{block}-{i}", lambda c=c, w=width: nn.Conv2d(c, w, 3, padding=1)))
            layers.append((f"relu{block}-{i}", nn.ReLU))
            c = width
        layers.append((f"MaxPool{block}", lambda: nn.MaxPool2d(2, 2)))
    layers += [("flatten", nn.Flatten), ("FC6", lambda: nn.Linear(7 * 7 * 512, 4096)), ("relu6", nn.ReLU),
               ("FC7", lambda: nn.Linear(4096, 4096)), ("relu7", nn.ReLU), ("FC8", lambda: nn.Linear(4096, 1000))]
    return _build(layers)


def vgg16_seed_table() -> Table:
    """The seed's VGG16 table (activations and parameters per layer) next to the traced values,
    and the seed's conclusions checked: forward activations "at least 60 MB" per image, weights
    "at least 526 MB"."""
    model = _seed_vgg16()
    s = summary(model, (3, 224, 224))
    rows = {r.name: r for r in s.rows}
    rows["Input"] = s.rows[0]
    body, records = [], []
    weights_total = 0
    for name, mem, param in SEED_VGG16:
        r = rows[name]
        weights = 0 if name.startswith(("Input", "MaxPool")) else model.get_submodule(name).weight.numel()
        weights_total += weights
        acts_ok = _product(mem) == r.activations
        params_ok = (param == "0" and weights == 0) or _product(param) == weights
        body.append([name, mem, count(r.activations), param, count(weights), count(r.params),
                     "ok" if acts_ok and params_ok else "differs"])
        records.append({"layer": name, "activations": r.activations, "weights": weights, "params": r.params,
                        "ok": acts_ok and params_ok})
    act_bytes, param_bytes = s.activation_bytes, s.param_bytes
    first_two = rows["Conv1-1"].activations + rows["Conv1-2"].activations
    fc = sum(rows[n].params for n in ("FC6", "FC7", "FC8"))
    fc6, fc7 = (model.get_submodule(n).weight.numel() for n in ("FC6", "FC7"))
    body.append(["total", "", count(s.total_activations), "", count(weights_total), count(s.total_params), ""])
    notes = [
        f"Forward activations: {count(s.total_activations)} per image x 4 B = {nbytes(act_bytes)}: the seed's "
        "\"at least 60 MB\" holds (decimal MB). About twice that with their gradients in backward.",
        f"Weights: {count(s.total_params)} parameters x 4 B = {nbytes(param_bytes)}: the seed's \"526 MB\" is "
        f"138 M x 4 B in MiB ({138e6 * 4 / 2**20:.1f} MiB); the exact count gives {param_bytes / 2**20:.1f} MiB, "
        f"{param_bytes / 1e6:.1f} MB.",
        f"The seed's param column counts weights only; biases add {count(s.total_params - weights_total)}. "
        f"Its FC figures are in binary millions: 7x7x512x4096 = {count(fc6)} = {fc6 / 2**20:.1f} Mi, "
        f"4096x4096 = {count(fc7)} = {fc7 / 2**20:.1f} Mi.",
        f"Most activations are in the first two convolutions ({count(first_two)}, "
        f"{100 * first_two / s.total_activations:.0f} %); most parameters in the FC layers ({count(fc)}, "
        f"{100 * fc / s.total_params:.1f} %); the convolutions do "
        f"{100 * sum(r.macs for r in s.rows if r.type == 'Conv2d') / s.total_macs:.1f} % of the "
        f"{count(s.total_macs)} MACs.",
    ]
    return Table("The seed's VGG16 table: activations (mem) and parameters per layer, 224x224x3",
                 ["layer", "seed mem", "activations", "seed param", "weights", "weights+bias", "check"],
                 body, "llrlrrl", notes,
                 {"rows": records, "total_params": s.total_params, "total_activations": s.total_activations,
                  "activation_bytes": s.activation_bytes, "param_bytes": s.param_bytes})


# ---------------------------------------------------------------------------------------------
# 3x3 stack vs 5x5

def receptive_field_comparison(channels: int = 3, size: int = 7) -> Table:
    """The seed's VGG argument: two stacked 3x3 convolutions (``channels`` kernels each) cover a
    5x5 window like one 5x5 convolution, with fewer parameters; on 7x7x3 without biases:
    6 x 3x3x3 = 162 vs 3 x 5x5x3 = 225."""
    c = channels
    stack = _build([("conv3x3_a", lambda: nn.Conv2d(c, c, 3, bias=False)), ("relu", nn.ReLU),
                    ("conv3x3_b", lambda: nn.Conv2d(c, c, 3, bias=False))])
    single = _build([("conv5x5", lambda: nn.Conv2d(c, c, 5, bias=False))])
    results = {}
    for label, model in (("two 3x3 convolutions", stack), ("one 5x5 convolution", single)):
        s = summary(model, (c, size, size))
        convs = [r for r in s.rows if r.type == "Conv2d"]
        results[label] = {"kernels": sum(r.output_shape[1] for r in convs), "params": s.total_params,
                          "output": _hwc(s.rows[-1].output_shape), "receptive_field": receptive_field(convs),
                          "macs": s.total_macs, "layers": len(convs)}
    body = [[label, str(v["layers"]), f"{v['kernels']} x " + ("3x3x" if "3x3" in label else "5x5x") + str(c),
             count(v["params"]), f"{v['receptive_field']}x{v['receptive_field']}", v["output"], count(v["macs"])]
            for label, v in results.items()]
    a, b = results["two 3x3 convolutions"], results["one 5x5 convolution"]
    notes = [
        f"Input {size}x{size}x{c}, no biases: {a['kernels']}x3x3x{c} = {a['params']} parameters vs "
        f"{b['kernels']}x5x5x{c} = {b['params']} (the seed: 162 vs 225); both see a 5x5 window and give "
        f"{a['output']}.",
        "For C channels in and out: 2 x 9C^2 = 18C^2 vs 25C^2, 28 % fewer, and a ReLU between the two "
        "layers adds a non-linearity.",
        f"MACs here: {count(a['macs'])} vs {count(b['macs'])}: on a 7x7 input the first 3x3 layer works on a "
        "5x5 map; with padding that keeps the size (VGG's 3x3, pad 1) the stack costs 18/25 of the 5x5 per "
        "output pixel, like its parameters.",
    ]
    return Table("Two stacked 3x3 convolutions vs one 5x5 (the seed's VGG argument)",
                 ["network", "layers", "kernels", "params", "receptive field", "output", "MACs"],
                 body, "lrlrllr", notes, {"results": results})


# ---------------------------------------------------------------------------------------------
# Depthwise-separable convolutions

def depthwise_separable_table(model: nn.Module, input_size=(3, 224, 224), source: Summary | None = None) -> Table:
    """For every depthwise convolution (groups = in = out channels) followed by a 1x1 pointwise
    one in ``model``: their measured MACs, the MACs of the standard convolution with the same
    input, output and window (traced on its own), the ratio, and the seed's ``1/Dk^2 + 1/Co``."""
    s = source if source is not None else summary(model, input_size)
    convs = [r for r in s.rows if "conv" in r.kinds]
    body, records = [], []
    tot_sep = tot_std = 0
    for i, dw in enumerate(convs[:-1]):
        ci = dw.input_shape[1]
        if not (dw.groups and dw.groups > 1 and dw.groups == ci == dw.output_shape[1]):
            continue
        pw = convs[i + 1]
        if pw.kernel_size != (1, 1) or pw.groups != 1 or pw.input_shape[1] != ci:
            continue
        co, dk, hw = pw.output_shape[1], dw.kernel_size[0], dw.output_shape[2:]
        std = summary(_build([("conv", lambda: nn.Conv2d(ci, co, dw.kernel_size, dw.stride, dw.padding,
                                                            bias=False))]), tuple(dw.input_shape[1:])).total_macs
        sep = dw.macs + pw.macs
        ratio, formula = sep / std, 1 / dk**2 + 1 / co
        tot_sep, tot_std = tot_sep + sep, tot_std + std
        n = len(records) + 1
        body.append([str(n), f"{dw.name} + {pw.name}", str(ci), str(co), f"{hw[0]}x{hw[1]}", count(dw.macs),
                     count(pw.macs), count(std), f"{ratio:.5f}", f"{formula:.5f}", f"{1 / ratio:.2f}x"])
        records.append({"block": n, "depthwise": dw.name, "pointwise": pw.name, "c_in": ci, "c_out": co,
                        "dk": dk, "out_hw": tuple(hw), "dw_macs": dw.macs, "pw_macs": pw.macs,
                        "separable_macs": sep, "standard_macs": std, "ratio": ratio, "formula": formula})
    if not records:
        raise ValueError("depthwise_separable_table(): no depthwise convolution followed by a 1x1 convolution "
                         f"in {type(model).__name__}")
    body.append(["all", "", "", "", "", "", "", count(tot_std), f"{tot_sep / tot_std:.5f}", "",
                 f"{tot_std / tot_sep:.2f}x"])
    notes = [
        "Standard: D_K^2 * C_I * D_O^2 * C_O MACs; depthwise + pointwise: D_K^2 * D_O^2 * C_I + C_I * D_O^2 * C_O; "
        "ratio = 1/D_K^2 + 1/C_O (the seed's formula), here with D_K = 3: 8 to 9 times fewer MACs.",
        f"Whole network: {count(s.total_macs)} MACs, of which the separable blocks {count(tot_sep)}; with "
        f"standard convolutions the blocks alone would cost {count(tot_std)}.",
    ]
    return Table(f"Depthwise-separable vs standard convolution per block ({s.model}, input "
                 f"{'x'.join(str(v) for v in s.input_size[0])})",
                 ["block", "layers", "C_in", "C_out", "out", "dw MACs", "pw MACs", "standard MACs",
                  "measured ratio", "1/Dk^2 + 1/Co", "saving"],
                 body, "llrrlrrrrrr", notes, {"rows": records})
