"""cnnx.optim: update rules and schedules against PyTorch, state dicts, bad hyper-parameters."""
import math

import numpy as np
import pytest

import cnnx
from cnnx import optim
from cnnx.optim import lr_scheduler

try:
    import torch
except ImportError:  # the oracle is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")

SHAPES = [(3, 4), (5,), (2, 1, 3, 3)]


def _params(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(step, dtype=np.float32):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _run_cnnx(make, steps, dtype=np.float32, groups=None):
    ps = [cnnx.nn.Parameter(cnnx.tensor(a)) for a in _params(dtype)]
    opt = make(ps if groups is None else groups(ps))
    for t in range(steps):
        for p, g in zip(ps, _grads(t, dtype)):
            p.grad = cnnx.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in ps], opt


def _run_torch(make, steps, dtype=np.float32, groups=None):
    ps = [torch.nn.Parameter(torch.tensor(a)) for a in _params(dtype)]
    opt = make(ps if groups is None else groups(ps))
    for t in range(steps):
        for p, g in zip(ps, _grads(t, dtype)):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in ps]


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=5e-4)),
    ("SGD", dict(lr=0.05, momentum=0.9, maximize=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("Adam", dict(lr=1e-2, maximize=True, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_update_rule_matches_torch(name, kwargs, dtype):
    got, _ = _run_cnnx(lambda ps: getattr(optim, name)(ps, **kwargs), 7, dtype)
    want = _run_torch(lambda ps: getattr(torch.optim, name)(ps, **kwargs), 7, dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for g, w in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@needs_torch
def test_param_groups_match_torch():
    def groups(ps):
        return [{"params": ps[:1], "lr": 0.5}, {"params": ps[1:], "momentum": 0.5}]

    got, opt = _run_cnnx(lambda g: optim.SGD(g, lr=0.1, momentum=0.9), 5, groups=groups)
    want = _run_torch(lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9), 5, groups=groups)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["momentum"] == 0.5


def test_updates_are_in_place_and_skip_missing_grads():
    p, q = cnnx.nn.Parameter(cnnx.ones(3)), cnnx.nn.Parameter(cnnx.ones(2))
    data = p._data
    opt = optim.SGD([p, q], lr=0.5, momentum=0.9)
    p.grad = cnnx.ones(3)
    opt.step()
    assert p._data is data
    np.testing.assert_array_equal(p.numpy() if not p.requires_grad else p.detach().numpy(), [0.5] * 3)
    np.testing.assert_array_equal(q.detach().numpy(), [1, 1])
    assert q not in opt.state


def test_zero_grad():
    p = cnnx.nn.Parameter(cnnx.ones(3))
    opt = optim.Adam([p])
    p.grad = cnnx.ones(3)
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and not g.numpy().any()
    opt.zero_grad()
    assert p.grad is None


def test_closure_runs_with_grad_and_returns_loss():
    p = cnnx.nn.Parameter(cnnx.tensor([2.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with cnnx.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0
    assert p.item() == 1.0


@pytest.mark.parametrize("name,kwargs", CONFIGS[:5] + CONFIGS[7:8], ids=lambda x: str(x))
def test_state_dict_round_trip_continues_identically(name, kwargs, tmp_path):
    cls = getattr(optim, name)
    ref, _ = _run_cnnx(lambda ps: cls(ps, **kwargs), 6)
    # 3 steps, save through cnnx.save, load into a fresh optimizer over a copy, 3 more steps
    ps = [cnnx.nn.Parameter(cnnx.tensor(a)) for a in _params()]
    opt = cls(ps, **kwargs)
    for t in range(3):
        for p, g in zip(ps, _grads(t)):
            p.grad = cnnx.tensor(g)
        opt.step()
    cnnx.save({"opt": opt.state_dict(), "params": [p.detach() for p in ps]}, tmp_path / "o.ckpt")
    saved = cnnx.load(tmp_path / "o.ckpt")
    ps2 = [cnnx.nn.Parameter(cnnx.tensor(a.numpy().copy())) for a in saved["params"]]
    opt2 = cls(ps2, lr=123.0)
    opt2.load_state_dict(saved["opt"])
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    for t in range(3, 6):
        for p, g in zip(ps2, _grads(t)):
            p.grad = cnnx.tensor(g)
        opt2.step()
    for a, b in zip(ref, ps2):
        np.testing.assert_array_equal(a, b.detach().numpy())


def test_load_state_dict_rejects_mismatch():
    ps = [cnnx.nn.Parameter(cnnx.ones(3)), cnnx.nn.Parameter(cnnx.ones(2))]
    sd = optim.SGD(ps, lr=0.1).state_dict()
    with pytest.raises(ValueError, match="size"):
        optim.SGD(ps[:1], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="groups"):
        optim.SGD([{"params": ps[:1]}, {"params": ps[1:]}], lr=0.1).load_state_dict(sd)


def test_a_refused_state_dict_changes_nothing():
    """load_state_dict checks the whole dict (structure, optimizer kind, hyper-parameters) before it
    replaces anything: after a refusal the optimizer still steps as before."""
    p = [cnnx.nn.Parameter(cnnx.ones(3))]
    opt = optim.SGD(p, lr=0.1, momentum=0.9)
    p[0].grad = cnnx.ones(3)
    opt.step()
    groups, buf = [dict(g) for g in opt.param_groups], opt.state[p[0]]["momentum_buffer"].copy()
    adam = optim.Adam(p)
    nan_lr = opt.state_dict()
    nan_lr["param_groups"] = [{**nan_lr["param_groups"][0], "lr": float("nan")}]
    for bad, err in ((adam.state_dict(), ValueError), (nan_lr, ValueError),
                     ({"state": {0: 5}, "param_groups": opt.state_dict()["param_groups"]}, TypeError)):
        with pytest.raises(err):
            opt.load_state_dict(bad)
        assert opt.param_groups == groups
        np.testing.assert_array_equal(opt.state[p[0]]["momentum_buffer"], buf)
    with pytest.raises(ValueError, match="lacks betas"):
        optim.Adam(p).load_state_dict(opt.state_dict())
    optim.AdamW(p).load_state_dict(adam.state_dict())  # same hyper-parameters and state: accepted
    opt.step()


def test_hyper_parameters_must_be_finite_and_flags_bool():
    p = [cnnx.nn.Parameter(cnnx.ones(2))]
    for kwargs in (dict(lr=math.inf), dict(lr=0.1, momentum=math.inf), dict(lr=0.1, weight_decay=-math.inf)):
        with pytest.raises(ValueError, match=next(iter(kwargs.keys() - {"lr"}), "lr")):
            optim.SGD(p, **kwargs)
    for flag in ("nesterov", "maximize"):
        with pytest.raises(TypeError, match=flag):
            optim.SGD(p, lr=0.1, momentum=0.9, **{flag: 1})
    optim.SGD(p, lr=0.1, momentum=0.9, nesterov=np.bool_(True))  # numpy's bool is a bool


@pytest.mark.parametrize("make,match", [
    (lambda ps: optim.SGD(ps, lr=-0.1), "lr"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-1), "momentum"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda ps: optim.SGD(ps, lr=0.1, dampening=-0.5), "dampening"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov"),
    (lambda ps: optim.SGD(ps, lr=float("nan")), "lr"),
    (lambda ps: optim.Adam(ps, lr=-1), "lr"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), "beta1"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), "beta2"),
    (lambda ps: optim.Adam(ps, betas=0.9), "betas"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), "eps"),
    (lambda ps: optim.AdamW(ps, weight_decay=-1), "weight_decay"),
    (lambda ps: optim.SGD([{"params": ps, "lr": -2}], lr=0.1), "lr"),
    (lambda ps: optim.SGD([], lr=0.1), "empty"),
    (lambda ps: optim.SGD(ps + ps, lr=0.1), "duplicate"),
])
def test_bad_hyper_parameters_raise_value_error(make, match):
    ps = [cnnx.nn.Parameter(cnnx.ones(2))]
    with pytest.raises(ValueError, match=match):
        make(ps)


def test_bad_params_raise_type_error():
    with pytest.raises(TypeError):
        optim.SGD(cnnx.nn.Parameter(cnnx.ones(2)), lr=0.1)
    with pytest.raises(TypeError, match="Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match="number"):
        optim.SGD([cnnx.nn.Parameter(cnnx.ones(2))], lr="0.1")


# ---- schedulers ----------------------------------------------------------------------------------

SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.1)),
    ("CosineAnnealingLR", dict(T_max=6, eta_min=0.01)),
    ("CosineAnnealingLR", dict(T_max=4)),
]


def _lrs(mod, opt_mod, Param, sched_name, kwargs, epochs=14):
    opt = opt_mod.SGD([{"params": [Param(mod.ones(2))]}, {"params": [Param(mod.ones(2))], "lr": 0.3}],
                      lr=0.1, momentum=0.9)
    sched = getattr(opt_mod.lr_scheduler, sched_name)(opt, **kwargs)
    out = [list(sched.get_last_lr())]
    for _ in range(epochs):
        opt.step()
        sched.step()
        out.append([g["lr"] for g in opt.param_groups])
    return out


@needs_torch
@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=lambda x: str(x))
def test_schedules_match_torch(name, kwargs):
    got = _lrs(cnnx, optim, cnnx.nn.Parameter, name, kwargs)
    want = _lrs(torch, torch.optim, torch.nn.Parameter, name, kwargs)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def _plateau(mod, opt_mod, Param, metrics, **kwargs):
    opt = opt_mod.SGD([Param(mod.ones(2))], lr=1.0)
    sched = opt_mod.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    out = []
    for m in metrics:
        sched.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


PLATEAU_METRICS = [5, 4, 4, 4, 4, 3.9999, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2]


@needs_torch
@pytest.mark.parametrize("kwargs", [
    dict(patience=2), dict(patience=1, cooldown=2, factor=0.5), dict(mode="max", patience=1),
    dict(patience=0, threshold=0.1, threshold_mode="abs", min_lr=0.05),
])
def test_reduce_on_plateau_matches_torch(kwargs):
    got = _plateau(cnnx, optim, cnnx.nn.Parameter, PLATEAU_METRICS, **kwargs)
    want = _plateau(torch, torch.optim, torch.nn.Parameter, PLATEAU_METRICS, **kwargs)
    assert got == pytest.approx(want, rel=1e-12)


def test_reduce_on_plateau_divides_by_ten():
    opt = optim.SGD([cnnx.nn.Parameter(cnnx.ones(1))], lr=0.01, momentum=0.9)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    for loss in [1.0, 0.5, 0.5, 0.5]:
        sched.step(loss)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)
    assert sched.get_last_lr() == [pytest.approx(0.001)]


def test_scheduler_state_dict_round_trip(tmp_path):
    def make():
        opt = optim.SGD([cnnx.nn.Parameter(cnnx.ones(1))], lr=0.1)
        return opt, lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.5)

    opt, sched = make()
    for _ in range(3):
        sched.step()
    cnnx.save({"o": opt.state_dict(), "s": sched.state_dict()}, tmp_path / "s.ckpt")
    state = cnnx.load(tmp_path / "s.ckpt")
    opt2, sched2 = make()
    opt2.load_state_dict(state["o"])
    sched2.load_state_dict(state["s"])
    for _ in range(3):
        sched.step()
        sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr() == [0.025]

    popt = optim.SGD([cnnx.nn.Parameter(cnnx.ones(1))], lr=1.0)
    plateau = lr_scheduler.ReduceLROnPlateau(popt, patience=3)
    plateau.step(1.0)
    cnnx.save(plateau.state_dict(), tmp_path / "p.ckpt")
    plateau2 = lr_scheduler.ReduceLROnPlateau(optim.SGD([cnnx.nn.Parameter(cnnx.ones(1))], lr=1.0))
    plateau2.load_state_dict(cnnx.load(tmp_path / "p.ckpt"))
    assert plateau2.best == 1.0 and plateau2.patience == 3 and plateau2.last_epoch == 1


@pytest.mark.parametrize("make,exc,match", [
    (lambda o: lr_scheduler.StepLR(o, step_size=0), ValueError, "step_size"),
    (lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0), ValueError, "gamma"),
    (lambda o: lr_scheduler.MultiStepLR(o, milestones=[3, 2]), ValueError, "milestones"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=3, eta_min=-1), ValueError, "eta_min"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="up"), ValueError, "mode"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold_mode"),
    (lambda o: lr_scheduler.StepLR("sgd", step_size=2), TypeError, "Optimizer"),
])
def test_bad_scheduler_arguments(make, exc, match):
    opt = optim.SGD([cnnx.nn.Parameter(cnnx.ones(1))], lr=0.1)
    with pytest.raises(exc, match=match):
        make(opt)


def test_cosine_reaches_eta_min():
    opt = optim.SGD([cnnx.nn.Parameter(cnnx.ones(1))], lr=0.2)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.002)
    for _ in range(10):
        sched.step()
    assert math.isclose(opt.param_groups[0]["lr"], 0.002, rel_tol=1e-9)
