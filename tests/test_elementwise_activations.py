"""Elementwise tanh and sigmoid kernels (cnnx/elementwise.h), forward and backward.

The forwards are approximations (own vector exp and polynomials on the fast paths, the C library on
``ref``), so they are checked against an accuracy contract rather than bitwise: float32 within 2 ulp
of the exact value rounded to float32 over a dense sweep of bit patterns, float64 within 4 ulp of a
long-double reference, and exact special values (+-0, +-inf, NaN, subnormals, saturation). Being
lane-by-lane, they are bitwise repeatable for any thread count and array position. The backwards are
numpy's expressions and are checked bitwise. Then aliasing, bad input, PyTorch, and the autograd
wiring (Tanh and Sigmoid use the kernels on dense float arrays, numpy otherwise).
"""
import numpy as np
import pytest

import cnnx
from cnnx import _C
from cnnx import kernels as K
from cnnx.ops import activation as act_ops
from conftest import num_threads, using_isa
from layer_helpers import DTYPES, noncontiguous, run_fenced
from test_elementwise import _counting, _ro, assert_bitwise, bits, sample

# sample() sprinkles float max into the data, and the tests scale it.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")

LONG_DOUBLE_IS_WIDER = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant


def ordered(a):
    """Float bits mapped to integers that are consecutive for consecutive floats (-0.0 and +0.0 both
    map to 0), so a difference of these is a distance in ulps, across binades and subnormals."""
    a = np.ascontiguousarray(a)
    if a.dtype == np.float32:
        b = a.view(np.int32).astype(np.int64)
        return np.where(b < 0, -(b & 0x7FFFFFFF), b)
    b = a.view(np.int64)
    return np.where(b < 0, -(b & 0x7FFFFFFFFFFFFFFF), b)


def ulp_error(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert not np.isnan(got).any() and not np.isnan(want).any()
    return np.abs(ordered(got) - ordered(want))


def f32_pattern_sweep(hi, step=64):
    """Every `step`-th float32 bit pattern in [0, hi] (subnormals and every binade included), both signs."""
    x = np.arange(0, int(np.float32(hi).view(np.uint32)) + 1, step, dtype=np.uint32).view(np.float32)
    return np.concatenate([x, -x])


def f64_sweep(lo, hi, n=400_000, seed=0):
    """Log-spaced magnitudes from lo to hi with random mantissa jitter, both signs."""
    rng = np.random.default_rng(seed)
    x = np.exp(np.linspace(np.log(lo), np.log(hi), n)) * (1 + 1e-3 * rng.random(n))
    return np.concatenate([x, -x])


def sigmoid_exact(x, dtype):
    """Numpy's stable sigmoid in a wider type (float64 for float32 results, long double for float64)."""
    with np.errstate(under="ignore"):
        w = x.astype(dtype)
        e = np.exp(-np.abs(w))
        return np.where(w >= 0, 1 / (1 + e), e / (1 + e))


# ---------------------------------------------------------------------------------------------
# forward accuracy


def test_tanh_float32_within_2_ulp(isa):
    x = f32_pattern_sweep(20.0)
    want = np.tanh(x.astype(np.float64)).astype(np.float32)
    err = ulp_error(K.tanh_forward(x), want)
    assert err.max() <= 2, (isa, x[err.argmax()], err.max())


@pytest.mark.skipif(not LONG_DOUBLE_IS_WIDER, reason="np.longdouble is float64 here: no wider reference")
def test_tanh_float64_within_4_ulp(isa):
    x = f64_sweep(1e-300, 40.0)
    want = np.tanh(x.astype(np.longdouble)).astype(np.float64)
    err = ulp_error(K.tanh_forward(x), want)
    assert err.max() <= 4, (isa, x[err.argmax()], err.max())


def test_sigmoid_float32_within_2_ulp(isa):
    x = f32_pattern_sweep(110.0)  # past the underflow to 0 near -104 (subnormal results before it)
    want = sigmoid_exact(x, np.float64).astype(np.float32)
    err = ulp_error(K.sigmoid_forward(x), want)
    assert err.max() <= 2, (isa, x[err.argmax()], err.max())


@pytest.mark.skipif(not LONG_DOUBLE_IS_WIDER, reason="np.longdouble is float64 here: no wider reference")
def test_sigmoid_float64_within_4_ulp(isa):
    x = f64_sweep(1e-300, 760.0)  # past the underflow to 0 near -745
    want = sigmoid_exact(x, np.longdouble).astype(np.float64)
    err = ulp_error(K.sigmoid_forward(x), want)
    assert err.max() <= 4, (isa, x[err.argmax()], err.max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_special_values(isa, dtype):
    fi = np.finfo(dtype)
    tiny = np.array([fi.smallest_subnormal, 3 * fi.smallest_subnormal, fi.tiny / 2, fi.tiny, 1e-30], dtype)
    x = np.concatenate([tiny, -tiny]).astype(dtype)
    assert_bitwise(K.tanh_forward(x), x, "tanh of tiny values is the value")  # tanh(x) = x - x^3/3 ...
    z = K.tanh_forward(np.array([0.0, -0.0], dtype))
    assert_bitwise(z, np.array([0.0, -0.0], dtype), "tanh(+-0)")
    big = np.array([np.inf, fi.max, 1e10, 100.0, 25.0, 20.0, 10.0], dtype)
    sat = big[np.tanh(big.astype(np.float64)).astype(dtype) == 1]  # exactly 1 once the exact value rounds to 1
    assert_bitwise(K.tanh_forward(sat), np.ones_like(sat), "saturation")
    assert_bitwise(K.tanh_forward(-sat), -np.ones_like(sat), "negative saturation")
    nan = K.tanh_forward(np.array([np.nan, -np.nan], dtype))
    assert np.isnan(nan).all()
    # Odd symmetry, bitwise, over a sweep.
    x = sample(5000, dtype, 1) * 4
    x = x[~np.isnan(x)]
    assert_bitwise(K.tanh_forward(-x), -K.tanh_forward(x), "odd")
    assert (np.abs(K.tanh_forward(x)) <= 1).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_special_values(isa, dtype):
    fi = np.finfo(dtype)
    x = np.array([0.0, -0.0, np.inf, -np.inf, fi.max, -fi.max, 1e4, -1e4, fi.smallest_subnormal,
                  -fi.smallest_subnormal], dtype)
    want = np.array([0.5, 0.5, 1, 0, 1, 0, 1, 0, 0.5, 0.5], dtype)
    assert_bitwise(K.sigmoid_forward(x), want, "sigmoid specials")
    assert np.isnan(K.sigmoid_forward(np.array([np.nan, -np.nan], dtype))).all()
    # Never negative, never NaN, monotone over a dense sweep of finite values (both signs).
    s = np.sort(f32_pattern_sweep(200.0, step=4096).astype(dtype))
    y = K.sigmoid_forward(s)
    assert not np.isnan(y).any() and (y >= 0).all() and (y <= 1).all()
    assert (np.diff(y) >= 0).all()
    # Saturation: exactly 1 from where 1 - sigmoid is below half an ulp of 1.
    top = np.array([40.0, 60.0, 500.0], dtype)
    top = top[sigmoid_exact(top, np.float64).astype(dtype) == 1]
    assert_bitwise(K.sigmoid_forward(top), np.ones_like(top), "sigmoid saturation")


# ---------------------------------------------------------------------------------------------
# backward: numpy's expressions, bitwise


def assert_bitwise_but_nan_payload(got, want, what=""):
    """Bitwise where the result is a number; NaN in the same places. Which of two NaN operands (or
    the default NaN of inf * 0) an IEEE operation returns is up to the hardware and the operand
    order the compiler picks, so NaN payloads and signs are not part of the contract."""
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), what
    assert_bitwise(got[~nan], want[~nan], what)


def tanh_grad_numpy(g, y):
    return g * (1 - y * y)


def sigmoid_grad_numpy(g, y):
    return g * y * (1 - y)


SIZES = [0, 1, 3, 7, 8, 9, 15, 16, 17, 33, 64, 65, 129, 4097, 65537, 2 * 65536 + 13]


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_bitwise_numpy(isa, dtype):
    with np.errstate(all="ignore"):
        for n in SIZES:
            g, y = sample(n, dtype, 2), sample(n, dtype, 3)
            assert_bitwise_but_nan_payload(K.tanh_backward(g, y), tanh_grad_numpy(g, y), f"tanh backward n={n}")
            assert_bitwise_but_nan_payload(K.sigmoid_backward(g, y), sigmoid_grad_numpy(g, y),
                                           f"sigmoid backward n={n}")
        # Realistic outputs: the saved y of the forward.
        x, g = sample(10007, dtype, 4) * 3, sample(10007, dtype, 5)
        for fwd, bwd, ref in [(K.tanh_forward, K.tanh_backward, tanh_grad_numpy),
                              (K.sigmoid_forward, K.sigmoid_backward, sigmoid_grad_numpy)]:
            y = fwd(x)
            assert_bitwise_but_nan_payload(bwd(g, y), ref(g, y), bwd.__name__)


# ---------------------------------------------------------------------------------------------
# repeatability, position, aliasing, shapes


def all_four(x, g):
    y_t, y_s = K.tanh_forward(x), K.sigmoid_forward(x)
    return y_t, y_s, K.tanh_backward(g, y_t), K.sigmoid_backward(g, y_s)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(isa, dtype, restore_threads):
    n = 5 * 65536 + 77
    x, g = sample(n, dtype, 7) * 5, sample(n, dtype, 8)
    results = []
    for threads in [1, 2, 3, 4, 1]:
        with num_threads(threads):
            results.append(b"".join(bits(r).tobytes() for r in all_four(x, g)))
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize("dtype", DTYPES)
def test_value_does_not_depend_on_position(isa, dtype):
    """Full vectors, the 4-vector steps and the masked tail compute a lane the same way."""
    x = sample(1000, dtype, 9) * 5
    for fwd in (K.tanh_forward, K.sigmoid_forward):
        whole = fwd(x)
        for shift in (1, 3, 7, 13):
            assert_bitwise(fwd(x[shift:].copy()), whole[shift:], f"{fwd.__name__} shift {shift}")
        singles = np.concatenate([fwd(x[i:i + 1].copy()) for i in range(0, 1000, 37)])
        assert_bitwise(singles, whole[::37], f"{fwd.__name__} one at a time")


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_close_to_ref(fast_isa, dtype):
    x = sample(20000, dtype, 10) * 6
    x = x[np.isfinite(x)]
    with using_isa("ref"):
        want_t, want_s = K.tanh_forward(x), K.sigmoid_forward(x)
    # Each is within its contract of the exact value, so within the sum of the two of each other.
    assert ulp_error(K.tanh_forward(x), want_t).max() <= 4
    assert ulp_error(K.sigmoid_forward(x), want_s).max() <= 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_aliasing(isa, dtype):
    x, g = sample(1001, dtype, 11) * 3, sample(1001, dtype, 12)
    for fwd, bwd in [(K.tanh_forward, K.tanh_backward), (K.sigmoid_forward, K.sigmoid_backward)]:
        y = fwd(x)
        buf = x.copy()
        assert fwd(buf, inplace=True) is buf
        assert_bitwise(buf, y, f"{fwd.__name__} in place")
        want = bwd(g, y)
        g2 = g.copy()
        assert bwd(g2, y, out=g2) is g2
        assert_bitwise(g2, want, f"{bwd.__name__} out=grad_output")
        y2 = y.copy()
        assert bwd(g, y2, out=y2) is y2
        assert_bitwise(y2, want, f"{bwd.__name__} out=output")
        # A partial overlap is read through a copy (numpy's result).
        b = np.concatenate([g, y[:1]])
        with np.errstate(all="ignore"):
            expect = (tanh_grad_numpy if bwd is K.tanh_backward else sigmoid_grad_numpy)(b[1:], b[:-1])
        assert_bitwise(bwd(b[1:], b[:-1], out=b[:-1]), expect, f"{bwd.__name__} overlap")


@pytest.mark.parametrize("shape", [(), (1,), (3, 0, 5), (2, 3), (64, 3, 7, 5)],
                         ids=lambda s: "x".join(map(str, s)) or "0d")
def test_any_shape_and_strided_inputs(isa, shape):
    x = sample(int(np.prod(shape)), np.float32, 13).reshape(shape)
    for fwd in (K.tanh_forward, K.sigmoid_forward):
        y = fwd(x)
        assert y.shape == shape and y.dtype == np.float32 and y.flags.c_contiguous
    x = sample(6 * 37, np.float64, 14).reshape(6, 37)
    g = sample(6 * 37, np.float64, 15).reshape(6, 37)
    for fwd, bwd in [(K.tanh_forward, K.tanh_backward), (K.sigmoid_forward, K.sigmoid_backward)]:
        y = fwd(x)
        assert_bitwise(fwd(noncontiguous(x)), y)
        assert_bitwise(fwd(_ro(x)), y)
        assert_bitwise(bwd(noncontiguous(g), noncontiguous(y)), bwd(g, y))


def test_no_access_outside_arrays():
    run_fenced(r"""
from cnnx import _C
from cnnx import kernels as K
rng = np.random.default_rng(0)
for isa in _C.available_isas():
    _C.set_isa(isa)
    for dtype in (np.float32, np.float64):
        for n in (1, 3, 7, 9, 17, 63, 65, 4097):
            for at_end in (True, False):
                print(isa, dtype.__name__, n, at_end, flush=True)
                x = rng.standard_normal(n).astype(dtype)
                g = rng.standard_normal(n).astype(dtype)
                for fwd, bwd in ((K.tanh_forward, K.tanh_backward), (K.sigmoid_forward, K.sigmoid_backward)):
                    y = fwd(x)
                    assert np.array_equal(fwd(fenced(x, at_end)), y)
                    fx = fenced(x, at_end)
                    fwd(fx, inplace=True)
                    assert np.array_equal(fx, y)
                    assert np.array_equal(bwd(fenced(g, at_end), fenced(y, at_end)), bwd(g, y))
print("done")
""")


# ---------------------------------------------------------------------------------------------
# bad input (the relu bindings' contract)

X = np.ones((2, 3, 4), np.float32)

BAD_INPUTS = []
for _name in ("tanh", "sigmoid"):
    _f, _b = getattr(K, f"{_name}_forward"), getattr(K, f"{_name}_backward")
    BAD_INPUTS += [
        (f"{_name} input list", lambda f=_f: f([1.0, -1.0]), TypeError, "'input'.*list"),
        (f"{_name} input None", lambda f=_f: f(None), TypeError, "'input'"),
        (f"{_name} input int32", lambda f=_f: f(X.astype(np.int32)), TypeError, "'input'.*int32"),
        (f"{_name} input float16", lambda f=_f: f(X.astype(np.float16)), TypeError, "'input'.*float16"),
        (f"{_name} input big-endian", lambda f=_f: f(X.astype(">f4")), TypeError, "'input'"),
        (f"{_name} inplace read-only", lambda f=_f: f(_ro(X), inplace=True), ValueError, "'input'.*writeable"),
        (f"{_name} inplace strided", lambda f=_f: f(X[:, ::2], inplace=True), ValueError, "'input'.*contiguous"),
        (f"{_name} inplace int", lambda f=_f: f(X, inplace=1), TypeError, "'inplace'"),
        (f"{_name} backward grad list", lambda b=_b: b(X.tolist(), X), TypeError, "'grad_output'"),
        (f"{_name} backward output int", lambda b=_b: b(X, X.astype(np.int64)), TypeError, "'output'"),
        (f"{_name} backward mixed dtypes", lambda b=_b: b(X.astype(np.float64), X), TypeError,
         "'grad_output'.*dtype of 'output'.*float32.*float64"),
        (f"{_name} backward shape", lambda b=_b: b(X[:1], X), ValueError, r"'grad_output'.*\(2, 3, 4\).*\(1, 3, 4\)"),
        (f"{_name} backward broadcast", lambda b=_b: b(X[:, :1], X), ValueError, "'grad_output'.*broadcasting"),
        (f"{_name} backward out dtype", lambda b=_b: b(X, X, out=np.empty(X.shape)), TypeError, "'out'"),
        (f"{_name} backward out read-only", lambda b=_b: b(X, X, out=_ro(X)), ValueError, "'out'.*writeable"),
        (f"{_name} backward out strided", lambda b=_b: b(X, X, out=np.empty((2, 3, 8), np.float32)[..., ::2]),
         ValueError, "'out'.*contiguous"),
    ]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_naming_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# PyTorch


@pytest.mark.parametrize("dtype", DTYPES)
def test_close_to_torch(dtype):
    torch = pytest.importorskip("torch")
    x = sample(50000, dtype, 16) * 4
    x = x[~np.isnan(x)]
    g = sample(x.size, dtype, 17)
    g = np.where(np.isfinite(g), g, 1).astype(dtype)
    eps = np.finfo(dtype).eps
    for name, fwd, bwd in [("tanh", K.tanh_forward, K.tanh_backward),
                           ("sigmoid", K.sigmoid_forward, K.sigmoid_backward)]:
        tx = torch.from_numpy(x.copy()).requires_grad_()
        ty = getattr(torch, name)(tx)
        ty.backward(torch.from_numpy(g))
        y = fwd(x)
        # Both are within a few ulp of the exact value.
        assert ulp_error(y, ty.detach().numpy()).max() <= 4, name
        # Same y: the gradients differ only in rounding (PyTorch may fuse, and groups sigmoid's
        # product differently): |difference| within a few eps of |g|.
        ours = bwd(g, ty.detach().numpy())
        np.testing.assert_array_less(np.abs(ours - tx.grad.numpy()), 4 * eps * np.abs(g) + np.finfo(dtype).tiny)


# ---------------------------------------------------------------------------------------------
# autograd wiring


def test_ops_call_the_kernels_on_dense_float_arrays(monkeypatch, restore_threads):
    names = ("tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward")
    counts = _counting(monkeypatch, *names)
    F = cnnx.nn.functional
    a = cnnx.randn(4, 5, requires_grad=True)
    cnnx.set_num_threads(1)  # one thread: np.tanh is the faster forward (Tanh.forward)
    F.tanh(a)
    assert counts["tanh_forward"] == 0
    cnnx.set_num_threads(2)
    t = F.tanh(a)
    s = F.sigmoid(a)
    assert counts == {"tanh_forward": 1, "tanh_backward": 0, "sigmoid_forward": 1, "sigmoid_backward": 0}
    (t + s).backward(cnnx.ones(4, 5))
    assert counts == {"tanh_forward": 1, "tanh_backward": 1, "sigmoid_forward": 1, "sigmoid_backward": 1}
    x = a.detach().numpy()
    yt, ys = K.tanh_forward(x), K.sigmoid_forward(x)
    assert_bitwise(t.detach().numpy(), yt)
    one = np.ones_like(x)
    assert_bitwise(a.grad.numpy(), tanh_grad_numpy(one, yt) + sigmoid_grad_numpy(one, ys))


@pytest.mark.parametrize("case", ["strided", "0-d", "float16"])
def test_ops_fall_back_to_numpy(monkeypatch, case):
    counts = _counting(monkeypatch, "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward")
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    if case == "strided":
        x = noncontiguous(x)
    elif case == "0-d":
        x = np.array(x[0, 0])
    else:
        x = x.astype(np.float16)
    F = cnnx.nn.functional
    np.testing.assert_array_equal(F.tanh(cnnx.from_numpy(x)).numpy(), np.tanh(x))
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    np.testing.assert_array_equal(F.sigmoid(cnnx.from_numpy(x)).numpy(), np.where(x >= 0, r, e * r))
    assert set(counts.values()) == {0}


def test_backward_fallback_is_the_same_expression():
    """A strided gradient takes numpy's path: the same bits as the kernel."""
    y = K.tanh_forward(sample(40, np.float32, 18))
    g = sample(40, np.float32, 19)
    for cls in (act_ops.Tanh, act_ops.Sigmoid):
        ctx = object.__new__(cls)
        ctx.saved_tensors = (y,)
        with np.errstate(all="ignore"):
            assert_bitwise(cls.backward(ctx, noncontiguous(g)), cls.backward(ctx, g), cls.__name__)
