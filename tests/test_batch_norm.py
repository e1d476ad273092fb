
import numpy as np
import pytest

from cnnx import kernels as K
from conftest import num_threads, using_isa
from layer_helpers import DTYPES, assert_within, noncontiguous, numeric_grad, run_fenced

# ---------------------------------------------------------------------------------------------
# independent float64 oracle (numpy reductions over the (N, H, W) axes)

AXES = (0, 2, 3)


def per_channel(v):
    return v[None, :, None, None]


def bn_oracle(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """(output, mean, invstd, new running_mean, new running_var) in float64."""
    a = x.astype(np.float64)
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight.astype(np.float64)
    b = np.zeros(c) if bias is None else bias.astype(np.float64)
    rm = None if running_mean is None else running_mean.astype(np.float64)
    rv = None if running_var is None else running_var.astype(np.float64)
    if training:
        m = a.size // c
        mean = a.mean(AXES)
        var = a.var(AXES)
        if rm is not None:
            rm = (1 - momentum) * rm + momentum * mean
            rv = (1 - momentum) * rv + momentum * var * m / (m - 1)
    else:
        mean, var = rm, rv
    invstd = 1 / np.sqrt(var + eps)
    y = (a - per_channel(mean)) * per_channel(invstd * w) + per_channel(b)
    return y, mean, invstd, rm, rv


def bn_grad_oracle(g, x, weight, mean, invstd, training):
    """(grad_input, grad_weight, grad_bias) in float64 from the saved statistics."""
    g, a = g.astype(np.float64), x.astype(np.float64)
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight.astype(np.float64)
    mean, invstd = mean.astype(np.float64), invstd.astype(np.float64)
    xhat = (a - per_channel(mean)) * per_channel(invstd)
    grad_bias = g.sum(AXES)
    grad_weight = (g * xhat).sum(AXES)
    if training:
        m = a.size // c
        gx = per_channel(w * invstd) * (g - per_channel(grad_bias / m) - xhat * per_channel(grad_weight / m))
    else:
        gx = g * per_channel(w * invstd)
    return gx, grad_weight, grad_bias


def sample(shape, dtype, seed, loc=0.0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + loc).astype(dtype)


def params(c, dtype, seed, affine=True):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1.5, c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    return w, b, rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)


# Prime channel counts, HW = 1 (statistics over the batch only), N = 1, planes that fill whole
# registers or leave tails, channels of 100k values (the benchmark layers' size).
SHAPES = [(4, 7, 5, 9), (16, 3, 1, 1), (1, 5, 13, 17), (2, 13, 8, 8), (3, 2, 33, 31), (2, 4, 112, 112)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def bound(dtype, m, magnitude):
    return 4 * (np.log2(max(m, 2)) + 8) * np.finfo(dtype).eps * magnitude + 1e-300


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_oracle(isa, dtype, shape, training, affine):
    x = sample(shape, dtype, 1, loc=3.0, scale=2.0)
    w, b, rm, rv = params(shape[1], dtype, 2, affine)
    expected, mean, invstd, erm, erv = bn_oracle(x, w, b, rm, rv, training, 0.1, 1e-5)
    rm_before, rv_before = rm.copy(), rv.copy()
    y, save_mean, save_invstd = K.batch_norm_forward(x, w, b, rm, rv, training, 0.1, 1e-5)
    m = x.size // shape[1]
    assert y.dtype == save_mean.dtype == save_invstd.dtype == dtype
    assert save_mean.shape == save_invstd.shape == (shape[1],)
    scale = np.abs(per_channel(invstd * (1 if w is None else w)))
    magnitude = (np.abs(x) + np.abs(per_channel(mean))) * scale + np.abs(expected)
    assert_within(y, expected, bound(dtype, m, magnitude), f"{isa} output")
    assert_within(save_mean, mean, bound(dtype, m, np.abs(x).mean(AXES) + 1e-30), "save_mean")
    assert_within(save_invstd, invstd, bound(dtype, m, invstd), "save_invstd")
    if training:
        assert_within(rm, erm, bound(dtype, m, np.abs(erm) + np.abs(x).mean(AXES)), "running_mean")
        assert_within(rv, erv, bound(dtype, m, np.abs(erv)), "running_var")
    else:  # eval reads the running statistics and leaves them alone
        assert np.array_equal(rm, rm_before) and np.array_equal(rv, rv_before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_without_running_statistics(isa, dtype):
    x = sample((4, 3, 6, 6), dtype, 3)
    y, save_mean, save_invstd = K.batch_norm_forward(x, None, None, None, None, True)
    expected, mean, invstd, _, _ = bn_oracle(x, None, None, None, None, True, 0.1, 1e-5)
    assert_within(y, expected, bound(dtype, 144, np.abs(expected) + 10), isa)
    assert_within(save_invstd, invstd, bound(dtype, 144, invstd), isa)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES[:5], ids=SHAPE_IDS[:5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_matches_oracle(isa, dtype, shape, training):
    x = sample(shape, dtype, 4, loc=-1.0, scale=3.0)
    g = sample(shape, dtype, 5)
    w, b, rm, rv = params(shape[1], dtype, 6)
    _, save_mean, save_invstd = K.batch_norm_forward(x, w, b, rm, rv, training)
    gx, gw, gb = K.batch_norm_backward(g, x, w, save_mean, save_invstd, training)
    egx, egw, egb = bn_grad_oracle(g, x, w, save_mean, save_invstd, training)
    m = x.size // shape[1]
    xhat = np.abs((x - per_channel(save_mean.astype(np.float64))) * per_channel(save_invstd.astype(np.float64)))
    assert_within(gb, egb, bound(dtype, m, np.abs(g).sum(AXES)), f"{isa} grad_bias")
    assert_within(gw, egw, bound(dtype, m, (np.abs(g) * (xhat + 1)).sum(AXES)), f"{isa} grad_weight")
    magnitude = per_channel(w * save_invstd) * (np.abs(g) + (np.abs(g).mean(AXES)[None, :, None, None]) +
                                                xhat * per_channel((np.abs(g) * xhat).mean(AXES)) + xhat)
    assert_within(gx, egx, bound(dtype, m, magnitude), f"{isa} grad_input")


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(3, 2, 2, 3), (4, 3, 1, 1), (1, 2, 3, 5)], ids=["3x2x2x3", "4x3x1x1", "1x2x3x5"])
def test_backward_finite_differences(isa, shape, training, affine):
    x = sample(shape, np.float64, 7, loc=0.5)
    g = sample(shape, np.float64, 8)
    w, b, rm, rv = params(shape[1], np.float64, 9, affine)
    _, save_mean, save_invstd = K.batch_norm_forward(x, w, b, rm.copy(), rv.copy(), training)
    gx, gw, gb = K.batch_norm_backward(g, x, w, save_mean, save_invstd, training)
    # Every forward call gets fresh running statistics so they do not drift between evaluations.
    fwd = lambda v, w_, b_: K.batch_norm_forward(v, w_, b_, rm.copy(), rv.copy(), training)[0]  # noqa: E731
    assert_within(gx, numeric_grad(lambda v: fwd(v, w, b), x.copy(), g), 1e-7, f"{isa} grad_input")
    if affine:
        assert_within(gw, numeric_grad(lambda v: fwd(x, v, b), w.copy(), g), 1e-7, f"{isa} grad_weight")
        assert_within(gb, numeric_grad(lambda v: fwd(x, w, v), b.copy(), g), 1e-7, f"{isa} grad_bias")


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_mean_is_accurate(isa, dtype):
    """Two-pass double sums: a mean 10^4 standard deviations away from zero costs float32 data no
    accuracy (float64 data keeps the double sum's own error, m * eps64 relative to the mean)."""
    x = sample((8, 3, 20, 20), dtype, 10, loc=1e4, scale=1.0)
    y, save_mean, save_invstd = K.batch_norm_forward(x, None, None, None, None, True)
    expected, mean, invstd, _, _ = bn_oracle(x, None, None, None, None, True, 0.1, 1e-5)
    assert np.allclose(save_invstd, invstd, rtol=8 * np.finfo(dtype).eps)
    # y's error: rounding 1e4 * invstd-sized terms once in the dtype, plus the sum's error.
    m = x.size // 3
    scale = 1e4 * np.abs(invstd).max()
    assert_within(y, expected, 4 * np.finfo(dtype).eps * scale + 2 * m * np.finfo(np.float64).eps * scale, isa)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_zero(isa, training):
    x = np.zeros((0, 3, 4, 4), np.float32)
    w, b, rm, rv = params(3, np.float32, 11)
    rm_before, rv_before = rm.copy(), rv.copy()
    y, save_mean, save_invstd = K.batch_norm_forward(x, w, b, rm, rv, training)
    assert y.shape == x.shape and save_mean.shape == (3,)
    assert np.array_equal(rm, rm_before) and np.array_equal(rv, rv_before)
    if training:
        assert (save_mean == 0).all() and (save_invstd == 0).all()
    gx, gw, gb = K.batch_norm_backward(x, x, w, save_mean, save_invstd, training)
    assert gx.shape == x.shape and (gw == 0).all() and (gb == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_in_a_channel_stays_in_that_channel(isa, dtype):
    x = sample((2, 3, 4, 20), dtype, 12)
    x[1, 1, 2, 3] = np.nan
    y, save_mean, save_invstd = K.batch_norm_forward(x, None, None, None, None, True)
    assert np.isnan(y[:, 1]).all() and np.isnan(save_mean[1])
    assert np.isfinite(y[:, [0, 2]]).all() and np.isfinite(save_mean[[0, 2]]).all()


# ---------------------------------------------------------------------------------------------
# fast paths, layouts, repeatability


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_match_ref(fast_isa, dtype, training):
    x = sample((4, 6, 29, 31), dtype, 13, loc=2.0)
    g = sample(x.shape, dtype, 14)
    w, b, rm, rv = params(6, dtype, 15)
    with using_isa("ref"):
        ref = K.batch_norm_forward(x, w, b, rm.copy(), rv.copy(), training)
        ref_g = K.batch_norm_backward(g, x, w, ref[1], ref[2], training)
    got = K.batch_norm_forward(x, w, b, rm.copy(), rv.copy(), training)
    got_g = K.batch_norm_backward(g, x, w, ref[1], ref[2], training)
    eps = np.finfo(dtype).eps
    for a, r in zip(got + got_g, ref + ref_g):
        assert_within(a, r.astype(np.float64), 64 * eps * (np.abs(r) + np.abs(r).mean() + 1e-30), fast_isa)


@pytest.mark.parametrize("which", ["input", "weight", "grad_output", "save_invstd"])
def test_input_layouts_give_the_same_results(isa, which):
    x = sample((3, 4, 5, 7), np.float64, 16)
    g = sample(x.shape, np.float64, 17)
    w, b, rm, rv = params(4, np.float64, 18)
    y, sm, si = K.batch_norm_forward(x, w, b, rm.copy(), rv.copy(), True)
    grads = K.batch_norm_backward(g, x, w, sm, si, True)
    args = {"input": x, "weight": w, "grad_output": g, "save_invstd": si}
    args[which] = noncontiguous(args[which])
    y2, _, _ = K.batch_norm_forward(args["input"], args["weight"], b, rm.copy(), rv.copy(), True)
    grads2 = K.batch_norm_backward(args["grad_output"], args["input"], args["weight"], sm, args["save_invstd"], True)
    assert np.array_equal(y, y2) and all(np.array_equal(a, b_) for a, b_ in zip(grads, grads2))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(isa, dtype, training, restore_threads):
    x = sample((5, 7, 21, 23), dtype, 19)
    g = sample(x.shape, dtype, 20)
    w, b, rm, rv = params(7, dtype, 21)
    results = []
    for threads in [1, 2, 3, 1]:
        with num_threads(threads):
            rm_t, rv_t = rm.copy(), rv.copy()
            out = K.batch_norm_forward(x, w, b, rm_t, rv_t, training)
            out += K.batch_norm_backward(g, x, w, out[1], out[2], training)
            results.append(b"".join(a.tobytes() for a in out + (rm_t, rv_t)))
    assert all(r == results[0] for r in results)


def test_no_access_outside_arrays():
    run_fenced(r"""
from cnnx import _C
from cnnx import kernels as K
rng = np.random.default_rng(0)
for isa in _C.available_isas():
    _C.set_isa(isa)
    for dtype in (np.float32, np.float64):
        for shape in [(2, 3, 5, 7), (3, 2, 1, 1), (2, 2, 8, 16)]:
            for training in (True, False):
                for at_end in (True, False):
                    print(isa, dtype.__name__, shape, training, at_end, flush=True)
                    x = rng.standard_normal(shape).astype(dtype)
                    g = rng.standard_normal(shape).astype(dtype)
                    w, b = np.ones(shape[1], dtype), np.zeros(shape[1], dtype)
                    rm, rv = np.zeros(shape[1], dtype), np.ones(shape[1], dtype)
                    out = K.batch_norm_forward(x, w, b, rm.copy(), rv.copy(), training)
                    frm, frv = fenced(rm, at_end), fenced(rv, at_end)
                    out2 = K.batch_norm_forward(fenced(x, at_end), fenced(w, at_end), fenced(b, at_end), frm, frv,
                                                training)
                    assert all(np.array_equal(a, b_) for a, b_ in zip(out, out2))
                    gr = K.batch_norm_backward(g, x, w, out[1], out[2], training)
                    gr2 = K.batch_norm_backward(fenced(g, at_end), fenced(x, at_end), fenced(w, at_end),
                                                fenced(out[1], at_end), fenced(out[2], at_end), training)
                    assert all(np.array_equal(a, b_) for a, b_ in zip(gr, gr2))
print("done")
""")


# ---------------------------------------------------------------------------------------------
# bad input

X = np.ones((2, 3, 4, 4), np.float32)
V = np.ones(3, np.float32)


def _ro(a):
    a = a.copy()
    a.flags.writeable = False
    return a


BAD_INPUTS = [
    ("input list", lambda: K.batch_norm_forward([[1.0]], None, None, None, None, True), TypeError, "'input'"),
    ("input int", lambda: K.batch_norm_forward(X.astype(np.int32), None, None, None, None, True), TypeError,
     "'input'"),
    ("input 3-D", lambda: K.batch_norm_forward(X[0], None, None, None, None, True), ValueError, "'input'"),
    ("input 2-D", lambda: K.batch_norm_forward(X[0, 0], None, None, None, None, True), ValueError, "'input'"),
    ("weight dtype", lambda: K.batch_norm_forward(X, V.astype(np.float64), None, None, None, True), TypeError,
     "'weight'"),
    ("weight size", lambda: K.batch_norm_forward(X, np.ones(4, np.float32), None, None, None, True), ValueError,
     "'weight'"),
    ("weight 2-D", lambda: K.batch_norm_forward(X, np.ones((3, 1), np.float32), None, None, None, True), ValueError,
     "'weight'"),
    ("bias size", lambda: K.batch_norm_forward(X, V, np.ones(2, np.float32), None, None, True), ValueError, "'bias'"),
    ("bias list", lambda: K.batch_norm_forward(X, V, [0.0, 0.0, 0.0], None, None, True), TypeError, "'bias'"),
    ("running_mean size", lambda: K.batch_norm_forward(X, V, V, np.zeros(4, np.float32), V.copy(), True),
     ValueError, "'running_mean'"),
    ("running_var dtype", lambda: K.batch_norm_forward(X, V, V, V.copy(), np.ones(3), True), TypeError,
     "'running_var'"),
    ("running_var missing", lambda: K.batch_norm_forward(X, V, V, V.copy(), None, True), ValueError,
     "'running_var'"),
    ("running_mean missing", lambda: K.batch_norm_forward(X, V, V, None, V.copy(), False), ValueError,
     "'running_mean'"),
    ("eval without stats", lambda: K.batch_norm_forward(X, V, V, None, None, False), ValueError, "'running_mean'"),
    ("running read-only", lambda: K.batch_norm_forward(X, V, V, _ro(V), V.copy(), True), ValueError,
     "'running_mean'"),
    ("running strided", lambda: K.batch_norm_forward(X, V, V, V.copy(), np.ones(6, np.float32)[::2], True),
     ValueError, "'running_var'"),
    ("one value per channel", lambda: K.batch_norm_forward(np.ones((1, 3, 1, 1), np.float32), None, None, None,
                                                           None, True), ValueError, "'input'.*more than 1 value"),
    ("momentum None", lambda: K.batch_norm_forward(X, V, V, V.copy(), V.copy(), True, None), TypeError,
     "'momentum'"),
    ("momentum nan", lambda: K.batch_norm_forward(X, V, V, V.copy(), V.copy(), True, np.nan), ValueError,
     "'momentum'"),
    ("eps negative", lambda: K.batch_norm_forward(X, V, V, None, None, True, 0.1, -1e-5), ValueError, "'eps'"),
    ("eps inf", lambda: K.batch_norm_forward(X, V, V, None, None, True, 0.1, np.inf), ValueError, "'eps'"),
    ("training int", lambda: K.batch_norm_forward(X, V, V, None, None, 1), TypeError, "'training'"),
    ("backward grad shape", lambda: K.batch_norm_backward(X[:1], X, V, V, V), ValueError, "'grad_output'"),
    ("backward grad dtype", lambda: K.batch_norm_backward(X.astype(np.float64), X, V, V, V), TypeError,
     "'grad_output'"),
    ("backward save_mean None", lambda: K.batch_norm_backward(X, X, V, None, V), ValueError, "'save_mean'"),
    ("backward save_invstd size", lambda: K.batch_norm_backward(X, X, V, V, np.ones(2, np.float32)), ValueError,
     "'save_invstd'"),
    ("backward weight dtype", lambda: K.batch_norm_backward(X, X, np.ones(3), V, V), TypeError, "'weight'"),
    ("backward training None", lambda: K.batch_norm_backward(X, X, V, V, V, None), TypeError, "'training'"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_naming_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_failed_call_leaves_running_statistics_untouched():
    rm, rv = V.copy(), V.copy()
    with pytest.raises(ValueError, match="'bias'"):
        K.batch_norm_forward(X * 3, V, np.ones(2, np.float32), rm, rv, True)
    assert (rm == 1).all() and (rv == 1).all()


# ---------------------------------------------------------------------------------------------
# PyTorch, when installed


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES[:5], ids=SHAPE_IDS[:5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(dtype, shape, training, affine):
    torch = pytest.importorskip("torch")
    x = sample(shape, dtype, 22, loc=1.5, scale=2.0)
    g = sample(shape, dtype, 23)
    w, b, rm, rv = params(shape[1], dtype, 24, affine)
    trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    tx = torch.from_numpy(x).requires_grad_()
    tw = None if w is None else torch.from_numpy(w).requires_grad_()
    tb = None if b is None else torch.from_numpy(b).requires_grad_()
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training, 0.1, 1e-5)
    ty.backward(torch.from_numpy(g))
    y, sm, si = K.batch_norm_forward(x, w, b, rm, rv, training, 0.1, 1e-5)
    tol = 200 * np.finfo(dtype).eps
    assert np.allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    assert np.allclose(rm, trm.numpy(), rtol=tol, atol=tol) and np.allclose(rv, trv.numpy(), rtol=tol, atol=tol)
    gx, gw, gb = K.batch_norm_backward(g, x, w, sm, si, training)
    assert np.allclose(gx, tx.grad.numpy(), rtol=tol, atol=tol)
    if affine:
        scale = np.abs(g).sum(AXES) * tol
        assert np.allclose(gw, tw.grad.numpy(), rtol=tol, atol=scale.max())
        assert np.allclose(gb, tb.grad.numpy(), rtol=tol, atol=scale.max())
