"""Property tests (issue 9, catalogue R13): hypothesis draws (N, C, H, W, K, kernel, stride, padding,
dilation, groups) and every optimised ISA path must give the reference kernels' result.

Values are small integers (benchdnn's trick): every partial sum is exact in float32 at these sizes,
so convolution and max pooling are compared bitwise; average pooling divides, so it gets a few ulps.
Each property runs CNNX_HYPOTHESIS_EXAMPLES examples (default 100, hypothesis's own default),
derandomized so CI sees the same examples every run; the shapes stay small so the file runs in
seconds.
"""
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cnnx import kernels  # noqa: E402
from conftest import FAST_ISAS, using_isa  # noqa: E402

EXAMPLES = int(os.environ.get("CNNX_HYPOTHESIS_EXAMPLES", "100"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.skipif(not FAST_ISAS, reason="only the ref ISA is built")


def ints(rng, shape, dtype, lo=-4, hi=4):
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 3))
    k = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # the input must cover the dilated kernel once padded
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), dh * (kh - 1) + 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), dw * (kw - 1) + 9))
    n = draw(st.integers(0, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(n=n, c=c, h=h, w=w, k=k, kh=kh, kw=kw, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                groups=groups, dtype=dtype, seed=seed)


def _conv_all(case):
    """forward, backward_input, backward_weight (+ bias) on the active ISA."""
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = ints(rng, (case["n"], case["c"], case["h"], case["w"]), dt)
    wt = ints(rng, (case["k"], case["c"] // case["groups"], case["kh"], case["kw"]), dt)
    b = ints(rng, (case["k"],), dt)
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    y = kernels.conv2d_forward(x, wt, b, **args)
    gy = ints(rng, y.shape, dt)
    gx = kernels.conv2d_backward_input(gy, wt, (case["h"], case["w"]), **args)
    gw, gb = kernels.conv2d_backward_weight(x, gy, (case["kh"], case["kw"]), bias=True, **args)
    return {"forward": y, "backward_input": gx, "backward_weight": gw, "backward_bias": gb}


@PROPERTY
@given(conv_cases())
def test_conv2d_every_isa_equals_ref(case):
    with using_isa("ref"):
        want = _conv_all(case)
    for isa in FAST_ISAS:
        with using_isa(isa):
            got = _conv_all(case)
        for name in want:
            assert got[name].shape == want[name].shape, (isa, name)
            assert np.array_equal(got[name], want[name]), f"{isa} {name} differs from ref for {case}"


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), dh * (kh - 1) + 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), dw * (kw - 1) + 9))
    return dict(n=draw(st.integers(0, 3)), c=draw(st.integers(1, 5)), h=h, w=w, kernel=(kh, kw), stride=(sh, sw),
                padding=(ph, pw), dilation=(dh, dw), ceil_mode=draw(st.booleans()),
                count_include_pad=draw(st.booleans()), dtype=draw(st.sampled_from([np.float32, np.float64])),
                seed=draw(st.integers(0, 2**32 - 1)))


def _pool_all(case):
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = ints(rng, (case["n"], case["c"], case["h"], case["w"]), dt, -50, 50)  # ties happen, on purpose
    size = (case["h"], case["w"])
    y, idx = kernels.max_pool2d_forward(x, case["kernel"], case["stride"], case["padding"], case["dilation"],
                                        case["ceil_mode"])
    gy = ints(rng, y.shape, dt)
    gx = kernels.max_pool2d_backward(gy, idx, size)
    # avg pooling has no dilation; the same window otherwise
    avg = dict(kernel_size=case["kernel"], stride=case["stride"], padding=case["padding"],
               ceil_mode=case["ceil_mode"], count_include_pad=case["count_include_pad"])
    a = kernels.avg_pool2d_forward(x, **avg)
    ga = kernels.avg_pool2d_backward(ints(rng, a.shape, dt), size, **avg)
    return {"max": y, "argmax": idx, "max_backward": gx}, {"avg": a, "avg_backward": ga}


@PROPERTY
@given(pool_cases())
def test_pooling_every_isa_equals_ref(case):
    with using_isa("ref"):
        exact, approx = _pool_all(case)
    eps = np.finfo(case["dtype"]).eps
    for isa in FAST_ISAS:
        with using_isa(isa):
            got_exact, got_approx = _pool_all(case)
        for name in exact:
            assert np.array_equal(got_exact[name], exact[name]), f"{isa} {name} differs from ref for {case}"
        for name in approx:
            assert got_approx[name].shape == approx[name].shape
            # a sum of at most 16 integers of magnitude <= 50 is exact; only the division rounds
            np.testing.assert_allclose(got_approx[name], approx[name], rtol=4 * eps, atol=0,
                                       err_msg=f"{isa} {name} for {case}")
