"""Every differentiable op against float64 central differences (cnnx.testing.gradcheck), over at
least 10 shape classes each (distinct tuples of input shapes, a number counting as one class), plus
registry tests that fail when an op or a Function has no case.

Inputs of non-smooth ops (relu, abs, max, max_pool2d) are drawn away from their kinks and ties.
"""
import numpy as np
import pytest

import cnnx
import cnnx.nn.functional as F
from cnnx.autograd import Function
from cnnx.testing import gradcheck

CASES = {}  # op name -> list of (case id, builder returning (fn, inputs))


def case(op, case_id):
    def register(builder):
        CASES.setdefault(op, []).append((case_id, builder))
        return builder
    return register


_rng = np.random.default_rng(1234)


def R(*shape, low=None):
    """float64 leaf requiring grad; ``low`` > 0 gives values in [low, low + 1] (positive domain)."""
    if low is not None:
        data = low + _rng.random(shape)
    else:
        data = _rng.standard_normal(shape)
    return cnnx.tensor(data, requires_grad=True)


def Rkink(*shape):
    """Values at least 0.1 away from 0 (relu, abs)."""
    data = _rng.standard_normal(shape)
    return cnnx.tensor(np.sign(data + 1e-12) * (0.1 + np.abs(data)), requires_grad=True)


def Rdistinct(*shape):
    """Distinct values spaced 0.05 apart (no ties within eps for max / max-pool)."""
    n = int(np.prod(shape))
    return cnnx.tensor((_rng.permutation(n) * 0.05 - n * 0.025).reshape(shape), requires_grad=True)


SHAPES = [(), (1,), (7,), (3, 4), (4, 1), (1, 5), (2, 3, 4), (2, 1, 3, 1), (1, 1, 1), (2, 3, 2, 2), (0, 3)]
PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (3, 1)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), ()),
         ((2, 1, 3), (4, 1)), ((5,), (5,)), ((1,), (3, 2)), ((2, 3, 4), (2, 3, 4)), ((2, 2), "scalar"),
         ("scalar", (2, 2))]


def _operand(shape, positive=False):
    if shape == "scalar":
        return 1.7
    return R(*shape, low=0.5) if positive else R(*shape)


# ---- elementwise ---------------------------------------------------------------------------
for _a, _b in PAIRS:
    _id = f"{_a}-{_b}"
    for _op, _fn, _pos in (("add", lambda x, y: x + y, False), ("sub", lambda x, y: x - y, False),
                           ("mul", lambda x, y: x * y, False), ("div", lambda x, y: x / y, True),
                           ("pow", lambda x, y: x ** y, True)):
        case(_op, _id)(lambda _a=_a, _b=_b, _fn=_fn, _pos=_pos: (_fn, (_operand(_a, _pos), _operand(_b, _pos))))

for _s in SHAPES:
    case("neg", _s)(lambda _s=_s: (lambda x: -x, (R(*_s),)))
    case("exp", _s)(lambda _s=_s: (lambda x: x.exp(), (R(*_s),)))
    case("log", _s)(lambda _s=_s: (lambda x: x.log(), (R(*_s, low=0.5),)))
    case("sqrt", _s)(lambda _s=_s: (lambda x: x.sqrt(), (R(*_s, low=0.5),)))
    case("abs", _s)(lambda _s=_s: (lambda x: abs(x), (Rkink(*_s),)))
    case("relu", _s)(lambda _s=_s: (F.relu, (Rkink(*_s),)))
    case("relu_", _s)(lambda _s=_s: (lambda x: F.relu(x * 1.0, inplace=True), (Rkink(*_s),)))
    case("tanh", _s)(lambda _s=_s: (F.tanh, (R(*_s),)))
    case("sigmoid", _s)(lambda _s=_s: (lambda x: F.sigmoid(x * 4), (R(*_s),)))
    case("clone", _s)(lambda _s=_s: (lambda x: x.clone(), (R(*_s),)))
    # through extended precision and back: both casts are exact enough for central differences
    case("to", _s)(lambda _s=_s: (lambda x: x.to(np.longdouble).to(cnnx.float64), (R(*_s),)))
    case("sum", f"all-{_s}")(lambda _s=_s: (lambda x: x.sum(), (R(*_s),)))
    case("mean", f"all-{_s}")(lambda _s=_s: (lambda x: x.mean(), (R(*_s),)))
    case("reshape", _s)(lambda _s=_s: (lambda x: x.reshape(-1), (R(*_s),)))
    case("flatten", _s)(lambda _s=_s: (lambda x: x.flatten(), (R(*_s),)))

for _scale in (10.0, 40.0):  # saturated sigmoid: both tails, no overflow
    case("sigmoid", f"x{_scale}")(lambda _c=_scale: (lambda x: F.sigmoid(x * _c), (R(3, 4),)))

# Exponent given as a number, and a number raised to a tensor.
for _e in (2, 3, 0.5, -1.5):
    case("pow", f"x**{_e}")(lambda _e=_e: (lambda x: x ** _e, (R(3, 2, low=0.5),)))
case("pow", "2**x")(lambda: (lambda x: 2.0 ** x, (R(4),)))

# The functional forms and alpha= (input + alpha * other: a Mul recorded before the Add / Sub, so
# other's gradient is scaled); a number on either side.
for _a, _b, _alpha in [((3, 4), (4,), 2.5), ((3, 1), (1, 4), -0.5), ((2, 2), "scalar", 3), ("scalar", (2, 3), 0.25),
                       ((5,), (5,), 0)]:
    for _op in ("add", "sub"):
        case(_op, f"cnnx.{_op}-{_a}-{_b}-alpha{_alpha}")(
            lambda _a=_a, _b=_b, _op=_op, _al=_alpha: (lambda x, y: getattr(cnnx, _op)(x, y, alpha=_al),
                                                       (_operand(_a), _operand(_b))))
case("add", "method-alpha")(lambda: (lambda x, y: x.add(y, alpha=-2), (R(2, 3), R(2, 1))))
case("sub", "method-alpha")(lambda: (lambda x, y: x.sub(y, alpha=1.5), (R(4, 1, 2), R(3, 1))))
for _op in ("mul", "div", "pow"):
    case(_op, f"cnnx.{_op}")(lambda _op=_op: (getattr(cnnx, _op), (R(2, 3, low=0.5), R(3, low=0.5))))
    case(_op, f"cnnx.{_op}-number-first")(lambda _op=_op: (lambda y: getattr(cnnx, _op)(1.7, y), (R(3, 2, low=0.5),)))
case("neg", "cnnx.neg")(lambda: (cnnx.neg, (R(3, 1, 2),)))

# ---- reductions ----------------------------------------------------------------------------
for _dim, _keep, _shape in [(0, False, (3, 4)), (1, True, (3, 4)), (-1, False, (2, 3, 4)), ((0, 2), False, (2, 3, 4)),
                            ((0, 2), True, (2, 3, 4)), (0, False, (5,)), (1, False, (2, 1, 3)), (None, True, (2, 3)),
                            (-2, True, (2, 3, 4)), ((1, 2, 3), False, (2, 2, 2, 2))]:
    case("sum", f"{_dim}-{_keep}-{_shape}")(lambda _d=_dim, _k=_keep, _s=_shape: (lambda x: x.sum(_d, _k), (R(*_s),)))
    case("mean", f"{_dim}-{_keep}-{_shape}")(lambda _d=_dim, _k=_keep, _s=_shape: (lambda x: x.mean(_d, _k), (R(*_s),)))

case("sum", "cnnx.sum-dtype")(lambda: (lambda x: cnnx.sum(x, (0, 2), True, dtype=cnnx.float64), (R(2, 3, 2),)))
case("mean", "cnnx.mean-dtype")(lambda: (lambda x: cnnx.mean(x, -1, dtype=cnnx.float64), (R(3, 5),)))

for _dim, _keep, _shape in [(None, False, (3, 4)), (None, False, (7,)), (None, False, ()), (0, False, (3, 4)),
                            (1, True, (3, 4)), (-1, False, (2, 3, 4)), (0, True, (5,)), (2, False, (2, 1, 3)),
                            (1, False, (1, 6)), (0, False, (2, 2, 2, 2))]:
    case("max", f"{_dim}-{_keep}-{_shape}")(
        lambda _d=_dim, _k=_keep, _s=_shape: ((lambda x: x.max()) if _d is None else (lambda x: x.max(_d, _k).values),
                                              (Rdistinct(*_s),)))
for _dim, _keep, _shape in [(None, False, (2, 5, 2)), (1, True, (4, 2, 3))]:
    case("max", f"cnnx.max-{_dim}-{_keep}-{_shape}")(
        lambda _d=_dim, _k=_keep, _s=_shape: ((lambda x: cnnx.max(x)) if _d is None else
                                              (lambda x: cnnx.max(x, _d, _k).values), (Rdistinct(*_s),)))
case("max", "ties-split-evenly")(lambda: (lambda x: x.max(), (cnnx.tensor([1.0, 3.0, 3.0, 2.0], dtype=cnnx.float64,
                                                                             requires_grad=True),)))

# ---- shape ---------------------------------------------------------------------------------
_views = [((2, 3, 4), (6, 4)), ((2, 3, 4), (4, -1)), ((6,), (2, 3)), ((6,), (1, 6, 1)), ((1,), ()), ((), (1, 1)),
          ((2, 2, 2), (8,)), ((3, 1), (3,)), ((4, 5), (5, 4)), ((2, 3, 2, 2), (2, 12)), ((3, 5), (5, 3)),
          ((2, 6, 1), (-1,)), ((1, 4, 2), (2, 2, 2))]
for _s, _t in _views:
    case("view", f"{_s}->{_t}")(lambda _s=_s, _t=_t: (lambda x: x.view(_t), (R(*_s),)))
    case("reshape", f"{_s}->{_t}")(lambda _s=_s, _t=_t: (lambda x: x.reshape(_t), (R(*_s),)))
case("reshape", "non-contiguous")(lambda: (lambda x: x.transpose(0, 1).reshape(-1), (R(3, 4),)))

for _s, _a, _b in [((2, 3), 1, -1), ((2, 3, 4), 0, 2), ((3, 4, 5), 1, 1), ((2, 3, 2, 2), 1, 3), ((5,), 0, 0),
                   ((2, 1, 3), 0, 1), ((1, 1, 4), 0, 2), ((2, 3, 4), -2, -1), ((4, 1), 0, -1), ((2, 2, 2, 2, 2), 2, 4)]:
    case("flatten", f"{_s}-{_a}-{_b}")(lambda _s=_s, _a=_a, _b=_b: (lambda x: x.flatten(_a, _b), (R(*_s),)))

for _s, _d in [((3,), 0), ((3,), 1), ((3,), -1), ((2, 3), 1), ((), 0), ((2, 3), -3), ((1, 2), 2), ((4, 1, 2), 0),
               ((2, 2, 2), 3), ((5, 1), 1), ((3, 2), -1), ((2, 1, 3, 2), 2), ((1,), 0), ((4, 3, 2), -2)]:
    case("unsqueeze", f"{_s}-{_d}")(lambda _s=_s, _d=_d: (lambda x: x.unsqueeze(_d), (R(*_s),)))
for _s, _d in [((1, 3), None), ((1, 3), 0), ((3, 1), 1), ((3, 1), -1), ((1, 1, 1), None), ((2, 3), 0), ((1,), 0),
               ((2, 1, 3, 1), None), ((2, 1, 3, 1), (1, 3)), ((), None), ((1, 4, 1), -1), ((2, 1), None),
               ((1, 2, 1, 2), 0), ((3, 1, 1), (1, 2))]:
    case("squeeze", f"{_s}-{_d}")(lambda _s=_s, _d=_d: (lambda x: x.squeeze(_d), (R(*_s),)))
for _s, _a, _b in [((2, 3), 0, 1), ((2, 3, 4), 0, 2), ((2, 3, 4), -1, -2), ((5,), 0, 0), ((2, 3, 2, 2), 1, 3),
                   ((1, 4), 0, 1), ((3, 1, 2), 1, 2), ((2, 2), 1, 1), ((4, 3, 1), 0, 1), ((2, 3, 4, 1, 2), 4, 0)]:
    case("transpose", f"{_s}-{_a}-{_b}")(lambda _s=_s, _a=_a, _b=_b: (lambda x: x.transpose(_a, _b) * 1.0, (R(*_s),)))
for _s, _a, _b in [((3, 2, 5), 0, -1), ((1, 2, 1, 3), 0, 3)]:
    case("transpose", f"cnnx.transpose-{_s}-{_a}-{_b}")(
        lambda _s=_s, _a=_a, _b=_b: (lambda x: cnnx.transpose(x, _a, _b) * 1.0, (R(*_s),)))
for _s, _p in [((2, 3), (1, 0)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (0, 1, 2)), ((2, 3, 4, 5), (0, 2, 3, 1)),
               ((5,), (0,)), ((1, 2, 3), (2, 1, 0)), ((2, 1), (1, 0)), ((2, 2, 2), (1, 2, 0)), ((), ()),
               ((3, 1, 2, 1), (3, 2, 1, 0))]:
    case("permute", f"{_s}-{_p}")(lambda _s=_s, _p=_p: (lambda x: x.permute(*_p) * 1.0, (R(*_s),)))
for _s, _p in [((3, 4, 2), (1, 2, 0)), ((2, 1, 2, 3, 1), (4, 0, 3, 1, 2))]:
    case("permute", f"cnnx.permute-{_s}-{_p}")(lambda _s=_s, _p=_p: (lambda x: cnnx.permute(x, _p) * 1.0, (R(*_s),)))

_indices = [((5,), 2), ((5,), slice(1, 4)), ((3, 4), (slice(None), 1)), ((3, 4), (Ellipsis, slice(None, None, 2))),
            ((3, 4), (None, 0)), ((3, 4), [0, 0, 2]), ((3, 4), (slice(None), [1, 3, 1])),
            ((2, 3, 4), (1, slice(0, 2), -1)), ((3, 4), "mask"), ((2, 3, 4), (slice(None), None, slice(None, None, -1))),
            ((4,), "tensor-index"), ((6,), slice(None, None, 2)), ((2, 5), (1,)), ((3, 2, 2), (slice(None), 0)),
            ((4, 3), ([0, 3], [2, 0])), ((1, 4, 2), (0, [1, 1, 3])), ((2, 2, 3, 2), (Ellipsis, 1)), ((3, 3), "mask"),
            ((5, 1), (slice(1, None), 0)), ((), None)]
for _s, _i in _indices:
    def _builder(_s=_s, _i=_i):
        x = R(*_s)
        if _i == "mask":
            index = x.detach() > 0
        elif _i == "tensor-index":
            index = cnnx.tensor([3, 0, 3])
        else:
            index = _i
        return (lambda t: t[index] * 1.0), (x,)
    case("getitem", f"{_s}-{_i}")(_builder)

for _shapes, _d in [(((2, 3), (2, 1)), 1), (((2, 3), (4, 3)), 0), (((2, 3), (2, 3), (2, 3)), -1), (((5,), (2,)), 0),
                    (((1, 2, 3), (2, 2, 3)), 0), (((2, 1, 3), (2, 4, 3)), 1), (((2, 2, 1), (2, 2, 2)), 2),
                    (((3,),), 0), (((2, 0), (2, 3)), 1), (((1, 1), (1, 1), (1, 1), (1, 1)), 0)]:
    case("cat", f"{_shapes}-{_d}")(lambda _s=_shapes, _d=_d: (lambda *xs: cnnx.cat(xs, _d), tuple(R(*s) for s in _s)))
for _shape, _n, _d in [((3,), 2, 0), ((3,), 2, 1), ((2, 3), 3, 0), ((2, 3), 2, 2), ((2, 3), 2, -1), ((), 3, 0),
                       ((1, 2), 1, 1), ((2, 2, 2), 2, 3), ((4,), 4, 0), ((2, 1), 2, 1), ((5, 1), 3, -1), ((2, 3), 4, 1),
                       ((1, 2, 2), 2, 2)]:
    case("stack", f"{_shape}x{_n}-{_d}")(
        lambda _s=_shape, _n=_n, _d=_d: (lambda *xs: cnnx.stack(xs, _d), tuple(R(*_s) for _ in range(_n))))

for _s, _p, _v in [((3, 4), (1, 2), 0.0), ((3, 4), (0, 0, 1, 1), 0.0), ((2, 3, 4), (1, 1, 1, 1, 1, 1), 2.0),
                   ((2, 3), (0, 3), -1.0), ((5,), (2, 0), 0.0), ((1, 1, 2, 2), (1, 1, 1, 1), 0.0), ((2, 3), (), 0.0),
                   ((2, 2), (1, 0, 0, 1), None), ((1, 2, 3, 1), (0, 2, 3, 0), 0.5), ((4,), (1, 1), 3.0),
                   ((2, 1, 3), (2, 1), 1.5), ((1, 3, 2, 2, 2), (1, 0, 0, 1, 1, 1), 0.0), ((6, 1), (0, 2, 1, 0), -2.0)]:
    case("pad", f"{_s}-{_p}-{_v}")(lambda _s=_s, _p=_p, _v=_v: (lambda x: F.pad(x, _p, value=_v), (R(*_s),)))

# ---- matrix products -----------------------------------------------------------------------
for _a, _b in [((3, 4), (4, 5)), ((1, 4), (4, 1)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
               ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 1), (1, 1)), ((5, 3), (3, 5)),
               ((2, 3, 4), (4,))]:
    case("matmul", f"{_a}@{_b}")(lambda _a=_a, _b=_b: (lambda x, y: x @ y, (R(*_a), R(*_b))))
for _x, _out, _bias in [((3, 4), 5, True), ((3, 4), 5, False), ((1, 1), 1, True), ((4,), 3, True), ((2, 3, 4), 2, True),
                        ((2, 1, 2, 3), 4, True), ((7, 2), 1, False), ((1, 6), 6, True), ((5, 5), 5, True),
                        ((2, 4), 3, "frozen-weight")]:
    def _builder(_x=_x, _out=_out, _bias=_bias):
        x, w = R(*_x), R(_out, _x[-1])
        if _bias == "frozen-weight":
            w.requires_grad_(False)
            return F.linear, (x, w, R(_out))
        return (F.linear, (x, w, R(_out))) if _bias else (F.linear, (x, w))
    case("linear", f"{_x}-{_out}-{_bias}")(_builder)

# ---- softmax family, dropout, losses ---------------------------------------------------------
for _s, _d in [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((3, 4), -1), ((2, 3, 4), 1), ((2, 3, 4), 2), ((1, 1), 1),
               ((2, 3, 2, 2), 1), ((4, 1), 1), ((), 0), ((2, 5), 0), ((3, 2, 4), -2), ((1, 3, 1, 2), 1), ((6,), -1)]:
    case("softmax", f"{_s}-{_d}")(lambda _s=_s, _d=_d: (lambda x: F.softmax(x, _d), (R(*_s),)))
    case("log_softmax", f"{_s}-{_d}")(lambda _s=_s, _d=_d: (lambda x: F.log_softmax(x, _d), (R(*_s),)))
case("softmax", "method-dtype")(lambda: (lambda x: x.softmax(1, cnnx.float64), (R(3, 4),)))
case("log_softmax", "method-dtype")(lambda: (lambda x: x.log_softmax(-1, dtype=cnnx.float64), (R(3, 4),)))

for _s, _p, _train in [((10,), 0.5, True), ((3, 4), 0.2, True), ((2, 3, 4), 0.9, True), ((3, 4), 0.0, True),
                       ((3, 4), 0.5, False), ((3, 4), 1.0, True), ((1,), 0.5, True), ((2, 2, 2, 2), 0.3, True),
                       ((5, 1), 0.7, True), ((3, 4), 0.5, "inplace"), ((4, 6), 0.4, True), ((2, 1, 5), 0.5, False),
                       ((3, 3, 3), 0.1, True), ((8,), 0.6, "inplace"), ((2, 3, 1, 2), 0.5, True)]:
    def _builder(_s=_s, _p=_p, _train=_train):
        def fn(x):
            cnnx.manual_seed(7)  # the same mask on every evaluation
            if _train == "inplace":
                return F.dropout(x * 1.0, _p, True, inplace=True)
            return F.dropout(x, _p, _train)
        return fn, (R(*_s),)
    case("dropout", f"{_s}-{_p}-{_train}")(_builder)


def _ce_builder(shape, classes_dim, **kw):
    def build():
        x = R(*shape)
        c = shape[classes_dim]
        tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
        if kw.get("probs"):
            p = np.abs(_rng.standard_normal(shape))
            target = cnnx.tensor(p / p.sum(axis=classes_dim, keepdims=True))
        else:
            t = _rng.integers(0, c, tshape)
            if "ignore_index" in kw and np.size(t):
                # exactly one target ignored: an all-ignored batch has a NaN mean loss (and NaN Jacobians)
                t[t == kw["ignore_index"]] = (kw["ignore_index"] + 1) % c
                t.reshape(-1)[0] = kw["ignore_index"]
            target = cnnx.tensor(t)
        opts = {k: v for k, v in kw.items() if k != "probs"}
        if opts.get("weight") is True:
            opts["weight"] = cnnx.tensor(0.5 + _rng.random(c))
        return (lambda x: F.cross_entropy(x, target, **opts)), (x,)
    return build


for _i, (_shape, _kw) in enumerate([((4, 5), {}), ((5,), {}), ((3, 4), {"reduction": "sum"}),
                                    ((3, 4), {"reduction": "none"}), ((2, 3, 2, 2), {}),
                                    ((4, 3), {"weight": True}), ((4, 3), {"ignore_index": 1}),
                                    ((4, 3), {"label_smoothing": 0.2, "weight": True}), ((3, 4), {"probs": True}),
                                    ((2, 3, 2), {"probs": True, "label_smoothing": 0.1, "reduction": "sum"}),
                                    ((5, 3), {"ignore_index": -100, "weight": True, "reduction": "none"}),
                                    ((4, 3), {"ignore_index": -100}), ((2, 3, 3), {"ignore_index": 2, "reduction": "none"}),
                                    ((6, 2), {"reduction": "sum"}), ((2, 4, 1, 3), {"ignore_index": 0})]):
    case("cross_entropy", f"{_i}-{_shape}-{_kw}")(_ce_builder(_shape, 1 if len(_shape) > 1 else 0, **_kw))


@case("cross_entropy", "probability-target-requires-grad")
def _ce_target_grad():
    p = np.abs(_rng.standard_normal((3, 4)))
    return (lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1)), (R(3, 4), cnnx.tensor(p, requires_grad=True))


def _nll_builder(shape, **kw):
    def build():
        c = shape[1] if len(shape) > 1 else shape[0]
        t = _rng.integers(0, c, shape[:1] + shape[2:] if len(shape) > 1 else ())
        if "ignore_index" in kw and t.size and (t == kw["ignore_index"]).all():
            t.reshape(-1)[-1] = (kw["ignore_index"] + 1) % c  # all ignored: a NaN mean loss
        t = cnnx.tensor(t)
        opts = dict(kw)
        if opts.get("weight") is True:
            opts["weight"] = cnnx.tensor(0.5 + _rng.random(c))
        return (lambda x: F.nll_loss(F.log_softmax(x, 1 if len(shape) > 1 else 0), t, **opts)), (R(*shape),)
    return build


for _i, (_shape, _kw) in enumerate([((4, 5), {}), ((5,), {}), ((3, 4), {"reduction": "sum"}),
                                    ((3, 4), {"reduction": "none"}), ((2, 3, 2, 2), {}), ((4, 3), {"weight": True}),
                                    ((4, 3), {"ignore_index": 0}), ((1, 2), {}), ((2, 3, 4), {"reduction": "none"}),
                                    ((6, 2), {"weight": True, "reduction": "sum"}),
                                    ((3, 6), {"reduction": "none", "weight": True}), ((2, 2, 3), {"ignore_index": 1}),
                                    ((1, 4, 2, 1), {"reduction": "sum"})]):
    case("nll_loss", f"{_i}-{_shape}-{_kw}")(_nll_builder(_shape, **_kw))

for _s, _red, _both in [((3, 4), "mean", False), ((3, 4), "sum", False), ((3, 4), "none", False), ((5,), "mean", True),
                        ((), "mean", True), ((2, 3, 4), "sum", True), ((1,), "none", True), ((2, 2, 2, 2), "mean", False),
                        ((4, 1), "sum", True), ((6,), "none", False), ((2, 5), "mean", True), ((3, 1, 2), "none", True),
                        ((7,), "sum", False)]:
    case("mse_loss", f"{_s}-{_red}-{_both}")(
        lambda _s=_s, _r=_red, _b=_both: (lambda x, y: F.mse_loss(x, y, reduction=_r),
                                          (R(*_s), R(*_s) if _b else R(*_s).detach())))

# ---- convolution, pooling, normalisation (C++ kernels) ----------------------------------------
# Shape classes after reliability.md R3: basic, stride 2 with odd input, padding, kernel == padded
# input, 1x1, groups 2, depthwise (multiplier 1 and 2), non-square, batch 1, C = 1, dilation, 'same'.
_CONV = [  # (input shape, weight shape, kwargs)
    ((2, 3, 6, 6), (4, 3, 3, 3), {}),
    ((2, 2, 7, 7), (3, 2, 3, 3), {"stride": 2}),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"padding": 1}),
    ((2, 2, 3, 3), (3, 2, 5, 5), {"padding": 1}),
    ((2, 4, 4, 4), (3, 4, 1, 1), {}),
    ((1, 4, 5, 5), (4, 2, 3, 3), {"groups": 2}),
    ((1, 3, 5, 5), (3, 1, 3, 3), {"groups": 3, "padding": 1}),
    ((1, 2, 5, 5), (4, 1, 3, 3), {"groups": 2, "stride": 2}),
    ((2, 6, 7, 5), (4, 6, 3, 2), {"padding": (1, 0)}),
    ((1, 1, 6, 6), (2, 1, 3, 3), {"dilation": 2}),
    ((1, 2, 5, 6), (2, 2, 2, 4), {"padding": "same"}),
    ((1, 2, 5, 5), (3, 2, 3, 3), {"padding": "valid", "stride": (1, 2)}),
    ((2, 5, 5), (3, 2, 3, 3), {"padding": "same"}),
]
for _x, _w, _kw in _CONV:
    for _bias in (True, False) if _kw == {} else (True,):
        case("conv2d", f"{_x}-{_w}-{_kw}-bias{_bias}")(
            lambda _x=_x, _w=_w, _kw=_kw, _b=_bias: (
                lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, **_kw),
                (R(*_x), R(*_w)) + ((R(_w[0]),) if _b else ())))

_POOL = [  # (input shape, kwargs)
    ((1, 2, 6, 6), {"kernel_size": 2}),
    ((2, 1, 7, 7), {"kernel_size": 3, "stride": 2}),
    ((1, 2, 5, 5), {"kernel_size": 3, "stride": 1, "padding": 1}),
    ((1, 1, 5, 7), {"kernel_size": (2, 3), "stride": (1, 2)}),
    ((1, 2, 6, 6), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ((1, 1, 4, 4), {"kernel_size": 4}),
    ((2, 3, 3, 3), {"kernel_size": 1}),
    ((1, 1, 7, 6), {"kernel_size": 2, "stride": 3}),
    ((3, 5, 5), {"kernel_size": 2, "stride": 1}),
    ((1, 2, 8, 8), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ((2, 2, 9, 5), {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0)}),
]
for _x, _kw in _POOL:
    case("max_pool2d", f"{_x}-{_kw}")(
        lambda _x=_x, _kw=_kw: (lambda x: F.max_pool2d(x, **_kw), (Rdistinct(*_x),)))
    case("avg_pool2d", f"{_x}-{_kw}")(
        lambda _x=_x, _kw=_kw: (lambda x: F.avg_pool2d(x, **_kw), (R(*_x),)))
case("max_pool2d", "dilation")(
    lambda: (lambda x: F.max_pool2d(x, 2, dilation=2), (Rdistinct(1, 1, 6, 6),)))
case("max_pool2d", "return_indices")(
    lambda: (lambda x: F.max_pool2d(x, 2, return_indices=True)[0], (Rdistinct(1, 2, 4, 4),)))
case("avg_pool2d", "exclude_pad")(
    lambda: (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (R(1, 2, 5, 5),)))
case("avg_pool2d", "exclude_pad-ceil")(
    lambda: (lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), (R(2, 1, 6, 5),)))
case("avg_pool2d", "divisor_override")(
    lambda: (lambda x: F.avg_pool2d(x, 2, divisor_override=3), (R(1, 1, 4, 4),)))

for _x, _o in [((1, 2, 6, 6), 3), ((1, 1, 7, 5), (3, 2)), ((2, 2, 5, 5), 1), ((1, 1, 4, 4), 4), ((1, 1, 3, 3), 5),
               ((1, 2, 7, 7), (None, 2)), ((2, 6, 6), 2), ((1, 1, 1, 1), 1), ((1, 3, 10, 3), (4, 3)), ((1, 1, 6, 9), (4, 5))]:
    case("adaptive_avg_pool2d", f"{_x}-{_o}")(
        lambda _x=_x, _o=_o: (lambda x: F.adaptive_avg_pool2d(x, _o), (R(*_x),)))

for _x, _size, _kw in [((1, 5, 3, 3), 3, {}), ((2, 4, 2, 2), 5, {}), ((1, 3, 2, 2), 1, {}), ((1, 6, 2, 3), 2, {}),
                       ((1, 3, 2, 2), 7, {}), ((1, 4, 3, 3), 3, {"alpha": 0.5, "beta": 0.9, "k": 2.0}),
                       ((2, 5, 4), 3, {}), ((1, 4, 2, 2, 2), 3, {}), ((1, 8, 1, 1), 4, {"alpha": 1.0}),
                       ((1, 5, 2, 2), 5, {"alpha": 1e-4 * 5, "k": 2.0}), ((3, 7, 2, 1), 4, {"beta": 0.5}),
                       ((2, 3, 1, 4), 3, {"k": 0.5})]:
    case("local_response_norm", f"{_x}-{_size}-{_kw}")(
        lambda _x=_x, _s=_size, _kw=_kw: (lambda x: F.local_response_norm(x, _s, **_kw), (R(*_x),)))

for _x, _train, _affine in [((4, 3, 2, 2), True, True), ((4, 3, 2, 2), False, True), ((2, 2, 3, 3), True, False),
                            ((3, 4), True, True), ((2, 3, 5), True, True), ((1, 2, 3, 3), True, True),
                            ((5, 1, 1, 1), True, True), ((2, 3, 2, 2), False, False), ((3, 2, 1, 4), True, True),
                            ((2, 2, 2, 2, 2), True, True), ((6, 2), False, True), ((3, 3, 1, 2), True, False)]:
    def _builder(_x=_x, _train=_train, _affine=_affine):
        c = _x[1]
        rm, rv = cnnx.tensor(_rng.standard_normal(c)), cnnx.tensor(0.5 + _rng.random(c))
        params = (R(c, low=0.5), R(c)) if _affine else ()

        def fn(x, *wb):
            # fresh copies: training updates running statistics in place, which must not drift
            return F.batch_norm(x, rm.clone(), rv.clone(), *wb, training=_train)
        return fn, (R(*_x),) + params
    case("batch_norm", f"{_x}-train{_train}-affine{_affine}")(_builder)


# ---- the tests -------------------------------------------------------------------------------
def _all_cases():
    for op, cases in sorted(CASES.items()):
        for case_id, builder in cases:
            yield pytest.param(builder, id=f"{op}[{case_id}]")


@pytest.mark.parametrize("builder", list(_all_cases()))
def test_gradcheck(builder):
    fn, inputs = builder()
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)


TENSOR_OPS = ["add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "abs", "matmul", "sum", "mean", "max",
              "reshape", "view", "flatten", "unsqueeze", "squeeze", "transpose", "permute", "getitem", "cat", "stack",
              "clone", "to"]


def _shape_class(inputs) -> tuple:
    """A case's shape class: the shapes of its inputs in order, a number counting as "number"."""
    return tuple(tuple(x.shape) if isinstance(x, cnnx.Tensor) else "number" for x in inputs)


@pytest.mark.parametrize("op", list(F.DIFFERENTIABLE) + TENSOR_OPS)
def test_every_differentiable_op_has_ten_gradcheck_shape_classes(op):
    # Counted as distinct input shapes, not as cases: ten options on one shape are one shape class.
    classes = {_shape_class(builder()[1]) for _, builder in CASES.get(op, [])}
    assert len(classes) >= 10, f"{op} has {len(classes)} distinct input shapes among its gradcheck cases, needs >= 10"


def _function_classes():
    """Every Function subclass cnnx defines (its ops modules)."""
    import cnnx.ops.activation, cnnx.ops.conv, cnnx.ops.elementwise, cnnx.ops.linalg  # noqa: F401,E401
    import cnnx.ops.loss, cnnx.ops.norm, cnnx.ops.pool, cnnx.ops.reduce, cnnx.ops.shape  # noqa: F401,E401
    found, todo = set(), [Function]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("cnnx."):
                found.add(sub)
    return found


def _graph_classes(outputs):
    seen, stack = set(), [o.grad_fn for o in (outputs if isinstance(outputs, tuple) else (outputs,))
                          if isinstance(o, cnnx.Tensor) and o.grad_fn is not None]
    while stack:
        node = stack.pop()
        if type(node) in seen:
            continue
        seen.add(type(node))
        stack.extend(p.grad_fn for p in node.parents or () if p is not None and p.grad_fn is not None)
    return seen


def test_every_function_class_is_reached_by_a_gradcheck_case():
    reached = set()
    for cases in CASES.values():
        for _, builder in cases:
            fn, inputs = builder()
            reached |= _graph_classes(fn(*inputs))
    missing = {cls.__name__ for cls in _function_classes() - reached}
    assert not missing, f"Function classes without a gradcheck case: {sorted(missing)}"
