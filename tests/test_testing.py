"""cnnx.testing: the helpers must catch what they exist to catch."""
import numpy as np
import pytest

import cnnx
from cnnx.autograd import Function
from cnnx.testing import GradcheckError, assert_close, gradcheck


class WrongSquareGrad(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2.01 * x * g  # off by 0.5%


def test_gradcheck_catches_a_wrong_backward():
    x = cnnx.tensor(np.linspace(0.5, 2.0, 6), requires_grad=True)
    with pytest.raises(GradcheckError, match="Jacobian mismatch for differentiable input 0"):
        gradcheck(WrongSquareGrad.apply, (x,))
    assert gradcheck(WrongSquareGrad.apply, (x,), raise_exception=False) is False


def test_gradcheck_catches_a_missing_cross_term():
    class ForgetsB(Function):
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return g * b, None  # gradient for b missing

    a = cnnx.tensor([1.0, 2.0], dtype=cnnx.float64, requires_grad=True)
    b = cnnx.tensor([3.0, 4.0], dtype=cnnx.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(ForgetsB.apply, (a, b))


def test_gradcheck_fails_on_nan_instead_of_passing_it():
    # NaN compares false with everything, so a "difference > tolerance" test passed NaN Jacobians.
    class NaNGrad(Function):
        def forward(ctx, x):
            return x * 2

        def backward(ctx, g):
            return g * np.nan

    x = cnnx.tensor([1.0, 2.0], dtype=cnnx.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match=r"analytical nan, numerical 1\.99"):
        gradcheck(NaNGrad.apply, (x,))
    with pytest.raises(GradcheckError, match="analytical nan, numerical nan"):  # NaN on both sides too
        gradcheck(lambda t: t * np.nan, (x,))


def test_gradcheck_restores_inputs_and_their_grads():
    x = cnnx.tensor([1.0, 2.0, 3.0], dtype=cnnx.float64, requires_grad=True)
    x.grad = cnnx.tensor([9.0, 9.0, 9.0], dtype=cnnx.float64)
    before = x.detach().numpy().copy()
    assert gradcheck(lambda t: (t * t).sum(), (x,))
    np.testing.assert_array_equal(x.detach().numpy(), before)
    np.testing.assert_array_equal(x.grad.numpy(), [9.0, 9.0, 9.0])


def test_gradcheck_rejects_bad_inputs():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda t: t * 2, (cnnx.ones(2, dtype=cnnx.float64),))
    x = cnnx.ones(2, dtype=cnnx.float64, requires_grad=True)
    with pytest.raises(ValueError, match="not a leaf"):
        gradcheck(lambda t: t * 2, (x * 1,))
    with pytest.warns(UserWarning, match="float32"):
        gradcheck(lambda t: t * 2, (cnnx.ones(2, requires_grad=True),), eps=1e-2, atol=1e-2, rtol=1e-2)


def test_assert_close_default_tolerances_follow_dtype():
    a = cnnx.tensor([1.0, 2.0])
    assert_close(a, cnnx.tensor([1.0 + 1e-6, 2.0]))  # float32: atol 1e-5
    with pytest.raises(AssertionError, match="Mismatched elements: 1 / 2"):
        assert_close(a, cnnx.tensor([1.0 + 1e-4, 2.0]))
    d = cnnx.tensor([1.0, 2.0], dtype=cnnx.float64)
    with pytest.raises(AssertionError, match="Greatest absolute difference"):
        assert_close(d, cnnx.tensor([1.0 + 1e-6, 2.0], dtype=cnnx.float64))  # float64: 1e-7
    assert_close(cnnx.tensor([1, 2]), np.array([1, 2]))
    with pytest.raises(AssertionError):
        assert_close(cnnx.tensor([1, 2]), np.array([1, 3]))


def test_assert_close_shape_dtype_nan_and_explicit_tolerances():
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(np.zeros(3, np.float32), np.zeros(3))
    assert_close(np.zeros(3, np.float32), np.zeros(3), check_dtype=False)
    nan = np.array([np.nan, 1.0])
    with pytest.raises(AssertionError):
        assert_close(nan, nan)
    assert_close(nan, nan, equal_nan=True)
    assert_close(np.array([np.inf]), np.array([np.inf]))
    with pytest.raises(AssertionError):
        assert_close(np.array([np.inf]), np.array([-np.inf]))
    assert_close(np.array([1.0]), np.array([1.1]), rtol=0.2, atol=0.0)
    with pytest.raises(ValueError, match="both"):
        assert_close(np.array([1.0]), np.array([1.0]), rtol=0.1)
    assert_close({"a": np.ones(2), "b": [np.zeros(1)]}, {"a": np.ones(2), "b": [np.zeros(1)]})


def test_assert_close_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    assert_close(cnnx.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    with pytest.raises(AssertionError):
        assert_close(cnnx.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]))
