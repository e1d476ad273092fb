import math

import numpy as np
import pytest

from cnnx import kernels as K
from conftest import num_threads, using_isa
from layer_helpers import DTYPES, assert_within, noncontiguous, numeric_grad, run_fenced, same_with_nan

# ---------------------------------------------------------------------------------------------
# independent float64 oracles: every window gathered with numpy fancy indexing


def out_size(n, k, s, p, d, ceil_mode):
    span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    o = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def taps(count, k, s, p, d, size):
    """Positions (count, k) of each window's taps along one dimension, and which are inside."""
    pos = np.arange(count)[:, None] * s - p + np.arange(k)[None, :] * d
    return pos, (pos >= 0) & (pos < size)


def windows(x, k, s, p, d, ceil_mode):
    """Every window's taps in scan order: values (N, C, OH, OW, T), flat positions and validity
    (OH, OW, T)."""
    n, c, h, w = x.shape
    oh, ow = out_size(h, k[0], s[0], p[0], d[0], ceil_mode), out_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    rows, rv = taps(oh, k[0], s[0], p[0], d[0], h)
    cols, cv = taps(ow, k[1], s[1], p[1], d[1], w)
    flat = rows[:, None, :, None] * w + cols[None, :, None, :]
    valid = rv[:, None, :, None] & cv[None, :, None, :]
    flat = flat.reshape(oh, ow, -1)
    valid = valid.reshape(oh, ow, -1)
    vals = x.reshape(n, c, h * w).astype(np.float64)[..., np.where(valid, flat, 0)]
    return vals, flat, valid


def max_oracle(x, k, s=None, p=(0, 0), d=(1, 1), ceil_mode=False):
    """PyTorch's CPU rule: the last NaN of the window if any, else its first maximum; -inf and -1
    for a window with no tap inside the input."""
    s = s or k
    vals, flat, valid = windows(x, k, s, p, d, ceil_mode)
    valid = np.broadcast_to(valid, vals.shape)
    is_nan = np.isnan(vals) & valid
    best = np.max(np.where(valid & ~is_nan, vals, -np.inf), axis=-1)
    first_best = np.argmax(valid & (vals == best[..., None]), axis=-1)
    last_nan = vals.shape[-1] - 1 - np.argmax(is_nan[..., ::-1], axis=-1)
    any_nan = is_nan.any(-1)
    tap = np.where(any_nan, last_nan, first_best)
    value = np.where(any_nan, np.nan, best)
    index = np.take_along_axis(np.broadcast_to(flat, vals.shape), tap[..., None], -1)[..., 0]
    empty = ~valid.any(-1)
    return np.where(empty, -np.inf, value), np.where(empty, -1, index)


def avg_oracle(x, k, s=None, p=(0, 0), ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Sum of the taps inside the input over PyTorch's divisor; also the magnitude sum |x| for
    error bounds."""
    s = s or k
    vals, flat, valid = windows(x, k, s, p, (1, 1), ceil_mode)
    total = np.sum(np.where(valid, vals, 0.0), -1)
    magnitude = np.sum(np.where(valid, np.abs(vals), 0.0), -1)
    h, w = x.shape[2:]
    oh, ow = total.shape[2:]
    if divisor_override is not None:
        div = np.full((oh, ow), float(divisor_override))
    elif count_include_pad:  # taps inside the padded input [-p, size + p)
        rows, _ = taps(oh, k[0], s[0], p[0], 1, h)
        cols, _ = taps(ow, k[1], s[1], p[1], 1, w)
        rc = ((rows >= -p[0]) & (rows < h + p[0])).sum(1)
        cc = ((cols >= -p[1]) & (cols < w + p[1])).sum(1)
        div = (rc[:, None] * cc[None, :]).astype(float)
    else:
        div = valid.sum(-1).astype(float)
    return total / div, magnitude / np.abs(div)


def adaptive_oracle(x, out):
    n, c, h, w = x.shape
    y = np.zeros((n, c) + tuple(out))
    for i in range(out[0]):
        r0, r1 = math.floor(i * h / out[0]), math.ceil((i + 1) * h / out[0])
        for j in range(out[1]):
            c0, c1 = math.floor(j * w / out[1]), math.ceil((j + 1) * w / out[1])
            y[:, :, i, j] = x[:, :, r0:r1, c0:c1].astype(np.float64).mean(axis=(2, 3))
    return y


def max_backward_oracle(g, idx, h, w):
    n, c = g.shape[:2]
    gx = np.zeros((n * c, h * w))
    rows = np.repeat(np.arange(n * c), g.shape[2] * g.shape[3])
    keep = idx.reshape(-1) >= 0
    np.add.at(gx, (rows[keep], idx.reshape(-1)[keep]), g.reshape(-1).astype(np.float64)[keep])
    return gx.reshape(n, c, h, w)


def bound_avg(dtype, magnitude, taps_count):
    return (taps_count + 2) * np.finfo(dtype).eps * magnitude + 1e-300


# ---------------------------------------------------------------------------------------------
# the edge grid: (shape, kernel, stride, padding, dilation, ceil_mode)
# Wide rows (W >= 2*16*stride) reach the register path; narrow ones the scalar and window paths.

GRID = [
    ((2, 3, 7, 7), (3, 3), (2, 2), (0, 0), (1, 1), False),
    ((2, 5, 55, 55), (3, 3), (2, 2), (0, 0), (1, 1), False),     # AlexNet's overlapping pool
    ((1, 3, 16, 64), (2, 2), (2, 2), (0, 0), (1, 1), False),     # VGG's
    ((1, 7, 13, 71), (3, 3), (2, 2), (1, 1), (1, 1), False),     # ResNet's, odd sizes
    ((1, 7, 13, 71), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((2, 3, 11, 50), (3, 3), (1, 1), (1, 1), (1, 1), False),     # GoogLeNet's stride-1 pool
    ((1, 5, 9, 100), (3, 2), (3, 3), (1, 1), (1, 1), True),      # stride 3 (gathers), non-square
    ((1, 3, 10, 90), (3, 3), (2, 3), (1, 0), (2, 2), False),     # dilation 2 (max only)
    ((1, 2, 12, 40), (2, 4), (1, 2), (1, 2), (1, 1), True),
    ((1, 3, 6, 6), (6, 6), (1, 1), (0, 0), (1, 1), False),       # kernel == input: 1x1 output
    ((1, 3, 5, 5), (6, 6), (1, 1), (3, 3), (1, 1), False),       # kernel > input, padded
    ((1, 2, 7, 7), (7, 7), (7, 7), (0, 0), (1, 1), False),       # global, as ResNet's head
    ((1, 3, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1), False),
    ((0, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),       # batch 0
    ((1, 2, 5, 8), (2, 2), (3, 3), (1, 1), (1, 1), True),        # ceil mode drops the last window
    ((1, 1, 2, 2), (2, 2), (1, 1), (1, 1), (3, 3), False),       # windows with no tap inside
]
GRID_IDS = [f"{s[0]}x{s[1]}x{s[2]}x{s[3]}-k{k[0]}{k[1]}s{st[0]}{st[1]}p{p[0]}{p[1]}d{d[0]}{d[1]}{'c' if c else ''}"
            for s, k, st, p, d, c in GRID]


def sample(shape, dtype, seed, distinct=False):
    rng = np.random.default_rng(seed)
    if distinct:  # no ties, values spaced far above the finite-difference step
        return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 1.0).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("case", GRID, ids=GRID_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_matches_oracle(isa, dtype, case):
    shape, k, s, p, d, ceil_mode = case
    x = sample(shape, dtype, 1)
    y, idx = K.max_pool2d_forward(x, k, s, p, d, ceil_mode)
    value, index = max_oracle(x, k, s, p, d, ceil_mode)
    assert y.dtype == dtype and idx.dtype == np.int64
    assert np.array_equal(y, value.astype(dtype)) and np.array_equal(idx, index)


@pytest.mark.parametrize("case", [c for c in GRID if c[4] == (1, 1)], ids=[i for c, i in zip(GRID, GRID_IDS) if c[4] == (1, 1)])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_matches_oracle(isa, dtype, case, count_include_pad):
    shape, k, s, p, _, ceil_mode = case
    x = sample(shape, dtype, 2)
    y = K.avg_pool2d_forward(x, k, s, p, ceil_mode, count_include_pad)
    value, magnitude = avg_oracle(x, k, s, p, ceil_mode, count_include_pad)
    assert y.dtype == dtype
    assert_within(y, value, bound_avg(dtype, magnitude, k[0] * k[1]), f"{isa} {case}")


@pytest.mark.parametrize("divisor", [1, 7, -3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_divisor_override(isa, dtype, divisor):
    x = sample((1, 3, 9, 70), dtype, 3)
    for k, s, p in [((3, 3), (2, 2), (1, 1)), ((2, 5), (1, 2), (0, 2))]:
        y = K.avg_pool2d_forward(x, k, s, p, True, False, divisor)
        value, magnitude = avg_oracle(x, k, s, p, True, False, divisor)
        assert_within(y, value, bound_avg(dtype, magnitude, k[0] * k[1]), f"{isa} divisor {divisor}")


ADAPTIVE = [((2, 3, 7, 7), (1, 1)), ((1, 5, 13, 11), (4, 3)), ((1, 3, 5, 7), (9, 12)), ((1, 2, 6, 64), (6, 64)),
            ((1, 2, 56, 56), (7, 7)), ((1, 3, 10, 50), (3, 1)), ((0, 3, 4, 4), (2, 2))]


@pytest.mark.parametrize("shape,out", ADAPTIVE, ids=[f"{s}->{o}" for s, o in ADAPTIVE])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_avg_pool_matches_oracle(isa, dtype, shape, out):
    x = sample(shape, dtype, 4)
    y = K.adaptive_avg_pool2d_forward(x, out)
    value = adaptive_oracle(x, out)
    magnitude = adaptive_oracle(np.abs(x), out)
    window = max(-(-shape[2] // out[0]) + 1, 1) * max(-(-shape[3] // out[1]) + 1, 1)
    assert_within(y, value, bound_avg(dtype, magnitude, window), f"{isa} {shape}->{out}")


def test_adaptive_output_size_none_keeps_input_size():
    x = sample((2, 3, 6, 10), np.float64, 5)
    assert K.adaptive_avg_pool2d_forward(x, (None, 5)).shape == (2, 3, 6, 5)
    assert K.adaptive_avg_pool2d_forward(x, (3, None)).shape == (2, 3, 3, 10)
    assert np.allclose(K.adaptive_avg_pool2d_forward(x, (None, None)), x)
    assert K.adaptive_avg_pool2d_forward(x, 4).shape == (2, 3, 4, 4)


# ---------------------------------------------------------------------------------------------
# backward


@pytest.mark.parametrize("case", GRID, ids=GRID_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_backward_matches_oracle(isa, dtype, case):
    shape, k, s, p, d, ceil_mode = case
    x = sample(shape, dtype, 6)
    y, idx = K.max_pool2d_forward(x, k, s, p, d, ceil_mode)
    g = sample(y.shape, dtype, 7)
    gx = K.max_pool2d_backward(g, idx, shape[2:])
    expected = max_backward_oracle(g, idx, *shape[2:])
    magnitude = max_backward_oracle(np.abs(g), idx, *shape[2:])
    assert gx.dtype == dtype and gx.shape == shape
    assert_within(gx, expected, k[0] * k[1] * np.finfo(dtype).eps * magnitude, f"{isa} {case}")


@pytest.mark.parametrize("case", [c for c in GRID if c[4] == (1, 1)], ids=[i for c, i in zip(GRID, GRID_IDS) if c[4] == (1, 1)])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_backward_is_the_adjoint(isa, dtype, case, count_include_pad):
    """<avg(x), g> == <x, avg_backward(g)> for every x: checked on the unit vectors, i.e. the
    gradient equals the oracle's transpose applied to g."""
    shape, k, s, p, _, ceil_mode = case
    y_shape = avg_oracle(np.zeros(shape), k, s, p, ceil_mode)[0].shape
    g = sample(y_shape, dtype, 8)
    gx = K.avg_pool2d_backward(g, shape[2:], k, s, p, ceil_mode, count_include_pad)
    # The oracle's gradient: every output spreads g / divisor over its taps.
    vals, flat, valid = windows(np.zeros(shape), k, s, p, (1, 1), ceil_mode)
    ones = avg_oracle(np.ones(shape), k, s, p, ceil_mode, count_include_pad)[0]  # taps / divisor
    share = g.astype(np.float64) * ones / np.maximum(valid.sum(-1), 1)
    expected = np.zeros((shape[0], shape[1], shape[2] * shape[3]))
    for t in range(flat.shape[-1]):
        keep = valid[..., t]
        np.add.at(expected, (slice(None), slice(None), flat[..., t][keep]), share[..., keep])
    magnitude = np.abs(expected) + np.finfo(dtype).tiny
    bound = 4 * k[0] * k[1] * np.finfo(dtype).eps * (np.abs(g).max(initial=0) + 1) * np.ones_like(magnitude)
    assert_within(gx.reshape(expected.shape), expected, bound, f"{isa} {case}")


ADAPTIVE_FD = [(s, o) for s, o in ADAPTIVE if s[0] > 0]


@pytest.mark.parametrize("shape,out", ADAPTIVE_FD, ids=[f"{s}->{o}" for s, o in ADAPTIVE_FD])
def test_adaptive_backward_finite_differences(isa, shape, out):
    x = sample((1, 2) + shape[2:], np.float64, 9)
    g = sample((1, 2) + out, np.float64, 10)
    gx = K.adaptive_avg_pool2d_backward(g, shape[2:])
    num = numeric_grad(lambda v: K.adaptive_avg_pool2d_forward(v, out), x.copy(), g)
    assert_within(gx, num, 1e-8, f"{isa} {shape}->{out}")


FD_CASES = [GRID[0], GRID[3], GRID[6], GRID[8], GRID[10], GRID[14]]


@pytest.mark.parametrize("case", FD_CASES, ids=[GRID_IDS[GRID.index(c)] for c in FD_CASES])
def test_max_pool_backward_finite_differences(isa, case):
    shape, k, s, p, d, ceil_mode = case
    shape = (1, 2) + shape[2:]
    x = sample(shape, np.float64, 11, distinct=True)
    y, idx = K.max_pool2d_forward(x, k, s, p, d, ceil_mode)
    g = sample(y.shape, np.float64, 12)
    gx = K.max_pool2d_backward(g, idx, shape[2:])
    num = numeric_grad(lambda v: K.max_pool2d_forward(v, k, s, p, d, ceil_mode)[0], x.copy(), g)
    assert_within(gx, num, 1e-7, f"{isa} {case}")


@pytest.mark.parametrize("case", FD_CASES, ids=[GRID_IDS[GRID.index(c)] for c in FD_CASES])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_backward_finite_differences(isa, case, count_include_pad):
    shape, k, s, p, _, ceil_mode = case
    shape = (1, 2) + shape[2:]
    x = sample(shape, np.float64, 13)
    f = lambda v: K.avg_pool2d_forward(v, k, s, p, ceil_mode, count_include_pad)  # noqa: E731
    g = sample(f(x).shape, np.float64, 14)
    gx = K.avg_pool2d_backward(g, shape[2:], k, s, p, ceil_mode, count_include_pad)
    assert_within(gx, numeric_grad(f, x.copy(), g), 1e-8, f"{isa} {case}")


def test_max_pool_backward_skips_minus_one_and_rejects_other_bad_indices(isa):
    g = np.ones((1, 1, 2, 2), np.float32)
    idx = np.array([[[[0, -1], [3, 3]]]], np.int64)
    gx = K.max_pool2d_backward(g, idx, (2, 2))
    assert np.array_equal(gx, np.array([[[[1, 0], [0, 2]]]], np.float32))
    for bad in (4, -2, 2**40, -(2**62)):
        idx[0, 0, 0, 1] = bad
        with pytest.raises(ValueError, match="'indices'"):
            K.max_pool2d_backward(g, idx, (2, 2))


# ---------------------------------------------------------------------------------------------
# NaN / Inf matrix and ties (max pooling must equal the oracle exactly, indices included)

SPECIALS = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


@pytest.mark.parametrize("pattern", ["one", "two", "row", "all", "mixed"])
@pytest.mark.parametrize("special", list(SPECIALS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_nan_inf_matrix(isa, dtype, special, pattern):
    rng = np.random.default_rng(hash((special, pattern)) % 2**32)
    for shape, k, s, p in [((1, 2, 9, 70), (3, 3), (2, 2), (1, 1)), ((1, 2, 8, 64), (2, 2), (2, 2), (0, 0)),
                           ((1, 1, 7, 7), (7, 7), (7, 7), (0, 0))]:
        x = rng.standard_normal(shape).astype(dtype)
        v = SPECIALS[special]
        if pattern == "one":
            x.reshape(-1)[rng.choice(x.size, x.size // 10, replace=False)] = v
        elif pattern == "two":  # pairs of specials next to each other: the index rule decides
            at = rng.choice(x.size - 1, x.size // 10, replace=False)
            x.reshape(-1)[at] = v
            x.reshape(-1)[at + 1] = v
        elif pattern == "row":
            x[:, :, ::3, :] = v
        elif pattern == "all":
            x[...] = v
        else:
            x.reshape(-1)[rng.choice(x.size, x.size // 4, replace=False)] = rng.choice([np.nan, np.inf, -np.inf], x.size // 4)
        y, idx = K.max_pool2d_forward(x, k, s, p)
        value, index = max_oracle(x, k, s, p)
        assert same_with_nan(y, value.astype(dtype)), f"{isa} {shape} values"
        assert np.array_equal(idx, index), f"{isa} {shape} indices"
        gx = K.max_pool2d_backward(np.ones_like(y), idx, shape[2:])
        assert gx.sum() == y.size  # every output routes its gradient to exactly one input


@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_propagates_nan_and_inf(isa, dtype):
    x = np.zeros((1, 1, 4, 64), dtype)
    x[0, 0, 0, 0], x[0, 0, 2, 40], x[0, 0, 3, 10], x[0, 0, 3, 11] = np.nan, np.inf, np.inf, -np.inf
    y = K.avg_pool2d_forward(x, 2, 2)
    with np.errstate(invalid="ignore"):
        value, _ = avg_oracle(x, (2, 2))
    assert same_with_nan(y, value.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_pick_the_first_index(isa, dtype):
    rng = np.random.default_rng(15)
    for shape, k, s, p in [((2, 3, 9, 80), (3, 3), (2, 2), (1, 1)), ((1, 2, 10, 70), (3, 3), (1, 1), (1, 1)),
                           ((1, 2, 8, 64), (2, 2), (2, 2), (0, 0))]:
        x = rng.integers(0, 2, shape).astype(dtype)  # mostly ties
        y, idx = K.max_pool2d_forward(x, k, s, p)
        value, index = max_oracle(x, k, s, p)
        assert np.array_equal(y, value) and np.array_equal(idx, index)
        x[...] = -np.inf  # all ties at -inf: the first tap inside the input
        _, idx = K.max_pool2d_forward(x, k, s, p)
        assert np.array_equal(idx, max_oracle(x, k, s, p)[1])


# ---------------------------------------------------------------------------------------------
# fast paths vs the reference, layouts, repeatability


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_match_ref_on_network_shapes(fast_isa, dtype):
    x = sample((2, 16, 55, 55), dtype, 16)
    for k, s, p in [((3, 3), (2, 2), (0, 0)), ((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1))]:
        with using_isa("ref"):
            ref_y, ref_i = K.max_pool2d_forward(x, k, s, p)
            ref_a = K.avg_pool2d_forward(x, k, s, p)
            ref_g = K.max_pool2d_backward(ref_y, ref_i, x.shape[2:])
        y, i = K.max_pool2d_forward(x, k, s, p)
        assert np.array_equal(y, ref_y) and np.array_equal(i, ref_i)
        assert np.array_equal(K.max_pool2d_backward(ref_y, ref_i, x.shape[2:]), ref_g)
        # Register rows add in the reference's order: equal bit for bit.
        assert np.array_equal(K.avg_pool2d_forward(x, k, s, p), ref_a)


@pytest.mark.parametrize("shape, k, s, p, ceil_mode", [
    ((3, 6, 28, 28), 2, 2, 0, False),   # LeNet's S2
    ((2, 16, 10, 10), 2, 2, 0, False),  # LeNet's S4
    ((2, 3, 7, 9), 3, 2, 1, True),      # padded, overlapping, ceil mode
    ((1, 4, 5, 5), 3, 1, 1, False),     # stride 1: every input in up to 9 windows
    ((1, 2, 13, 11), (2, 3), (3, 1), (1, 0), True),
    ((2, 2, 40, 40), 2, 2, 0, False),   # wide rows: the register-row forward, the flat backward
])
@pytest.mark.parametrize("count_include_pad, divisor", [(True, None), (False, None), (True, 5)])
def test_flat_avg_pool_equals_reference_bitwise(fast_isa, shape, k, s, p, ceil_mode, count_include_pad, divisor):
    """Small planes take the flat (gathering) average-pooling kernels: same sums, same order."""
    for dtype in DTYPES:
        x = sample(shape, dtype, 31)
        args = (k, s, p, ceil_mode, count_include_pad, divisor)
        y = K.avg_pool2d_forward(x, *args)
        g = sample(y.shape, dtype, 32)
        gx = K.avg_pool2d_backward(g, shape[2:], *args)
        with using_isa("ref"):
            want_y = K.avg_pool2d_forward(x, *args)
            want_gx = K.avg_pool2d_backward(g, shape[2:], *args)
        assert np.array_equal(y, want_y) and np.array_equal(gx, want_gx)


@pytest.mark.parametrize("shape, k, s, d, ceil_mode", [
    ((3, 6, 28, 28), 2, 2, 1, False),   # LeNet's max variant
    ((2, 8, 14, 14), 2, 2, 1, False),   # VGG16's pool5
    ((2, 4, 13, 13), 3, 2, 1, False),   # AlexNet's pool5
    ((2, 4, 14, 14), 3, 2, 1, True),    # GoogLeNet's pool4: ceil mode, windows past the input
    ((1, 3, 11, 9), (2, 3), (1, 2), (2, 1), True),
])
def test_flat_max_pool_equals_reference_bitwise(fast_isa, shape, k, s, d, ceil_mode):
    """Narrow rows without padding take the flat (gathering) max-pool kernel: same maxima, same
    indices, NaN and tie rules included."""
    for dtype in DTYPES:
        x = np.round(sample(shape, dtype, 41) * 4) / 4  # many ties
        x.reshape(-1)[::13] = np.nan
        x.reshape(-1)[3::7] = -np.inf
        x[0, 0] = -np.inf                                   # a plane of -inf: the first index wins
        y, idx = K.max_pool2d_forward(x, k, s, 0, d, ceil_mode)
        with using_isa("ref"):
            want_y, want_idx = K.max_pool2d_forward(x, k, s, 0, d, ceil_mode)
        assert np.array_equal(y, want_y, equal_nan=True) and np.array_equal(idx, want_idx)


INPUT_LAYOUTS = {
    "noncontiguous": noncontiguous,
    "fortran": np.asfortranarray,
    "transposed": lambda x: np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
    "flipped": lambda x: np.flip(np.flip(x, -1).copy(), -1),
    "read_only": lambda x: (lambda y: (y.setflags(write=False), y)[1])(x.copy()),
}


@pytest.mark.parametrize("layout", list(INPUT_LAYOUTS))
def test_input_layouts_give_the_same_results(isa, layout):
    x = sample((2, 3, 9, 40), np.float32, 17)
    v = INPUT_LAYOUTS[layout](x)
    assert np.array_equal(v, x)
    for a, b in zip(K.max_pool2d_forward(x, 3, 2, 1), K.max_pool2d_forward(v, 3, 2, 1)):
        assert np.array_equal(a, b)
    assert np.array_equal(K.avg_pool2d_forward(x, 3, 2, 1), K.avg_pool2d_forward(v, 3, 2, 1))
    assert np.array_equal(K.adaptive_avg_pool2d_forward(x, 3), K.adaptive_avg_pool2d_forward(v, 3))
    y, idx = K.max_pool2d_forward(x, 3, 2, 1)
    g = sample(y.shape, np.float32, 18)
    assert np.array_equal(K.max_pool2d_backward(g, idx, (9, 40)),
                          K.max_pool2d_backward(INPUT_LAYOUTS[layout](g), INPUT_LAYOUTS[layout](idx), (9, 40)))
    assert np.array_equal(K.avg_pool2d_backward(g, (9, 40), 3, 2, 1),
                          K.avg_pool2d_backward(INPUT_LAYOUTS[layout](g), (9, 40), 3, 2, 1))


def test_three_d_input_drops_the_batch_axis(isa):
    x = sample((3, 10, 12), np.float64, 19)
    y, idx = K.max_pool2d_forward(x, 2)
    y4, idx4 = K.max_pool2d_forward(x[None], 2)
    assert y.shape == (3, 5, 6) and np.array_equal(y, y4[0]) and np.array_equal(idx, idx4[0])
    assert np.array_equal(K.max_pool2d_backward(y, idx, (10, 12)), K.max_pool2d_backward(y4, idx4, (10, 12))[0])
    assert np.array_equal(K.avg_pool2d_forward(x, 3, 1, 1), K.avg_pool2d_forward(x[None], 3, 1, 1)[0])
    assert np.array_equal(K.avg_pool2d_backward(y, (10, 12), 2), K.avg_pool2d_backward(y4, (10, 12), 2)[0])
    assert np.array_equal(K.adaptive_avg_pool2d_forward(x, 4), K.adaptive_avg_pool2d_forward(x[None], 4)[0])
    assert K.adaptive_avg_pool2d_backward(y, (10, 12)).shape == (3, 10, 12)


def test_outputs_are_fresh_c_arrays(isa):
    x = sample((2, 3, 8, 8), np.float32, 20)
    y, idx = K.max_pool2d_forward(x, 2)
    for a in (y, idx, K.avg_pool2d_forward(x, 2), K.adaptive_avg_pool2d_forward(x, 3),
              K.max_pool2d_backward(y, idx, (8, 8))):
        assert a.flags.c_contiguous and a.flags.owndata and not np.shares_memory(a, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(isa, dtype, restore_threads):
    x = sample((3, 7, 33, 47), dtype, 21)
    results = []
    for threads in [1, 2, 3, 1]:
        with num_threads(threads):
            y, idx = K.max_pool2d_forward(x, 3, 2, 1)
            out = [y, idx, K.max_pool2d_backward(y, idx, (33, 47)), K.avg_pool2d_forward(x, 3, 2, 1, True, False),
                   K.avg_pool2d_backward(y, (33, 47), 3, 2, 1), K.adaptive_avg_pool2d_forward(x, (5, 6)),
                   K.adaptive_avg_pool2d_backward(y, (33, 47))]
            results.append(b"".join(a.tobytes() for a in out))
    assert all(r == results[0] for r in results)


def test_no_access_outside_arrays():
    """Inputs end (or start) exactly at an inaccessible page: stride-2 and gathered register loads
    near the end of the last plane must not touch the byte after it."""
    run_fenced(r"""
from cnnx import _C
from cnnx import kernels as K
rng = np.random.default_rng(0)
for isa in _C.available_isas():
    _C.set_isa(isa)
    for dtype in (np.float32, np.float64):
        for shape, k, s, p in [((1, 1, 5, 67), 3, 2, 0), ((1, 2, 4, 64), 2, 2, 0), ((1, 1, 3, 100), 3, 3, 1),
                               ((1, 1, 7, 7), 7, 7, 0), ((2, 1, 6, 33), 3, 1, 1)]:
            for at_end in (True, False):
                print(isa, dtype.__name__, shape, k, s, at_end, flush=True)
                x = rng.standard_normal(shape).astype(dtype)
                y, i = K.max_pool2d_forward(x, k, s, p)
                y2, i2 = K.max_pool2d_forward(fenced(x, at_end), k, s, p)
                assert np.array_equal(y, y2) and np.array_equal(i, i2)
                a = K.avg_pool2d_forward(x, k, s, p)
                assert np.array_equal(a, K.avg_pool2d_forward(fenced(x, at_end), k, s, p))
                g = K.max_pool2d_backward(fenced(y, at_end), fenced(i, at_end), shape[2:])
                assert np.array_equal(g, K.max_pool2d_backward(y, i, shape[2:]))
                b = K.avg_pool2d_backward(fenced(a, at_end), shape[2:], k, s, p)
                assert np.array_equal(b, K.avg_pool2d_backward(a, shape[2:], k, s, p))
                c = K.adaptive_avg_pool2d_forward(fenced(x, at_end), (2, 3))
                assert np.array_equal(c, K.adaptive_avg_pool2d_forward(x, (2, 3)))
print("done")
""")


# ---------------------------------------------------------------------------------------------
# bad input: each error names the offending argument

X = np.ones((1, 2, 8, 8), np.float32)
Y, IDX = K.max_pool2d_forward(X, 2)

BAD_INPUTS = [
    ("input list", lambda: K.max_pool2d_forward([[1.0]], 2), TypeError, "'input'"),
    ("input None", lambda: K.avg_pool2d_forward(None, 2), TypeError, "'input'"),
    ("input int", lambda: K.max_pool2d_forward(np.ones((1, 2, 8, 8), np.int32), 2), TypeError, "'input'"),
    ("input float16", lambda: K.avg_pool2d_forward(np.ones((1, 2, 8, 8), np.float16), 2), TypeError, "'input'"),
    ("input 2-D", lambda: K.max_pool2d_forward(np.ones((8, 8), np.float32), 2), ValueError, "'input'"),
    ("input 5-D", lambda: K.avg_pool2d_forward(np.ones((1, 1, 2, 8, 8), np.float32), 2), ValueError, "'input'"),
    ("adaptive input 2-D", lambda: K.adaptive_avg_pool2d_forward(np.ones((8, 8)), 2), ValueError, "'input'"),
    ("kernel 0", lambda: K.max_pool2d_forward(X, 0), ValueError, "'kernel_size'"),
    ("kernel negative", lambda: K.avg_pool2d_forward(X, (2, -1)), ValueError, "'kernel_size'"),
    ("kernel float", lambda: K.max_pool2d_forward(X, 2.0), TypeError, "'kernel_size'"),
    ("kernel bool", lambda: K.max_pool2d_forward(X, True), TypeError, "'kernel_size'"),
    ("kernel triple", lambda: K.max_pool2d_forward(X, (2, 2, 2)), ValueError, "'kernel_size'"),
    ("kernel huge", lambda: K.max_pool2d_forward(X, 2**70), ValueError, "'kernel_size'"),
    ("kernel overflow", lambda: K.max_pool2d_forward(X, 2**62, 1, 0, 2**10), ValueError, "'kernel_size'"),
    ("kernel too large", lambda: K.max_pool2d_forward(X, 9), ValueError, "'input'.*too small"),
    ("stride 0", lambda: K.max_pool2d_forward(X, 2, 0), ValueError, "'stride'"),
    ("stride negative", lambda: K.avg_pool2d_forward(X, 2, (1, -2)), ValueError, "'stride'"),
    ("padding negative", lambda: K.max_pool2d_forward(X, 2, 1, -1), ValueError, "'padding'"),
    ("padding over half", lambda: K.max_pool2d_forward(X, 3, 1, 2), ValueError, "'padding'.*half"),
    ("padding over half avg", lambda: K.avg_pool2d_forward(X, (4, 2), 1, (2, 2)), ValueError, "'padding'"),
    ("padding over half dilated", lambda: K.max_pool2d_forward(X, 3, 1, 2, 2), ValueError, "'padding'"),
    ("dilation 0", lambda: K.max_pool2d_forward(X, 2, 1, 0, 0), ValueError, "'dilation'"),
    ("ceil_mode int", lambda: K.max_pool2d_forward(X, 2, ceil_mode=1), TypeError, "'ceil_mode'"),
    ("count_include_pad None", lambda: K.avg_pool2d_forward(X, 2, count_include_pad=None), TypeError,
     "'count_include_pad'"),
    ("divisor 0", lambda: K.avg_pool2d_forward(X, 2, divisor_override=0), ValueError, "'divisor_override'"),
    ("divisor float", lambda: K.avg_pool2d_forward(X, 2, divisor_override=2.5), TypeError, "'divisor_override'"),
    ("output_size 0", lambda: K.adaptive_avg_pool2d_forward(X, 0), ValueError, "'output_size'"),
    ("output_size negative", lambda: K.adaptive_avg_pool2d_forward(X, (2, -3)), ValueError, "'output_size'"),
    ("output_size huge", lambda: K.adaptive_avg_pool2d_forward(X, 2**61), ValueError, "'output_size'"),
    ("adaptive empty plane", lambda: K.adaptive_avg_pool2d_forward(np.ones((1, 2, 0, 4)), 2), ValueError, "'input'"),
    ("indices float", lambda: K.max_pool2d_backward(Y, IDX.astype(np.float32), (8, 8)), TypeError, "'indices'"),
    ("indices int32", lambda: K.max_pool2d_backward(Y, IDX.astype(np.int32), (8, 8)), TypeError, "'indices'"),
    ("indices shape", lambda: K.max_pool2d_backward(Y, IDX[:, :, :2], (8, 8)), ValueError, "'indices'"),
    ("indices out of range", lambda: K.max_pool2d_backward(Y, IDX, (2, 2)), ValueError, "'indices'"),
    ("grad_output int", lambda: K.max_pool2d_backward(IDX, IDX, (8, 8)), TypeError, "'grad_output'"),
    ("input_size negative", lambda: K.max_pool2d_backward(Y, IDX, (-1, 8)), ValueError, "'input_size'"),
    ("input_size overflow", lambda: K.max_pool2d_backward(Y, IDX, (2**40, 2**40)), ValueError, "'input_size'"),
    ("avg grad_output shape", lambda: K.avg_pool2d_backward(Y, (10, 10), 2), ValueError, "'grad_output'"),
    ("avg input_size small", lambda: K.avg_pool2d_backward(Y, (1, 1), 2), ValueError, "'input_size'"),
    ("adaptive input_size 0", lambda: K.adaptive_avg_pool2d_backward(Y, (0, 8)), ValueError, "'input_size'"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_naming_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# PyTorch, when installed


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    return torch


TORCH_CASES = GRID[:12] + [GRID[14], GRID[15]]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[GRID_IDS[GRID.index(c)] for c in TORCH_CASES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_matches_torch(torch, dtype, case):
    shape, k, s, p, d, ceil_mode = case
    x = sample(shape, dtype, 22)
    x.reshape(-1)[::17] = np.nan
    x.reshape(-1)[5::23] = -np.inf
    tx = torch.from_numpy(x).requires_grad_()
    ty, ti = torch.nn.functional.max_pool2d(tx, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    y, idx = K.max_pool2d_forward(x, k, s, p, d, ceil_mode)
    assert same_with_nan(y, ty.detach().numpy())
    has_tap = idx >= 0  # PyTorch reports an out-of-plane index for windows with no tap inside
    assert np.array_equal(idx[has_tap], ti.numpy()[has_tap])
    g = sample(y.shape, dtype, 23)
    ty.backward(torch.from_numpy(g * has_tap))
    got = K.max_pool2d_backward(g * has_tap, idx, shape[2:])
    assert np.allclose(got, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", [c for c in TORCH_CASES if c[4] == (1, 1)],
                         ids=[GRID_IDS[GRID.index(c)] for c in TORCH_CASES if c[4] == (1, 1)])
@pytest.mark.parametrize("count_include_pad,divisor", [(True, None), (False, None), (False, 5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_matches_torch(torch, dtype, case, count_include_pad, divisor):
    shape, k, s, p, _, ceil_mode = case
    x = sample(shape, dtype, 24)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.avg_pool2d(tx, k, s, p, ceil_mode, count_include_pad, divisor)
    y = K.avg_pool2d_forward(x, k, s, p, ceil_mode, count_include_pad, divisor)
    tol = 10 * np.finfo(dtype).eps
    assert np.allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    g = sample(y.shape, dtype, 25)
    ty.backward(torch.from_numpy(g))
    got = K.avg_pool2d_backward(g, shape[2:], k, s, p, ceil_mode, count_include_pad, divisor)
    assert np.allclose(got, tx.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("shape,out", ADAPTIVE, ids=[f"{s}->{o}" for s, o in ADAPTIVE])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_avg_pool_matches_torch(torch, dtype, shape, out):
    x = sample(shape, dtype, 26)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, out)
    y = K.adaptive_avg_pool2d_forward(x, out)
    tol = 10 * np.finfo(dtype).eps
    assert np.allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    g = sample(y.shape, dtype, 27)
    ty.backward(torch.from_numpy(g))
    assert np.allclose(K.adaptive_avg_pool2d_backward(g, shape[2:]), tx.grad.numpy(), rtol=tol, atol=tol)


def test_torch_all_nan_and_all_minus_inf_windows(torch):
    """PyTorch's test_max_pool_nan_inf: an all-NaN input gives NaN, an all -inf input gives -inf."""
    for v in (np.nan, -np.inf):
        x = np.full((1, 3, 5, 40), v, np.float32)
        ty, ti = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True)
        y, idx = K.max_pool2d_forward(x, 3, 2, 1)
        assert same_with_nan(y, ty.numpy()) and np.array_equal(idx, ti.numpy())
