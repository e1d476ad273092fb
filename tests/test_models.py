"""cnnx.models: exact parameter counts (reference_figures.md), output shapes at the standard and small
inputs, equality with PyTorch definitions of the same networks loaded with the same weights (when torch
is installed), one SGD step lowering the loss, weight files, bad arguments.

Each model is built once (the module-scoped ``built`` fixture; pytest groups the tests by its
parameter) because VGG's 138 M parameters take seconds to initialise.
"""
import inspect
import math

import numpy as np
import pytest

import cnnx
from cnnx import models, nn
from cnnx.nn import functional as F

# id: (constructor, kwargs, parameters with 1000 classes (10 for LeNet-5), small input (C, H, W))
CASES = {
    "lenet5": ("lenet5", {}, 61_706, (1, 32, 32)),
    "lenet5_relu_max": ("lenet5", {"activation": "relu", "pooling": "max"}, 61_706, (1, 32, 32)),
    "alexnet": ("alexnet", {}, 62_378_344, (3, 67, 67)),
    "alexnet_groups2": ("alexnet", {"groups": 2}, 60_965_224, (3, 67, 67)),
    "alexnet_torchvision": ("alexnet", {"variant": "torchvision"}, 61_100_840, (3, 63, 63)),
    "vgg11": ("vgg11", {}, 132_863_336, (3, 32, 32)),
    "vgg11_bn": ("vgg11_bn", {}, 132_868_840, (3, 32, 32)),
    "vgg13": ("vgg13", {}, 133_047_848, (3, 32, 32)),
    "vgg13_bn": ("vgg13_bn", {}, 133_053_736, (3, 32, 32)),
    "vgg16": ("vgg16", {}, 138_357_544, (3, 32, 32)),
    "vgg16_bn": ("vgg16_bn", {}, 138_365_992, (3, 32, 32)),
    "vgg19": ("vgg19", {}, 143_667_240, (3, 32, 32)),
    "vgg19_bn": ("vgg19_bn", {}, 143_678_248, (3, 32, 32)),
    "googlenet": ("googlenet", {}, 13_378_280, (3, 64, 64)),
    "googlenet_noaux": ("googlenet", {"aux_logits": False}, 6_998_552, (3, 64, 64)),
    "googlenet_torchvision": ("googlenet", {"variant": "torchvision"}, 13_004_888, (3, 64, 64)),
    "googlenet_torchvision_noaux": ("googlenet", {"variant": "torchvision", "aux_logits": False}, 6_624_904,
                                    (3, 64, 64)),
    "resnet18": ("resnet18", {}, 11_689_512, (3, 32, 32)),
    "resnet18_small": ("resnet18", {"small_input": True}, 11_689_512 - 64 * 3 * 49 + 64 * 3 * 9, (3, 32, 32)),
    "resnet34": ("resnet34", {}, 21_797_672, (3, 32, 32)),
    "resnet50": ("resnet50", {}, 25_557_032, (3, 32, 32)),
    "resnet50_small": ("resnet50", {"small_input": True}, 25_557_032 - 64 * 3 * 40, (3, 32, 32)),
    "resnet101": ("resnet101", {}, 44_549_160, (3, 32, 32)),
    "resnet152": ("resnet152", {}, 60_192_808, (3, 32, 32)),
    "mobilenet_v1": ("mobilenet_v1", {}, 4_231_976, (3, 32, 32)),
    "mobilenet_v1_075": ("mobilenet_v1", {"width_mult": 0.75}, 2_585_560, (3, 32, 32)),
    "mobilenet_v1_050": ("mobilenet_v1", {"width_mult": 0.5}, 1_331_592, (3, 32, 32)),
    "mobilenet_v1_025": ("mobilenet_v1", {"width_mult": 0.25}, 470_072, (3, 32, 32)),
    "mobilenet_v1_small": ("mobilenet_v1", {"small_input": True}, 4_231_976, (3, 32, 32)),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One kernel thread, for cnnx and PyTorch: cnnx's results are bitwise the same for any count, and
    on a machine shared with other jobs a second OpenMP thread mostly waits (these models are small at
    the test inputs; PyTorch's first double-precision forward took seconds that way)."""
    try:
        import torch
    except ImportError:
        torch = None
    previous = cnnx.get_num_threads(), torch.get_num_threads() if torch else None
    cnnx.set_num_threads(1)
    if torch:
        torch.set_num_threads(1)
    yield
    cnnx.set_num_threads(previous[0])
    if torch:
        torch.set_num_threads(previous[1])


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module", params=list(CASES))
def built(request):
    """(case id, model) with the standard number of classes; eval mode, shared by the tests of a case."""
    name, kwargs, _, _ = CASES[request.param]
    cnnx.manual_seed(0)
    model = models.get_model(name, **kwargs)
    yield request.param, model.eval()
    del model


def batch(case, n=2, seed=0, size=None):
    shape = CASES[case][3] if size is None else CASES[case][3][:1] + (size, size)
    return cnnx.tensor(np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32))


# ---------------------------------------------------------------------------------------------
# registry, counts, shapes


def test_registry():
    assert models.list_models() == [
        "lenet5", "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
        "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v1"]
    for name in models.list_models():
        assert callable(getattr(models, name)) and getattr(models, name).__doc__
        assert models.INPUT_SIZES[name][0] in (1, 3)
    assert isinstance(models.get_model("LeNet5".lower(), num_classes=3), models.LeNet5)
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18"):
        models.get_model("resnet19")
    with pytest.raises(TypeError, match="name"):
        models.get_model(18)
    with pytest.raises(TypeError):
        models.get_model("resnet18", depth=18)


def test_parameter_count(built):
    case, model = built
    assert n_params(model) == CASES[case][2]
    params = dict(model.named_parameters())
    assert len(params) == len(list(model.parameters()))  # no parameter shared between layers


def test_output_shape_at_a_small_input(built):
    case, model = built
    x = batch(case)
    with cnnx.no_grad():
        y = model(x)
    classes = 10 if case.startswith("lenet") else 1000
    assert y.shape == (2, classes) and y.dtype == cnnx.float32
    assert np.isfinite(y.numpy()).all()


def standard_input(case):
    """(C, H, W) each case's paper (or torchvision, for its variants) uses: LeNet-5 32, the paper's
    AlexNet 227, the small-input stems 32, everything else 224."""
    if case.startswith("lenet"):
        return (1, 32, 32)
    if case in ("alexnet", "alexnet_groups2"):
        return (3, 227, 227)
    if case.endswith("_small"):
        return (3, 32, 32)
    return (3, 224, 224)


def test_output_shape_at_the_standard_input(built):
    # batch 1, eval mode, no_grad; GoogLeNet also in training mode, where the auxiliary heads answer
    case, model = built
    name, kwargs, _, _ = CASES[case]
    shape = standard_input(case)
    if case != "alexnet_torchvision" and not kwargs.get("small_input"):
        assert models.INPUT_SIZES[name] == shape
    classes = 10 if name == "lenet5" else 1000
    x = cnnx.tensor(np.random.default_rng(0).standard_normal((1,) + shape).astype(np.float32))
    with cnnx.no_grad():
        y = model(x)
    assert isinstance(y, cnnx.Tensor) and y.shape == (1, classes) and np.isfinite(y.numpy()).all()
    if name != "googlenet":
        return
    saved = {k: b.numpy().copy() for k, b in model.named_buffers()}  # training mode updates them
    try:
        with cnnx.no_grad():
            out = model.train()(x)
        if kwargs.get("aux_logits", True):
            assert isinstance(out, models.GoogLeNetOutputs)
            assert [t.shape for t in out] == [(1, classes)] * 3
            assert all(np.isfinite(t.numpy()).all() for t in out)
        else:
            assert isinstance(out, cnnx.Tensor) and out.shape == (1, classes)
    finally:
        model.eval()
        for k, b in model.named_buffers():
            b.numpy()[...] = saved[k]


def test_num_classes_changes_only_the_classifier():
    for name in ("lenet5", "resnet18", "mobilenet_v1"):
        a, b = models.get_model(name, num_classes=10), models.get_model(name, num_classes=7)
        assert n_params(a) - n_params(b) == 3 * (list(a.parameters())[-2].shape[1] + 1)


def count_macs(model, x):
    """Multiply-accumulates of the convolutions and linear layers for one forward of ``x`` (per image)."""
    total = []

    def hook(m, args, out):
        if isinstance(m, nn.Conv2d):
            total.append(out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
        else:
            total.append(m.in_features * m.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with cnnx.no_grad():
        out = model(x)
    for h in handles:
        h.remove()
    return out, sum(total)


def test_standard_inputs_and_macs():
    # the cheap models at the size their papers use; MACs as reference_figures.md
    for name, kwargs, macs in [("lenet5", {}, 416_520), ("resnet18", {}, 1_814_073_344),
                               ("mobilenet_v1", {"width_mult": 0.25}, 41_030_272),
                               ("googlenet", {"variant": "torchvision", "aux_logits": False}, 1_498_376_192)]:
        model = models.get_model(name, **kwargs).eval()
        out, n = count_macs(model, cnnx.randn(1, *models.INPUT_SIZES[name]))
        assert out.shape == (1, 10 if name == "lenet5" else 1000) and n == macs, name


def test_alexnet_layer_sizes_follow_the_seeds_table():
    # 227 input: conv1 55, pool1 27, conv2 27, pool2 13, conv3-5 13, pool5 6 (and LRN keeps sizes)
    model = models.alexnet(num_classes=4).eval()
    sizes = []
    for layer in model.features:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.LocalResponseNorm)):
            layer.register_forward_hook(lambda m, args, out: sizes.append((type(m).__name__, out.shape[1:])))
    out, macs = count_macs(model, cnnx.randn(1, 3, 227, 227))
    assert out.shape == (1, 4) and macs == 1_135_256_096 - 4096 * (1000 - 4)  # 1.135 G with 1000 classes
    assert sizes == [("Conv2d", (96, 55, 55)), ("LocalResponseNorm", (96, 55, 55)), ("MaxPool2d", (96, 27, 27)),
                     ("Conv2d", (256, 27, 27)), ("LocalResponseNorm", (256, 27, 27)),
                     ("MaxPool2d", (256, 13, 13)), ("Conv2d", (384, 13, 13)), ("Conv2d", (384, 13, 13)),
                     ("Conv2d", (256, 13, 13)), ("MaxPool2d", (256, 6, 6))]
    lrn = model.features[2]
    assert (lrn.size, lrn.k, lrn.beta) == (5, 2.0, 0.75) and lrn.alpha == pytest.approx(5e-4)


def test_googlenet_outputs_in_training_mode():
    model = models.googlenet(num_classes=6, variant="torchvision").train()
    out = model(cnnx.randn(2, 3, 64, 64))
    assert isinstance(out, models.GoogLeNetOutputs) and out._fields == ("logits", "aux_logits2", "aux_logits1")
    assert [t.shape for t in out] == [(2, 6)] * 3
    assert model.eval()(cnnx.randn(2, 3, 64, 64)).shape == (2, 6)
    plain = models.googlenet(num_classes=6, aux_logits=False).train()
    assert plain(cnnx.randn(2, 3, 64, 64)).shape == (2, 6)
    assert not any(k.startswith("aux") for k in plain.state_dict())
    model.aux1 = model.aux2 = None  # dropping the heads after loading torchvision's weights (docs/models.md)
    assert model.train()(cnnx.randn(2, 3, 64, 64)).shape == (2, 6)
    assert sorted(model.state_dict()) == sorted(models.googlenet(variant="torchvision",
                                                                 aux_logits=False).state_dict())


def test_googlenet_paper_aux_pooling():
    # 5x5 / 3 average pooling where it gives 4 x 4 (the 14 x 14 maps of the 224 input), adaptive elsewhere
    from cnnx.models.googlenet import InceptionAux
    seen = []
    for paper, size in ((True, 14), (True, 8), (False, 14)):
        aux = InceptionAux(4, 3, batch_norm=False, paper_pooling=paper)
        aux.conv.register_forward_hook(lambda m, args, out: seen.append(args[0].numpy()))
        x = np.random.default_rng(size).standard_normal((1, 4, size, size)).astype(np.float32)
        with cnnx.no_grad():
            assert aux(cnnx.tensor(x)).shape == (1, 3)
        if paper and size == 14:
            want = np.array([[x[0, :, 3 * i:3 * i + 5, 3 * j:3 * j + 5].mean(axis=(1, 2)) for j in range(4)]
                             for i in range(4)]).transpose(2, 0, 1)
        else:  # adaptive: windows [floor(i * n / 4), ceil((i + 1) * n / 4))
            b = [(i * size // 4, -(-(i + 1) * size // 4)) for i in range(4)]
            want = np.array([[x[0, :, b[i][0]:b[i][1], b[j][0]:b[j][1]].mean(axis=(1, 2)) for j in range(4)]
                             for i in range(4)]).transpose(2, 0, 1)
        np.testing.assert_allclose(seen[-1][0], want, rtol=1e-5, atol=1e-6)


def test_small_input_stems():
    r = models.resnet18(num_classes=10, small_input=True)
    assert r.conv1.kernel_size == (3, 3) and r.conv1.stride == (1, 1) and isinstance(r.maxpool, nn.Identity)
    m = models.mobilenet_v1(num_classes=10, small_input=True)
    assert m.features[0][0].stride == (1, 1)
    shapes = []
    m.features[13].register_forward_hook(lambda mod, args, out: shapes.append(out.shape))
    with cnnx.no_grad():
        m.eval()(cnnx.randn(1, 3, 32, 32))
    assert shapes == [(1, 1024, 2, 2)]


def test_mobilenet_any_resolution_and_depthwise_layers():
    m = models.mobilenet_v1(num_classes=3, width_mult=0.25).eval()
    with cnnx.no_grad():
        for size in (1, 17, 96, 128):
            assert m(cnnx.randn(1, 3, size, size)).shape == (1, 3)
    dw = m.features[1].depthwise[0]
    assert dw.groups == dw.in_channels == dw.out_channels == 8 and m.features[1].pointwise[0].kernel_size == (1, 1)
    assert [blk.depthwise[0].stride[0] for blk in list(m.features)[1:]] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]


def test_mobilenet_v1_takes_width_mult_first():
    # the signature, mobilenet_v1(width_mult=1.0, num_classes=1000, small_input=False)
    params = inspect.signature(models.mobilenet_v1).parameters
    assert [(k, p.default) for k, p in params.items()] == [("width_mult", 1.0), ("num_classes", 1000),
                                                          ("small_input", False)]
    half = models.mobilenet_v1(0.5)
    assert half.width_mult == 0.5 and n_params(half) == 1_331_592 and half.fc.out_features == 1000
    m = models.mobilenet_v1(0.25, 10, True)
    assert (m.width_mult, m.fc.out_features, m.features[0][0].stride) == (0.25, 10, (1, 1))


def test_torchvision_names():
    keys = list(models.resnet50().state_dict())
    assert keys[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    for k in ("layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_var", "layer4.2.conv3.weight",
              "layer2.0.bn2.num_batches_tracked", "fc.weight", "fc.bias"):
        assert k in keys
    g = models.googlenet(variant="torchvision").state_dict()
    for k in ("conv1.conv.weight", "conv1.bn.running_mean", "inception3a.branch3.1.conv.weight",
              "inception4e.branch4.1.bn.weight", "aux1.conv.conv.weight", "aux2.fc2.bias", "fc.weight"):
        assert k in g
    assert g["inception3a.branch3.1.conv.weight"].shape == (32, 16, 3, 3)
    assert models.googlenet().state_dict()["inception3a.branch3.1.conv.weight"].shape == (32, 16, 5, 5)
    assert list(models.alexnet(variant="torchvision").state_dict())[-2:] == ["classifier.6.weight",
                                                                              "classifier.6.bias"]


# torchvision/models/vgg.py's layout: make_layers appends Conv2d[, BatchNorm2d], ReLU for each number of
# the configuration and a MaxPool2d for each "M"; the classifier is Linear, ReLU, Dropout, Linear, ReLU,
# Dropout, Linear. The indices of the convolutions in ``features``:
VGG_CONV_INDICES = {
    "vgg11": [0, 3, 6, 8, 11, 13, 16, 18],
    "vgg11_bn": [0, 4, 8, 11, 15, 18, 22, 25],
    "vgg13": [0, 2, 5, 7, 10, 12, 15, 17, 20, 22],
    "vgg13_bn": [0, 3, 7, 10, 14, 17, 21, 24, 28, 31],
    "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    "vgg16_bn": [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40],
    "vgg19": [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34],
    "vgg19_bn": [0, 3, 7, 10, 14, 17, 20, 23, 27, 30, 33, 36, 40, 43, 46, 49],
}
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def layer_keys(prefix, indices, bn=False):
    keys = []
    for i in indices:
        keys += [f"{prefix}.{i}.weight", f"{prefix}.{i}.bias"]
        if bn:
            keys += [f"{prefix}.{i + 1}.{k}" for k in BN_KEYS]
    return keys


GOOGLENET_PAPER = ["conv1.conv.weight", "conv1.conv.bias", "conv3.conv.bias", "inception3a.branch3.1.conv.weight",
                   "inception5b.branch4.1.conv.bias", "fc.weight", "fc.bias"]
GOOGLENET_TV = ["conv1.conv.weight", "conv1.bn.running_mean", "inception3a.branch3.1.conv.weight",
                "inception4e.branch4.1.bn.weight", "inception5b.branch1.bn.num_batches_tracked", "fc.weight"]
GOOGLENET_AUX = ["aux1.conv.conv.weight", "aux1.fc1.weight", "aux2.fc2.bias"]
RESNET18 = ["conv1.weight", "bn1.running_var", "layer1.1.conv2.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.num_batches_tracked", "fc.weight", "fc.bias"]
RESNET50 = ["conv1.weight", "layer1.0.downsample.1.running_mean", "layer2.3.conv3.weight", "layer3.5.bn3.bias",
            "layer4.2.conv3.weight", "fc.bias"]
# case: all the keys, in order, for the models whose whole list is short or regular, else (keys that
# must be there, keys that must not): torchvision's names; docs/models.md's for LeNet-5 and MobileNet;
# for the paper's AlexNet torchvision's classifier and the paper's features (LRN layers at 2 and 6)
STATE_DICT_KEYS = {
    "lenet5": [f"{m}.{k}" for m in ("c1", "c3", "c5", "f6", "output") for k in ("weight", "bias")],
    "alexnet": layer_keys("features", [0, 4, 8, 10, 12]) + layer_keys("classifier", [1, 4, 6]),
    "alexnet_torchvision": layer_keys("features", [0, 3, 6, 8, 10]) + layer_keys("classifier", [1, 4, 6]),
    **{case: layer_keys("features", idx, case.endswith("_bn")) + layer_keys("classifier", [0, 3, 6])
       for case, idx in VGG_CONV_INDICES.items()},
    "googlenet": (GOOGLENET_PAPER + GOOGLENET_AUX, ["conv1.bn.weight"]),
    "googlenet_noaux": (GOOGLENET_PAPER, ["conv1.bn.weight"] + GOOGLENET_AUX),
    "googlenet_torchvision": (GOOGLENET_TV + GOOGLENET_AUX + ["aux1.conv.bn.running_var"], ["conv1.conv.bias"]),
    "googlenet_torchvision_noaux": (GOOGLENET_TV, ["conv1.conv.bias"] + GOOGLENET_AUX),
    "resnet18": (RESNET18, ["layer1.0.downsample.0.weight", "layer1.0.conv3.weight", "layer4.2.conv1.weight"]),
    "resnet34": (RESNET18 + ["layer3.5.conv2.weight", "layer4.2.bn2.bias"], ["layer3.6.conv1.weight"]),
    "resnet50": (RESNET50, ["layer3.6.conv1.weight", "conv1.bias"]),
    "resnet101": (RESNET50 + ["layer3.22.conv3.weight"], ["layer3.23.conv1.weight"]),
    "resnet152": (RESNET50 + ["layer2.7.conv3.weight", "layer3.35.bn3.weight"],
                  ["layer2.8.conv1.weight", "layer3.36.conv1.weight"]),
    "mobilenet_v1": (["features.0.0.weight", "features.0.1.running_mean", "features.1.depthwise.0.weight",
                      "features.1.pointwise.1.bias", "features.13.pointwise.1.num_batches_tracked", "fc.weight",
                      "fc.bias"], ["features.14.depthwise.0.weight", "features.1.depthwise.0.bias"]),
}
STATE_DICT_KEYS.update({"lenet5_relu_max": STATE_DICT_KEYS["lenet5"], "alexnet_groups2": STATE_DICT_KEYS["alexnet"],
                        "resnet18_small": STATE_DICT_KEYS["resnet18"], "resnet50_small": STATE_DICT_KEYS["resnet50"]})
STATE_DICT_KEYS.update({c: STATE_DICT_KEYS["mobilenet_v1"] for c in CASES if c.startswith("mobilenet_v1_")})


def test_state_dict_keys(built):
    # every case, on the shared built models (building a VGG again would cost seconds);
    # test_torchvision_names checks a few models further
    case, model = built
    keys = list(model.state_dict())
    expected = STATE_DICT_KEYS[case]
    if isinstance(expected, list):
        assert keys == expected
    else:
        present, absent = expected
        assert [k for k in present if k not in keys] == [] and [k for k in absent if k in keys] == []


def test_initialisation():
    cnnx.manual_seed(3)
    r = models.resnet18()
    w = r.layer1[0].conv1.weight.detach().numpy()
    assert abs(w.std() / math.sqrt(2 / (64 * 9)) - 1) < 0.05  # He normal, fan_out
    assert r.layer1[0].bn2.weight.tolist() == [1.0] * 64 and not r.layer1[0].bn2.bias.detach().numpy().any()
    g = models.googlenet(variant="torchvision", aux_logits=False)
    assert abs(g.inception4c.branch2[1].conv.weight.detach().numpy().std() - 0.01) < 0.001
    m = models.mobilenet_v1()
    assert abs(m.fc.weight.detach().numpy().std() - 0.01) < 0.001 and not m.fc.bias.detach().numpy().any()


# ---------------------------------------------------------------------------------------------
# bad arguments


@pytest.mark.parametrize("call,error,words", [
    (lambda: models.lenet5(num_classes=0), ValueError, "num_classes must be >= 1"),
    (lambda: models.lenet5(num_classes=2.0), TypeError, "num_classes must be an int"),
    (lambda: models.lenet5(num_classes=True), TypeError, "num_classes"),
    (lambda: models.lenet5(activation="gelu"), ValueError, "activation"),
    (lambda: models.lenet5(pooling=2), TypeError, "pooling"),
    (lambda: models.alexnet(num_classes=-1), ValueError, "alexnet.*num_classes"),
    (lambda: models.alexnet(variant="caffe"), ValueError, "variant must be 'paper' or 'torchvision'"),
    (lambda: models.alexnet(groups=3), ValueError, "groups"),
    (lambda: models.alexnet(groups=2.0), TypeError, "groups"),
    (lambda: models.alexnet(variant="torchvision", groups=2), ValueError, "groups=2"),
    (lambda: models.vgg16(num_classes=0), ValueError, "vgg16.*num_classes"),
    (lambda: models.vgg11_bn(num_classes="10"), TypeError, "vgg11_bn.*num_classes"),
    (lambda: models.googlenet(variant="v3"), ValueError, "variant"),
    (lambda: models.googlenet(aux_logits=1), TypeError, "aux_logits"),
    (lambda: models.googlenet(num_classes=0), ValueError, "num_classes"),
    (lambda: models.resnet50(num_classes=0), ValueError, "resnet50.*num_classes"),
    (lambda: models.resnet18(small_input="yes"), TypeError, "small_input"),
    (lambda: models.mobilenet_v1(width_mult=0), ValueError, "width_mult must be > 0"),
    (lambda: models.mobilenet_v1(width_mult=-0.5), ValueError, "width_mult"),
    (lambda: models.mobilenet_v1(width_mult=float("nan")), ValueError, "width_mult"),
    (lambda: models.mobilenet_v1(width_mult="1.0"), TypeError, "width_mult"),
    (lambda: models.mobilenet_v1(width_mult=0.01), ValueError, "width_mult"),
    (lambda: models.mobilenet_v1(num_classes=0), ValueError, "num_classes"),
])
def test_bad_arguments(call, error, words):
    with pytest.raises(error, match=words):
        call()


# ---------------------------------------------------------------------------------------------
# one SGD step


def loss_of(case, model, x, target):
    out = model(x)
    if isinstance(out, models.GoogLeNetOutputs):  # the paper's auxiliary losses, weight 0.3
        return F.cross_entropy(out.logits, target) + 0.3 * (F.cross_entropy(out.aux_logits1, target) +
                                                            F.cross_entropy(out.aux_logits2, target))
    return F.cross_entropy(out, target)


def test_fit_adds_googlenets_auxiliary_losses_with_weight_0_3_by_default():
    # the issue: "the training code adds the auxiliary losses with weight 0.3"; cnnx.train.fit's objective
    # on a real GoogLeNet (torchvision's, the variant that takes the smallest input: 32 x 32, batch 2),
    # against cross entropies computed here in numpy from the model's three outputs
    from cnnx import optim, train
    from cnnx.data import DataLoader, TensorDataset
    cnnx.manual_seed(0)
    model = models.googlenet(num_classes=3, variant="torchvision").train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0  # the same outputs here and inside fit
    x = cnnx.tensor(np.random.default_rng(6).standard_normal((2, 3, 32, 32)).astype(np.float32))
    y = np.array([0, 2])
    with cnnx.no_grad():
        out = model(x)
    assert isinstance(out, models.GoogLeNetOutputs)

    def ce(logits):  # mean cross entropy in float64
        z = logits.numpy().astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    main, aux = ce(out.logits), ce(out.aux_logits1) + ce(out.aux_logits2)
    want = main + 0.3 * aux
    assert min(abs(want - main), abs(want - (main + aux))) > 1e-2 * want  # the weight shows in the sum
    loader = DataLoader(TensorDataset(x, cnnx.tensor(y)), batch_size=2)
    history = train.fit(model, loader, optimizer=optim.SGD(model.parameters(), lr=0.01), epochs=1, verbose=0)
    assert history["loss"] == [pytest.approx(want, rel=1e-5)]


# ---------------------------------------------------------------------------------------------
# weight files


def test_safetensors_round_trip(tmp_path):
    model = models.resnet18(num_classes=3, small_input=True)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    state["extra.half"] = np.arange(6, dtype=np.float16).reshape(2, 3)
    state["extra.scalar"] = np.array(7, dtype=np.int64)
    path = tmp_path / "w.safetensors"
    models.save_safetensors(state, path, metadata={"format": "pt"})
    loaded = models.load_safetensors(path)
    assert list(loaded) == list(state)
    for k, v in state.items():
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape and np.array_equal(loaded[k], v)
        assert loaded[k].flags.writeable
    del loaded["extra.half"], loaded["extra.scalar"]
    models.save_safetensors(loaded, path)
    other = models.resnet18(num_classes=3, small_input=True)
    assert models.load_torch_state_dict(other, path) == ([], [])
    np.testing.assert_array_equal(other.layer3[1].conv2.weight.detach().numpy(),
                                  model.layer3[1].conv2.weight.detach().numpy())


def test_safetensors_bf16_and_bad_files(tmp_path):
    import json
    import struct
    values = np.array([1.5, -2.25, 3.0e38], dtype=np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    good = tmp_path / "bf16.safetensors"
    good.write_bytes(struct.pack("<Q", len(header)) + header + raw)
    np.testing.assert_allclose(models.load_safetensors(good)["w"], values, rtol=1e-2)
    for blob in (b"", b"abc", struct.pack("<Q", 10**9) + b"{}", struct.pack("<Q", 2) + b"[]",
                 struct.pack("<Q", 5) + b"{oops",
                 struct.pack("<Q", len(header)) + header + raw[:4],
                 struct.pack("<Q", 40) + json.dumps({"w": {"dtype": "C64", "shape": [],
                                                           "data_offsets": [0, 8]}}).encode()[:40]):
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(blob)
        with pytest.raises(ValueError, match="bad.safetensors"):
            models.load_safetensors(bad)


def test_load_checks_keys_and_shapes():
    model = models.lenet5()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="Unexpected key.*extra"):
        models.load_torch_state_dict(model, {**state, "extra": np.zeros(1)})
    with pytest.raises(RuntimeError, match="Missing key.*c1.bias"):
        models.load_torch_state_dict(model, {k: v for k, v in state.items() if k != "c1.bias"})
    with pytest.raises(RuntimeError, match="size mismatch for output.weight"):
        models.load_torch_state_dict(models.lenet5(num_classes=3), state)
    with pytest.raises(TypeError, match="mapping or a file path"):
        models.load_torch_state_dict(model, [1, 2])
    assert models.load_torch_state_dict(model, {"c1.weight": state["c1.weight"]}, strict=False).missing_keys


def test_old_checkpoints_without_num_batches_tracked():
    # torchvision's original ResNet files predate batch norm's counter; PyTorch loads them anyway
    model = models.resnet18(num_classes=2)
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert models.load_torch_state_dict(models.resnet18(num_classes=2), state) == ([], [])
    with pytest.raises(RuntimeError, match="num_batches_tracked"):
        models.resnet18(num_classes=2).load_state_dict(state)


# ---------------------------------------------------------------------------------------------
# PyTorch definitions of the same networks (tests/torch_models.py) with the same weights


def randomise_batch_norm(model, seed=0):
    """Running statistics and affine parameters away from their initial 0 / 1, so eval mode is a real
    test of how batch norm is applied."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.numpy()[...] = rng.normal(0, 0.2, c)
            m.running_var.numpy()[...] = rng.uniform(0.5, 2.0, c)
            m.weight.detach().numpy()[...] = rng.uniform(0.5, 1.5, c)
            m.bias.detach().numpy()[...] = rng.normal(0, 0.2, c)


def torch_twin(torch, case, model, share=False):
    """The PyTorch definition of ``case``, holding ``model``'s parameters and buffers (loaded with
    strict=True, so the two state dicts have the same keys and shapes); with ``share`` the twin uses
    the cnnx model's memory instead of a copy (for eval mode, where nothing is written)."""
    import torch_models
    name, kwargs, _, _ = CASES[case]
    classes = 10 if name == "lenet5" else 1000
    with torch.device("meta"):  # no initialisation: every value comes from the cnnx model
        twin = torch_models.build(name, kwargs, classes)
    state = {k: torch.from_numpy(v.numpy() if share else v.numpy().copy()) for k, v in model.state_dict().items()}
    if share:
        twin.load_state_dict(state, strict=True, assign=True)
    else:
        twin = twin.to_empty(device="cpu")
        twin.load_state_dict(state, strict=True)
    return twin


def assert_matches(got, want, what, rtol=1e-4):
    """|got - want| <= rtol * max |want| everywhere (a tolerance relative to the output's scale: float32
    sums in a different order differ by more than rtol * |value| on values near zero)."""
    want = want.detach().numpy()
    got = got.detach().numpy()
    scale = np.abs(want).max()
    err = np.abs(got - want).max()
    assert got.dtype == want.dtype, what
    assert err <= rtol * scale, f"{what}: max |difference| {err:.3g} vs max |output| {scale:.3g}"


def test_eval_output_matches_pytorch(built):
    torch = pytest.importorskip("torch")
    case, model = built
    assert not model.__dict__.get("_stepped"), "the SGD test ran first: keep it after this one"
    randomise_batch_norm(model)
    twin = torch_twin(torch, case, model, share=True).eval()
    x = batch(case, n=2, seed=2)
    with cnnx.no_grad(), torch.no_grad():
        assert_matches(model(x), twin(torch.from_numpy(x.numpy())), case)


def test_one_sgd_step_lowers_the_loss(built):
    # Every case, at its small input with a batch of two (batch norm in training mode needs more than one
    # value per channel: VGG's last maps are 1 x 1 at 32 x 32). Defined after the other tests of
    # ``built``: pytest keeps that order within a case, so they see the weights as built (restoring VGG's
    # 138 M parameters would cost seconds).
    # ResNets take 64 x 64: at 32 x 32 their last maps are 1 x 1, so each batch-norm channel there sees
    # two values and normalises them to +-1. That loss is nearly a step function (gradients of 1e8-1e11
    # for ResNet-50 and deeper, and PyTorch's float64 gradients differ from cnnx's in the fourth digit),
    # so whether a step of 0.01 lowers it depends on rounding, not on the gradients being right.
    case, model = built
    model.__dict__["_stepped"] = True  # see test_eval_output_matches_pytorch
    model.train()
    try:
        x = batch(case, n=2, seed=1, size=64 if CASES[case][0].startswith("resnet") else None)
        target = cnnx.tensor(np.array([1, 3]))
        cnnx.manual_seed(5)  # the same dropout masks for both evaluations
        loss = loss_of(case, model, x, target)
        model.zero_grad()
        loss.backward()
        grads = [p for p in model.parameters() if p.grad is not None]
        assert len(grads) == len(list(model.parameters()))  # every parameter is reached
        with cnnx.no_grad():
            for p in model.parameters():
                p.sub_(p.grad, alpha=0.01)
        cnnx.manual_seed(5)
        with cnnx.no_grad():
            after = loss_of(case, model, x, target)
        assert float(after) < float(loss), (float(loss), float(after))
    finally:
        model.zero_grad()
        model.eval()


@pytest.mark.parametrize("case,size", [("googlenet", 48), ("googlenet_torchvision", 48), ("resnet18_small", 16),
                                       ("mobilenet_v1_025", 16)])
def test_training_mode_matches_pytorch(case, size):
    # batch statistics, the auxiliary heads (dropout off on both sides), the loss and every gradient; in
    # float64, so that any difference beyond rounding is a difference in the networks
    torch = pytest.importorskip("torch")
    name, kwargs, _, _ = CASES[case]
    cnnx.manual_seed(1)
    model = models.get_model(name, **kwargs)
    twin = torch_twin(torch, case, model)
    for m in list(model.modules()) + list(twin.modules()):
        if isinstance(m, (nn.Dropout, torch.nn.Dropout)):
            m.p = 0.0
    model.double().train(), twin.double().train()
    x = cnnx.tensor(np.random.default_rng(4).standard_normal((3, 3, size, size)))
    target = np.array([5, 0, 999])
    loss = loss_of(case, model, x, cnnx.tensor(target))
    out = twin(torch.from_numpy(x.numpy()))
    t = torch.from_numpy(target)
    ce = torch.nn.functional.cross_entropy
    if isinstance(out, tuple):
        tloss = ce(out.logits, t) + 0.3 * (ce(out.aux_logits1, t) + ce(out.aux_logits2, t))
    else:
        tloss = ce(out, t)
    assert_matches(loss, tloss, f"{case} loss", rtol=1e-9)
    loss.backward()
    tloss.backward()
    tgrads = dict(twin.named_parameters())
    for k, p in model.named_parameters():
        assert_matches(p.grad, tgrads[k].grad, f"{case} grad {k}", rtol=1e-8)
    theirs = dict(twin.named_buffers())
    for k, b in model.named_buffers():  # running statistics updated alike
        if b.dtype == cnnx.float64:
            assert_matches(b, theirs[k], f"{case} buffer {k}", rtol=1e-9)
        else:
            assert int(b) == int(theirs[k]) == 1


@pytest.mark.parametrize("case", ["lenet5", "googlenet_torchvision", "resnet18", "mobilenet_v1_050"])
def test_pytorch_weights_load_strictly(case, tmp_path):
    # the other direction: weights initialised by PyTorch, as a state dict of torch tensors, as numpy
    # arrays in a safetensors file, and as a .pth file
    torch = pytest.importorskip("torch")
    import torch_models
    name, kwargs, _, _ = CASES[case]
    torch.manual_seed(0)
    twin = torch_models.build(name, kwargs, 10).eval()
    for m in twin.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0), m.bias.uniform_(-0.2, 0.2)
    state = twin.state_dict()
    x = batch(case, n=1, seed=3)
    with torch.no_grad():
        want = twin(torch.from_numpy(x.numpy()))
    models.save_safetensors({k: v.numpy() for k, v in state.items()}, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "w.pth")
    for source in (state, tmp_path / "w.safetensors", str(tmp_path / "w.pth")):
        model = models.get_model(name, num_classes=10, **kwargs).eval()
        assert models.load_torch_state_dict(model, source) == ([], [])
        with cnnx.no_grad():
            assert_matches(model(x), want, f"{case} from {type(source).__name__}")
