"""The tape: gradient accumulation, graph shapes, grad mode, freeing, errors, custom Functions."""
import gc
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import cnnx
from cnnx.autograd import Function
from cnnx.testing import assert_close


def leaf(*shape, seed=0):
    return cnnx.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_tensor_used_twice_accumulates():
    x = leaf(3)
    (x * x).sum().backward()  # d/dx x^2 = 2x: both uses of x contribute
    assert_close(x.grad, 2 * x.detach())


def test_gradients_accumulate_across_backward_calls():
    x = leaf(4)
    (3 * x).sum().backward()
    (2 * x).sum().backward()
    assert_close(x.grad, cnnx.full((4,), 5.0, dtype=cnnx.float64))


def test_diamond_graph_waits_for_all_consumers():
    # b consumes a, c consumes a and b: a's node must run after both b and c have sent gradients.
    x = leaf(5)
    a = x * 2
    b = a * 3
    c = a + b
    c.sum().backward()
    assert_close(x.grad, cnnx.full((5,), 8.0, dtype=cnnx.float64))


def test_long_chain_and_deep_graph_have_no_recursion_limit():
    x = leaf(2)
    y = x
    for _ in range(5000):
        y = y + 1
    y.sum().backward()
    assert_close(x.grad, cnnx.ones(2, dtype=cnnx.float64))


def test_broadcast_gradients_reduce_to_input_shapes():
    x = leaf(4, 1, 3)
    b = leaf(3, seed=1)
    s = cnnx.tensor(2.0, dtype=cnnx.float64, requires_grad=True)
    out = (x + b) * s  # (4, 1, 3) + (3,) -> (4, 1, 3); scalar s broadcasts everywhere
    out.backward(cnnx.ones(4, 1, 3, dtype=cnnx.float64))
    assert x.grad.shape == (4, 1, 3) and b.grad.shape == (3,) and s.grad.shape == ()
    assert_close(b.grad, cnnx.full((3,), 8.0, dtype=cnnx.float64))
    assert_close(s.grad.item(), float((x.detach().numpy() + b.detach().numpy()).sum()), rtol=1e-12, atol=1e-12)


def test_mixed_dtypes_give_each_leaf_its_own_dtype():
    x32 = cnnx.ones(3, requires_grad=True)
    x64 = cnnx.ones(3, dtype=cnnx.float64, requires_grad=True)
    out = x32 * x64
    assert out.dtype == cnnx.float64
    out.sum().backward()
    assert x32.grad.dtype == cnnx.float32 and x64.grad.dtype == cnnx.float64


def test_no_grad_records_nothing():
    x = leaf(3)
    with cnnx.no_grad():
        y = (x * 2).relu().sum()
    assert y.grad_fn is None and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_as_decorator_and_enable_grad_inside():
    x = leaf(3)

    @cnnx.no_grad()
    def f(t):
        return t * 2

    assert f(x).grad_fn is None
    assert cnnx.is_grad_enabled()
    with cnnx.no_grad():
        with cnnx.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    with cnnx.set_grad_enabled(False):
        assert not cnnx.is_grad_enabled()
    assert cnnx.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = {}

    def worker():
        seen["enabled"] = cnnx.is_grad_enabled()

    with cnnx.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen["enabled"] is True


def test_backward_on_non_scalar_needs_gradient():
    y = leaf(2, 3) * 2
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*\(2, 3\)"):
        y.backward()
    with pytest.raises(RuntimeError, match="gradient has shape"):
        y.backward(cnnx.ones(3, 2, dtype=cnnx.float64))


def test_second_backward_without_retain_graph_raises_and_retain_graph_allows_it():
    x = leaf(3)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad, 4 * x.detach())
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_of_a_leaf_seeds_its_grad():
    x = cnnx.tensor(3.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_only_float_tensors_can_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        cnnx.tensor([1, 2], requires_grad=True)


def test_graph_is_freed_after_backward():
    x = leaf(100)
    y = x * x  # Mul saves x for backward
    node = y.grad_fn
    saved = weakref.ref(node.saved_tensors[0]) if node.saved_tensors[0] is not None else None
    y.sum().backward()
    assert node.parents is None and node.saved_tensors is None
    del x
    gc.collect()
    assert saved is None or saved() is None


class CountingSquare(Function):
    calls = 0

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x * x

    @staticmethod
    def backward(ctx, g):
        CountingSquare.calls += 1
        (x,) = ctx.saved_tensors
        return 2 * ctx.scale * x * g, None


def test_custom_function_with_staticmethods_and_extra_args():
    x = leaf(4)
    y = CountingSquare.apply(x, 3.0)
    y.sum().backward()
    assert_close(x.grad, 6 * x.detach())
    assert cnnx.testing.gradcheck(lambda t: CountingSquare.apply(t, 0.5), (leaf(3),))


class NeedsProbe(Function):
    seen = None

    def forward(ctx, a, b):
        NeedsProbe.seen = ctx.needs_input_grad
        return a + b

    def backward(ctx, g):
        return (g if ctx.needs_input_grad[0] else None, g if ctx.needs_input_grad[1] else None)


def test_needs_input_grad_marks_only_tensors_that_require_grad():
    x, c = leaf(2), cnnx.ones(2, dtype=cnnx.float64)
    NeedsProbe.apply(x, c)
    assert NeedsProbe.seen == (True, False)
    NeedsProbe.apply(x, 1.0)
    assert NeedsProbe.seen == (True, False)
    with cnnx.no_grad():
        NeedsProbe.apply(x, x)
    assert NeedsProbe.seen == (False, False)


def _spy(monkeypatch, name):
    """Record every call of the kernel ``cnnx._C.<name>`` (the Functions look it up on the module at
    call time, so patching the module attribute reaches them) and still run it."""
    real = getattr(cnnx._C, name)
    calls = []

    def spy(*args):
        calls.append(args)
        return real(*args)
    monkeypatch.setattr(cnnx._C, name, spy)
    return calls


def _two_convs():
    cnnx.manual_seed(0)
    return cnnx.nn.Conv2d(3, 4, 3), cnnx.nn.Conv2d(4, 5, 3)


def _step(conv1, conv2, x):
    conv2(conv1(x).relu()).sum().backward()


def test_unneeded_backward_kernels_are_skipped(monkeypatch):
    """needs_input_grad at work: the first convolution never computes the gradient of the network's
    input (conv2d_backward_input), and a frozen convolution never computes its weight gradient."""
    dx_calls = _spy(monkeypatch, "conv2d_backward_input")
    dw_calls = _spy(monkeypatch, "conv2d_backward_weight")
    data = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)

    conv1, conv2 = _two_convs()
    _step(conv1, conv2, cnnx.tensor(data))  # the input does not require grad
    # the second convolution's input (conv1's output) needs a gradient; the network's input does not
    assert [args[1] is conv2.weight._data for args in dx_calls] == [True]
    assert [args[1].shape for args in dw_calls] == [(2, 5, 4, 4), (2, 4, 6, 6)]  # both weights need theirs
    grads = [p.grad.numpy().copy() for p in (conv1.weight, conv1.bias, conv2.weight, conv2.bias)]

    dx_calls.clear(), dw_calls.clear()
    conv1, conv2 = _two_convs()
    x = cnnx.tensor(data, requires_grad=True)
    _step(conv1, conv2, x)  # now it does: both convolutions compute their input gradient
    assert [args[1] is conv.weight._data for args, conv in zip(dx_calls, (conv2, conv1))] == [True, True]
    assert x.grad.shape == x.shape
    # skipping changed nothing else: the parameter gradients are the same in both runs
    for p, g in zip((conv1.weight, conv1.bias, conv2.weight, conv2.bias), grads):
        np.testing.assert_array_equal(p.grad.numpy(), g)

    dx_calls.clear(), dw_calls.clear()
    conv1, conv2 = _two_convs()
    conv1.weight.requires_grad_(False)
    conv1.bias.requires_grad_(False)
    # Frozen first layer and an input without grad: conv1's output needs no gradient, so neither
    # convolution computes an input gradient, and only conv2 a weight gradient.
    _step(conv1, conv2, cnnx.tensor(data))
    assert dx_calls == []
    assert [args[1].shape for args in dw_calls] == [(2, 5, 4, 4)]  # (x, grad_output, ...) of conv2
    assert conv1.weight.grad is None and conv2.weight.grad is not None


class WrongShape(Function):
    def forward(ctx, x):
        return x.sum()

    def backward(ctx, g):
        return np.ones(3)


def test_a_backward_returning_the_wrong_shape_is_reported():
    with pytest.raises(RuntimeError, match=r"WrongShapeBackward returned a gradient of shape \(3,\)"):
        WrongShape.apply(leaf(2, 2)).backward()


def test_gradient_does_not_flow_into_detached_tensors():
    x = leaf(3)
    y = x.detach() * 2 + x
    y.sum().backward()
    assert_close(x.grad, cnnx.ones(3, dtype=cnnx.float64))
    assert not x.detach().requires_grad


def test_inplace_on_tensor_requiring_grad_is_refused_but_allowed_under_no_grad():
    w = leaf(3)
    with pytest.raises(RuntimeError, match="in-place"):
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="in-place"):
        w += 1
    before = w.detach().numpy().copy()
    with cnnx.no_grad():
        w.sub_(cnnx.ones(3, dtype=cnnx.float64), alpha=0.5)
    assert_close(w.detach().numpy(), before - 0.5)
    assert w.grad_fn is None and w.requires_grad


def test_relu_inplace_moves_history_and_gives_the_right_gradient():
    x = leaf(6)
    h = x * 1.0
    out = cnnx.nn.functional.relu(h, inplace=True)
    assert out is h and h.grad_fn.name() == "ReLUInplaceBackward"
    (out * 2).sum().backward()
    assert_close(x.grad, 2.0 * (x.detach() > 0).to(cnnx.float64))
    with pytest.raises(RuntimeError, match="leaf"):
        cnnx.nn.functional.relu(leaf(2), inplace=True)
    with pytest.raises(RuntimeError, match="saved output"):
        cnnx.nn.functional.relu(leaf(2).tanh(), inplace=True)


def _train_steps(model, x, y, steps):
    loss_fn = cnnx.nn.CrossEntropyLoss()
    for _ in range(steps):
        model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        with cnnx.no_grad():
            for p in model.parameters():
                p.sub_(p.grad, alpha=0.01)


def _small_cnn():
    nn = cnnx.nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.LocalResponseNorm(3), nn.Conv2d(8, 8, 3, groups=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Dropout(0.1), nn.Linear(32, 10))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_memory_stays_flat_over_200_training_steps(kind):
    cnnx.manual_seed(0)
    if kind == "mlp":
        model = cnnx.nn.Sequential(cnnx.nn.Linear(64, 128), cnnx.nn.ReLU(), cnnx.nn.Dropout(0.1),
                                   cnnx.nn.Linear(128, 10))
        x = cnnx.randn(32, 64)
    else:
        model = _small_cnn()
        x = cnnx.randn(8, 3, 12, 12)
    y = cnnx.randint(0, 10, (x.shape[0],))
    _train_steps(model, x, y, 20)  # warm up allocator and caches
    gc.collect()
    tracemalloc.start()
    try:
        _train_steps(model, x, y, 20)
        first, _ = tracemalloc.get_traced_memory()
        _train_steps(model, x, y, 200)
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One step's activations are ~50 KB; a graph kept per step would add ~10 MB over 200 steps.
    assert second - first < 64 * 1024, (first, second)


def test_kept_losses_do_not_keep_their_graphs():
    # Users keep losses around (logging); backward must free what each one's graph held.
    cnnx.manual_seed(0)
    model = cnnx.nn.Sequential(cnnx.nn.Linear(64, 256), cnnx.nn.ReLU(), cnnx.nn.Linear(256, 10))
    x, y = cnnx.randn(64, 64), cnnx.randint(0, 10, (64,))
    loss_fn = cnnx.nn.CrossEntropyLoss()
    kept = []
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(200):
            model.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            kept.append(loss)
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Each step's graph holds ~200 KB (input, hidden activations, masks); 200 kept graphs would be 40 MB.
    assert end - start < 1024 * 1024, (start, end)


# ---------------------------------------------------------------------------------------------
# a leaf's first gradient is taken without a copy when nothing else holds it


class FreshGrad(Function):
    """backward returns a new array per input (or, with ``shared``, one array for both); ``kept``
    holds on to what it returned when ``keep`` is set."""

    returned_ids: list = []
    kept: list = []
    keep = False
    shared = False

    def forward(ctx, a, b):
        return a + b

    def backward(ctx, g):
        ga = np.array(g, copy=True)
        gb = ga if FreshGrad.shared else np.array(g, copy=True)
        FreshGrad.returned_ids[:] = [id(ga), id(gb)]
        if FreshGrad.keep:
            FreshGrad.kept[:] = [ga, gb]
        return ga, gb


@pytest.fixture
def fresh_grad():
    FreshGrad.keep = FreshGrad.shared = False
    FreshGrad.kept.clear()
    yield FreshGrad
    FreshGrad.keep = FreshGrad.shared = False
    FreshGrad.kept.clear()


def test_a_sole_first_gradient_becomes_the_grad(fresh_grad):
    if cnnx.autograd._SOLE is None:
        pytest.skip("this interpreter's reference counts do not tell a sole array (every grad is copied)")
    a, b = cnnx.randn(3, requires_grad=True), cnnx.randn(3, requires_grad=True)
    fresh_grad.apply(a, b).sum().backward()
    assert [id(a.grad._data), id(b.grad._data)] == fresh_grad.returned_ids  # no copies
    np.testing.assert_array_equal(a.grad.numpy(), np.ones(3))


def test_a_gradient_held_elsewhere_is_copied(fresh_grad):
    fresh_grad.keep = True
    a, b = cnnx.randn(3, requires_grad=True), cnnx.randn(3, requires_grad=True)
    fresh_grad.apply(a, b).sum().backward()
    assert not np.shares_memory(a.grad._data, fresh_grad.kept[0])
    fresh_grad.kept[0][:] = 7.0  # the function's array changes: the grad must not
    np.testing.assert_array_equal(a.grad.numpy(), np.ones(3))


def test_one_array_returned_for_two_leaves_gives_two_grads(fresh_grad):
    fresh_grad.shared = True
    a, b = cnnx.randn(3, requires_grad=True), cnnx.randn(3, requires_grad=True)
    fresh_grad.apply(a, b).sum().backward()
    assert not np.shares_memory(a.grad._data, b.grad._data)
    fresh_grad.apply(a, b).sum().backward()  # accumulates in place: each grad on its own
    np.testing.assert_array_equal(a.grad.numpy(), 2 * np.ones(3))
    np.testing.assert_array_equal(b.grad.numpy(), 2 * np.ones(3))


def test_a_passed_through_gradient_and_the_seed_stay_with_their_owners():
    a = cnnx.randn(4, requires_grad=True)
    seed = np.full(4, 3.0, dtype=a.dtype)
    (a + 0.0).backward(seed)  # Add returns the seed's gradient array itself
    a.backward(seed)          # the seed of a leaf
    seed[:] = 0.0
    np.testing.assert_array_equal(a.grad.numpy(), np.full(4, 6.0))


@pytest.mark.parametrize("n", [5, 100_003])  # numpy and the add kernel (in place when sole)
def test_gradients_meeting_at_a_node_are_summed_without_aliasing(fresh_grad, n):
    a = cnnx.randn(n, requires_grad=True)
    h = a * 2.0
    (h + h).sum().backward()  # Add returns one array for both operands: h's gradients meet
    np.testing.assert_array_equal(a.grad.numpy(), np.full(n, 4.0, np.float32))
    b = cnnx.randn(n, requires_grad=True)
    u, v = b * 1.0, b * 3.0
    fresh_grad.shared = True  # one array handed to u's and v's nodes, then both flow into b
    w = fresh_grad.apply(u, v)
    (w * 1.0 + w * 1.0).sum().backward()  # two contributions meet at w's node first
    np.testing.assert_array_equal(b.grad.numpy(), np.full(n, 8.0, np.float32))
