"""cnnx.nn.functional against torch.nn.functional: values and gradients for the same inputs, every
documented option; and the bad-input catalogue (clear errors, never a crash or a wrong answer)."""
import numpy as np
import pytest

import cnnx
import cnnx.nn.functional as F
from cnnx.testing import assert_close

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def compare(cnnx_fn, torch_fn, *arrays, dtype=np.float64, grad=True, rtol=None, atol=None):
    """Run both on the same data; compare outputs, then gradients for one random upstream gradient."""
    arrays = [a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in arrays]
    xs = [cnnx.tensor(a, requires_grad=grad and a.dtype.kind == "f") if isinstance(a, np.ndarray) else a
          for a in arrays]
    ts = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") if isinstance(a, np.ndarray) else a
          for a in arrays]
    out, tout = cnnx_fn(*xs), torch_fn(*ts)
    tol = {} if rtol is None else {"rtol": rtol, "atol": atol}
    assert_close(out, tout, **tol)
    if grad:
        seed = np.random.default_rng(5).standard_normal(tuple(tout.shape)).astype(dtype)
        out.backward(cnnx.tensor(seed))
        tout.backward(torch.tensor(seed))
        for x, t in zip(xs, ts):
            if isinstance(x, cnnx.Tensor) and x.requires_grad:
                assert_close(x.grad, t.grad, **tol)
    return out


rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape)


# ---- losses ----------------------------------------------------------------------------------
CE_CASES = [
    ((4, 5), {}),
    ((5,), {}),
    ((4, 5), {"reduction": "sum"}),
    ((4, 5), {"reduction": "none"}),
    ((2, 3, 4, 2), {}),
    ((2, 3, 4, 2), {"reduction": "none", "ignore_index": 1}),
    ((6, 4), {"weight": True}),
    ((6, 4), {"weight": True, "ignore_index": 2}),
    ((6, 4), {"ignore_index": -100}),
    ((2, 3, 4), {"ignore_index": -7, "reduction": "sum"}),
    ((6, 4), {"label_smoothing": 0.3}),
    ((6, 4), {"label_smoothing": 0.3, "weight": True, "ignore_index": 0}),
    ((6, 4), {"label_smoothing": 0.1, "reduction": "sum", "weight": True}),
    ((6, 4), {"probs": True}),
    ((6, 4), {"probs": True, "weight": True, "label_smoothing": 0.2}),
    ((2, 3, 5), {"probs": True, "reduction": "none"}),
]


@pytest.mark.parametrize("shape,kw", CE_CASES, ids=[f"{s}-{k}" for s, k in CE_CASES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_matches_torch(shape, kw, dtype):
    kw = dict(kw)
    c = shape[1] if len(shape) > 1 else shape[0]
    if kw.pop("probs", False):
        p = np.abs(randn(*shape))
        target = p / p.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
        target = target.astype(dtype)
    else:
        target = rng.integers(0, c, shape[:1] + shape[2:] if len(shape) > 1 else ())
        if "ignore_index" in kw:
            target.reshape(-1)[0] = kw["ignore_index"]
    w = (0.5 + rng.random(c)).astype(dtype) if kw.pop("weight", False) else None
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {}
    compare(lambda x, t: F.cross_entropy(x, t, weight=None if w is None else cnnx.tensor(w), **kw),
            lambda x, t: TF.cross_entropy(x, t, weight=None if w is None else torch.tensor(w), **kw),
            randn(*shape), target, dtype=dtype, **tol)


def test_cross_entropy_is_stable_for_huge_logits():
    x = np.array([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 1.0]], dtype=np.float32)
    out = F.cross_entropy(cnnx.tensor(x), cnnx.tensor([1, 1]))
    assert np.isfinite(out.item())
    assert_close(out, TF.cross_entropy(torch.tensor(x), torch.tensor([1, 1])))


@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 1}, {"weight": True}])
def test_nll_loss_matches_torch(kw):
    kw = dict(kw)
    w = 0.5 + rng.random(4) if kw.pop("weight", False) else None
    compare(lambda x, t: F.nll_loss(F.log_softmax(x, 1), t, None if w is None else cnnx.tensor(w), **kw),
            lambda x, t: TF.nll_loss(TF.log_softmax(x, 1), t, None if w is None else torch.tensor(w), **kw),
            randn(5, 4, 3), rng.integers(0, 4, (5, 3)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction):
    compare(lambda x, y: F.mse_loss(x, y, reduction=reduction), lambda x, y: TF.mse_loss(x, y, reduction=reduction),
            randn(3, 4), randn(3, 4))


# ---- activations -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_match_torch_including_extremes(name, dtype):
    x = np.concatenate([randn(20) * 3, [-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4]])
    compare(getattr(F, name), getattr(torch, name), x, dtype=dtype)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_softmax_and_log_softmax_match_torch(dim):
    x = randn(3, 4, 5)
    compare(lambda t: F.softmax(t, dim), lambda t: TF.softmax(t, dim), x)
    compare(lambda t: F.log_softmax(t, dim), lambda t: TF.log_softmax(t, dim), x)


def test_softmax_dtype_argument_and_implicit_dim_warning():
    x = cnnx.randn(2, 3)
    assert F.softmax(x, 1, dtype=cnnx.float64).dtype == cnnx.float64
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = F.softmax(x)
    assert_close(out, F.softmax(x, 1))


def test_dropout_statistics_scaling_and_modes():
    cnnx.manual_seed(0)
    x = cnnx.ones(200_000, requires_grad=True)
    y = F.dropout(x, 0.3)
    kept = y.detach().numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.005
    assert_close(y.detach().numpy()[kept], np.full(kept.sum(), 1 / 0.7, dtype=np.float32))
    y.sum().backward()
    assert_close(x.grad.numpy(), y.detach().numpy())  # gradient is the same scaled mask
    assert F.dropout(x, 0.5, training=False) is x and F.dropout(x, 0.0) is x
    assert (F.dropout(cnnx.ones(10), 1.0).numpy() == 0).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


# ---- shape and linear algebra ------------------------------------------------------------------
def test_linear_and_matmul_match_torch():
    compare(F.linear, TF.linear, randn(2, 3, 4), randn(5, 4), randn(5))
    compare(F.linear, TF.linear, randn(4), randn(3, 4))
    compare(lambda a, b: a @ b, lambda a, b: a @ b, randn(2, 1, 3, 4), randn(5, 4, 2))
    compare(lambda a, b: a @ b, lambda a, b: a @ b, randn(3, 4), randn(4, 6), dtype=np.float32, rtol=1e-5, atol=1e-5)


def test_linear_handles_an_empty_batch():
    out = F.linear(cnnx.zeros(0, 4), cnnx.ones(3, 4), cnnx.ones(3))
    assert out.shape == (0, 3)


@pytest.mark.parametrize("pad", [(1, 2), (0, 1, 2, 0), (1, 1, 1, 1, 1, 1)])
def test_pad_matches_torch(pad):
    compare(lambda x: F.pad(x, pad, value=0.5), lambda x: TF.pad(x, pad, value=0.5), randn(2, 3, 4))


# ---- top-level functional forms (cnnx.add, cnnx.sum, ...), alpha= and dtype= ---------------------
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
_BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((3, 4), "number"), ("number", (2, 3))]


def _binary_arrays(shapes, positive):
    return [2.5 if s == "number" else (0.5 + rng.random(s) if positive else randn(*s)) for s in shapes]


@pytest.mark.parametrize("shapes", _BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
def test_binary_functional_forms_and_methods_match_torch(name, shapes):
    arrays = _binary_arrays(shapes, positive=name in ("div", "pow"))
    compare(getattr(cnnx, name), getattr(torch, name), *arrays)
    if shapes[0] != "number":  # the Tensor methods of the same names
        compare(lambda a, b: getattr(a, name)(b), lambda a, b: getattr(a, name)(b), *arrays)


@pytest.mark.parametrize("shapes", _BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("alpha", [2, -0.5, 0, 1.0])
@pytest.mark.parametrize("name", ["add", "sub"])
def test_alpha_scales_other_as_in_torch(name, alpha, shapes):
    arrays = _binary_arrays(shapes, positive=False)
    compare(lambda a, b: getattr(cnnx, name)(a, b, alpha=alpha), lambda a, b: getattr(torch, name)(a, b, alpha=alpha),
            *arrays)
    if shapes[0] != "number":
        compare(lambda a, b: getattr(a, name)(b, alpha=alpha), lambda a, b: getattr(a, name)(b, alpha=alpha),
                *arrays, dtype=np.float32)


def test_alpha_forms_of_integer_and_one_element_arguments():
    a, b = rng.integers(-5, 5, (3, 4)), rng.integers(-5, 5, (4,))
    for name in ("add", "sub"):
        compare(lambda x, y: getattr(cnnx, name)(x, y, alpha=3), lambda x, y: getattr(torch, name)(x, y, alpha=3),
                a, b, grad=False)
        out = getattr(cnnx, name)(cnnx.tensor(a), 2.5, alpha=2)  # a float operand allows a float alpha
        assert_close(out.numpy(), getattr(torch, name)(torch.tensor(a), 2.5, alpha=2).numpy(), check_dtype=False)
    # a one-element Tensor as alpha, as torch accepts; a numpy float64 scalar stays "weak"
    x = cnnx.ones(2, 3)
    assert_close(cnnx.add(x, x, alpha=cnnx.tensor(3.0)), torch.add(torch.ones(2, 3), torch.ones(2, 3), alpha=3.0))
    assert cnnx.add(x, np.float64(2.0)).dtype == cnnx.float32 == cnnx.mul(np.float64(2.0), x).dtype


def test_neg_transpose_permute_and_max_functional_forms_match_torch():
    compare(cnnx.neg, torch.neg, randn(3, 4))
    compare(lambda x: cnnx.transpose(x, 0, -1), lambda x: torch.transpose(x, 0, -1), randn(2, 3, 4))
    compare(lambda x: cnnx.permute(x, (2, 0, 1)), lambda x: torch.permute(x, (2, 0, 1)), randn(2, 3, 4))
    x = rng.permutation(24).reshape(2, 3, 4).astype(np.float64)  # no ties
    compare(cnnx.max, torch.max, x)
    for dim, keepdim in ((1, False), (-1, True)):
        values, indices = cnnx.max(cnnx.tensor(x), dim, keepdim)
        tvalues, tindices = torch.max(torch.tensor(x), dim, keepdim)
        assert_close(values, tvalues)
        assert indices.tolist() == tindices.tolist()
        compare(lambda t: cnnx.max(t, dim=dim, keepdim=keepdim).values,
                lambda t: torch.max(t, dim=dim, keepdim=keepdim).values, x)


@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, False), ((0, 2), True)])
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_and_mean_functional_forms_match_torch(name, dim, keepdim):
    if dim is None:
        compare(getattr(cnnx, name), getattr(torch, name), randn(2, 3, 4))
    else:
        compare(lambda x: getattr(cnnx, name)(x, dim, keepdim), lambda x: getattr(torch, name)(x, dim, keepdim),
                randn(2, 3, 4))


_DTYPE_OPS = {  # name -> (cnnx call, torch call), each taking (tensor, dtype)
    "sum": (lambda x, d: cnnx.sum(x, 1, dtype=d), lambda x, d: torch.sum(x, 1, dtype=d)),
    "sum-all": (lambda x, d: x.sum(dtype=d), lambda x, d: x.sum(dtype=d)),
    "mean": (lambda x, d: cnnx.mean(x, (0, 2), keepdim=True, dtype=d),
             lambda x, d: torch.mean(x, (0, 2), True, dtype=d)),
    "mean-method": (lambda x, d: x.mean(dtype=d), lambda x, d: x.mean(dtype=d)),
    "softmax": (lambda x, d: F.softmax(x, 1, dtype=d), lambda x, d: TF.softmax(x, 1, dtype=d)),
    "softmax-method": (lambda x, d: x.softmax(-1, d), lambda x, d: x.softmax(-1, d)),
    "log_softmax": (lambda x, d: F.log_softmax(x, 1, dtype=d), lambda x, d: TF.log_softmax(x, 1, dtype=d)),
    "log_softmax-method": (lambda x, d: x.log_softmax(0, dtype=d), lambda x, d: x.log_softmax(0, dtype=d)),
}


@pytest.mark.parametrize("src,dst", [(np.float32, np.float64), (np.float64, np.float32), (np.float64, np.float64)],
                         ids=["32to64", "64to32", "64to64"])
@pytest.mark.parametrize("op", list(_DTYPE_OPS))
def test_dtype_casts_the_input_first_and_the_gradient_back(op, src, dst):
    cnnx_fn, torch_fn = _DTYPE_OPS[op]
    data = randn(2, 3, 4).astype(src)
    x, t = cnnx.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    out, tout = cnnx_fn(x, np.dtype(dst)), torch_fn(t, TORCH_DTYPE[dst])
    assert out.dtype == dst and tout.dtype == TORCH_DTYPE[dst]
    # float64 -> float32 rounds the input first, as torch does: the results agree to float32's precision
    tol = {"rtol": 1e-6, "atol": 1e-6} if dst == np.float32 else {}
    assert_close(out, tout, **tol)
    seed = rng.standard_normal(tuple(tout.shape)).astype(dst)
    out.backward(cnnx.tensor(seed))
    tout.backward(torch.tensor(seed))
    assert x.grad.dtype == src
    assert_close(x.grad, t.grad, **tol)


def test_dtype_lets_integer_tensors_be_summed_and_averaged_in_float():
    a = rng.integers(-9, 9, (3, 4))
    for name in ("sum", "mean"):
        out = getattr(cnnx, name)(cnnx.tensor(a), 0, dtype=cnnx.float64)
        assert out.dtype == cnnx.float64
        assert_close(out, getattr(torch, name)(torch.tensor(a), 0, dtype=torch.float64))
    assert cnnx.sum(cnnx.tensor(a), dtype=np.float32).dtype == cnnx.float32  # numpy's spellings work too


# ---- kernels: convolution, pooling, normalisation ------------------------------------------------
CONV_CASES = [
    ((2, 3, 8, 8), (4, 3, 3, 3), {}),
    ((2, 3, 9, 7), (4, 3, 3, 3), {"stride": 2, "padding": 1}),
    ((1, 4, 7, 7), (6, 2, 3, 3), {"groups": 2, "dilation": 2, "padding": 2}),
    ((1, 4, 6, 6), (4, 1, 3, 3), {"groups": 4, "padding": 1}),
    ((2, 3, 6, 7), (4, 3, 2, 4), {"padding": "same"}),
    ((2, 3, 6, 7), (4, 3, 3, 2), {"padding": "same", "dilation": (2, 1)}),
    ((2, 3, 6, 7), (4, 3, 3, 3), {"padding": "valid", "stride": (2, 1)}),
    ((3, 6, 7), (4, 3, 3, 3), {"padding": (1, 0)}),
]


# PyTorch warns that its own "same" padding of an even kernel may copy the input; the oracle's
# performance is not under test.
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")
@pytest.mark.parametrize("x,w,kw", CONV_CASES, ids=[f"{x}-{w}-{k}" for x, w, k in CONV_CASES])
def test_conv2d_matches_torch(x, w, kw):
    compare(lambda a, b, c: F.conv2d(a, b, c, **kw), lambda a, b, c: TF.conv2d(a, b, c, **kw),
            randn(*x), randn(*w), randn(w[0]))
    compare(lambda a, b: F.conv2d(a, b, **kw), lambda a, b: TF.conv2d(a, b, **kw), randn(*x), randn(*w),
            dtype=np.float32, rtol=1e-4, atol=1e-4)


POOL_CASES = [
    ((2, 3, 8, 8), {"kernel_size": 2}),
    ((1, 2, 9, 9), {"kernel_size": 3, "stride": 2}),
    ((1, 2, 8, 8), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ((1, 1, 7, 9), {"kernel_size": (2, 3), "stride": (2, 1), "padding": (1, 0)}),
    ((2, 5, 5), {"kernel_size": 3, "stride": 1}),
]


@pytest.mark.parametrize("x,kw", POOL_CASES, ids=[f"{x}-{k}" for x, k in POOL_CASES])
def test_max_pool2d_and_indices_match_torch(x, kw):
    data = rng.permutation(int(np.prod(x))).reshape(x).astype(np.float64)
    compare(lambda a: F.max_pool2d(a, **kw), lambda a: TF.max_pool2d(a, **kw), data)
    _, idx = F.max_pool2d(cnnx.tensor(data), return_indices=True, **kw)
    _, tidx = TF.max_pool2d(torch.tensor(data), return_indices=True, **kw)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    if "padding" not in kw:
        compare(lambda a: F.max_pool2d(a, dilation=2, **kw), lambda a: TF.max_pool2d(a, dilation=2, **kw), data)


@pytest.mark.parametrize("x,kw", POOL_CASES, ids=[f"{x}-{k}" for x, k in POOL_CASES])
@pytest.mark.parametrize("extra", [{}, {"count_include_pad": False}, {"divisor_override": 5}])
def test_avg_pool2d_matches_torch(x, kw, extra):
    compare(lambda a: F.avg_pool2d(a, **kw, **extra), lambda a: TF.avg_pool2d(a, **kw, **extra), randn(*x))


@pytest.mark.parametrize("x,out", [((2, 3, 7, 7), 3), ((1, 2, 10, 7), (4, 3)), ((1, 2, 5, 5), 1), ((2, 6, 5), (None, 2)),
                                   ((1, 1, 3, 3), 5)])
def test_adaptive_avg_pool2d_matches_torch(x, out):
    compare(lambda a: F.adaptive_avg_pool2d(a, out), lambda a: TF.adaptive_avg_pool2d(a, out), randn(*x))


@pytest.mark.parametrize("x,size,kw", [((2, 7, 4, 4), 5, {}), ((1, 3, 3, 3), 5, {}), ((1, 6, 2, 2), 2, {}),
                                       ((1, 4, 3, 3), 1, {}), ((2, 5, 6), 3, {"alpha": 0.1, "beta": 0.5, "k": 2.0})])
def test_local_response_norm_matches_torch(x, size, kw):
    compare(lambda a: F.local_response_norm(a, size, **kw), lambda a: TF.local_response_norm(a, size, **kw), randn(*x))


def test_lrn_alexnet_paper_convention():
    x = randn(1, 6, 2, 2)
    layer = cnnx.nn.LocalResponseNorm.alexnet_paper(size=5, alpha=1e-2, beta=0.75, k=2.0)
    sq = np.pad(x ** 2, ((0, 0), (2, 2), (0, 0), (0, 0)))
    window = sum(sq[:, i:i + 6] for i in range(5))
    assert_close(layer(cnnx.tensor(x)), x / (2.0 + 1e-2 * window) ** 0.75)  # alpha not divided by size


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 3), (2, 3, 7)])
def test_batch_norm_matches_torch_including_running_stats(training, shape):
    c = shape[1]
    rm, rv = randn(c), 0.5 + rng.random(c)
    rm_c, rv_c, rm_t, rv_t = cnnx.tensor(rm), cnnx.tensor(rv), torch.tensor(rm), torch.tensor(rv)
    compare(lambda x, w, b: F.batch_norm(x, rm_c, rv_c, w, b, training=training, momentum=0.3, eps=1e-3),
            lambda x, w, b: TF.batch_norm(x, rm_t, rv_t, w, b, training=training, momentum=0.3, eps=1e-3),
            randn(*shape), 0.5 + rng.random(c), randn(c))
    assert_close(rm_c, rm_t)
    assert_close(rv_c, rv_t)


# ---- bad input: every case raises a clear error naming the problem ------------------------------
BAD_INPUTS = [
    (lambda: F.linear(cnnx.ones(2, 3), cnnx.ones(4, 5)), ValueError, "in_features = 5"),
    (lambda: F.linear(cnnx.ones(2, 3), cnnx.ones(4, 3), cnnx.ones(3)), ValueError, "bias must have shape"),
    (lambda: F.linear(cnnx.ones(2, 3), cnnx.ones(4, 3, dtype=cnnx.float64)), TypeError, "float32 but weight is float64"),
    (lambda: F.linear(np.ones((2, 3)), cnnx.ones(4, 3)), TypeError, "'input' must be a Tensor"),
    (lambda: F.cross_entropy(cnnx.ones(3, 4), cnnx.tensor([0, 1])), ValueError, "expected target of shape"),
    (lambda: F.cross_entropy(cnnx.ones(3, 4), cnnx.tensor([0, 1, 4])), IndexError, "target. holds 4, out of bounds"),
    (lambda: F.cross_entropy(cnnx.ones(3, 4), cnnx.tensor([0, 1, 2]), reduction="avg"), ValueError, "reduction"),
    (lambda: F.cross_entropy(cnnx.ones(3, 4), cnnx.tensor([0, 1, 2]), label_smoothing=2.0), ValueError, "label_smoothing"),
    (lambda: F.cross_entropy(cnnx.ones(3, 4), cnnx.tensor([0, 1, 2]), weight=cnnx.ones(3)), ValueError, "weight"),
    (lambda: F.cross_entropy(cnnx.ones(3, 4), cnnx.ones(3, 3)), ValueError, "probability targets"),
    (lambda: F.cross_entropy(cnnx.tensor([[1, 2]]), cnnx.tensor([0])), TypeError, "floating point"),
    (lambda: F.nll_loss(cnnx.ones(3, 4), cnnx.ones(3)), TypeError, "integer class indices"),
    (lambda: F.mse_loss(cnnx.ones(3), cnnx.ones(4)), ValueError, "shape"),
    (lambda: F.dropout(cnnx.ones(3), -0.1), ValueError, "between 0 and 1"),
    (lambda: F.softmax(cnnx.ones(3, 4), 2), IndexError, "out of range"),
    (lambda: F.pad(cnnx.ones(3), (1,)), ValueError, "even"),
    (lambda: F.pad(cnnx.ones(3), (-1, 1)), ValueError, "negative"),
    (lambda: F.pad(cnnx.ones(3), (1, 1), mode="reflect"), ValueError, "constant"),
    (lambda: F.conv2d(cnnx.ones(1, 1, 4, 4), cnnx.ones(1, 1, 3)), ValueError, "weight must be 4-D"),
    (lambda: F.conv2d(cnnx.ones(4, 4), cnnx.ones(1, 1, 3, 3)), ValueError, "3-D"),
    (lambda: F.conv2d(cnnx.ones(1, 1, 4, 4), cnnx.ones(1, 1, 3, 3), stride=1.5), TypeError, "'stride'"),
    (lambda: F.conv2d(cnnx.ones(1, 1, 4, 4), cnnx.ones(1, 1, 3, 3), padding="full"), ValueError, "'valid' or 'same'"),
    (lambda: F.conv2d(cnnx.ones(1, 1, 4, 4), cnnx.ones(1, 1, 3, 3), stride=2, padding="same"), ValueError, "strided"),
    (lambda: F.max_pool2d(cnnx.ones(4, 4), 2), ValueError, "3-D"),
    (lambda: F.max_pool2d(cnnx.ones(1, 1, 4, 4), (2, 2, 2)), TypeError, "'kernel_size'"),
    (lambda: F.local_response_norm(cnnx.ones(2, 3), 3), ValueError, "3D or higher"),
    (lambda: F.local_response_norm(cnnx.ones(1, 2, 3, 3), 0), ValueError, "'size'"),
    (lambda: F.local_response_norm(cnnx.ones(1, 2, 3, 3), 2, alpha=float("nan")), ValueError, "'alpha'"),
    (lambda: F.batch_norm(cnnx.ones(1, 3, 1, 1), None, None, training=True), ValueError, "more than 1 value"),
    (lambda: F.batch_norm(cnnx.ones(2, 3), None, None, training=False), ValueError, "running_mean"),
    (lambda: F.batch_norm(cnnx.ones(2, 3), cnnx.zeros(4), cnnx.ones(4)), ValueError, "running_mean must have shape"),
    # top-level functional forms, alpha= and dtype=
    (lambda: cnnx.add(cnnx.ones(2), [1.0, 2.0]), TypeError, r"add\(\): argument 'other' must be a Tensor or a real"),
    (lambda: cnnx.mul(2, 3), TypeError, r"mul\(\): argument 'input' must be a Tensor when 'other' is a number"),
    (lambda: cnnx.pow(cnnx.ones(2), "2"), TypeError, r"pow\(\): argument 'exponent'"),
    (lambda: cnnx.neg(2.0), TypeError, r"neg\(\): argument 'input' must be a Tensor"),
    (lambda: cnnx.div(cnnx.ones(2), 2, rounding_mode="floor"), ValueError, r"div\(\): argument 'rounding_mode'"),
    (lambda: cnnx.ones(2).add(np.ones(2)), TypeError, "got ndarray"),  # the method is torch's; `+` takes arrays
    (lambda: cnnx.add(cnnx.ones(2), cnnx.ones(2), alpha="2"), TypeError, r"add\(\): argument 'alpha' must be"),
    (lambda: cnnx.sub(cnnx.ones(2), cnnx.ones(2), alpha=1j), TypeError, r"sub\(\): argument 'alpha' must be"),
    (lambda: cnnx.add(cnnx.ones(2), cnnx.ones(2), alpha=cnnx.ones(2)), TypeError, "one-element Tensor"),
    (lambda: cnnx.add(cnnx.ones(2), cnnx.ones(2), alpha=True), TypeError, "'alpha' is a bool"),
    (lambda: cnnx.tensor([1, 2]).sub(1, alpha=0.5), TypeError, "'alpha' must be an int for integer operands"),
    (lambda: cnnx.sum(cnnx.ones(2), dtype=cnnx.int64), TypeError, r"sum\(\): argument 'dtype' must be cnnx.float32"),
    (lambda: cnnx.ones(2).mean(dtype=cnnx.float16), TypeError, r"mean\(\): argument 'dtype'"),
    (lambda: F.softmax(cnnx.ones(2, 3), 1, dtype=cnnx.int32), TypeError, r"softmax\(\): argument 'dtype'"),
    (lambda: cnnx.ones(2, 3).log_softmax(1, "no-such-dtype"), TypeError, r"log_softmax\(\): argument 'dtype'"),
    (lambda: cnnx.sum(cnnx.ones(2, 3), 1.0), TypeError, r"sum\(\): argument 'dim' must be an int or a tuple"),
    (lambda: cnnx.max(cnnx.ones(2), cnnx.ones(2)), TypeError, "elementwise max of two tensors is not implemented"),
    (lambda: cnnx.max(cnnx.ones(2, 3), (0, 1)), TypeError, r"max\(\): argument 'dim' must be an int or None"),
    (lambda: cnnx.transpose(cnnx.ones(2, 3), 0, 1.0), TypeError, r"transpose\(\): argument 'dim1' must be an int"),
    (lambda: cnnx.permute(cnnx.ones(2, 3), (1.0, 0)), TypeError, r"permute\(\): argument 'dims' must be a tuple"),
]


@pytest.mark.parametrize("call,error,match", BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
