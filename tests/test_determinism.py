"""Determinism (issue 9, catalogue R16): the same seed and thread count give bitwise-identical
training, and every kernel gives bitwise-identical results for any thread count (work is never
split along a reduction dimension; see docs/design.md and docs/reliability.md)."""
import numpy as np
import pytest

import cnnx
import cnnx.nn as nn
import cnnx.nn.functional as F
from cnnx import kernels


def _train(seed, steps=4):
    cnnx.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, groups=8, padding=1), nn.LocalResponseNorm(3), nn.ReLU(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    x = cnnx.randn(16, 3, 16, 16)
    y = cnnx.randint(0, 10, (16,))
    losses = []
    for _ in range(steps):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        for p in model.parameters():  # plain SGD, in place
            p._data -= np.asarray(0.1, p._data.dtype) * p.grad.numpy()
        losses.append(loss.item())
    return losses, [p.detach().numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_same_threads_bitwise_identical_training(threads, restore_threads):
    cnnx.set_num_threads(threads)
    (l1, p1), (l2, p2) = _train(0), _train(0)
    assert l1 == l2
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2))
    assert l1[-1] < l1[0]  # it did train


def test_training_is_bitwise_identical_across_thread_counts(restore_threads):
    runs = {}
    for n in (1, 2, 3, 4):
        cnnx.set_num_threads(n)
        runs[n] = _train(0)
    for n in (2, 3, 4):
        assert runs[n][0] == runs[1][0], f"losses differ with {n} threads"
        assert all(np.array_equal(a, b) for a, b in zip(runs[n][1], runs[1][1])), f"weights differ with {n} threads"


def _kernel_outputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 12, 23, 19)).astype(np.float32)
    w = rng.standard_normal((16, 12, 3, 3)).astype(np.float32)
    dw = rng.standard_normal((12, 1, 3, 3)).astype(np.float32)
    out = {}
    y = out["conv"] = kernels.conv2d_forward(x, w, padding=1, stride=(1, 2))
    out["conv_bwd_input"] = kernels.conv2d_backward_input(y, w, (23, 19), padding=1, stride=(1, 2))
    out["conv_bwd_weight"], out["conv_bwd_bias"] = kernels.conv2d_backward_weight(
        x, y, (3, 3), padding=1, stride=(1, 2), bias=True)
    d = out["depthwise"] = kernels.conv2d_forward(x, dw, padding=1, groups=12)
    out["depthwise_bwd_weight"], _ = kernels.conv2d_backward_weight(x, d, (3, 3), padding=1, groups=12)
    out["pointwise"] = kernels.conv2d_forward(x, w[:, :, :1, :1].copy())
    p, idx = kernels.max_pool2d_forward(x, 3, 2)
    out["max_pool"], out["max_pool_bwd"] = p, kernels.max_pool2d_backward(p, idx, (23, 19))
    a = out["avg_pool"] = kernels.avg_pool2d_forward(x, 3, 2, 1)
    out["avg_pool_bwd"] = kernels.avg_pool2d_backward(a, (23, 19), 3, 2, 1)
    o, s = kernels.local_response_norm_forward(x, 5)
    out["lrn"], out["lrn_bwd"] = o, kernels.local_response_norm_backward(o, x, o, s, 5)
    bn, mean, inv = kernels.batch_norm_forward(x, None, None, None, None, True)
    out["batch_norm"] = bn
    out["batch_norm_bwd"] = kernels.batch_norm_backward(bn, x, None, mean, inv)[0]
    m = x.reshape(4 * 12, -1)
    out["gemm"] = kernels.gemm(m, m, trans_b=True)
    e = rng.standard_normal(150_001).astype(np.float32)  # past the elementwise kernels' thread cut-off
    r = out["relu"] = kernels.relu_forward(e)
    out["relu_bwd"] = kernels.relu_backward(e, r)
    out["add"] = kernels.add(e, r)
    return out


def test_every_kernel_is_bitwise_identical_across_thread_counts(restore_threads):
    cnnx.set_num_threads(1)
    want = _kernel_outputs()
    for n in (2, 3, 4, 8):
        cnnx.set_num_threads(n)
        got = _kernel_outputs()
        differ = [k for k in want if not np.array_equal(got[k], want[k])]
        assert not differ, f"{n} threads: {differ} differ from 1 thread"
