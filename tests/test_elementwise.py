"""Elementwise kernels (cnnx/elementwise.h): relu forward/backward and same-shape add.

Every value is one comparison-and-select or one IEEE addition, so every check is bitwise: the
reference against a numpy oracle written from the contract, each fast ISA against the reference
(sizes around the vector widths, the 4x-unrolled steps, the thread cut-off and its chunks), the
NaN / Inf / -0.0 matrix against the oracle and PyTorch, any thread count against one thread. Then
the bindings' argument contract, and the autograd wiring (ReLU, in-place ReLU and Add use the
kernels on dense float arrays, numpy otherwise) down to a ResNet residual block.
"""

import numpy as np
import pytest

import cnnx
from cnnx import _C
from cnnx import kernels as K
from cnnx.ops import activation as act_ops
from cnnx.ops import elementwise as ew_ops
from conftest import num_threads, using_isa
from layer_helpers import DTYPES, noncontiguous, run_fenced

UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def bits(a):
    """The raw bits of a float array: equality of these is bitwise equality (NaN, -0.0 included)."""
    a = np.ascontiguousarray(a)
    return a.view(UINT[a.dtype])


def assert_bitwise(got, want, what=""):
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape, got.dtype, want.dtype)
    diff = np.flatnonzero(bits(got).reshape(-1) != bits(want).reshape(-1))
    assert diff.size == 0, f"{what}: {diff.size} elements differ, first at {diff[0]}: got {got.reshape(-1)[diff[0]]!r}, " \
                           f"expected {want.reshape(-1)[diff[0]]!r}"


# The oracle, written from the contract (PyTorch's relu and threshold_backward) in numpy.
def relu_oracle(x):
    return np.where(x < 0, x.dtype.type(0), x)


def relu_grad_oracle(g, y):
    return np.where(y <= 0, g.dtype.type(0), g)


# Around the vector widths (4/2 generic, 8/4 AVX2, 16/8 AVX-512) and the 4-vector steps (up to 64),
# primes, the thread cut-off (2 threads from 65536 values) and its 4096-value chunks.
SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1009, 4093, 4096, 4097,
         65535, 65536, 65537, 3 * 32768 + 4095, 2 * 65536 + 13]

SPECIALS = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 1e-40, -1e-40,
                     np.finfo(np.float32).max, -np.finfo(np.float32).max, 3.5, -2.25])


def sample(n, dtype, seed):
    """Normal values with some exact zeros, -0.0 and NaN/Inf sprinkled in (fixed positions)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(dtype)
    if n:
        pick = rng.integers(0, n, size=max(1, n // 50))
        x[pick] = SPECIALS.astype(dtype)[rng.integers(0, SPECIALS.size, size=pick.size)]
    return x


def all_three(x, g, b):
    """(relu, relu in place, relu backward, relu backward in place, add, add in place) of one set of inputs."""
    y = K.relu_forward(x)
    y_in = x.copy()
    assert K.relu_forward(y_in, inplace=True) is y_in
    gx = K.relu_backward(g, y)
    gx_in = g.copy()
    assert K.relu_backward(gx_in, y, out=gx_in) is gx_in
    s = K.add(x, b)
    s_in = x.copy()
    assert K.add(s_in, b, out=s_in) is s_in
    return y, y_in, gx, gx_in, s, s_in


# ---------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize("dtype", DTYPES)
def test_ref_matches_oracle(dtype):
    with using_isa("ref"):
        for n in SIZES:
            x, g, b = sample(n, dtype, 1), sample(n, dtype, 2), sample(n, dtype, 3)
            y, y_in, gx, gx_in, s, s_in = all_three(x, g, b)
            assert_bitwise(y, relu_oracle(x), f"relu n={n}")
            assert_bitwise(y_in, y, f"relu_ n={n}")
            assert_bitwise(gx, relu_grad_oracle(g, y), f"relu backward n={n}")
            assert_bitwise(gx_in, gx, f"relu backward in place n={n}")
            with np.errstate(all="ignore"):
                assert_bitwise(s, x + b, f"add n={n}")
            assert_bitwise(s_in, s, f"add in place n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_match_ref_bitwise(fast_isa, dtype):
    for n in SIZES:
        x, g, b = sample(n, dtype, 4), sample(n, dtype, 5), sample(n, dtype, 6)
        got = all_three(x, g, b)
        with using_isa("ref"):
            want = all_three(x, g, b)
        for name, a, r in zip(["relu", "relu_", "relu_backward", "relu_backward out=g", "add", "add out=a"], got, want):
            assert_bitwise(a, r, f"{fast_isa} {name} n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_matrix(isa, dtype):
    """Every pair of special values: relu keeps NaN and -0.0, the backward selects (inf/NaN gradients
    where y <= 0 give 0; a NaN output passes its gradient), add is IEEE addition."""
    s = SPECIALS.astype(dtype)
    a, b = np.meshgrid(s, s, indexing="ij")
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    y = K.relu_forward(a)
    assert_bitwise(y, relu_oracle(a), "relu")
    assert np.isnan(y[np.isnan(a)]).all() and np.signbit(y[(a == 0) & np.signbit(a)]).all()
    assert_bitwise(K.relu_backward(b, a), relu_grad_oracle(b, a), "relu backward")
    with np.errstate(all="ignore"):
        assert np.array_equal(K.add(a, b), a + b, equal_nan=True)
        # Bitwise except the payload of NaN + NaN, which IEEE leaves to the hardware.
        both_nan = np.isnan(a) & np.isnan(b)
        assert_bitwise(K.add(a, b)[~both_nan], (a + b)[~both_nan], "add")


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_match_torch(dtype):
    torch = pytest.importorskip("torch")
    s = SPECIALS.astype(dtype)
    a, b = (np.ascontiguousarray(v) for v in np.meshgrid(s, s, indexing="ij"))
    ta = torch.from_numpy(a.copy()).requires_grad_()
    ty = torch.relu(ta)
    ty.backward(torch.from_numpy(b))
    assert_bitwise(K.relu_forward(a), ty.detach().numpy(), "relu vs torch")
    assert_bitwise(K.relu_backward(b, K.relu_forward(a)), ta.grad.numpy(), "relu backward vs torch")
    with np.errstate(all="ignore"):
        assert np.array_equal(K.add(a, b), (torch.from_numpy(a) + torch.from_numpy(b)).numpy(), equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(isa, dtype, restore_threads):
    n = 5 * 65536 + 77
    x, g, b = sample(n, dtype, 7), sample(n, dtype, 8), sample(n, dtype, 9)
    results = []
    for threads in [1, 2, 3, 4, 1]:
        with num_threads(threads):
            results.append(b"".join(bits(r).tobytes() for r in all_three(x, g, b)))
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize("shape", [(), (1,), (3, 0, 5), (2, 3), (64, 3, 7, 5), (2, 1, 1, 1, 9)],
                         ids=lambda s: "x".join(map(str, s)) or "0d")
def test_any_shape(isa, shape):
    x, g, b = (sample(int(np.prod(shape)), np.float32, s).reshape(shape) for s in (10, 11, 12))
    y, y_in, gx, gx_in, s, s_in = all_three(x, g, b)
    for r in (y, y_in, gx, gx_in, s, s_in):
        assert r.shape == shape and r.dtype == np.float32 and r.flags.c_contiguous
    assert_bitwise(y, relu_oracle(x))
    assert_bitwise(gx, relu_grad_oracle(g, y))
    with np.errstate(all="ignore"):
        assert_bitwise(s, x + b)


def test_strided_inputs_are_read_through_a_copy(isa):
    x, g, b = (sample(6 * 37, np.float64, s).reshape(6, 37) for s in (13, 14, 15))
    y = K.relu_forward(x)
    assert_bitwise(K.relu_forward(noncontiguous(x)), y)
    assert_bitwise(K.relu_forward(np.asfortranarray(x)), y)
    assert_bitwise(K.relu_backward(noncontiguous(g), noncontiguous(y)), K.relu_backward(g, y))
    assert_bitwise(K.add(noncontiguous(x), b.T.copy().T), K.add(x, b))
    assert_bitwise(K.add(x[:, ::-1], b[:, ::-1]), K.add(x, b)[:, ::-1])
    # Read-only inputs are fine (only outputs are written).
    ro = x.copy()
    ro.flags.writeable = False
    assert_bitwise(K.relu_forward(ro), y)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_out_may_be_any_input_and_partial_overlap_is_copied(isa):
    x = sample(1000, np.float32, 16)
    b = sample(1000, np.float32, 17)
    want = x + b
    a1 = x.copy()
    assert_bitwise(K.add(b, a1, out=a1), want)  # out is the second operand
    self_sum = x.copy()
    assert_bitwise(K.add(self_sum, self_sum, out=self_sum), x + x)
    y = K.relu_forward(x)
    y2 = y.copy()
    assert_bitwise(K.relu_backward(b, y2, out=y2), relu_grad_oracle(b, y))  # out is `output`
    # Shifted views of one buffer: an input that overlaps `out` without being it is read through a
    # copy, so the result is numpy's (which copies overlapping operands too).
    buf = np.concatenate([x, b[:1]])
    want = buf[1:] + buf[:-1]
    assert_bitwise(K.add(buf[1:], buf[:-1], out=buf[:-1]), want)  # 'a' shifted, 'b' is out
    buf = np.concatenate([x, b[:1]])
    want = buf[:-1] + b
    K.add(buf[:-1], b, out=buf[1:])
    assert_bitwise(buf[1:], want)
    buf = np.concatenate([y, b[:1]])
    want = relu_grad_oracle(buf[1:], buf[:-1])
    assert_bitwise(K.relu_backward(buf[1:], buf[:-1], out=buf[:-1]), want)


def test_outputs_come_from_the_allocator_cache():
    """Large outputs are 4 KiB-aligned blocks of the cache (alloc.cpp), reused after being freed."""
    x = np.ones((64, 64, 16, 16), np.float32)  # 4 MiB
    first = K.add(x, x)
    ptr = first.ctypes.data
    assert ptr % 4096 == 0
    del first
    assert K.relu_forward(x).ctypes.data == ptr


def test_no_access_outside_arrays():
    run_fenced(r"""
from cnnx import _C
from cnnx import kernels as K
rng = np.random.default_rng(0)
for isa in _C.available_isas():
    _C.set_isa(isa)
    for dtype in (np.float32, np.float64):
        for n in (1, 3, 7, 9, 17, 63, 65, 100, 4097, 65537):
            for at_end in (True, False):
                print(isa, dtype.__name__, n, at_end, flush=True)
                x = rng.standard_normal(n).astype(dtype)
                g = rng.standard_normal(n).astype(dtype)
                y = K.relu_forward(x)
                assert np.array_equal(K.relu_forward(fenced(x, at_end)), y)
                fx = fenced(x, at_end)
                K.relu_forward(fx, inplace=True)
                assert np.array_equal(fx, y)
                assert np.array_equal(K.relu_backward(fenced(g, at_end), fenced(y, at_end)), K.relu_backward(g, y))
                out = fenced(np.zeros(n, dtype), at_end)
                K.add(fenced(x, at_end), fenced(g, at_end), out=out)
                assert np.array_equal(out, x + g)
print("done")
""")


# ---------------------------------------------------------------------------------------------
# bad input: TypeError / ValueError naming the argument, never a crash or a silent conversion

X = np.ones((2, 3, 4), np.float32)


def _ro(a):
    a = a.copy()
    a.flags.writeable = False
    return a


BAD_INPUTS = [
    ("relu input list", lambda: K.relu_forward([1.0, -1.0]), TypeError, "'input'.*list"),
    ("relu input None", lambda: K.relu_forward(None), TypeError, "'input'"),
    ("relu input int32", lambda: K.relu_forward(X.astype(np.int32)), TypeError, "'input'.*int32"),
    ("relu input float16", lambda: K.relu_forward(X.astype(np.float16)), TypeError, "'input'.*float16"),
    ("relu input big-endian", lambda: K.relu_forward(X.astype(">f4")), TypeError, "'input'"),
    ("relu input object", lambda: K.relu_forward(np.empty(3, object)), TypeError, "'input'.*object"),
    ("relu inplace read-only", lambda: K.relu_forward(_ro(X), inplace=True), ValueError, "'input'.*writeable"),
    ("relu inplace strided", lambda: K.relu_forward(X[:, ::2], inplace=True), ValueError, "'input'.*contiguous"),
    ("relu inplace int", lambda: K.relu_forward(X, inplace=1), TypeError, "'inplace'"),
    ("backward grad list", lambda: K.relu_backward(X.tolist(), X), TypeError, "'grad_output'"),
    ("backward output int", lambda: K.relu_backward(X, X.astype(np.int64)), TypeError, "'output'"),
    ("backward mixed dtypes", lambda: K.relu_backward(X.astype(np.float64), X), TypeError,
     "'grad_output'.*dtype of 'output'.*float32.*float64"),
    ("backward shape", lambda: K.relu_backward(X[:1], X), ValueError, r"'grad_output'.*\(2, 3, 4\).*\(1, 3, 4\)"),
    ("backward broadcast", lambda: K.relu_backward(X[:, :1], X), ValueError, "'grad_output'.*broadcasting"),
    ("backward out dtype", lambda: K.relu_backward(X, X, out=np.empty(X.shape)), TypeError, "'out'"),
    ("backward out shape", lambda: K.relu_backward(X, X, out=np.empty(24, np.float32)), ValueError, "'out'"),
    ("backward out read-only", lambda: K.relu_backward(X, X, out=_ro(X)), ValueError, "'out'.*writeable"),
    ("backward out strided", lambda: K.relu_backward(X, X, out=np.empty((2, 3, 8), np.float32)[..., ::2]),
     ValueError, "'out'.*contiguous"),
    ("add a list", lambda: K.add([1.0], np.ones(1, np.float32)), TypeError, "'a'.*list"),
    ("add b number", lambda: K.add(X, 1.0), TypeError, "'b'.*float"),
    ("add mixed dtypes", lambda: K.add(X, X.astype(np.float64)), TypeError, "'b'.*dtype of 'a'"),
    ("add shape", lambda: K.add(X, X.reshape(3, 2, 4)), ValueError, r"'b'.*shape of 'a' \(2, 3, 4\).*\(3, 2, 4\)"),
    ("add ndim", lambda: K.add(X, X[None]), ValueError, "'b'.*shape"),
    ("add broadcast", lambda: K.add(X, np.ones(4, np.float32)), ValueError, "'b'.*broadcasting"),
    ("add out list", lambda: K.add(X, X, out=[]), TypeError, "'out'"),
    ("add out dtype", lambda: K.add(X, X, out=np.empty(X.shape, np.float64)), TypeError, "'out'.*dtype"),
    ("add out shape", lambda: K.add(X, X, out=np.empty((2, 3), np.float32)), ValueError, "'out'.*shape"),
    ("add out read-only", lambda: K.add(X, X, out=_ro(X)), ValueError, "'out'.*writeable"),
    ("add out fortran", lambda: K.add(X, X, out=np.asfortranarray(X.copy())), ValueError, "'out'.*contiguous"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_naming_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_failed_in_place_call_leaves_arrays_untouched():
    x = -np.ones(8, np.float32)
    out = x.copy()
    with pytest.raises(ValueError, match="'b'"):
        K.add(x, np.ones(7, np.float32), out=out)
    with pytest.raises(TypeError, match="'grad_output'"):
        K.relu_backward(np.ones(8), x, out=out)
    assert (out == -1).all() and (x == -1).all()


# ---------------------------------------------------------------------------------------------
# autograd: ReLU, in-place ReLU and Add use the kernels where they can, numpy elsewhere


def _counting(monkeypatch, *names):
    """Count calls of the named _C entry points (the ops reach them as attributes of _C)."""
    counts = dict.fromkeys(names, 0)
    for name in names:
        real = getattr(_C, name)

        def counted(*args, _real=real, _name=name):
            counts[_name] += 1
            return _real(*args)
        monkeypatch.setattr(_C, name, counted)
    return counts


def test_ops_call_the_kernels_on_dense_float_arrays(monkeypatch):
    counts = _counting(monkeypatch, "relu_forward", "relu_backward", "add")
    F = cnnx.nn.functional
    a = cnnx.randn(4, 5, requires_grad=True)
    b = cnnx.randn(4, 5, requires_grad=True)
    h = a + b                                # add (same shape and dtype)
    r = F.relu(h)                            # relu_forward
    q = F.relu(h * 1.0, inplace=True)        # relu_forward in place
    out = r + q                              # add
    assert counts == {"relu_forward": 2, "relu_backward": 0, "add": 2}
    out.backward(cnnx.ones(4, 5))            # a dense gradient reaches both relus; h's two
    assert counts == {"relu_forward": 2, "relu_backward": 2, "add": 3}  # gradients are summed by add
    hm = np.maximum(a.detach().numpy() + b.detach().numpy(), 0)
    np.testing.assert_array_equal(out.detach().numpy(), 2 * hm)
    np.testing.assert_array_equal(a.grad.numpy(), 2 * (hm > 0))


@pytest.mark.parametrize("case", ["broadcast", "number", "mixed dtype", "strided", "0-d", "float16", "int"])
def test_ops_fall_back_to_numpy(monkeypatch, case):
    counts = _counting(monkeypatch, "relu_forward", "relu_backward", "add")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    other = {"broadcast": rng.standard_normal(4).astype(np.float32), "number": 2.5,
             "mixed dtype": x.astype(np.float64), "strided": x, "0-d": x, "float16": x, "int": x}[case]
    if case == "strided":
        x = noncontiguous(x)
    elif case == "0-d":
        x, other = np.array(x[0, 0]), np.array(np.float32(1.5))
    elif case == "float16":
        x, other = x.astype(np.float16), x.astype(np.float16)
    elif case == "int":
        x, other = (x * 10).astype(np.int64), (x * 10).astype(np.int64)
    t = cnnx.from_numpy(x)
    o = cnnx.from_numpy(other) if isinstance(other, np.ndarray) else other
    with np.errstate(all="ignore"):
        s = t + o
        np.testing.assert_array_equal(s.numpy(), x + other)
        if case != "int":
            np.testing.assert_array_equal(cnnx.nn.functional.relu(t).numpy(), np.maximum(x, 0))
    if case in ("broadcast", "number", "mixed dtype"):
        assert counts["add"] == 0 and counts["relu_forward"] == 1  # relu of a dense float32 x
    else:
        assert counts == {"relu_forward": 0, "relu_backward": 0, "add": 0}


def test_relu_backward_fallback_has_torch_semantics():
    """The numpy fallback (here: a strided gradient) selects like the kernel: inf/NaN gradients where
    the output is <= 0 give 0, a NaN output passes its gradient."""
    y = np.array([np.nan, 0.0, 0.0, 2.0, 0.0], np.float32)
    g = np.array([1.0, np.inf, np.nan, 3.0, -4.0], np.float32)
    ctx = object.__new__(act_ops.ReLU)
    ctx.saved_tensors = (y,)
    want = np.array([1.0, 0.0, 0.0, 3.0, 0.0], np.float32)
    assert_bitwise(act_ops.ReLU.backward(ctx, g), want)
    got = act_ops.ReLU.backward(ctx, noncontiguous(g))
    assert_bitwise(got, want)


def test_read_only_input_of_in_place_relu_is_refused_by_numpy():
    """In-place ReLU on a read-only array keeps numpy's error (the kernel path is not taken)."""
    x = _ro(-np.ones(5, np.float32))
    with pytest.raises(ValueError, match="read-only"):
        act_ops.ReLUInplace.forward(object.__new__(act_ops.ReLUInplace), x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_matches_torch_with_specials(dtype):
    torch = pytest.importorskip("torch")
    s = SPECIALS.astype(dtype)
    a, b = (np.ascontiguousarray(v) for v in np.meshgrid(s, s, indexing="ij"))
    t = cnnx.from_numpy(a.copy()).requires_grad_()
    y = cnnx.nn.functional.relu(t)
    y.backward(cnnx.from_numpy(b))
    tt = torch.from_numpy(a.copy()).requires_grad_()
    ty = torch.relu(tt)
    ty.backward(torch.from_numpy(b))
    assert_bitwise(y.detach().numpy(), ty.detach().numpy(), "relu")
    assert_bitwise(t.grad.numpy(), tt.grad.numpy(), "relu grad")


def _numpy_paths(monkeypatch):
    """Force ReLU and Add onto their numpy code (np.maximum and a + b, as before the kernels)."""
    monkeypatch.setattr(act_ops, "kernel_array", lambda x: False)
    monkeypatch.setattr(ew_ops, "kernel_array", lambda x: False)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_resnet_residual_block_unchanged(monkeypatch, train):
    """A ResNet BasicBlock (conv-bn-relu_, conv-bn, + identity, relu_) and a downsampling one give
    the same output, and the same gradients, as with numpy's relu and add."""
    from cnnx.models.resnet import BasicBlock

    def run():
        cnnx.manual_seed(0)
        blocks = [BasicBlock(16, 16), BasicBlock(16, 32, stride=2, downsample=cnnx.nn.Sequential(
            cnnx.nn.Conv2d(16, 32, 1, stride=2, bias=False), cnnx.nn.BatchNorm2d(32)))]
        x = cnnx.from_numpy(np.random.default_rng(1).standard_normal((4, 16, 12, 12)).astype(np.float32))
        x.requires_grad_(train)
        outs = []
        for block in blocks:
            block.train(train)
            y = block(x)
            if train:
                y.backward(cnnx.from_numpy(np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)))
                outs += [x.grad.numpy().copy()] + [p.grad.numpy().copy() for p in block.parameters()]
                x.grad = None
            outs.append(y.detach().numpy().copy())
        return outs

    fast = run()
    with monkeypatch.context() as m:
        _numpy_paths(m)
        slow = run()
    assert len(fast) == len(slow)
    for f, s in zip(fast, slow):
        # -0.0 (kernel, as torch) vs +0.0 (np.maximum) is the one allowed difference.
        np.testing.assert_array_equal(f, s)
        assert_bitwise(f + 0, s + 0)
