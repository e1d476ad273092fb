
import numpy as np
import pytest

from cnnx import kernels as K
from conftest import num_threads, using_isa
from layer_helpers import DTYPES, assert_within, noncontiguous, numeric_grad, run_fenced, same_with_nan

# ---------------------------------------------------------------------------------------------
# independent float64 oracle: squares padded along the channel axis as PyTorch pads them
# (size//2 before, (size-1)//2 after), window sums by slicing


def pad_channels(v, before, after):
    zeros = lambda n: np.zeros(v.shape[:1] + (n,) + v.shape[2:])  # noqa: E731
    return np.concatenate([zeros(before), v, zeros(after)], axis=1)


def window_sum(v, size, before=None, after=None):
    """sum over channels [c - before, c + after] of v (zero outside), PyTorch's window by default."""
    before = size // 2 if before is None else before
    after = (size - 1) // 2 if after is None else after
    padded = pad_channels(v, before, after)
    return sum(padded[:, j:j + v.shape[1]] for j in range(size))


def lrn_oracle(x, size, alpha, beta, k):
    """(output, scale, |error| scale for the bound)."""
    a = x.astype(np.float64)
    scale = k + alpha / size * window_sum(a * a, size)
    return a / scale**beta, scale


def lrn_grad_oracle(g, x, size, alpha, beta, k):
    """The gradient by the chain rule written with the transposed window: channel j collects
    q_c = g_c * y_c / scale_c from every c whose window holds j, i.e. c in [j - (size-1)//2, j + size//2].
    Also returns the magnitude of the terms for the error bound."""
    a, g = x.astype(np.float64), g.astype(np.float64)
    y, scale = lrn_oracle(x, size, alpha, beta, k)
    q = g * y / scale
    qsum = window_sum(q, size, (size - 1) // 2, size // 2)
    qabs = window_sum(np.abs(q), size, (size - 1) // 2, size // 2)
    first = g / scale**beta
    coef = 2 * alpha * beta / size
    return first - coef * a * qsum, np.abs(first) + np.abs(coef * a) * qabs


def sample(shape, dtype, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


# (shape, size): prime channel counts, even sizes, windows wider than C, spatial sizes that fill
# whole register blocks, leave scalar tails, or fit in no register at all.
GRID = [((2, 7, 5, 9), 5), ((1, 13, 11, 11), 3), ((2, 5, 3, 3), 2), ((1, 6, 1, 1), 4), ((1, 3, 17, 19), 15),
        ((1, 1, 8, 8), 5), ((3, 11, 7, 5), 1), ((1, 8, 55, 55), 5), ((0, 4, 5, 5), 3), ((2, 4, 6, 0), 3),
        ((1, 9, 2, 33), 6)]
GRID_IDS = [f"{'x'.join(map(str, s))}-n{n}" for s, n in GRID]
PARAMS = [(1e-4, 0.75, 1.0), (0.5, 0.75, 2.0), (0.3, 0.5, 1.0), (0.2, 1.0, 0.5), (0.4, 0.6, 1.5)]
PARAM_IDS = ["torch-default", "beta.75", "beta.5", "beta1", "beta.6"]


def forward_bound(dtype, y, size, beta):
    return (2 * ((size + 2) * abs(beta) + 6)) * np.finfo(dtype).eps * np.abs(y) + 1e-300


@pytest.mark.parametrize("alpha,beta,k", PARAMS, ids=PARAM_IDS)
@pytest.mark.parametrize("shape,size", GRID, ids=GRID_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_oracle(isa, dtype, shape, size, alpha, beta, k):
    x = sample(shape, dtype, 1, 2.0)
    y, scale = K.local_response_norm_forward(x, size, alpha, beta, k)
    ey, es = lrn_oracle(x, size, alpha, beta, k)
    assert y.dtype == dtype and scale.dtype == dtype
    assert_within(scale, es, 2 * (size + 2) * np.finfo(dtype).eps * es, f"{isa} scale")
    assert_within(y, ey, forward_bound(dtype, ey, size, beta), f"{isa} output")


@pytest.mark.parametrize("alpha,beta,k", PARAMS, ids=PARAM_IDS)
@pytest.mark.parametrize("shape,size", GRID, ids=GRID_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_matches_oracle(isa, dtype, shape, size, alpha, beta, k):
    x = sample(shape, dtype, 2, 2.0)
    g = sample(shape, dtype, 3)
    y, scale = K.local_response_norm_forward(x, size, alpha, beta, k)
    gx = K.local_response_norm_backward(g, x, y, scale, size, alpha, beta, k)
    expected, magnitude = lrn_grad_oracle(g, x, size, alpha, beta, k)
    assert gx.dtype == dtype
    assert_within(gx, expected, 4 * (size + 8) * np.finfo(dtype).eps * magnitude + 1e-300, f"{isa} grad")


FD = [((1, 5, 3, 4), 3), ((1, 4, 2, 3), 2), ((1, 3, 2, 2), 5), ((2, 6, 1, 3), 4), ((1, 7, 2, 9), 1)]


@pytest.mark.parametrize("alpha,beta,k", PARAMS[1:], ids=PARAM_IDS[1:])
@pytest.mark.parametrize("shape,size", FD, ids=[f"{'x'.join(map(str, s))}-n{n}" for s, n in FD])
def test_backward_finite_differences(isa, shape, size, alpha, beta, k):
    x = sample(shape, np.float64, 4)
    g = sample(shape, np.float64, 5)
    y, scale = K.local_response_norm_forward(x, size, alpha, beta, k)
    gx = K.local_response_norm_backward(g, x, y, scale, size, alpha, beta, k)
    num = numeric_grad(lambda v: K.local_response_norm_forward(v, size, alpha, beta, k)[0], x.copy(), g)
    assert_within(gx, num, 1e-8 * (1 + np.abs(num)), f"{isa} {shape} n={size}")


def test_alexnet_paper_parameters_convert_by_size(isa):
    """The AlexNet paper divides by (k + alpha_paper * sum a^2)^beta; PyTorch's alpha is divided by
    size, so the paper's layer is alpha = size * alpha_paper."""
    x = sample((2, 9, 6, 6), np.float64, 6, 30.0)
    n, alpha_paper, beta, k = 5, 1e-4, 0.75, 2.0
    y, _ = K.local_response_norm_forward(x, n, n * alpha_paper, beta, k)
    paper = x / (k + alpha_paper * window_sum(x * x, n)) ** beta
    assert_within(y, paper, 1e-14 * np.abs(paper), "paper")


# ---------------------------------------------------------------------------------------------
# NaN / Inf matrix


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_inf_matrix(isa, dtype, special):
    for shape, size in [((1, 9, 4, 40), 5), ((1, 4, 3, 3), 2)]:
        x = sample(shape, dtype, 7)
        x[0, 4 % shape[1], 1, 2] = special
        x[0, 0, 0, :2] = special
        with np.errstate(invalid="ignore", divide="ignore"):
            ey, es = lrn_oracle(x, size, 0.2, 0.75, 1.0)
        y, scale = K.local_response_norm_forward(x, size, 0.2, 0.75, 1.0)
        # Where the oracle is finite the kernel must be close; the specials must match exactly.
        for kind in (np.isnan, np.isposinf, np.isneginf):
            assert np.array_equal(kind(y), kind(ey)), (isa, kind.__name__)
            assert np.array_equal(kind(scale), kind(es)), (isa, kind.__name__)
        finite = np.isfinite(ey)
        assert np.allclose(y[finite], ey[finite], rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("dtype", DTYPES)
def test_square_overflow_saturates_like_the_formula(isa, dtype):
    """x^2 overflowing the dtype makes scale inf and the window's outputs x / inf = 0, the
    overflowing element's own output included."""
    big = np.sqrt(np.finfo(dtype).max) * 4
    x = np.ones((1, 5, 2, 20), dtype)
    x[0, 2, 1, 7] = big
    y, scale = K.local_response_norm_forward(x, 3, 1.0, 0.75, 1.0)
    assert np.isposinf(scale[0, 1:4, 1, 7]).all()
    assert (y[0, 1:4, 1, 7] == 0).all()
    assert np.isfinite(y[:, :, 0]).all()


# ---------------------------------------------------------------------------------------------
# fast paths, layouts, repeatability


@pytest.mark.parametrize("beta", [0.75, 0.5, 1.0, 0.6])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_match_ref(fast_isa, dtype, beta):
    x = sample((2, 16, 27, 27), dtype, 8, 3.0)
    g = sample(x.shape, dtype, 9)
    with using_isa("ref"):
        ry, rs = K.local_response_norm_forward(x, 5, 0.3, beta, 1.0)
        rg = K.local_response_norm_backward(g, x, ry, rs, 5, 0.3, beta, 1.0)
    y, s = K.local_response_norm_forward(x, 5, 0.3, beta, 1.0)
    assert np.array_equal(s, rs)  # the window sums are the reference's, in the same order
    eps = np.finfo(dtype).eps
    assert_within(y, ry.astype(np.float64), 8 * eps * np.abs(ry), f"{fast_isa} output")
    gx = K.local_response_norm_backward(g, x, ry, rs, 5, 0.3, beta, 1.0)
    _, magnitude = lrn_grad_oracle(g, x, 5, 0.3, beta, 1.0)
    assert_within(gx, rg.astype(np.float64), 16 * eps * magnitude, f"{fast_isa} grad")


@pytest.mark.parametrize("which", ["input", "grad_output", "output", "scale"])
def test_input_layouts_give_the_same_results(isa, which):
    x = sample((2, 6, 5, 17), np.float32, 10)
    g = sample(x.shape, np.float32, 11)
    y, s = K.local_response_norm_forward(x, 3, 0.1, 0.75, 1.0)
    args = {"grad_output": g, "input": x, "output": y, "scale": s}
    expected = K.local_response_norm_backward(**args, size=3, alpha=0.1, beta=0.75, k=1.0)
    args[which] = noncontiguous(args[which])
    assert np.array_equal(K.local_response_norm_backward(**args, size=3, alpha=0.1, beta=0.75, k=1.0), expected)
    if which == "input":
        y2, s2 = K.local_response_norm_forward(np.asfortranarray(x), 3, 0.1, 0.75, 1.0)
        assert np.array_equal(y2, y) and np.array_equal(s2, s)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(isa, dtype, restore_threads):
    x = sample((3, 10, 31, 37), dtype, 12)
    g = sample(x.shape, dtype, 13)
    results = []
    for threads in [1, 2, 3, 1]:
        with num_threads(threads):
            y, s = K.local_response_norm_forward(x, 5, 0.1, 0.75, 2.0)
            gx = K.local_response_norm_backward(g, x, y, s, 5, 0.1, 0.75, 2.0)
            results.append(y.tobytes() + s.tobytes() + gx.tobytes())
    assert all(r == results[0] for r in results)


def test_no_access_outside_arrays():
    run_fenced(r"""
from cnnx import _C
from cnnx import kernels as K
rng = np.random.default_rng(0)
for isa in _C.available_isas():
    _C.set_isa(isa)
    for dtype in (np.float32, np.float64):
        for shape, size in [((1, 5, 7, 7), 5), ((2, 3, 1, 37), 2), ((1, 4, 32, 32), 3)]:
            for at_end in (True, False):
                print(isa, dtype.__name__, shape, size, at_end, flush=True)
                x = rng.standard_normal(shape).astype(dtype)
                g = rng.standard_normal(shape).astype(dtype)
                y, s = K.local_response_norm_forward(x, size, 0.1, 0.75, 1.0)
                y2, s2 = K.local_response_norm_forward(fenced(x, at_end), size, 0.1, 0.75, 1.0)
                assert np.array_equal(y, y2) and np.array_equal(s, s2)
                gx = K.local_response_norm_backward(g, x, y, s, size, 0.1, 0.75, 1.0)
                gx2 = K.local_response_norm_backward(fenced(g, at_end), fenced(x, at_end), fenced(y, at_end),
                                                     fenced(s, at_end), size, 0.1, 0.75, 1.0)
                assert np.array_equal(gx, gx2)
print("done")
""")


# ---------------------------------------------------------------------------------------------
# bad input

X = np.ones((1, 4, 3, 3), np.float32)
Y, S = K.local_response_norm_forward(X, 3)

BAD_INPUTS = [
    ("input list", lambda: K.local_response_norm_forward([[1.0]], 3), TypeError, "'input'"),
    ("input int", lambda: K.local_response_norm_forward(np.ones((1, 4, 3, 3), np.int64), 3), TypeError, "'input'"),
    ("input 3-D", lambda: K.local_response_norm_forward(np.ones((4, 3, 3), np.float32), 3), ValueError, "'input'"),
    ("input 5-D", lambda: K.local_response_norm_forward(np.ones((1, 4, 3, 3, 1), np.float32), 3), ValueError,
     "'input'"),
    ("size 0", lambda: K.local_response_norm_forward(X, 0), ValueError, "'size'"),
    ("size negative", lambda: K.local_response_norm_forward(X, -3), ValueError, "'size'"),
    ("size float", lambda: K.local_response_norm_forward(X, 3.0), TypeError, "'size'"),
    ("size None", lambda: K.local_response_norm_forward(X, None), TypeError, "'size'"),
    ("alpha nan", lambda: K.local_response_norm_forward(X, 3, alpha=np.nan), ValueError, "'alpha'"),
    ("beta inf", lambda: K.local_response_norm_forward(X, 3, beta=np.inf), ValueError, "'beta'"),
    ("k str", lambda: K.local_response_norm_forward(X, 3, k="1"), TypeError, "'k'"),
    ("backward mixed dtype", lambda: K.local_response_norm_backward(X.astype(np.float64), X, Y, S, 3), TypeError,
     "'input'"),
    ("backward scale dtype", lambda: K.local_response_norm_backward(X, X, Y, S.astype(np.float64), 3), TypeError,
     "'scale'"),
    ("backward shape", lambda: K.local_response_norm_backward(X, X[:, :3], Y, S, 3), ValueError, "'input'"),
    ("backward output shape", lambda: K.local_response_norm_backward(X, X, Y[:, :, :2], S, 3), ValueError,
     "'output'"),
    ("backward scale None", lambda: K.local_response_norm_backward(X, X, Y, None, 3), TypeError, "'scale'"),
    ("backward size 0", lambda: K.local_response_norm_backward(X, X, Y, S, 0), ValueError, "'size'"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_naming_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# PyTorch, when installed

TORCH_CASES = [((2, 7, 5, 9), 5), ((1, 6, 4, 4), 2), ((1, 3, 6, 7), 7), ((2, 8, 13, 13), 4), ((1, 5, 3, 3), 1)]


@pytest.mark.parametrize("alpha,beta,k", PARAMS, ids=PARAM_IDS)
@pytest.mark.parametrize("shape,size", TORCH_CASES, ids=[f"{'x'.join(map(str, s))}-n{n}" for s, n in TORCH_CASES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(dtype, shape, size, alpha, beta, k):
    torch = pytest.importorskip("torch")
    x = sample(shape, dtype, 14, 2.0)
    g = sample(shape, dtype, 15)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.local_response_norm(tx, size, alpha, beta, k)
    ty.backward(torch.from_numpy(g))
    y, s = K.local_response_norm_forward(x, size, alpha, beta, k)
    tol = 50 * np.finfo(dtype).eps
    assert np.allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    gx = K.local_response_norm_backward(g, x, y, s, size, alpha, beta, k)
    assert np.allclose(gx, tx.grad.numpy(), rtol=tol * 10, atol=tol * 10)


def test_nan_and_overflow_match_torch():
    torch = pytest.importorskip("torch")
    x = np.ones((1, 6, 2, 20), np.float32)
    x[0, 1, 0, 3] = np.nan
    x[0, 4, 1, 9] = 1e30
    x[0, 2, 1, 1] = -np.inf
    ty = torch.nn.functional.local_response_norm(torch.from_numpy(x), 3, 1e-4, 0.75, 1.0)
    y, _ = K.local_response_norm_forward(x, 3, 1e-4, 0.75, 1.0)
    assert same_with_nan(np.where(np.isfinite(y), 0, y), np.where(np.isfinite(ty.numpy()), 0, ty.numpy()))
    finite = np.isfinite(y)
    assert np.allclose(y[finite], ty.numpy()[finite], rtol=1e-6)
