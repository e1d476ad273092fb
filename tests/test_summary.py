"""cnnx.summary, cnnx.analysis and `cnnx summary`: counts by hand, branching modules, the zoo against
shared/docs/anchors/reference_figures.md, the seed's tables, the shape rules against the real
kernels, profiling, and leaving the model (and cnnx._C) as found."""
import json
import math
import subprocess
import sys
import tempfile
import threading

import numpy as np
import pytest

import cnnx
from cnnx import _C, _trace, analysis, models, nn
from cnnx import random as cnnx_random
from cnnx.cli import main
from cnnx.nn import functional as F
from cnnx.nn.init import no_init
from cnnx.summary import Summary


def tiny():
    """conv 3->4 (3x3, pad 1) -> ReLU -> max-pool 2 -> flatten -> linear 64->10."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))


# ---------------------------------------------------------------------------------------------
# A tiny network, by hand

def test_tiny_network_by_hand():
    s = cnnx.summary(tiny(), (3, 8, 8))
    assert isinstance(s, Summary)
    conv_params, conv_macs = 4 * 3 * 3 * 3 + 4, 4 * 8 * 8 * 3 * 3 * 3      # 112, 6,912
    fc_params, fc_macs = 64 * 10 + 10, 64 * 10                            # 650, 640
    assert s.total_params == s.trainable_params == conv_params + fc_params == 762
    assert s.non_trainable_params == s.untraced_params == 0
    assert s.total_macs == conv_macs + fc_macs == 7552
    assert s.total_flops == 2 * 7552
    acts = 3 * 8 * 8 + 4 * 8 * 8 + 4 * 4 * 4 + 10                         # input, conv, pool, fc
    assert s.total_activations == acts == 522
    assert s.param_bytes == 762 * 4 and s.activation_bytes == 522 * 4
    tm = s.training_memory()  # momentum: params + grads + 1 buffer; activations and their gradients
    assert (tm.parameters, tm.gradients, tm.optimizer_state) == (3048, 3048, 3048)
    assert tm.activations == tm.activation_gradients == 2088 and tm.total == s.training_bytes == 13320
    assert s.training_memory("adam").total == 13320 + 3048 and s.training_memory("sgd").total == 13320 - 3048

    names = [(r.name, r.type, r.output_shape, r.window) for r in s.rows]
    assert names == [("input", "Input", (1, 3, 8, 8), ""), ("0", "Conv2d", (1, 4, 8, 8), "3x3 s1 p1"),
                     ("1", "ReLU", (1, 4, 8, 8), ""), ("2", "MaxPool2d", (1, 4, 4, 4), "2x2 s2"),
                     ("3", "Flatten", (1, 64), ""), ("4", "Linear", (1, 10), "")]
    conv = s.rows[1]
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups) == ((3, 3), (1, 1), (1, 1),
                                                                                        (1, 1), 1)
    assert (conv.params, conv.macs, conv.flops, conv.activations, conv.activation_bytes) == (112, 6912, 13824,
                                                                                             256, 1024)
    assert conv.input_shape == (1, 3, 8, 8)
    assert [r.activations for r in s.rows] == [192, 256, 0, 64, 0, 10]
    assert [r.passthrough for r in s.rows] == [False, False, True, False, True, False]


def test_strided_grouped_dilated_convolution_by_hand():
    conv = nn.Conv2d(6, 4, 3, stride=2, padding=2, dilation=2, groups=2, bias=False)
    s = cnnx.summary(conv, (6, 9, 11))
    oh, ow = (9 + 4 - 5) // 2 + 1, (11 + 4 - 5) // 2 + 1                  # 5, 6
    (row,) = s.rows[1:]
    assert row.name == "(model)" and row.output_shape == (1, 4, oh, ow)
    assert row.macs == 4 * oh * ow * (6 // 2) * 3 * 3 == 3240
    assert row.params == 4 * 3 * 3 * 3 and row.window == "3x3 s2 p2 d2 g2"


def test_batch_size_scales_memory_not_counts():
    one, many = cnnx.summary(tiny(), (3, 8, 8)), cnnx.summary(tiny(), (3, 8, 8), batch_size=16)
    assert many.total_macs == one.total_macs and many.total_activations == one.total_activations
    assert many.activation_bytes == 16 * one.activation_bytes and many.param_bytes == one.param_bytes
    assert [r.output_shape[0] for r in many.rows] == [16] * len(many.rows)
    assert many.training_memory().activations == 16 * one.training_memory().activations
    assert one.training_memory(batch_size=16) == many.training_memory()


def test_frozen_parameters_and_dtype():
    model = tiny().double()
    for p in model[0].parameters():
        p.requires_grad_(False)
    s = cnnx.summary(model, (3, 8, 8))
    assert (s.trainable_params, s.non_trainable_params) == (650, 112)
    assert s.dtype == "float64" and s.param_bytes == 762 * 8 and s.activation_bytes == 522 * 8
    assert s.rows[1].non_trainable_params == 112 and s.training_memory("sgd").gradients == 650 * 8


def test_rendering():
    s = cnnx.summary(tiny(), (3, 8, 8))
    text = str(s)
    assert "Sequential summary: input [1, 3, 8, 8], float32" in text
    assert "ReLU" not in text.split("\n\n")[1] and "2 pass-through layers not shown (ReLU, Flatten)" in text
    assert "ReLU" in s.to_string(all_rows=True).split("\n\n")[1]
    assert "7,552 per image" in text and "15,104 per image" in text and "= 2 x MACs" in text
    assert "3.0 KB (3.0 KiB)" in text and "2.1 KB (2.0 KiB) forward" in text  # both units, labelled
    lines = text.split("\n\n")[1].splitlines()
    assert len({len(line) for line in lines[:2]}) == 1  # the rule is as wide as the header
    md = s.to_markdown()
    assert "| layer | type | output shape | kernel | params | MACs | activations |" in md
    assert "|---|---|---|---|---:|---:|---:|" in md
    assert "| 0 | Conv2d | [1, 4, 8, 8] | 3x3 s1 p1 | 112 | 6,912 | 256 |" in md
    d = json.loads(json.dumps(s.to_dict()))
    assert d["total_macs"] == 7552 and d["total_flops"] == 15104 and d["rows"][1]["params"] == 112
    assert d["rows"][1]["kernel_size"] == [3, 3] and d["training_memory"]["total"] == 13320


def test_bad_arguments():
    with pytest.raises(TypeError, match="cnnx.nn.Module"):
        cnnx.summary(lambda x: x, (3, 8, 8))
    with pytest.raises(TypeError, match="input_size"):
        cnnx.summary(tiny(), 3)
    with pytest.raises(ValueError, match="positive"):
        cnnx.summary(tiny(), (3, 0, 8))
    with pytest.raises(ValueError, match="batch_size"):
        cnnx.summary(tiny(), (3, 8, 8), batch_size=0)
    with pytest.raises(ValueError, match="optimizer"):
        cnnx.summary(tiny(), (3, 8, 8), optimizer="rmsprop")
    with pytest.raises(ValueError, match="larger than the padded input"):
        cnnx.summary(tiny(), (3, 1, 1))  # the max-pool does not fit
    with pytest.raises(ValueError, match="expects 4 input channels"):
        cnnx.summary(nn.Conv2d(4, 2, 3), (3, 8, 8))
    with pytest.raises(ValueError, match="in_features = 64"):
        cnnx.summary(tiny(), (3, 6, 6))
    with pytest.raises(ValueError, match="inner dimensions"):
        _trace.RULES["gemm"][1](np.zeros((2, 3)), np.zeros((4, 2)), None, False, False, 1.0, 0.0)


# ---------------------------------------------------------------------------------------------
# User-defined branching modules

class Inception(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.b1 = nn.Conv2d(c, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(c, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 3, padding=1))
        self.b3 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 2, 1))

    def forward(self, x):
        return cnnx.cat([self.b1(x), self.b2(x), self.b3(x)], 1)


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.scale = nn.Parameter(cnnx.ones(1))  # the container's own parameter

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)) * self.scale + x)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.inc = Inception(8)
        self.res = Residual(10)
        self.fc = nn.Linear(10, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 2)  # functional ops in the container's forward
        x = self.res(self.inc(x))
        x = self.res(x)                            # the same block twice: shared weights
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_branching_module_by_hand():
    s = cnnx.summary(Branchy(), (3, 16, 16))
    # stem 3->8 3x3/2 on 16x16 -> 8x8; F.max_pool2d -> 4x4; inception -> 4+4+2 = 10 channels
    params = {"stem": 8 * 27 + 8, "inc.b1": 8 * 4 + 4, "inc.b2.0": 8 * 2 + 2, "inc.b2.2": 2 * 9 * 4 + 4,
              "inc.b3.1": 8 * 2 + 2, "res.conv": 10 * 10 * 9, "res.bn": 20, "res (own)": 1, "fc": 10 * 5 + 5}
    macs = {"stem": 8 * 64 * 27, "inc.b1": 4 * 16 * 8, "inc.b2.0": 2 * 16 * 8, "inc.b2.2": 4 * 16 * 18,
            "inc.b3.1": 2 * 16 * 8, "res.conv": 10 * 16 * 90, "res.conv (2)": 10 * 16 * 90, "fc": 50}
    rows = {r.name: r for r in s.rows}
    for name, n in params.items():
        assert rows[name].params == n, name
    for name, n in macs.items():
        assert rows[name].macs == n, name
    assert rows["res.conv (2)"].params == 0 and rows["res.bn (2)"].params == 0  # counted once
    assert s.total_params == sum(params.values()) == 1348 == sum(p.numel() for p in Branchy().parameters())
    assert s.total_macs == sum(macs.values()) == 44850
    assert rows["max_pool2d"].type == "F.max_pool2d" and rows["max_pool2d"].output_shape == (1, 8, 4, 4)
    assert rows["adaptive_avg_pool2d"].output_shape == (1, 10, 1, 1)
    assert rows["inc.b3.0"].window == "3x3 s1 p1" and rows["inc.b3.0"].activations == 128  # not an identity
    acts = 768 + 512 + 128 + 64 + 32 + 64 + 128 + 32 + 2 * 160 + 10 + 5
    assert s.total_activations == acts == 2063
    order = [r.name for r in s.rows]
    assert order.index("stem") < order.index("max_pool2d") < order.index("inc.b1") < order.index("res.conv")
    assert order.index("res.conv") < order.index("res.conv (2)") < order.index("adaptive_avg_pool2d")
    assert order.index("adaptive_avg_pool2d") < order.index("fc")


def test_depth_merges_each_module_call_into_one_row():
    leaves = cnnx.summary(Branchy(), (3, 16, 16))
    s = cnnx.summary(Branchy(), (3, 16, 16), depth=1)
    rows = {r.name: r for r in s.rows}
    assert [r.name for r in s.rows] == ["input", "stem", "max_pool2d", "inc", "res", "res (2)",
                                        "adaptive_avg_pool2d", "fc"]
    assert rows["inc"].type == "Inception" and rows["inc"].window == "6 layers"
    assert rows["inc"].output_shape == (1, 10, 4, 4) and rows["inc"].activations == 160  # the output, once
    assert rows["inc"].params == 36 + 18 + 76 + 18 and rows["inc"].macs == 512 + 256 + 1152 + 256
    assert rows["res"].params == 921 and rows["res (2)"].params == 0  # shared weights counted once
    assert rows["res"].window == "3x3 s1 p1"  # one windowed layer inside: its window is kept
    assert s.total_params == leaves.total_params and s.total_macs == leaves.total_macs
    assert s.total_activations == 768 + 512 + 128 + 160 + 160 + 160 + 10 + 5 == 1903
    assert s.activation_bytes == 1903 * 4 and s.depth == 1 and s.to_dict()["depth"] == 1
    assert "depth 1" in str(s)
    deep = cnnx.summary(Branchy(), (3, 16, 16), depth=3)  # nothing that deep: every layer stays
    assert [r.name for r in deep.rows] == [r.name for r in leaves.rows]
    assert deep.total_activations == leaves.total_activations
    for bad in (0, -1, True, 1.5, "1"):
        with pytest.raises(ValueError, match="depth"):
            cnnx.summary(Branchy(), (3, 16, 16), depth=bad)


@pytest.mark.parametrize("name, kwargs, acts", [("googlenet", {"variant": "paper"}, 4_282_664),
                                                ("resnet50", {}, 2_662_376)])
def test_per_block_activations_match_reference_tables(name, kwargs, acts):
    """reference_figures.md tabulates GoogLeNet per Inception module and ResNet per stage."""
    model = build(name, **kwargs).eval()
    s = cnnx.summary(model, (3, 224, 224), depth=1)
    assert s.total_activations == acts
    rows = {r.name: r for r in s.rows}
    if name == "resnet50":
        assert [rows[f"layer{i}"].activations for i in range(1, 5)] == [802_816, 401_408, 200_704, 100_352]
        assert rows["layer3"].params == 7_098_368 and rows["layer3"].macs == 1_464_336_384
    else:
        assert rows["inception4e"].activations == 163_072 and rows["inception4e"].params == 868_352
        assert rows["inception5b"].macs == 70_697_984


def test_multiple_inputs_and_tuple_outputs():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 1)

        def forward(self, x, y):
            return self.a(x), self.b(y)

    s = cnnx.summary(TwoHeads(), [(1, 5, 5), (2, 4, 4)])
    assert [r.name for r in s.rows] == ["input.0", "input.1", "a", "b"]
    assert s.total_macs == 2 * 9 * 9 + 2 * 16 * 2 and s.total_activations == 25 + 32 + 18 + 32


def test_unused_modules_are_reported():
    class WithHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.aux = nn.Linear(4, 3), nn.Linear(4, 7)

        def forward(self, x):
            return self.body(x)

    s = cnnx.summary(WithHead(), (4,))
    assert s.total_params == 15 + 35 and s.untraced_params == 35
    assert "35 of the params are in modules this forward did not call" in str(s)


def test_summary_leaves_model_and_library_as_found():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(), nn.Flatten(), nn.Linear(144, 2))
    model.train()
    model[1].eval()
    for m in (model, model[0]):
        m.register_forward_hook(lambda *a: None)
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
    modes = [m.training for m in model.modules()]
    stats = [b.numpy().copy() for b in model.buffers()]
    rng = cnnx_random.get_rng_state()
    entry = _C.conv2d_forward
    cnnx.summary(model, (3, 8, 8))
    with pytest.raises(ValueError):
        cnnx.summary(model, (3, 2, 2))  # fails inside the forward: everything is restored all the same
    assert [m.training for m in model.modules()] == modes
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()] == hooks
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(stats, model.buffers()))
    assert cnnx_random.get_rng_state() == rng
    assert _C.conv2d_forward is entry and not _trace._installed


def test_trace_is_per_thread():
    x = np.ones((1, 1, 4, 4), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    seen, other = [], {}

    def run():
        other["out"] = _C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1)

    with _trace.intercept(sink=seen.append):
        traced = _C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1)
        t = threading.Thread(target=run)
        t.start()
        t.join()
    assert not traced.any() and seen[0].macs == 4 * 9
    assert np.all(other["out"] == 9.0)  # the other thread ran the real kernel


# ---------------------------------------------------------------------------------------------
# Shape rules: the same sizes and errors as the kernels

def test_every_forward_kernel_has_a_shape_rule():
    forward = {n for n in dir(_C) if n.endswith("_forward")} | {"gemm"}
    missing = forward - set(_trace.RULES) - _trace.UNTRACED
    assert not missing, f"add a shape rule in cnnx/_trace.py for {missing}"
    # The exemptions are real entry points, never also ruled, and only elementwise ones.
    assert _trace.UNTRACED <= set(dir(_C)) and not _trace.UNTRACED & set(_trace.RULES)
    assert _trace.UNTRACED == {"relu_forward", "relu_backward", "add", "tanh_forward", "tanh_backward",
                               "sigmoid_forward", "sigmoid_backward"}


def _same_as_kernel(name, *args):
    """The shape rule's output shapes (or error) equal the real kernel's."""
    real = getattr(_C, name)
    try:
        expected = real(*args)
    except ValueError:
        with pytest.raises(ValueError):
            _trace.RULES[name][1](*args)
        return
    got, _ = _trace.RULES[name][1](*args)
    shapes = (lambda r: [a.shape for a in r] if isinstance(r, tuple) else [r.shape])
    assert shapes(got) == shapes(expected), (name, args[1:])


@pytest.mark.parametrize("h", [1, 4, 5, 7])
def test_shape_rules_match_kernels(h):
    x = np.zeros((1, 4, h, h + 1), np.float32)
    for k, s, p, d, g in [(1, 1, 0, 1, 1), (3, 1, 1, 1, 1), (3, 2, 1, 1, 2), (3, 2, 0, 2, 4), (5, 3, 2, 1, 1),
                          (4, 1, 0, 1, 1), (2, 2, 3, 1, 1)]:
        w = np.zeros((4, 4 // g, k, k), np.float32)
        _same_as_kernel("conv2d_forward", x, w, None, (s, s), (p, p), (d, d), g)
    for k, s, p, d in [(1, 1, 0, 1), (2, 2, 0, 1), (3, 2, 1, 1), (3, 3, 1, 1), (2, 2, 1, 1), (3, 2, 1, 2),
                       (3, 1, 2, 1)]:
        for ceil in (False, True):
            _same_as_kernel("max_pool2d_forward", x, k, k, s, s, p, p, d, d, ceil)
            _same_as_kernel("avg_pool2d_forward", x, k, k, s, s, p, p, ceil, True, 0)
    for o in (1, 2, 3):
        _same_as_kernel("adaptive_avg_pool2d_forward", x, o, o + 1)


def test_output_size_formula():
    assert analysis.conv_output_size(227, 11, 4) == 55 and analysis.conv_output_size(224, 11, 4) == 54
    assert analysis.conv_output_size(112, 3, 2, ceil_mode=True) == 56  # GoogLeNet's pool1
    assert analysis.conv_output_size(4, 2, 2, 1, ceil_mode=True) == 3
    assert analysis.conv_output_size(5, 3, 1, 2, dilation=2) == 5
    with pytest.raises(ValueError):
        analysis.conv_output_size(4, 5)
    assert analysis.output_size_formula(227, 11, 4, 0) == "(227+2*0-11)/4+1 = 55"
    assert analysis.output_size_formula(27, 5, 1, 2) == "(27+2*2-5)/1+1 = 27"
    assert analysis.output_size_formula(224, 11, 4, 0) == "(224+2*0-11)/4+1 = 54.25 -> 54 (floor)"
    assert analysis.output_size_formula(112, 3, 2, 0, ceil_mode=True) == "(112+2*0-3)/2+1 = 55.5 -> 56 (ceil)"


# ---------------------------------------------------------------------------------------------
# The zoo against reference_figures.md (params, MACs per image, activations per image)

ZOO = [  # name, kwargs, input, params, MACs, activations (None: not tabulated there)
    ("lenet5", {}, (1, 32, 32), 61_706, 416_520, 9_118),
    ("alexnet", {}, (3, 227, 227), 62_378_344, 1_135_256_096, 1_413_347),
    ("alexnet", {"groups": 2}, (3, 227, 227), 60_965_224, 724_406_816, 1_413_347),
    ("alexnet", {"variant": "torchvision"}, (3, 224, 224), 61_100_840, 714_188_480, 733_032),
    ("vgg11", {}, (3, 224, 224), 132_863_336, 7_609_090_048, 9_116_136),
    ("vgg13", {}, (3, 224, 224), 133_047_848, 11_308_466_176, 13_933_032),
    ("vgg16", {}, (3, 224, 224), 138_357_544, 15_470_264_320, 15_237_608),
    ("vgg19", {}, (3, 224, 224), 143_667_240, 19_632_062_464, 16_542_184),
    ("googlenet", {"aux_logits": False}, (3, 224, 224), 6_998_552, 1_582_671_872, None),
    ("googlenet", {"aux_logits": True}, (3, 224, 224), 13_378_280, 1_582_671_872, None),
    ("googlenet", {"variant": "torchvision", "aux_logits": False}, (3, 224, 224), 6_624_904, 1_498_376_192, None),
    ("googlenet", {"variant": "torchvision"}, (3, 224, 224), 13_004_888, 1_498_376_192, None),
    ("resnet18", {}, (3, 224, 224), 11_689_512, 1_814_073_344, None),
    ("resnet34", {}, (3, 224, 224), 21_797_672, 3_663_761_408, None),
    ("resnet50", {}, (3, 224, 224), 25_557_032, 4_089_184_256, None),
    ("resnet101", {}, (3, 224, 224), 44_549_160, 7_801_405_440, None),
    ("resnet152", {}, (3, 224, 224), 60_192_808, 11_513_626_624, None),
    ("mobilenet_v1", {}, (3, 224, 224), 4_231_976, 568_740_352, 5_195_240),
    ("mobilenet_v1", {"width_mult": 0.75}, (3, 224, 224), 2_585_560, 325_400_448, None),
    ("mobilenet_v1", {"width_mult": 0.5}, (3, 224, 224), 1_331_592, 149_497_088, None),
    ("mobilenet_v1", {"width_mult": 0.25}, (3, 224, 224), 470_072, 41_030_272, None),
    ("mobilenet_v1", {}, (3, 192, 192), 4_231_976, 418_121_728, None),
    ("mobilenet_v1", {}, (3, 160, 160), 4_231_976, 290_675_200, None),
    ("mobilenet_v1", {}, (3, 128, 128), 4_231_976, 186_400_768, None),
]


def build(name, **kwargs):
    with no_init():
        return models.get_model(name, **kwargs)


@pytest.mark.parametrize("name, kwargs, size, params, macs, acts", ZOO,
                         ids=[f"{z[0]}-{'-'.join(f'{k}={v}' for k, v in z[1].items())}-{z[2][1]}" for z in ZOO])
def test_zoo_matches_reference_figures(name, kwargs, size, params, macs, acts, monkeypatch):
    model = build(name, **kwargs)

    def computed(*args, **kw):
        raise AssertionError("summary ran a compute kernel: it must trace shapes only")

    for kernel in ("conv2d_forward", "gemm"):  # shape-only: no 15-GMAC forward
        monkeypatch.setattr(_C, kernel, computed)
    s = cnnx.summary(model, size)
    assert s.total_params == params
    assert s.total_macs == macs and s.total_flops == 2 * macs
    if acts is not None:
        assert s.total_activations == acts
    assert s.rows[-1].output_shape[-1] == kwargs.get("num_classes", 10 if name == "lenet5" else 1000)


def test_every_zoo_model_is_covered():
    assert {z[0] for z in ZOO} | {"vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"} == set(models.list_models())
    for name in ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"):
        plain = cnnx.summary(build(name[:-3]), (3, 224, 224))
        s = cnnx.summary(build(name), (3, 224, 224))
        n_bn = sum(r.type == "BatchNorm2d" for r in s.rows)
        extra = sum(2 * r.output_shape[1] for r in s.rows if r.type == "BatchNorm2d")
        assert n_bn == sum(r.type == "Conv2d" for r in s.rows)
        assert s.total_params == plain.total_params + extra and s.total_macs == plain.total_macs
        assert s.total_activations == plain.total_activations  # BN outputs are not counted


def test_vgg16_memory_figures():
    s = cnnx.summary(build("vgg16"), (3, 224, 224))
    assert s.param_bytes == 138_357_544 * 4 == 553_430_176
    assert round(s.param_bytes / 2**20, 1) == 527.8 and round(s.activation_bytes / 1e6, 1) == 61.0
    assert "553.4 MB (527.8 MiB)" in str(s) and "61.0 MB (58.1 MiB) forward" in str(s)
    tm = s.training_memory()
    assert round((tm.parameters + tm.gradients + tm.optimizer_state) / 1e6, 1) == 1660.3  # SGD + momentum
    assert round(s.training_memory("adam").total / 1e6 - 2 * s.activation_bytes / 1e6, 1) == 2213.7
    conv = sum(r.macs for r in s.rows if r.type == "Conv2d")
    assert round(100 * conv / s.total_macs, 1) == 99.2
    assert [r.type for r in s.rows if not r.passthrough] == (
        ["Input"] + (["Conv2d"] * 2 + ["MaxPool2d"]) * 2 + (["Conv2d"] * 3 + ["MaxPool2d"]) * 3 + ["Linear"] * 3)


def test_googlenet_aux_heads_are_untraced_params():
    assert cnnx.summary(build("googlenet"), (3, 224, 224)).untraced_params == 6_379_728
    assert cnnx.summary(build("googlenet", variant="torchvision"), (3, 224, 224)).untraced_params == 6_379_984


# ---------------------------------------------------------------------------------------------
# The seed's analyses

def test_alexnet_seed_table_flags_norm2():
    t = analysis.alexnet_seed_table()
    assert t.data["mismatches"] == ["Norm2"]
    rows = {r["layer"]: r for r in t.data["rows"]}
    assert rows["Norm2"]["output"] == "13x13x256" and rows["Norm2"]["seed"] == 27
    assert [rows[n]["computed"] for n in ("Conv1", "MaxPool1", "Norm1", "Conv2", "MaxPool2", "Conv5", "MaxPool3")] \
        == [55, 27, 27, 27, 13, 13, 6]
    text = str(t)
    assert "(227+2*0-11)/4+1 = 55" in text and "TYPO: seed prints 27, computed 13" in text
    assert "(224+2*0-11)/4+1 = 54.25 -> 54 (floor)" in text
    assert t.data["total_params"] == 62_378_344  # the ungrouped paper network
    assert t.to_markdown().startswith("### The seed's AlexNet table")


def test_vgg16_seed_table():
    t = analysis.vgg16_seed_table()
    assert all(r["ok"] for r in t.data["rows"]) and len(t.data["rows"]) == 22
    assert t.data["total_activations"] == 15_237_608 and t.data["total_params"] == 138_357_544
    assert sum(r["weights"] for r in t.data["rows"]) == 138_344_128
    text = str(t)
    assert "61.0 MB (58.1 MiB)" in text and "553.4 MB (527.8 MiB)" in text and "526.4 MiB" in text
    assert "89.4 %" in text and "99.2 %" in text


def test_receptive_field_comparison():
    t = analysis.receptive_field_comparison()
    stack, single = t.data["results"]["two 3x3 convolutions"], t.data["results"]["one 5x5 convolution"]
    assert (stack["params"], single["params"]) == (162, 225)
    assert stack["receptive_field"] == single["receptive_field"] == 5
    assert stack["output"] == single["output"] == "3x3x3" and stack["kernels"] == 6 and single["kernels"] == 3
    assert analysis.receptive_field_comparison(channels=64, size=56).data["results"]["two 3x3 convolutions"][
        "params"] == 2 * 9 * 64 * 64


def test_depthwise_separable_ratios():
    model = build("mobilenet_v1")
    t = analysis.depthwise_separable_table(model)
    rows = t.data["rows"]
    assert len(rows) == 13
    for r in rows:
        assert r["standard_macs"] == r["c_out"] * r["out_hw"][0] * r["out_hw"][1] * r["c_in"] * 9
        assert r["separable_macs"] == r["dw_macs"] + r["pw_macs"]
        assert math.isclose(r["ratio"], 1 / 9 + 1 / r["c_out"], rel_tol=1e-12)
    assert f"{rows[0]['ratio']:.5f}" == "0.12674" and f"{rows[-1]['ratio']:.5f}" == "0.11209"
    half = analysis.depthwise_separable_table(build("mobilenet_v1", width_mult=0.5), (3, 160, 160))
    assert half.data["rows"][0]["c_in"] == 16 and half.data["rows"][0]["out_hw"] == (80, 80)
    with pytest.raises(ValueError, match="no depthwise"):
        analysis.depthwise_separable_table(tiny(), (3, 8, 8))


# ---------------------------------------------------------------------------------------------
# --profile

def test_profile_times_every_layer_and_restores_state():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(144, 3))
    model.eval()
    stats = [b.numpy().copy() for b in model.buffers()]
    rng = cnnx_random.get_rng_state()
    backward = {cls: cls.__dict__.get("backward") for cls in _all_functions()}
    s = cnnx.summary(model, (3, 8, 8), batch_size=2, profile=True, profile_runs=2)
    assert s.profile["runs"] == 2 and s.profile["forward_ms"] > 0 and s.profile["backward_ms"] > 0
    for r in s.rows[1:]:
        assert r.forward_ms is not None and r.forward_ms >= 0, r.name
    timed = {r.name: r.backward_ms for r in s.rows}
    assert timed["0"] > 0 and timed["1"] > 0 and timed["5"] > 0
    assert "fwd ms" in str(s) and "measured" in str(s)
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(stats, model.buffers()))
    assert cnnx_random.get_rng_state() == rng
    assert {cls: cls.__dict__.get("backward") for cls in _all_functions()} == backward


def test_profile_names_each_convolutions_algorithms():
    from cnnx import kernels
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1, groups=64),
                          nn.Flatten(), nn.Linear(64 * 64, 2))
    s = cnnx.summary(model, (3, 8, 8), batch_size=2, profile=True, profile_runs=1)
    text = str(s)
    assert "algorithm fwd/dx/dw" in text
    want = "/".join(kernels.conv2d_algorithm((2, 3, 8, 8), (64, 3, 3, 3), padding=1, pass_=p)
                    for p in ("forward", "backward_input", "backward_weight"))
    rows = {line.split()[0]: line.split()[-1] for line in text.splitlines()
            if line.split()[1:2] in (["Conv2d"], ["Linear"])}
    assert rows == {"0": want, "2": "depthwise/depthwise/depthwise", "4": "-"}


def _all_functions():
    out, todo = set(), [cnnx.autograd.Function]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in out:
                out.add(sub)
                todo.append(sub)
    return out


def test_profile_attributes_functional_kernels_in_containers():
    s = cnnx.summary(Branchy(), (3, 16, 16), profile=True, profile_runs=1)
    rows = {r.name: r for r in s.rows}
    assert rows["max_pool2d"].forward_ms is not None and rows["res.conv (2)"].backward_ms is not None
    assert s.profile["other_backward_ms"] >= 0


def test_profile_reports_training_only_layers():
    class AuxHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.aux = nn.Linear(4, 3), nn.Linear(4, 2)

        def forward(self, x):
            return (self.body(x), self.aux(x)) if self.training else self.body(x)

    s = cnnx.summary(AuxHead(), (4,), profile=True, profile_runs=1)
    assert [r.name for r in s.rows] == ["input", "body"] and s.untraced_params == 10
    assert s.profile["training_only_forward_ms"] > 0 and s.profile["training_only_backward_ms"] > 0
    assert "training mode only (not in the table)" in str(s)


def test_no_init_draws_nothing():
    rng = cnnx_random.get_rng_state()
    with no_init():
        layer = nn.Linear(300, 200)
        with pytest.raises(TypeError):
            nn.init.normal_(np.zeros(3))  # arguments are still checked
    assert cnnx_random.get_rng_state() == rng
    nn.init.uniform_(layer.weight, 2.0, 3.0)
    assert layer.weight.detach().numpy().min() >= 2.0  # outside the block, init works again


# ---------------------------------------------------------------------------------------------
# The command line

def run(capsys, *args):
    code = main(["summary", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_vgg16(capsys):
    code, out, _ = run(capsys, "vgg16")
    assert code == 0
    assert "VGG summary: input [1, 3, 224, 224], float32" in out
    assert "138,357,544" in out and "15,470,264,320 per image" in out and "15,237,608 per image" in out
    assert "553.4 MB (527.8 MiB)" in out and "61.0 MB (58.1 MiB)" in out and "= 2 x MACs" in out


def test_cli_mobilenet_width_and_input(capsys):
    code, out, _ = run(capsys, "mobilenet_v1", "--width", "0.5", "--input", "3,160,160", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["input_size"] == [[3, 160, 160]] and d["total_params"] == 1_331_592
    expected = cnnx.summary(build("mobilenet_v1", width_mult=0.5), (3, 160, 160))
    assert d["total_macs"] == expected.total_macs


def test_cli_markdown_batch_and_model_args(capsys):
    code, out, _ = run(capsys, "alexnet", "-k", "variant=torchvision", "--markdown", "--batch", "4", "--all")
    assert code == 0 and out.startswith("### AlexNet summary: input [4, 3, 224, 224]")
    assert "| features.0 | Conv2d | [4, 64, 55, 55] | 11x11 s4 p2 | 23,296 | 70,276,800 | 193,600 |" in out
    assert "714,188,480 per image" in out and "| features.1 | ReLU |" in out


def test_cli_seed_tables(capsys):
    code, out, _ = run(capsys, "alexnet", "--seed-table")
    assert code == 0 and "TYPO: seed prints 27, computed 13" in out
    code, out, _ = run(capsys, "vgg16", "--seed-table")
    assert "the seed's \"at least 60 MB\" holds" in out and "6x3x3x3 = 162 parameters vs 3x5x5x3 = 225" in out
    code, out, _ = run(capsys, "mobilenet_v1", "--seed-table")
    assert "1/Dk^2 + 1/Co" in out and "0.12674" in out
    code, out, _ = run(capsys, "resnet18", "--seed-table")
    assert code == 0 and "no seed table for resnet18" in out


def test_cli_depth(capsys):
    code, out, _ = run(capsys, "resnet50", "--depth", "1")
    assert code == 0 and "ResNet summary: input [1, 3, 224, 224], float32, depth 1" in out
    assert "2,662,376 per image" in out and "| layer1" not in out and "layer1 " in out
    code, _, err = run(capsys, "resnet50", "--depth", "0")
    assert code == 2 and "--depth must be >= 1" in err


def test_cli_user_module_and_errors(capsys):
    code, out, _ = run(capsys, "cnnx.models.resnet:resnet18", "--input", "3,64,64", "-k", "small_input=True")
    assert code == 0 and "ResNet summary: input [1, 3, 64, 64]" in out
    for args, message in [(["nosuchnet"], "unknown model 'nosuchnet'"),
                          (["vgg16", "--width", "0.5"], "vgg16 does not take these options"),
                          (["vgg16", "--input", "3,x,224"], "--input must look like C,H,W"),
                          (["vgg16", "--input", "3,16,16"], "does not run on input 3,16,16"),
                          (["cnnx.models.resnet:resnet18"], "--input C,H,W is needed"),
                          (["no.such.module:thing", "--input", "3,8,8"], "cannot load"),
                          (["lenet5", "-k", "oops"], "KEY=VALUE")]:
        code, _, err = run(capsys, *args)
        assert code == 2 and message in err, (args, err)


def test_cli_subprocess():
    proc = subprocess.run([sys.executable, "-m", "cnnx", "summary", "lenet5"], capture_output=True, text=True,
                          timeout=120, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr
    assert "61,706 (trainable 61,706, non-trainable 0)" in proc.stdout and "416,520 per image" in proc.stdout
