"""cnnx.Tensor and the constructors: dtypes, attributes, operators, views, indexing, errors."""
import numpy as np
import pytest

import cnnx
from cnnx.testing import assert_close


def test_default_dtypes_follow_pytorch():
    assert cnnx.tensor(1.5).dtype == cnnx.float32
    assert cnnx.tensor([1.0, 2.0]).dtype == cnnx.float32
    assert cnnx.tensor([1, 2]).dtype == cnnx.int64
    assert cnnx.tensor([True, False]).dtype == cnnx.bool
    assert cnnx.tensor(np.zeros(2)).dtype == cnnx.float64  # numpy arrays keep their dtype
    assert cnnx.tensor([1, 2], dtype=cnnx.float64).dtype == cnnx.float64
    assert cnnx.zeros(2, 3).dtype == cnnx.float32 and cnnx.zeros(2, 3).shape == (2, 3)
    assert cnnx.ones((2, 3)).shape == (2, 3) and cnnx.empty([4]).shape == (4,)
    assert cnnx.randn(2, 3).dtype == cnnx.float32 and cnnx.rand(4, dtype=cnnx.float64).dtype == cnnx.float64
    assert cnnx.arange(5).dtype == cnnx.int64 and cnnx.arange(0, 1, 0.25).dtype == cnnx.float32
    assert cnnx.full((2,), 3).dtype == cnnx.int64 and cnnx.full((2,), 3.0).dtype == cnnx.float32
    assert cnnx.randint(0, 10, (5,)).dtype == cnnx.int64


def test_float32_stays_float32_through_ops_with_python_numbers():
    x = cnnx.randn(3, 4, requires_grad=True)
    y = ((x * 2.5 + 1) / 3.0 - 0.5) ** 2
    y = y.relu().tanh().sigmoid().exp().log().sum() * 0.5
    assert y.dtype == cnnx.float32
    y.backward()
    assert x.grad.dtype == cnnx.float32


def test_attributes_and_conversions():
    t = cnnx.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.shape == (2, 2) and t.ndim == 2 and t.dim() == 2 and t.numel() == 4 and len(t) == 2
    assert t.size() == (2, 2) and t.size(1) == 2
    assert t.device == "cpu" and str(t.device) == "cpu" and t.device == cnnx.device("cpu")
    assert t.requires_grad is False and t.grad is None and t.is_leaf
    assert cnnx.tensor([[7.0]]).item() == 7.0 and float(cnnx.tensor(2.0)) == 2.0
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(RuntimeError, match="4 elements"):
        t.item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(t)
    with pytest.raises(RuntimeError, match="not available"):
        cnnx.zeros(2, device="cuda")


def test_numpy_shares_memory_and_refuses_tensors_requiring_grad():
    a = np.zeros(3, dtype=np.float32)
    t = cnnx.from_numpy(a)
    a[0] = 5
    assert t.numpy()[0] == 5 and t.numpy() is a
    c = cnnx.tensor(a)  # tensor() copies
    a[1] = 7
    assert c.numpy()[1] == 0
    w = cnnx.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        w.numpy()
    assert w.detach().numpy().tolist() == [1.0, 1.0]
    assert np.asarray(cnnx.ones(2)).tolist() == [1.0, 1.0]


def test_operators_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    ta, tb = cnnx.tensor(a), cnnx.tensor(b)
    assert_close(ta + tb, a + b)
    assert_close(ta - tb, a - b)
    assert_close(ta * tb, a * b)
    assert_close(ta / tb, a / b)
    assert_close(2.0 - ta, 2.0 - a)
    assert_close(2.0 / (ta.abs() + 1), 2.0 / (np.abs(a) + 1))
    assert_close(-ta, -a)
    assert_close(ta.abs() ** 1.5, np.abs(a) ** 1.5)
    assert_close(ta @ tb, a @ b, rtol=1e-5, atol=1e-5)
    assert_close(a + tb, a + b)  # numpy on the left defers to Tensor
    assert isinstance(a + tb, cnnx.Tensor)
    assert_close((ta > 0), a > 0)
    assert ((ta == ta).numpy()).all() and not (ta != ta).numpy().any()
    assert {ta: 1}[ta] == 1  # hashable by identity


def test_reductions_and_argmax():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = cnnx.tensor(a)
    assert_close(t.sum(), a.sum())
    assert_close(t.sum((0, 2)), a.sum((0, 2)))
    assert_close(t.mean(1, keepdim=True), a.mean(1, keepdims=True))
    assert t.max().item() == 23
    values, indices = t.max(dim=1)
    assert_close(values, a.max(1))
    assert indices.dtype == cnnx.int64 and indices.tolist() == a.argmax(1).tolist()
    assert t.argmax().item() == 23 and t.argmax(2).tolist() == a.argmax(2).tolist()
    with pytest.raises(IndexError, match="out of range"):
        t.sum(3)


def test_top_level_functional_forms_and_named_methods():
    # torch.add, torch.sum, ... exist in cnnx under the same names (tests/test_functional.py checks them
    # against torch; this checks them against numpy, without torch).
    for name in ("add", "sub", "mul", "div", "neg", "pow", "sum", "mean", "max", "transpose", "permute"):
        assert name in cnnx.__all__ and callable(getattr(cnnx, name))
    a = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    t = cnnx.tensor(a)
    assert_close(cnnx.add(t, 1, alpha=2), a + 2)
    assert_close(cnnx.add(1, t, alpha=2), 1 + 2 * a)
    assert_close(cnnx.sub(t, t[0], alpha=0.5), a - 0.5 * a[0])
    assert_close(t.add(t, alpha=-1), np.zeros_like(a))
    assert_close(t.sub(2, alpha=3), a - 6)
    assert_close(cnnx.mul(t, 2), 2 * a)
    assert_close(cnnx.div(3, t), 3 / a)
    assert_close(cnnx.pow(t, 2), a ** 2)
    assert_close(cnnx.pow(2, t), 2 ** a)
    assert_close(cnnx.neg(t), -a)
    assert_close(t.mul(t).div(t).pow(1), a)
    assert_close(cnnx.sum(t, 1), a.sum(1))
    assert_close(cnnx.mean(t, 0, True), a.mean(0, keepdims=True))
    assert cnnx.sum(t, dtype=cnnx.float64).dtype == cnnx.float64 and t.sum(dtype=cnnx.float64).item() == 21
    assert cnnx.max(t).item() == 6
    values, indices = cnnx.max(t, 1)
    assert values.tolist() == [3, 6] and indices.tolist() == [2, 2]
    assert cnnx.transpose(t, 0, 1).tolist() == a.T.tolist() and cnnx.permute(t, (1, 0)).tolist() == a.T.tolist()
    # the integer results stay integers, as in torch
    i = cnnx.tensor([1, 2, 3])
    assert cnnx.add(i, i, alpha=2).dtype == cnnx.int64 and cnnx.add(i, i, alpha=2).tolist() == [3, 6, 9]


def test_alpha_scales_the_gradient_of_other():
    x, y = cnnx.ones(2, 3, requires_grad=True), cnnx.ones(3, requires_grad=True)
    cnnx.sub(x, y, alpha=2.5).sum().backward()
    assert x.grad.tolist() == [[1.0] * 3] * 2 and y.grad.tolist() == [-5.0] * 3  # y broadcast over 2 rows


def test_views_share_memory_like_pytorch():
    t = cnnx.arange(12).reshape(3, 4)
    v = t.view(4, 3)
    t[0, 0] = 100
    assert v[0, 0].item() == 100
    assert t.transpose(0, 1).shape == (4, 3) and t.permute(1, 0).shape == (4, 3) and t.T.shape == (4, 3)
    with pytest.raises(RuntimeError, match="reshape"):
        t.T.view(12)
    assert t.T.reshape(12).shape == (12,)
    assert t.flatten().shape == (12,) and cnnx.zeros(2, 3, 4).flatten(1).shape == (2, 12)
    assert t.unsqueeze(0).shape == (1, 3, 4) and t.unsqueeze(-1).shape == (3, 4, 1)
    assert cnnx.zeros(1, 3, 1).squeeze().shape == (3,) and cnnx.zeros(1, 3, 1).squeeze(0).shape == (3, 1)
    with pytest.raises(ValueError, match="reshape"):
        t.reshape(5, 3)


def test_indexing_matches_numpy():
    a = np.arange(24).reshape(2, 3, 4)
    t = cnnx.tensor(a)
    for index in [0, -1, (1, 2), (slice(None), 1), (Ellipsis, 0), (None, 0, slice(1, 3)), [1, 0],
                  (0, [0, 2], [1, 3]), (slice(None, None, -1),)]:
        np.testing.assert_array_equal(t[index].numpy(), a[index])
    np.testing.assert_array_equal(t[t > 10].numpy(), a[a > 10])
    np.testing.assert_array_equal(t[cnnx.tensor([1, 1])].numpy(), a[[1, 1]])
    with pytest.raises(IndexError):
        t[5]
    with pytest.raises(IndexError, match="unsupported index"):
        t["a"]


def test_cat_and_stack():
    a, b = cnnx.ones(2, 3), cnnx.zeros(2, 1)
    assert cnnx.cat([a, b], dim=1).shape == (2, 4)
    assert cnnx.stack([a, a, a]).shape == (3, 2, 3)
    with pytest.raises(ValueError, match="must match except in dimension 0"):
        cnnx.cat([a, b])
    with pytest.raises(ValueError, match="equal size"):
        cnnx.stack([a, b])


def test_shape_mismatch_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(2,3\).*\(4,\)|\(2, ?3\).*\(4,\)"):
        cnnx.ones(2, 3) + cnnx.ones(4)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        cnnx.ones(2, 3) @ cnnx.ones(4, 5)
    with pytest.raises(TypeError, match="same dtype"):
        cnnx.ones(2, 3) @ cnnx.ones(3, 2, dtype=cnnx.float64)


@pytest.mark.parametrize("name,call", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a.abs() ** b), ("add", lambda a, b: cnnx.add(a, b, alpha=2)),
    ("sub", lambda a, b: a.sub(b)), ("eq", lambda a, b: a == b), ("lt", lambda a, b: a < b),
    ("ge", lambda a, b: a >= b)])
def test_a_failed_broadcast_names_the_op_and_both_shapes(name, call):
    # PyTorch: RuntimeError "The size of tensor a (2) must match the size of tensor b (4) at non-singleton
    # dimension 0"; cnnx's contract type is ValueError, with the op and both shapes in the message.
    a, b = cnnx.ones(2, 3, requires_grad=True), cnnx.ones(4, 3)
    with pytest.raises(ValueError, match=rf"^{name}\(\): shapes \(2, 3\) and \(4, 3\) cannot be broadcast together: "
                                         r"the size of tensor a \(2\) must match the size of tensor b \(4\) at "
                                         r"non-singleton dimension 0$"):
        call(a, b)
    # As in PyTorch, the first mismatch from the right is the one named (here the last dimension).
    with pytest.raises(ValueError, match=r"tensor a \(3\) must match the size of tensor b \(5\) at non-singleton "
                                         r"dimension 2"):
        call(cnnx.ones(4, 2, 3), cnnx.ones(2, 5))
    # Shapes that do broadcast still do (sizes of 1 and missing leading dimensions).
    assert call(cnnx.ones(2, 1, 3), cnnx.ones(4, 1)).shape == (2, 4, 3)


def test_a_failed_broadcast_names_the_shapes_in_written_order_and_in_place_needs_the_target_shape():
    # numpy on the left defers to Tensor.__rsub__ / __rmul__: "tensor a" is still the left operand.
    with pytest.raises(ValueError, match=r"^sub\(\): shapes \(3, 2\) and \(2, 3\)"):
        np.ones((3, 2)) - cnnx.ones(2, 3)
    with pytest.raises(ValueError, match=r"^mul\(\): shapes \(3,\) and \(2, 2\)"):
        np.ones(3) * cnnx.ones(2, 2)
    for method in ("add_", "sub_", "mul_", "div_"):
        t = cnnx.ones(3)
        with pytest.raises(ValueError, match=rf"^{method}\(\): argument 'other' of shape \(2, 3\) cannot be broadcast "
                                             r"to the shape \(3,\) of the tensor updated in place"):
            getattr(t, method)(cnnx.ones(2, 3))  # would broadcast out of place, but not into t
        assert t.tolist() == [1.0, 1.0, 1.0]
    t = cnnx.ones(2, 3)
    t += cnnx.full((3,), 2.0)  # broadcasting into the target is fine
    assert t.tolist() == [[3.0] * 3] * 2


def test_inplace_methods_outside_the_graph():
    t = cnnx.zeros(3)
    t.add_(1).mul_(3).sub_(cnnx.ones(3), alpha=0.5).div_(2)
    assert t.tolist() == [1.25, 1.25, 1.25]
    t.addcmul_(cnnx.ones(3), cnnx.full((3,), 2.0), value=0.5).addcdiv_(cnnx.ones(3), cnnx.full((3,), 4.0), value=4)
    assert t.tolist() == [3.25, 3.25, 3.25]
    t.clamp_(max=3.0)
    assert t.tolist() == [3.0, 3.0, 3.0]
    t.zero_()
    t.fill_(2)
    t += 1
    assert t.tolist() == [3.0, 3.0, 3.0]
    t.copy_(cnnx.tensor([1, 2, 3]))
    assert t.dtype == cnnx.float32 and t.tolist() == [1.0, 2.0, 3.0]


def test_to_and_clone():
    t = cnnx.ones(2, requires_grad=True)
    d = t.double()
    assert d.dtype == cnnx.float64 and d.requires_grad
    d.sum().backward()
    assert t.grad.dtype == cnnx.float32
    assert t.to("cpu") is t and t.to(cnnx.float32) is t
    c = t.clone()
    assert c.grad_fn is not None and c.numpy is not None
    assert cnnx.ones(2).long().dtype == cnnx.int64


def test_manual_seed_makes_random_tensors_reproducible():
    cnnx.manual_seed(3)
    a = cnnx.randn(5)
    cnnx.manual_seed(3)
    b = cnnx.randn(5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert cnnx.initial_seed() == 3
    with pytest.raises(ValueError):
        cnnx.manual_seed(-1)


def test_repr_is_readable():
    assert repr(cnnx.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "requires_grad=True" in repr(cnnx.ones(1, requires_grad=True))
    assert "grad_fn=<MulBackward>" in repr(cnnx.ones(1, requires_grad=True) * 2)
    assert "dtype=cnnx.float64" in repr(cnnx.ones(1, dtype=cnnx.float64))


def test_tensor_constructor_errors():
    with pytest.raises(TypeError, match="could not make a tensor"):
        cnnx.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="from_numpy"):
        cnnx.from_numpy([1, 2])
    with pytest.raises(ValueError, match="negative dimension"):
        cnnx.zeros(-1)
