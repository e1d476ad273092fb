"""cnnx.nn: Module registration and state dicts, layers, initialisation, containers, hooks."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import cnnx
import cnnx.nn as nn
from cnnx.testing import assert_close


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.act = nn.ReLU()
        self.register_buffer("steps", cnnx.zeros(1))
        self.register_buffer("scratch", cnnx.zeros(2), persistent=False)
        self.scale = nn.Parameter(cnnx.ones(1))

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
        self.shared = self.head[0]  # the same module under two names

    def forward(self, x):
        return self.head(self.block(x))


def test_registration_names_and_order():
    net = Net()
    # a module's own parameters come before its children's, as in PyTorch
    assert [n for n, _ in net.named_parameters()] == ["block.scale", "block.fc.weight", "block.fc.bias",
                                                      "head.0.weight", "head.0.bias"]
    assert [n for n, _ in net.named_buffers()] == ["block.steps", "block.scratch"]
    assert [n for n, _ in net.named_children()] == ["block", "head", "shared"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "block.act", "head", "head.0", "head.1"]
    assert len(list(net.parameters())) == 5 and len(list(net.modules())) == 7
    assert list(net.state_dict()) == ["block.scale", "block.steps", "block.fc.weight", "block.fc.bias",
                                      "head.0.weight", "head.0.bias", "shared.weight", "shared.bias"]
    assert net.get_submodule("block.fc") is net.block.fc


def test_setattr_rules():
    m = Block()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        m.scale = cnnx.ones(1)
    m.scale = None
    assert "scale" not in dict(m.named_parameters())
    with pytest.raises(TypeError, match="buffer 'steps'"):
        m.steps = 3
    m.steps = cnnx.ones(1)
    assert m.state_dict()["steps"].item() == 1
    del m.fc
    assert "fc" not in m._modules and not hasattr(m, "fc")

    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(cnnx.ones(1))

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Forgot()
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("act", cnnx.ones(1))


def test_state_dict_round_trip_and_sharing():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy(), err_msg=n)
    sd = a.state_dict()
    assert not sd["block.fc.weight"].requires_grad
    sd["block.fc.weight"].numpy()[0, 0] = 42.0  # values share memory with the module
    assert a.block.fc.weight.detach().numpy()[0, 0] == 42.0


def test_load_state_dict_accepts_numpy_and_reports_every_problem_by_name():
    net = Net()
    state = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    state["block.fc.weight"] = np.full((3, 4), 2.0)  # float64 values are cast to the parameter's dtype
    net.load_state_dict(state)
    assert net.block.fc.weight.dtype == cnnx.float32 and net.block.fc.weight.detach().numpy()[0, 0] == 2.0

    bad = dict(state)
    del bad["head.0.bias"]
    bad["extra.weight"] = np.zeros(1)
    bad["block.fc.bias"] = np.zeros(5)
    before = net.block.scale.detach().numpy().copy()
    bad["block.scale"] = np.full(1, 7.0)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(bad)
    msg = str(err.value)
    assert 'Missing key(s) in state_dict: "head.0.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in msg
    assert "size mismatch for block.fc.bias: copying a param with shape (5,) from checkpoint, the shape in " \
           "current model is (3,)" in msg
    np.testing.assert_array_equal(net.block.scale.detach().numpy(), before)  # nothing copied on error

    del bad["block.fc.bias"]
    result = net.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["block.fc.bias", "head.0.bias"] and result.unexpected_keys == ["extra.weight"]
    assert net.block.scale.detach().numpy()[0] == 7.0
    with pytest.raises(RuntimeError, match="size mismatch"):
        net.load_state_dict({"block.fc.bias": np.zeros(2)}, strict=False)
    with pytest.raises(TypeError, match="not numeric"):
        net.load_state_dict({**state, "block.scale": object()})


def test_state_dict_errors_are_runtime_and_value_errors():
    from cnnx.nn.module import StateDictError

    bn = nn.BatchNorm2d(2)
    state = dict(bn.state_dict())
    with pytest.raises(StateDictError) as err:
        bn.load_state_dict({k: v for k, v in state.items() if k != "bias"})
    assert isinstance(err.value, RuntimeError) and isinstance(err.value, ValueError)  # PyTorch's type, and ours
    for value, ok in ((np.array(3.0), True), (np.array(3.5), False), (np.array(np.inf), False),
                      (np.array(4, np.int32), True)):
        if ok:
            bn.load_state_dict({**state, "num_batches_tracked": value})
            assert bn.num_batches_tracked.item() == int(value)
        else:
            with pytest.raises(StateDictError, match="num_batches_tracked"):
                bn.load_state_dict({**state, "num_batches_tracked": value})
    for value in ("1", np.ones(2, np.complex64), np.array(["a", "b"])):
        with pytest.raises(TypeError, match="not numeric"):
            bn.load_state_dict({**state, "weight": value})


def test_train_eval_zero_grad_requires_grad_apply_and_to():
    net = Net()
    assert net.training and net.block.fc.training
    net.eval()
    assert not net.training and not net.head[1].training
    net.train()
    out = net(cnnx.randn(5, 4)).sum()
    out.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all((p.grad.numpy() == 0).all() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen[0] == "Linear"
    w = net.block.fc.weight
    net.double()
    assert net.block.fc.weight is w and w.dtype == cnnx.float64 and net.block.steps.dtype == cnnx.float64


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    handle = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    out = lin(cnnx.ones(3, 2))
    assert calls == [(3, 2)]
    assert_close(out, lin.bias.detach().unsqueeze(0) * cnnx.ones(3, 1))
    handle.remove()
    pre.remove()
    lin(cnnx.ones(1, 2))
    assert calls == [(3, 2)]


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and isinstance(seq[1:], nn.Sequential)
    assert [n for n, _ in seq[1:].named_children()] == ["1", "2"]
    seq.append(nn.Tanh())
    del seq[1]
    assert [type(m).__name__ for m in seq] == ["Linear", "Linear", "Tanh"] and list(seq._modules) == ["0", "1", "2"]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named(cnnx.ones(1, 2)).shape == (1, 2)
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
    ml.append(nn.ReLU())
    ml.insert(0, nn.Tanh())
    assert [type(m).__name__ for m in ml] == ["Tanh", "Linear", "Linear", "ReLU"]
    assert list(ml.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]
    with pytest.raises(IndexError):
        ml[7]
    with pytest.raises(NotImplementedError):
        ml(cnnx.ones(1))


def test_default_initialisation_ranges():
    cnnx.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = lin.weight.detach().numpy()
    assert np.abs(w).max() <= bound and abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(lin.bias.detach().numpy()).max() <= bound
    conv = nn.Conv2d(8, 16, 3, groups=2)
    assert conv.weight.shape == (16, 4, 3, 3)
    cb = 1 / math.sqrt(4 * 9)
    assert np.abs(conv.weight.detach().numpy()).max() <= cb and np.abs(conv.bias.detach().numpy()).max() <= cb
    bn = nn.BatchNorm2d(5)
    assert bn.weight.tolist() == [1.0] * 5 and bn.bias.tolist() == [0.0] * 5
    assert bn.running_var.tolist() == [1.0] * 5 and bn.num_batches_tracked.dtype == cnnx.int64
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert nn.BatchNorm2d(3, affine=False, track_running_stats=False).state_dict() == {}


@pytest.mark.parametrize("fn,kw,expected_std", [
    ("kaiming_normal_", {"mode": "fan_in", "nonlinearity": "relu"}, math.sqrt(2 / 200)),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(2 / 5000)),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, 1 / math.sqrt(200) / math.sqrt(3)),
    ("xavier_uniform_", {}, math.sqrt(2 / 5200)),
    ("xavier_normal_", {"gain": 2.0}, 2 * math.sqrt(2 / 5200)),
    ("normal_", {"std": 0.01}, 0.01),
    ("trunc_normal_", {"std": 0.01, "a": -0.02, "b": 0.02}, 0.01 * 0.8796),
])
def test_init_statistics(fn, kw, expected_std):
    cnnx.manual_seed(1)
    t = cnnx.empty(500, 20, 10)  # fan_in 20 * 10 = 200, fan_out 500 * 10 = 5000
    out = getattr(nn.init, fn)(t, **kw)
    assert out is t
    assert abs(t.numpy().std() / expected_std - 1) < 0.03
    if fn == "trunc_normal_":
        assert np.abs(t.numpy()).max() <= 0.02


def test_init_constants_gains_and_errors():
    t = cnnx.empty(3, 3)
    assert nn.init.constant_(t, 0.5).tolist() == [[0.5] * 3] * 3
    assert nn.init.zeros_(t).numpy().sum() == 0 and nn.init.ones_(t).numpy().sum() == 9
    u = nn.init.uniform_(cnnx.empty(1000), -2, -1).numpy()
    assert u.min() >= -2 and u.max() < -1
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(cnnx.empty(3))
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_normal_(t, mode="fan_avg")
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        nn.init.calculate_gain("swish")
    w = nn.Linear(2, 2).weight
    nn.init.normal_(w)  # works on parameters that require grad (outside autograd)
    assert w.requires_grad and w.grad_fn is None


def test_init_draws_in_the_tensors_dtype():
    # uniform_/normal_ fill float32/float64 tensors in place (no float64 temporary); other layouts fall back
    cnnx.manual_seed(2)
    for dtype in (cnnx.float32, cnnx.float64):
        t = cnnx.empty(200, 100, dtype=dtype)
        data = t.numpy()
        nn.init.uniform_(t, -0.5, 0.25)
        assert t.dtype == dtype and np.shares_memory(t.numpy(), data)
        assert data.min() >= -0.5 and data.max() < 0.25 and abs(data.mean() + 0.125) < 0.01
        nn.init.normal_(t, 3.0, 0.5)
        assert abs(data.mean() - 3.0) < 0.01 and abs(data.std() / 0.5 - 1) < 0.02
    # a float32 interval whose upper end rounding could reach stays half-open
    u = nn.init.uniform_(cnnx.empty(100000), -2.0, -1.0).numpy()
    assert u.min() >= -2 and u.max() < -1
    strided = cnnx.empty(10, 10)
    view = strided[:, ::2]
    nn.init.uniform_(view, 1.0, 2.0)
    assert view.numpy().min() >= 1 and view.numpy().max() < 2


def test_init_gains_match_torch():
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert nn.init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(2.0)
    with pytest.raises(ValueError, match="4D input"):
        nn.BatchNorm2d(3)(cnnx.ones(2, 3))


def test_dropout_module_respects_train_and_eval():
    d = nn.Dropout(0.5)
    x = cnnx.ones(1000)
    assert (d(x).numpy() == 0).any()
    d.eval()
    assert d(x) is x


def test_lrn_alexnet_paper_constructor_converts_alpha():
    layer = nn.LocalResponseNorm.alexnet_paper()
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 5e-4, 0.75, 2.0)


# ---- against PyTorch ---------------------------------------------------------------------------
def build_cnn(nn_mod):
    """The same small CNN from either library: conv, BN, ReLU, max pool, LRN, grouped conv, dropout,
    adaptive pool, flatten (the caller appends the linear head)."""
    return nn_mod.Sequential(
        nn_mod.Conv2d(3, 8, 3, padding=1), nn_mod.BatchNorm2d(8), nn_mod.ReLU(), nn_mod.MaxPool2d(2),
        nn_mod.LocalResponseNorm(3), nn_mod.Conv2d(8, 8, 3, padding="same", groups=2, bias=False),
        nn_mod.ReLU(inplace=True), nn_mod.Dropout(0.0), nn_mod.AdaptiveAvgPool2d((2, 2)), nn_mod.Flatten())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_small_cnn_matches_pytorch_loss_and_every_gradient(dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = build_cnn(torch.nn).to(getattr(torch, dtype))
    model = build_cnn(nn).to(getattr(cnnx, dtype))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8, 8)).astype(dtype)
    with torch.no_grad():
        features = tmodel(torch.tensor(x)).shape[1]
    tmodel.append(torch.nn.Linear(features, 5).to(getattr(torch, dtype)))
    model.append(nn.Linear(features, 5).to(getattr(cnnx, dtype)))
    assert repr(model) == repr(tmodel)
    model.load_state_dict(tmodel.state_dict())
    y = rng.integers(0, 5, 4)
    for step in range(2):  # the second step runs on updated batch-norm statistics
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y), label_smoothing=0.1)
        loss = nn.CrossEntropyLoss(label_smoothing=0.1)(model(cnnx.tensor(x)), cnnx.tensor(y))
        tol = {} if dtype == "float64" else {"rtol": 1e-4, "atol": 1e-5}
        assert_close(loss, tloss.detach(), **tol)
        tmodel.zero_grad()
        model.zero_grad()
        tloss.backward()
        loss.backward()
        tparams = dict(tmodel.named_parameters())
        for name, p in model.named_parameters():
            assert_close(p.grad, tparams[name].grad, msg=name, **tol)
        for name, b in model.named_buffers():
            assert_close(b, dict(tmodel.named_buffers())[name], msg=name, check_dtype=False, **tol)
        with torch.no_grad(), cnnx.no_grad():
            for name, p in model.named_parameters():
                p.sub_(p.grad, alpha=0.1)
                tparams[name].sub_(tparams[name].grad, alpha=0.1)
    model.eval()
    tmodel.eval()
    with torch.no_grad():
        assert_close(model(cnnx.tensor(x)), tmodel(torch.tensor(x)), **tol)


def test_repr_matches_pytorch_for_every_layer():
    torch = pytest.importorskip("torch")
    for build in [lambda m: m.Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2), dilation=2, groups=1, bias=False),
                  lambda m: m.Conv2d(4, 4, 3, padding="same", groups=4),
                  lambda m: m.Linear(3, 4), lambda m: m.MaxPool2d(3, 2, ceil_mode=True), lambda m: m.AvgPool2d(2),
                  lambda m: m.AdaptiveAvgPool2d((6, 6)), lambda m: m.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
                  lambda m: m.BatchNorm2d(16, momentum=None), lambda m: m.BatchNorm2d(4, bias=False),
                  lambda m: m.BatchNorm2d(4, affine=False), lambda m: m.Dropout(0.3), lambda m: m.ReLU(inplace=True),
                  lambda m: m.Tanh(), lambda m: m.Sigmoid(), lambda m: m.Flatten(), lambda m: m.Identity(),
                  lambda m: m.Softmax(dim=1), lambda m: m.CrossEntropyLoss(),
                  lambda m: m.Sequential(m.Linear(2, 2), m.Sequential(m.ReLU())),
                  lambda m: m.ModuleList([m.Tanh()])]:
        assert repr(build(nn)) == repr(build(torch.nn))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_running_stats_and_momentum_none_match_torch(momentum):
    torch = pytest.importorskip("torch")
    bn, tbn = nn.BatchNorm2d(3, momentum=momentum).double(), torch.nn.BatchNorm2d(3, momentum=momentum).double()
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 2, 2)) * 3 + 1
        bn(cnnx.tensor(x))
        tbn(torch.tensor(x))
    assert bn.num_batches_tracked.item() == 3
    for name, b in tbn.named_buffers():
        assert_close(getattr(bn, name), b, msg=name)
    bn.eval()
    tbn.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    assert_close(bn(cnnx.tensor(x)), tbn(torch.tensor(x)).detach())


# --- inference fusion: Conv2d -> BatchNorm2d (-> ReLU) as one kernel (nn/_fusion.py) ----------

def _random_bn_stats(model, seed=0):
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean._data[...] = rng.uniform(-1, 1, m.num_features)
            m.running_var._data[...] = rng.uniform(0.3, 2, m.num_features)
            m.weight._data[...] = rng.uniform(-2, 2, m.num_features)
            m.bias._data[...] = rng.uniform(-1, 1, m.num_features)
    return model


def _fused_and_not(model, x):
    from cnnx.nn import _fusion
    with cnnx.no_grad():
        fused = model(x).numpy().copy()
        _fusion.ENABLED = False
        try:
            plain = model(x).numpy().copy()
        finally:
            _fusion.ENABLED = True
    return fused, plain


def _count_bn_forwards(monkeypatch):
    calls = []
    original = nn.BatchNorm2d.forward
    monkeypatch.setattr(nn.BatchNorm2d, "forward", lambda self, x: calls.append(1) or original(self, x))
    return calls


@pytest.mark.parametrize("build", ["sequential", "resnet18", "resnet50", "googlenet", "mobilenet", "vgg11_bn"])
def test_inference_fusion_is_bitwise_the_module_chain(build, monkeypatch):
    from cnnx import models
    x = cnnx.tensor(np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32))
    model = {
        "sequential": lambda: nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                            nn.Conv2d(32, 40, 3, stride=2), nn.BatchNorm2d(40), nn.MaxPool2d(2)),
        "resnet18": lambda: models.resnet18(10, small_input=True),
        "resnet50": lambda: models.resnet50(10, small_input=True),
        "googlenet": lambda: models.googlenet(num_classes=10, variant="torchvision", aux_logits=False),
        "mobilenet": lambda: models.mobilenet_v1(0.25, 10, small_input=True),
        "vgg11_bn": lambda: models.vgg11_bn(num_classes=10),
    }[build]()
    _random_bn_stats(model.eval())
    calls = _count_bn_forwards(monkeypatch)
    fused, plain = _fused_and_not(model, x)
    assert np.array_equal(fused, plain)
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(calls) == bns  # every batch norm ran as a module only in the unfused pass


def test_inference_fusion_steps_aside_for_hooks_grad_and_training(monkeypatch):
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
    _random_bn_stats(model.eval())
    x = cnnx.tensor(np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32))
    calls = _count_bn_forwards(monkeypatch)
    with cnnx.no_grad():
        model(x)
    assert calls == []  # fused
    # a hook must see its module's call
    seen = []
    handle = model[2].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with cnnx.no_grad():
        model(x)
    handle.remove()
    assert seen == [(2, 32, 8, 8)] and len(calls) == 1
    # gradients wanted: the graph is recorded module by module
    out = model(x)
    assert out.requires_grad and len(calls) == 2
    out.sum().backward()
    assert model[0].weight.grad is not None
    # training mode: batch statistics, running statistics updated
    model.train()
    before = model[1].running_mean.numpy().copy()
    with cnnx.no_grad():
        model(x)
    assert len(calls) == 3 and not np.array_equal(before, model[1].running_mean.numpy())
