import subprocess
import tempfile
import sys
import threading

import numpy as np
import pytest

from cnnx.kernels import gemm
from conftest import num_threads, using_isa

# Child interpreters start outside the checkout, so they import the installed cnnx and not the
# source folder (which has no compiled _C in a non-editable install).
OUTSIDE_REPO = tempfile.gettempdir()

DTYPES = [np.float32, np.float64]
TRANS = [(False, False), (True, False), (False, True), (True, True)]
TRANS_IDS = ["NN", "TN", "NT", "TT"]

# Sizes just below, at and above the register tiles (MR in {4, 6, 12, 14}, NR in {8, 16, 32}) and
# the cache blocks (MC 96..196, KC 256..768) of every path, plus primes and 1.
M_SIZES = [1, 13, 14, 15, 28, 97, 197, 200]
N_SIZES = [1, 7, 17, 31, 32, 33, 65]
K_SIZES = [1, 255, 256, 257, 385, 769]


# ---------------------------------------------------------------------------------------------
# helpers


def op(x, trans):
    return x.T if trans else x


def random_operand(rng, rows, cols, dtype, trans=False):
    """A matrix whose op() is rows x cols: stored as its transpose when `trans` is set."""
    shape = (cols, rows) if trans else (rows, cols)
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)


def problem(seed, m, n, k, dtype, trans_a=False, trans_b=False):
    rng = np.random.default_rng(seed)
    a = random_operand(rng, m, k, dtype, trans_a)
    b = random_operand(rng, k, n, dtype, trans_b)
    out = rng.uniform(-1.0, 1.0, (m, n)).astype(dtype)
    return a, b, out


def reference(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """The float64 result and a rounding-error bound for a computation in a.dtype.

    Standard GEMM bound (Higham, Accuracy and Stability, 3.5): every product, partial sum, the alpha
    and beta scalings and each re-rounding of C between k blocks contributes at most unit roundoff
    times the magnitude it touches, so |error| <= (k + 2) * eps * (|alpha| |A||B| + |beta C|).
    The factor 2 leaves room for the float64 reference's own rounding.
    """
    a64 = op(a, trans_a).astype(np.float64)
    b64 = op(b, trans_b).astype(np.float64)
    k = a64.shape[1]
    value = alpha * (a64 @ b64)
    magnitude = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0.0:
        c = beta * out.astype(np.float64)
        value = value + c
        magnitude = magnitude + np.abs(c)
    eps = np.finfo(a.dtype).eps
    return value, 2.0 * (k + 2) * eps * magnitude


def assert_within(got, value, bound, what=""):
    assert got.shape == value.shape, what
    err = np.abs(got.astype(np.float64) - value)
    bad = ~(err <= bound)  # also catches NaN
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), bad.shape)
        pytest.fail(
            f"{what}: {int(bad.sum())} of {bad.size} elements outside the error bound; "
            f"worst at {tuple(int(x) for x in i)}: got {got[i]!r}, expected {value[i]!r}, bound {bound[i]!r}"
        )


def check_gemm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, what=""):
    """Run gemm and check it against the float64 reference; returns the result."""
    out_before = None if out is None else out.copy()
    value, bound = reference(a, b, trans_a, trans_b, alpha, beta, out_before)
    kwargs = dict(trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)
    if out is not None:
        kwargs["out"] = out
    got = gemm(a, b, **kwargs)
    if out is not None:
        assert got is out
    assert got.dtype == a.dtype
    assert_within(got, value, bound, what)
    return got


def misaligned(x):
    """A copy of x whose buffer starts one byte off the element alignment."""
    raw = bytearray(x.nbytes + 1)
    y = np.frombuffer(raw, dtype=x.dtype, count=x.size, offset=1).reshape(x.shape)
    y[...] = x
    assert y.ctypes.data % x.itemsize != 0
    return y


# ---------------------------------------------------------------------------------------------
# numerical results on every ISA path


@pytest.mark.parametrize("k", K_SIZES)
@pytest.mark.parametrize("n", N_SIZES)
@pytest.mark.parametrize("m", M_SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_grid_matches_numpy(isa, dtype, m, n, k):
    a, b, _ = problem(m * 1000003 + n * 1009 + k, m, n, k, dtype)
    check_gemm(a, b, what=f"{isa} {m}x{n}x{k}")


TRANS_SHAPES = [(1, 1, 1), (7, 13, 31), (14, 32, 256), (15, 33, 257), (97, 65, 385), (197, 31, 97),
                (28, 17, 769), (200, 1, 255), (1, 65, 13),
                # narrow products, computed as C^T = op(B)^T op(A)^T and stored transposed (gemm.cpp,
                # computes_transposed), over several k blocks
                (200, 17, 800), (300, 5, 70)]
ALPHA_BETA = [(1.0, 0.0), (-0.5, 0.0), (2.5, 1.0), (1.0, -0.5), (-0.5, 2.5), (1.0, 1.0)]


@pytest.mark.parametrize("alpha,beta", ALPHA_BETA)
@pytest.mark.parametrize("m,n,k", TRANS_SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_transposes_and_scalars_match_numpy(isa, dtype, trans_a, trans_b, m, n, k, alpha, beta):
    a, b, out = problem(m + n + k, m, n, k, dtype, trans_a, trans_b)
    with_out = beta != 0.0 or alpha == 1.0  # beta == 0 is checked both with and without out
    check_gemm(a, b, trans_a, trans_b, alpha, beta, out if with_out else None,
               what=f"{isa} {m}x{n}x{k} alpha={alpha} beta={beta}")


# Tall, skinny, wide and long-k shapes; n = 2049 and 3073 cross the NC blocks.
EXTREME_SHAPES = [(1000, 3, 5), (3, 1000, 7), (5, 2049, 3), (4, 3073, 2), (1100, 2, 3), (3, 5, 1100),
                  (1, 1000, 1), (1000, 1, 1), (1, 1, 4000), (600, 33, 40)]


@pytest.mark.parametrize("m,n,k", EXTREME_SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_aspect_ratios_match_numpy(isa, dtype, trans_a, trans_b, m, n, k):
    a, b, out = problem(7 * m + n + k, m, n, k, dtype, trans_a, trans_b)
    check_gemm(a, b, trans_a, trans_b, what=f"{isa} {m}x{n}x{k}")
    check_gemm(a, b, trans_a, trans_b, alpha=-0.5, beta=2.5, out=out, what=f"{isa} {m}x{n}x{k} beta")


REF_SHAPES = [(200, 197, 385), (97, 1000, 65), (257, 33, 1000), (31, 200, 769), (14, 32, 256)]


@pytest.mark.parametrize("m,n,k", REF_SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_path_matches_ref_path(fast_isa, dtype, trans_a, trans_b, m, n, k):
    a, b, out = problem(m * n + k, m, n, k, dtype, trans_a, trans_b)
    kwargs = dict(trans_a=trans_a, trans_b=trans_b, alpha=-0.5, beta=2.5)
    with using_isa("ref"):
        expected = gemm(a, b, out=out.copy(), **kwargs)
    got = gemm(a, b, out=out.copy(), **kwargs)
    # Both results carry rounding error, so the bound is measured around the ref result.
    _, bound = reference(a, b, trans_a, trans_b, -0.5, 2.5, out)
    assert_within(got, expected.astype(np.float64), bound, f"{fast_isa} vs ref {m}x{n}x{k}")


# ---------------------------------------------------------------------------------------------
# edge semantics


ZERO_SHAPES = [(0, 5, 3), (5, 0, 3), (0, 0, 3), (0, 5, 0), (5, 0, 0), (0, 0, 0), (4, 5, 0), (1, 1, 0)]


@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("m,n,k", ZERO_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_size_without_out(isa, dtype, m, n, k, trans_a, trans_b):
    a, b, _ = problem(0, m, n, k, dtype, trans_a, trans_b)
    got = gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=2.0)
    assert got.shape == (m, n) and got.dtype == dtype
    assert np.array_equal(got, np.zeros((m, n), dtype))


@pytest.mark.parametrize("beta", [0.0, -0.5, 1.0])
@pytest.mark.parametrize("m,n,k", ZERO_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_size_with_out(isa, dtype, m, n, k, beta):
    """k == 0 leaves beta * out (an empty sum); m == 0 or n == 0 has nothing to write."""
    a, b, out = problem(1, m, n, k, dtype)
    if beta == 0.0:
        out[...] = np.nan  # must not survive: beta == 0 never reads out
    expected = np.zeros((m, n), dtype) if beta == 0.0 else dtype(beta) * out
    got = gemm(a, b, alpha=2.0, beta=beta, out=out)
    assert got is out
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (15, 33, 257), (197, 65, 385)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_beta_zero_ignores_nan_in_out(isa, dtype, m, n, k, trans_a, trans_b):
    a, b, out = problem(2, m, n, k, dtype, trans_a, trans_b)
    out[...] = np.nan
    got = check_gemm(a, b, trans_a, trans_b, alpha=1.5, beta=0.0, out=out, what=isa)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (15, 33, 257), (197, 65, 385)])
@pytest.mark.parametrize("beta", [0.0, -0.5, 2.5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_zero_gives_beta_out(isa, dtype, beta, m, n, k):
    """alpha == 0 skips the product (BLAS semantics): even NaN in a and b does not reach out."""
    a, b, out = problem(3, m, n, k, dtype)
    a[0, 0] = np.nan
    b[-1, -1] = np.inf
    expected = np.zeros_like(out) if beta == 0.0 else dtype(beta) * out
    got = gemm(a, b, alpha=0.0, beta=beta, out=out)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_k1_is_one_rounded_product(isa, dtype, trans_a, trans_b):
    """With k == 1 and alpha == 1 each element is a single correctly rounded product, so it must
    equal numpy's elementwise product bit for bit, tiny (subnormal) results included."""
    tiny = np.finfo(dtype).tiny
    rng = np.random.default_rng(14)
    col = (rng.uniform(-1, 1, (37, 1)) * np.where(np.arange(37) % 3 == 0, tiny, 1.0)[:, None]).astype(dtype)
    row = rng.uniform(-1, 1, (1, 35)).astype(dtype)
    row[0, :4] = [1e-3, 0.5, 2.0 ** -10, 0.0]
    expected = col * row
    assert (np.abs(expected[expected != 0]) < tiny).any()  # the case really has subnormal results
    got = gemm(col.T if trans_a else col, row.T if trans_b else row, trans_a=trans_a, trans_b=trans_b)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_inputs_propagate_like_numpy(isa, dtype):
    a, b, out = problem(15, 29, 35, 40, dtype)
    a[3, 5] = np.inf
    a[10, 2], a[10, 3] = -np.inf, np.inf  # inf - inf: NaN along row 10
    b[7, 9] = np.nan
    out[20, 20] = -np.inf
    got = gemm(a, b, alpha=-0.5, beta=2.5, out=out.copy())
    with np.errstate(invalid="ignore"):
        expected = -0.5 * (a.astype(np.float64) @ b) + 2.5 * out
    for kind in (np.isnan, np.isposinf, np.isneginf):
        assert np.array_equal(kind(got), kind(expected)), kind.__name__


def test_without_out_returns_new_c_contiguous_array(isa):
    a, b, _ = problem(4, 15, 33, 20, np.float32, True, True)
    got = gemm(a, b, trans_a=True, trans_b=True)
    assert got.flags.c_contiguous and got.flags.owndata and got.shape == (15, 33)


@pytest.mark.parametrize("alpha", [2, np.float32(2.0), np.float64(2.0), np.int64(2)])
def test_alpha_accepts_real_scalars(alpha):
    a, b, _ = problem(5, 6, 7, 8, np.float64)
    assert np.array_equal(gemm(a, b, alpha=alpha), gemm(a, b, alpha=2.0))


def test_numpy_bool_flags_accepted():
    a, b, _ = problem(6, 6, 7, 8, np.float64, True, False)
    assert np.array_equal(gemm(a, b, trans_a=np.True_, trans_b=np.False_), gemm(a, b, trans_a=True))


# ---------------------------------------------------------------------------------------------
# memory layouts


def layout_c(x):
    return np.ascontiguousarray(x)


def layout_fortran(x):
    return np.asfortranarray(x)


def layout_padded_rows(x):
    """Row-major with a row stride larger than the row (a column slice of a wider array)."""
    big = np.full((x.shape[0], x.shape[1] + 5), np.nan, x.dtype)
    big[:, 2:2 + x.shape[1]] = x
    return big[:, 2:2 + x.shape[1]]


def layout_padded_cols(x):
    big = np.full((x.shape[0] + 3, x.shape[1]), np.nan, x.dtype, order="F")
    big[1:1 + x.shape[0]] = x
    return big[1:1 + x.shape[0]]


def layout_steps(x):
    big = np.full((2 * x.shape[0], 3 * x.shape[1]), np.nan, x.dtype)
    big[::2, ::3] = x
    return big[::2, ::3]


def layout_flipped(x):
    return np.flip(np.flip(x).copy())


def layout_reversed_rows(x):
    return x[::-1].copy()[::-1]


def layout_transposed_view(x):
    return np.ascontiguousarray(x.T).T


def layout_misaligned(x):
    return misaligned(x)


def layout_read_only(x):
    y = x.copy()
    y.flags.writeable = False
    return y


def layout_odd_byte_stride(x):
    """Elements of a packed record array: strides that are not a multiple of the item size."""
    rec = np.zeros(x.shape, dtype=[("v", x.dtype), ("pad", "i1")])
    rec["v"] = x
    return rec["v"]


INPUT_LAYOUTS = [layout_c, layout_fortran, layout_padded_rows, layout_padded_cols, layout_steps,
                 layout_flipped, layout_reversed_rows, layout_transposed_view, layout_misaligned,
                 layout_read_only, layout_odd_byte_stride]


@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("layout", INPUT_LAYOUTS, ids=lambda f: f.__name__[7:])
@pytest.mark.parametrize("operand", ["a", "b"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_input_layouts(isa, dtype, operand, layout, trans_a, trans_b):
    m, n, k = 15, 33, 20
    a, b, out = problem(7, m, n, k, dtype, trans_a, trans_b)
    a_before, b_before = a.copy(), b.copy()
    if operand == "a":
        a = layout(a)
        assert np.array_equal(a, a_before)
    else:
        b = layout(b)
        assert np.array_equal(b, b_before)
    check_gemm(a, b, trans_a, trans_b, alpha=-0.5, beta=2.5, out=out, what=f"{isa} {layout.__name__}")
    assert np.array_equal(a, a_before) and np.array_equal(b, b_before)


def test_broadcast_and_overlapping_inputs(isa):
    """Zero strides (broadcast_to) and overlapping rows (sliding windows) are read-only views."""
    rng = np.random.default_rng(8)
    row = rng.uniform(-1, 1, 20).astype(np.float32)
    a = np.broadcast_to(row, (15, 20))
    b = np.lib.stride_tricks.sliding_window_view(rng.uniform(-1, 1, 52).astype(np.float32), 33)
    assert b.shape == (20, 33)
    check_gemm(a, b, what=isa)
    check_gemm(b.T, a.T, what=isa)


# Each out layout: (the array that owns the memory, the index that cuts out from it).
def out_c(m, n, dtype):
    return np.full((m, n), 123.0, dtype), np.s_[:, :]


def out_fortran(m, n, dtype):
    return np.full((m, n), 123.0, dtype, order="F"), np.s_[:, :]


def out_column_slice(m, n, dtype):
    return np.full((m, n + 7), 123.0, dtype), np.s_[:, 3:3 + n]


def out_fortran_row_slice(m, n, dtype):
    return np.full((m + 5, n), 123.0, dtype, order="F"), np.s_[2:2 + m, :]


def out_every_other_row(m, n, dtype):
    return np.full((2 * m, n), 123.0, dtype), np.s_[::2, :]


def out_fortran_every_other_column(m, n, dtype):
    return np.full((m, 2 * n), 123.0, dtype, order="F"), np.s_[:, 1::2]


OUT_LAYOUTS = [out_c, out_fortran, out_column_slice, out_fortran_row_slice, out_every_other_row,
               out_fortran_every_other_column]


@pytest.mark.parametrize("index", [np.s_[3:4, ::2], np.s_[::3, 5:6], np.s_[2:3, 1:2]], ids=["row", "column", "one"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_single_row_or_column_out_with_step(isa, dtype, index):
    """A 1-row (or 1-column) out needs unit stride in no dimension: its only row (column) may step."""
    base = np.full((12, 40), 123.0, dtype)
    out = base[index]
    m, n = out.shape
    a, b, values = problem(16, m, n, 50, dtype)
    out[...] = values
    outside = np.ones(base.shape, bool)
    outside[index] = False
    check_gemm(a, b, alpha=2.5, beta=-0.5, out=out, what=isa)
    assert (base[outside] == 123.0).all()


@pytest.mark.parametrize("beta", [0.0, 2.5])
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("layout", OUT_LAYOUTS, ids=lambda f: f.__name__[4:])
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_layouts(isa, dtype, layout, trans_a, trans_b, beta):
    m, n, k = 29, 35, 300
    a, b, values = problem(9, m, n, k, dtype, trans_a, trans_b)
    base, index = layout(m, n, dtype)
    out = base[index]
    out[...] = values
    outside = np.ones(base.shape, bool)
    outside[index] = False
    check_gemm(a, b, trans_a, trans_b, alpha=-0.5, beta=beta, out=out, what=f"{isa} {layout.__name__}")
    assert (base[outside] == 123.0).all(), "gemm wrote outside out"


@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_aliasing_inputs(isa, dtype, beta, trans_a, trans_b):
    n = 33
    a, b, _ = problem(10, n, n, n, dtype, trans_a, trans_b)
    kwargs = dict(trans_a=trans_a, trans_b=trans_b, alpha=1.0, beta=beta)

    value, bound = reference(a, b, trans_a, trans_b, 1.0, beta, a)
    x = a.copy()
    assert gemm(x, b, out=x, **kwargs) is x
    assert_within(x, value, bound, "out is a")

    value, bound = reference(a, b, trans_a, trans_b, 1.0, beta, b)
    y = b.copy()
    assert gemm(a, y, out=y, **kwargs) is y
    assert_within(y, value, bound, "out is b")

    value, bound = reference(a, a, trans_a, trans_b, 1.0, beta, a)
    z = a.copy()
    gemm(z, z, out=z, **kwargs)
    assert_within(z, value, bound, "out is a and b")

    # out is the transpose of a: the same memory seen in Fortran order.
    value, bound = reference(a, b, trans_a, trans_b, 1.0, beta, a.T)
    w = a.copy()
    gemm(w, b, out=w.T, **kwargs)
    assert_within(w.T, value, bound, "out is a.T")


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_partially_overlapping_input(isa, dtype):
    """out shares some columns with a (shifted by one): a must be read as it was before the call."""
    m, k = 20, 21
    rng = np.random.default_rng(11)
    big = rng.uniform(-1, 1, (m, k + 1)).astype(dtype)
    a = big[:, :k]
    out = big[:, 1:]
    b = rng.uniform(-1, 1, (k, k)).astype(dtype)
    value, bound = reference(a.copy(), b)
    gemm(a, b, out=out)
    assert_within(out, value, bound, "overlapping out")


# Runs in a child interpreter: a read or write past an array's edge hits an inaccessible page and
# kills the process, which must not take the whole test session down with it.
FENCED_SCRIPT = r"""
import ctypes, mmap
import numpy as np
from cnnx import _C
from cnnx.kernels import gemm

PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PROT_NONE, PROT_RW, MAP_PRIVATE_ANONYMOUS = 0, 3, 0x22


def fenced(x, order, at_end):
    # A copy of x (C or F order) whose memory ends, or starts, exactly at an inaccessible page.
    pages = max(1, -(-x.nbytes // PAGE))
    base = libc.mmap(None, (pages + 2) * PAGE, PROT_RW, MAP_PRIVATE_ANONYMOUS, -1, 0)
    assert base not in (None, ctypes.c_void_p(-1).value)
    assert libc.mprotect(base, PAGE, PROT_NONE) == 0
    assert libc.mprotect(base + (pages + 1) * PAGE, PAGE, PROT_NONE) == 0
    start = base + PAGE + (pages * PAGE - x.nbytes if at_end else 0)
    raw = (ctypes.c_char * max(x.nbytes, 1)).from_address(start)
    y = np.frombuffer(raw, x.dtype, count=x.size).reshape(x.shape, order=order)
    y[...] = x
    return y


rng = np.random.default_rng(0)
for isa in _C.available_isas():
    _C.set_isa(isa)
    for dtype in (np.float32, np.float64):
        for m, n, k in [(1, 1, 1), (15, 33, 257), (14, 32, 16), (13, 17, 31), (29, 65, 770), (5, 3, 0)]:
            for ta in (False, True):
                for tb in (False, True):
                    a = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(dtype)
                    b = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(dtype)
                    c = rng.uniform(-1, 1, (m, n)).astype(dtype)
                    kw = dict(trans_a=ta, trans_b=tb, alpha=-0.5, beta=2.5)
                    expected = gemm(a, b, out=c.copy(), **kw)
                    for order in "CF":
                        for at_end in (True, False):
                            print(isa, dtype.__name__, m, n, k, ta, tb, order, at_end, flush=True)
                            out = fenced(c, order, at_end)
                            got = gemm(fenced(a, order, at_end), fenced(b, order, at_end), out=out, **kw)
                            assert np.array_equal(got, expected), "result differs from an ordinary array"
print("done")
"""


def test_no_access_outside_arrays():
    """a, b and out placed flush against an inaccessible page, before and after: packing, masked
    loads and edge tiles must never touch a byte outside them."""
    proc = subprocess.run([sys.executable, "-c", FENCED_SCRIPT], capture_output=True, text=True, timeout=300,
                          cwd=OUTSIDE_REPO)
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    assert proc.returncode == 0 and last == ["done"], (
        f"exit {proc.returncode} during case: {last[0]}\n{proc.stderr[-2000:]}")


# ---------------------------------------------------------------------------------------------
# reproducibility and concurrency


@pytest.mark.parametrize("m,n,k,trans_a,trans_b", [(300, 500, 700, False, False),
                                                   (197, 65, 1000, True, True),
                                                   (600, 10, 900, False, True),
                                                   (520, 300, 400, True, False)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(isa, dtype, m, n, k, trans_a, trans_b, restore_threads):
    """The threads share the tiles of each A block, or take rows of C each (gemm.cpp, split_m: a B
    that is narrow, 65 and 10 columns, or small enough for L2, 520 x 300 x 400 on 2 and 3 threads
    but not 7). Every element sums the same products in the same order either way."""
    a, b, out = problem(12, m, n, k, dtype, trans_a, trans_b)
    kwargs = dict(trans_a=trans_a, trans_b=trans_b, alpha=-0.5, beta=2.5)
    results = []
    for threads in [1, 2, 3, 7, 1, 2]:
        with num_threads(threads):
            results.append(gemm(a, b, out=out.copy(), **kwargs).tobytes())
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize("m,n,k", [(600, 10, 900), (197, 1, 300), (64, 3, 40)])
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_orientation_gives_the_same_bits(isa, dtype, m, n, k, trans_a, trans_b):
    """A narrow m x n product is computed as its transpose (gemm.cpp, computes_transposed), while the
    n x m product B^T A^T is computed directly: every element sums the same products in the same
    order, and gets alpha and beta * C the same way, so C and (B^T A^T)^T agree bit for bit (alpha
    0.3 is not a power of two: alpha * sum + beta * C then rounds differently in every other order)."""
    a, b, out = problem(m + 3 * n, m, n, k, dtype, trans_a, trans_b)
    kwargs = dict(alpha=0.3, beta=2.5)
    c = gemm(a, b, trans_a=trans_a, trans_b=trans_b, out=out.copy(), **kwargs)
    ct = gemm(b, a, trans_a=not trans_b, trans_b=not trans_a, out=np.ascontiguousarray(out.T), **kwargs)
    assert np.array_equal(c, ct.T)


@pytest.mark.parametrize("dtype", DTYPES)
def test_repeated_runs_bitwise_identical(isa, dtype):
    a, b, _ = problem(13, 300, 500, 700, dtype)
    first = gemm(a, b).tobytes()
    assert all(gemm(a, b).tobytes() == first for _ in range(2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_concurrent_calls_match_serial_results(isa, dtype, restore_threads):
    """Four Python threads call gemm at once (the GIL is released, each call runs its own OpenMP
    team and workspace); every result must equal the one computed serially, bit for bit."""
    cnnx_threads = 2
    shapes = [(130, 120, 140, False, False), (97, 200, 65, True, False), (64, 64, 300, False, True),
              (200, 33, 100, True, True)]
    problems = [problem(20 + i, m, n, k, dtype, ta, tb) + (ta, tb) for i, (m, n, k, ta, tb) in enumerate(shapes)]

    def run(p):
        a, b, out, ta, tb = p
        return gemm(a, b, trans_a=ta, trans_b=tb, alpha=1.5, beta=-0.5, out=out.copy())

    with num_threads(cnnx_threads):
        serial = [run(p).tobytes() for p in problems]
        start = threading.Barrier(len(problems))
        results = [[] for _ in problems]
        errors = []

        def worker(i):
            try:
                start.wait()
                for _ in range(5):
                    results[i].append(run(problems[i]).tobytes())
            except BaseException as e:  # surfaced below: a thread's exception is otherwise lost
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(problems))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    for i, got in enumerate(results):
        assert len(got) == 5 and all(r == serial[i] for r in got), f"thread {i}"


# ---------------------------------------------------------------------------------------------
# bad input: each error names the offending argument


def _f32(*shape):
    return np.ones(shape, np.float32)


def _read_only(x):
    x.flags.writeable = False
    return x


def _overlapping_rows_out():
    base = np.zeros(40, np.float32)
    return np.lib.stride_tricks.as_strided(base, shape=(3, 4), strides=(4, 4))


A, B = _f32(3, 4), _f32(4, 5)

BAD_INPUTS = [
    # a / b: type and dtype
    ("a list", lambda: gemm([[1.0, 2.0]], _f32(2, 2)), TypeError, "'a'"),
    ("a None", lambda: gemm(None, B), TypeError, "'a'"),
    ("b None", lambda: gemm(A, None), TypeError, "'b'"),
    ("b scalar", lambda: gemm(A, np.float32(1.0)), TypeError, "'b'"),
    ("a int", lambda: gemm(np.ones((3, 4), np.int32), B), TypeError, "'a'"),
    ("a int64", lambda: gemm(np.ones((3, 4), np.int64), B.astype(np.float64)), TypeError, "'a'"),
    ("a object", lambda: gemm(np.ones((3, 4), object), B), TypeError, "'a'"),
    ("a bool", lambda: gemm(np.ones((3, 4), bool), B), TypeError, "'a'"),
    ("a float16", lambda: gemm(np.ones((3, 4), np.float16), B), TypeError, "'a'"),
    ("a complex", lambda: gemm(np.ones((3, 4), np.complex64), B), TypeError, "'a'"),
    ("a big-endian", lambda: gemm(np.ones((3, 4), ">f4"), B), TypeError, "'a'"),
    ("b big-endian", lambda: gemm(A, np.ones((4, 5), ">f4")), TypeError, "'b'"),
    ("b int", lambda: gemm(A, np.ones((4, 5), np.int32)), TypeError, "'b'"),
    ("mixed dtypes", lambda: gemm(A, B.astype(np.float64)), TypeError, "'b'"),
    ("mixed dtypes f64 a", lambda: gemm(A.astype(np.float64), B), TypeError, "'b'"),
    # a / b: ndim and shape
    ("a 1-D", lambda: gemm(_f32(4), B), ValueError, "'a'"),
    ("a 3-D", lambda: gemm(_f32(1, 3, 4), B), ValueError, "'a'"),
    ("a 0-D", lambda: gemm(np.array(1.0, np.float32), B), ValueError, "'a'"),
    ("b 1-D", lambda: gemm(A, _f32(4)), ValueError, "'b'"),
    ("b 3-D", lambda: gemm(A, _f32(4, 5, 1)), ValueError, "'b'"),
    ("inner dims", lambda: gemm(A, _f32(5, 5)), ValueError, r"op\(a\).*op\(b\)"),
    ("inner dims trans_a", lambda: gemm(A, B, trans_a=True), ValueError, r"trans_a=True"),
    ("inner dims trans_b", lambda: gemm(A, B, trans_b=True), ValueError, r"trans_b=True"),
    # out
    ("out list", lambda: gemm(A, B, out=[[0.0] * 5] * 3), TypeError, "'out'"),
    ("out wrong dtype", lambda: gemm(A, B, out=np.zeros((3, 5), np.float64)), TypeError, "'out'"),
    ("out int", lambda: gemm(A, B, out=np.zeros((3, 5), np.int32)), TypeError, "'out'"),
    ("out big-endian", lambda: gemm(A, B, out=np.zeros((3, 5), ">f4")), TypeError, "'out'"),
    ("out wrong shape", lambda: gemm(A, B, out=_f32(5, 3)), ValueError, "'out'"),
    ("out 1-D", lambda: gemm(A, B, out=_f32(15)), ValueError, "'out'"),
    ("out read-only", lambda: gemm(A, B, out=_read_only(_f32(3, 5))), ValueError, "'out'"),
    ("out no unit stride", lambda: gemm(A, B, out=_f32(6, 10)[::2, ::2]), ValueError, "'out'"),
    ("out negative strides", lambda: gemm(A, B, out=np.flip(_f32(3, 5))), ValueError, "'out'"),
    ("out misaligned", lambda: gemm(A, B, out=misaligned(_f32(3, 5))), ValueError, "'out'"),
    ("out overlapping rows", lambda: gemm(A, _f32(4, 4), out=_overlapping_rows_out()), ValueError, "'out'"),
    # scalars and flags
    ("beta without out", lambda: gemm(A, B, beta=1.0), ValueError, "beta"),
    ("alpha str", lambda: gemm(A, B, alpha="2"), TypeError, "'alpha'"),
    ("alpha bool", lambda: gemm(A, B, alpha=True), TypeError, "'alpha'"),
    ("alpha numpy bool", lambda: gemm(A, B, alpha=np.True_), TypeError, "'alpha'"),
    ("alpha complex", lambda: gemm(A, B, alpha=1j), TypeError, "'alpha'"),
    ("alpha None", lambda: gemm(A, B, alpha=None), TypeError, "'alpha'"),
    ("alpha array", lambda: gemm(A, B, alpha=np.ones(1)), TypeError, "'alpha'"),
    ("alpha nan", lambda: gemm(A, B, alpha=float("nan")), ValueError, "'alpha'"),
    ("alpha inf", lambda: gemm(A, B, alpha=float("inf")), ValueError, "'alpha'"),
    ("beta str", lambda: gemm(A, B, beta="0", out=_f32(3, 5)), TypeError, "'beta'"),
    ("beta bool", lambda: gemm(A, B, beta=False, out=_f32(3, 5)), TypeError, "'beta'"),
    ("beta nan", lambda: gemm(A, B, beta=float("nan"), out=_f32(3, 5)), ValueError, "'beta'"),
    ("beta -inf", lambda: gemm(A, B, beta=-np.inf, out=_f32(3, 5)), ValueError, "'beta'"),
    ("trans_a int", lambda: gemm(A, B, trans_a=1), TypeError, "'trans_a'"),
    ("trans_a None", lambda: gemm(A, B, trans_a=None), TypeError, "'trans_a'"),
    ("trans_a str", lambda: gemm(A, B, trans_a="T"), TypeError, "'trans_a'"),
    ("trans_b int", lambda: gemm(A, B, trans_b=0), TypeError, "'trans_b'"),
    ("positional flag", lambda: gemm(A, B, True), TypeError, "positional"),
]


@pytest.mark.parametrize("call,exc,match", [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_naming_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_failed_call_leaves_out_untouched():
    out = np.full((3, 5), 7.0, np.float32)
    with pytest.raises(TypeError, match="'b'"):
        gemm(A, B.astype(np.float64), out=out)
    with pytest.raises(ValueError, match="'alpha'"):
        gemm(A, B, alpha=np.nan, out=out)
    assert (out == 7.0).all()
