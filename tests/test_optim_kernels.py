"""The fused optimizer steps (cnnx._C.sgd_step / adam_step, csrc/include/cnnx/optim.h).

Their contract is the numpy code of cnnx/optim/sgd.py and adam.py, bit for bit. Checked here:
SGD, Adam and AdamW through the optimizer classes with the kernel path against the numpy fallback
(``_fused`` switched off) for every option combination, several steps, float32 and float64, sizes
from 0 over the vector widths to past the threading cut-off; every fast ISA against the reference,
special values included; one and two threads; which path the optimizers take; bad inputs.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import cnnx
from cnnx import _C
from cnnx import kernels as K
from cnnx.optim import SGD, Adam, AdamW
from cnnx.optim import optimizer as optimizer_module

from conftest import num_threads, using_isa

# Empty, single, primes, around the vector widths (4/8/16 lanes, 4x unrolled loops) and past the
# threading cut-off (a thread per 32K elements, 4096-element chunks).
SIZES = [0, 1, 2, 3, 7, 8, 13, 16, 17, 31, 33, 63, 64, 65, 127, 1009, 65536, 65537 + 4096 * 3 + 5]
DTYPES = [np.float32, np.float64]

SGD_OPTIONS = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x)
    for m, d, n, w, x in itertools.product((0.0, 0.9), (0.0, 0.1), (False, True), (0.0, 1e-2), (False, True))
    if not n or (m > 0 and d == 0)  # nesterov needs momentum and no dampening
]
ADAM_OPTIONS = [
    (cls, dict(amsgrad=a, weight_decay=w, maximize=x))
    for cls, a, w, x in itertools.product((Adam, AdamW), (False, True), (0.0, 1e-2), (False, True))
]


def _ids(options):
    return ["-".join(f"{k}={v}" for k, v in o.items()) for o in options]


def _bits(a: np.ndarray) -> np.ndarray:
    """The bit patterns of ``a``, every NaN made one canonical NaN (the contract covers where NaNs
    are, not their payloads)."""
    a = np.where(np.isnan(a), np.array(np.nan, a.dtype), a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def assert_same_bits(actual: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    diff = np.flatnonzero(_bits(actual).ravel() != _bits(expected).ravel())
    assert diff.size == 0, (f"{what}: {diff.size} of {actual.size} elements differ, first at {diff[0]}: "
                            f"{actual.ravel()[diff[0]]!r} vs {expected.ravel()[diff[0]]!r}")


def _values(rng, n, dtype):
    """Random values over several orders of magnitude, so every rounding matters."""
    return (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)).astype(dtype)


def _run(make, n, dtype, fused, steps=3, seed=0, shape=None):
    """Parameter, state and the number of fused calls after ``steps`` steps of ``make([p])``."""
    rng = np.random.default_rng(seed)
    shape = (n,) if shape is None else shape
    p = cnnx.nn.Parameter(cnnx.tensor(_values(rng, n, dtype).reshape(shape)))
    assert p.dtype == dtype
    opt = make([p])
    opt._fused = fused
    for _ in range(steps):
        p.grad = cnnx.tensor(_values(rng, n, dtype).reshape(shape))
        opt.step()
    return p.detach().numpy(), opt.state.get(p, {})


def _compare_paths(make, dtype, sizes=SIZES):
    for n in sizes:
        got, got_state = _run(make, n, dtype, fused=True)
        want, want_state = _run(make, n, dtype, fused=False)
        assert_same_bits(got, want, f"parameter, n={n}")
        assert sorted(got_state) == sorted(want_state)
        for k, v in want_state.items():
            if isinstance(v, np.ndarray):
                assert_same_bits(got_state[k], v, f"state {k}, n={n}")
            else:
                assert got_state[k] == v


# ---- the optimizers: kernel path == numpy path ------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("options", SGD_OPTIONS, ids=_ids(SGD_OPTIONS))
def test_sgd_kernel_path_is_bitwise_the_numpy_path(options, dtype):
    _compare_paths(lambda ps: SGD(ps, lr=0.1, **options), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cls,options", ADAM_OPTIONS,
                         ids=[f"{c.__name__}-{i}" for (c, _), i in zip(ADAM_OPTIONS, _ids([o for _, o in ADAM_OPTIONS]))])
def test_adam_kernel_path_is_bitwise_the_numpy_path(cls, options, dtype):
    _compare_paths(lambda ps: cls(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, **options), dtype)


def test_adam_awkward_hyperparameters():
    # betas and eps far from the defaults (bias corrections near 0 and 1, an eps that dominates).
    for cls, dtype in itertools.product((Adam, AdamW), DTYPES):
        _compare_paths(lambda ps: cls(ps, lr=0.3, betas=(0.0, 0.3), eps=0.7, weight_decay=0.25), dtype,
                       sizes=[1, 17, 1009])
        _compare_paths(lambda ps: cls(ps, lr=1e-4, betas=(0.999, 0.9999), eps=1e-12, amsgrad=True), dtype,
                       sizes=[1, 17, 1009])


def test_sgd_dampening_one_and_shapes():
    # dampening = 1 (the gradient's weight is 0) and multi-dimensional / 0-d parameters.
    for dtype in DTYPES:
        _compare_paths(lambda ps: SGD(ps, lr=0.5, momentum=0.5, dampening=1.0, weight_decay=3.0), dtype,
                       sizes=[1, 33, 1009])
        for shape in [(), (3, 5), (2, 3, 4, 5), (0, 4)]:
            n = int(np.prod(shape))
            make = lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
            got, _ = _run(make, n, dtype, True, shape=shape)
            want, _ = _run(make, n, dtype, False, shape=shape)
            assert_same_bits(got, want, f"shape {shape}")


def test_changing_lr_between_steps():
    # A scheduler rewrites group["lr"] (a Python float): the kernel rounds the new value each step.
    for fused in (True, False):
        rng = np.random.default_rng(5)
        p = cnnx.nn.Parameter(cnnx.tensor(_values(rng, 1009, np.float32)))
        opt = SGD([p], lr=0.1, momentum=0.9)
        opt._fused = fused
        sched = cnnx.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.37)
        for _ in range(4):
            p.grad = cnnx.tensor(_values(rng, 1009, np.float32))
            opt.step()
            sched.step()
        if fused:
            got = p.detach().numpy()
        else:
            assert_same_bits(got, p.detach().numpy())


# ---- which path the optimizers take ----------------------------------------------------------

@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the fused-kernel calls made by the optimizers."""
    calls = {"sgd_step": 0, "adam_step": 0}
    for name in calls:
        real = getattr(_C, name)

        def counting(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(_C, name, counting)
    return calls


def test_dense_parameters_take_the_kernel(kernel_calls):
    _run(lambda ps: SGD(ps, lr=0.1, momentum=0.9), 100, np.float32, True)
    _run(lambda ps: SGD(ps, lr=0.1), 100, np.float64, True)
    _run(lambda ps: AdamW(ps, amsgrad=True), 100, np.float32, True)
    assert kernel_calls == {"sgd_step": 6, "adam_step": 3}


def _strided_step(make, dtype=np.float32):
    """One step on a parameter whose array is a strided view; returns (result, expected)."""
    rng = np.random.default_rng(3)
    base = _values(rng, 64, dtype).reshape(8, 8)
    grad = _values(rng, 64, dtype).reshape(8, 8)
    results = []
    for fused in (True, False):
        p = cnnx.nn.Parameter(cnnx.tensor(base.copy()))
        p._data = p._data.T  # a transposed view: not C-contiguous
        opt = make([p])
        opt._fused = fused
        p.grad = cnnx.tensor(grad.T.copy())
        opt.step()
        results.append(p.detach().numpy().copy())
    return results


def test_strided_parameters_stay_on_numpy(kernel_calls):
    for make in (lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: Adam(ps)):
        got, want = _strided_step(make)
        assert_same_bits(got, want)
    assert kernel_calls == {"sgd_step": 0, "adam_step": 0}


def test_other_cases_stay_on_numpy(kernel_calls):
    rng = np.random.default_rng(4)
    # float16 parameters; a gradient of another dtype; a numpy-scalar learning rate (numpy promotes
    # an np.float64 scalar to a float64 product, which the kernel does not reproduce).
    p16 = cnnx.nn.Parameter(cnnx.tensor(_values(rng, 10, np.float16)))
    p16.grad = cnnx.tensor(_values(rng, 10, np.float16))
    SGD([p16], lr=0.1).step()
    p = cnnx.nn.Parameter(cnnx.tensor(_values(rng, 10, np.float32)))
    p.grad = cnnx.tensor(_values(rng, 10, np.float64))
    SGD([p], lr=0.1).step()
    Adam([p]).step()
    p.grad = cnnx.tensor(_values(rng, 10, np.float32))
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.param_groups[0]["lr"] = np.float64(0.1)
    opt.step()
    assert kernel_calls == {"sgd_step": 0, "adam_step": 0}
    # A numpy step count (a state loaded from a numpy scalar) gives a numpy-float step size.
    opt = Adam([p])
    opt.step()
    opt.state[p]["step"] = np.int64(opt.state[p]["step"])
    opt.step()
    assert kernel_calls == {"sgd_step": 0, "adam_step": 1}


def test_np_float64_lr_matches_numpy_path():
    # The fallback keeps numpy's promotion for numpy-scalar hyper-parameters: same result either way.
    out = []
    for fused in (True, False):
        rng = np.random.default_rng(6)
        p = cnnx.nn.Parameter(cnnx.tensor(_values(rng, 100, np.float32)))
        opt = SGD([p], lr=0.1, momentum=0.9)
        opt._fused = fused
        opt.param_groups[0]["lr"] = np.float64(0.1)
        for _ in range(2):
            p.grad = cnnx.tensor(_values(rng, 100, np.float32))
            opt.step()
        out.append(p.detach().numpy())
    assert_same_bits(out[0], out[1])


def test_state_dict_round_trip_through_the_kernel():
    # Save after two fused steps, load into a fresh optimizer, step both: identical.
    for make in (lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True), lambda ps: AdamW(ps, amsgrad=True)):
        rng = np.random.default_rng(7)
        p = cnnx.nn.Parameter(cnnx.tensor(_values(rng, 1009, np.float32)))
        opt = make([p])
        grads = [_values(rng, 1009, np.float32) for _ in range(3)]
        for g in grads[:2]:
            p.grad = cnnx.tensor(g)
            opt.step()
        q = cnnx.nn.Parameter(cnnx.tensor(p.detach().numpy().copy()))
        opt2 = make([q])
        opt2.load_state_dict(opt.state_dict())
        opt2._fused = False
        for o, t in ((opt, p), (opt2, q)):
            t.grad = cnnx.tensor(grads[2])
            o.step()
        assert_same_bits(p.detach().numpy(), q.detach().numpy())


# ---- every ISA == ref, special values, threads ------------------------------------------------

def _special(rng, n, dtype):
    """Random values with zeros of both signs, subnormals, infinities and NaN sprinkled in."""
    v = _values(rng, n, dtype)
    info = np.finfo(dtype)
    specials = np.array([0.0, -0.0, info.smallest_subnormal, -info.smallest_subnormal, info.tiny, info.max,
                         np.inf, -np.inf, np.nan], dtype)
    where = rng.random(n) < 0.05
    v[where] = rng.choice(specials, int(where.sum()))
    return v


def _sgd_kernel_run(n, dtype, options, seed=0):
    rng = np.random.default_rng(seed)
    d = _special(rng, n, dtype)
    buf = np.full(n, np.nan, dtype)  # contents ignored on the first step
    for step in range(3):
        K.sgd_step(d, _special(rng, n, dtype), buf, lr=0.1, first_step=step == 0, **options)
    return d, buf


def _adam_kernel_run(n, dtype, decoupled, options, seed=0):
    rng = np.random.default_rng(seed)
    d = _special(rng, n, dtype)
    m, v = np.zeros(n, dtype), np.zeros(n, dtype)
    vmax = np.zeros(n, dtype) if options["amsgrad"] else None
    kw = {k: x for k, x in options.items() if k != "amsgrad"}
    for step in range(1, 4):
        K.adam_step(d, _special(rng, n, dtype), m, v, vmax, step=step, lr=0.01, decoupled=decoupled, **kw)
    return (d, m, v) + (() if vmax is None else (vmax,))


@pytest.mark.parametrize("options", SGD_OPTIONS, ids=_ids(SGD_OPTIONS))
def test_sgd_every_isa_matches_ref(fast_isa, options):
    for dtype, n in itertools.product(DTYPES, SIZES):
        got = _sgd_kernel_run(n, dtype, options)
        with using_isa("ref"):
            want = _sgd_kernel_run(n, dtype, options)
        for a, b in zip(got, want):
            if options["momentum"] or a is got[0]:
                assert_same_bits(a, b, f"{fast_isa} n={n} {dtype.__name__}")


@pytest.mark.parametrize("cls,options", ADAM_OPTIONS,
                         ids=[f"{c.__name__}-{i}" for (c, _), i in zip(ADAM_OPTIONS, _ids([o for _, o in ADAM_OPTIONS]))])
def test_adam_every_isa_matches_ref(fast_isa, cls, options):
    for dtype, n in itertools.product(DTYPES, SIZES):
        got = _adam_kernel_run(n, dtype, cls is AdamW, options)
        with using_isa("ref"):
            want = _adam_kernel_run(n, dtype, cls is AdamW, options)
        for a, b in zip(got, want):
            assert_same_bits(a, b, f"{fast_isa} n={n} {dtype.__name__}")


def test_special_values_match_the_numpy_path():
    # Infinities, NaN, signed zeros and subnormals through the optimizers: the kernel gives NaN
    # where numpy does and numpy's bits elsewhere.
    def run(make, dtype, fused):
        rng = np.random.default_rng(11)
        p = cnnx.nn.Parameter(cnnx.tensor(_special(rng, 1009, dtype)))
        opt = make([p])
        opt._fused = fused
        with np.errstate(all="ignore"):
            for _ in range(3):
                p.grad = cnnx.tensor(_special(rng, 1009, dtype))
                opt.step()
        return p.detach().numpy()

    makes = [lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2, maximize=True),
             lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
             lambda ps: Adam(ps, weight_decay=1e-2, amsgrad=True, maximize=True),
             lambda ps: AdamW(ps, amsgrad=True)]
    for make, dtype in itertools.product(makes, DTYPES):
        assert_same_bits(run(make, dtype, True), run(make, dtype, False))


def test_results_do_not_depend_on_the_thread_count(restore_threads):
    n = 4 * 65536 + 123  # several chunks per thread
    sgd = dict(momentum=0.9, dampening=0.0, nesterov=True, weight_decay=1e-2, maximize=False)
    adam = dict(amsgrad=True, weight_decay=1e-2, maximize=True)
    for dtype in DTYPES:
        runs = []
        for t in (1, 2, 3):
            with num_threads(t):
                runs.append(_sgd_kernel_run(n, dtype, sgd) + _adam_kernel_run(n, dtype, False, adam))
        for other in runs[1:]:
            for a, b in zip(other, runs[0]):
                assert_same_bits(a, b)


# ---- the raw kernels: bad inputs ------------------------------------------------------------

def _arrays(n=6, dtype=np.float32, count=5):
    return [np.ones(n, dtype) for _ in range(count)]


def test_bad_inputs_sgd():
    d, g, b = _arrays(count=3)
    with pytest.raises(TypeError, match="param"):
        K.sgd_step(d.tolist(), g, lr=0.1)
    with pytest.raises(TypeError, match="param.*int64"):
        K.sgd_step(d.astype(np.int64), g, lr=0.1)
    with pytest.raises(TypeError, match="grad.*float64"):
        K.sgd_step(d, g.astype(np.float64), lr=0.1)
    with pytest.raises(ValueError, match="grad.*shape"):
        K.sgd_step(d, g[:5], lr=0.1)
    with pytest.raises(ValueError, match="momentum_buffer"):
        K.sgd_step(d, g, None, lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match="momentum_buffer.*float64"):
        K.sgd_step(d, g, b.astype(np.float64), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="param.*contiguous"):
        K.sgd_step(np.ones(12, np.float32)[::2], g, lr=0.1)
    with pytest.raises(ValueError, match="param.*writeable"):
        K.sgd_step(np.broadcast_to(np.float32(1), (6,)), g, lr=0.1)
    with pytest.raises(ValueError, match="momentum_buffer.*contiguous"):
        K.sgd_step(d, g, np.ones(12, np.float32)[::2], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="momentum_buffer.*share memory"):
        K.sgd_step(d, g, d, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="grad.*share memory"):
        K.sgd_step(d, d, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        K.sgd_step(d, g, lr=float("nan"))
    with pytest.raises(TypeError, match="momentum"):
        K.sgd_step(d, g, b, lr=0.1, momentum="0.9")
    with pytest.raises(TypeError, match="nesterov"):
        K.sgd_step(d, g, b, lr=0.1, momentum=0.9, nesterov=1)
    assert (d == 1).all() and (b == 1).all()  # nothing was touched by a refused call


def test_bad_inputs_adam():
    d, g, m, v, x = _arrays()
    with pytest.raises(TypeError, match="exp_avg.*list"):
        K.adam_step(d, g, m.tolist(), v, step=1)
    with pytest.raises(TypeError, match="exp_avg_sq.*float64"):
        K.adam_step(d, g, m, v.astype(np.float64), step=1)
    with pytest.raises(ValueError, match="max_exp_avg_sq.*shape"):
        K.adam_step(d, g, m, v, x[:3], step=1)
    with pytest.raises(ValueError, match="exp_avg.*writeable"):
        K.adam_step(d, g, np.broadcast_to(np.float32(0), (6,)), v, step=1)
    with pytest.raises(ValueError, match="exp_avg_sq.*share memory"):
        K.adam_step(d, g, m, m, step=1)
    with pytest.raises(ValueError, match="step"):
        K.adam_step(d, g, m, v, step=0)
    with pytest.raises(TypeError, match="step"):
        K.adam_step(d, g, m, v, step=1.5)
    with pytest.raises(ValueError, match="betas"):
        K.adam_step(d, g, m, v, step=1, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="betas"):
        K.adam_step(d, g, m, v, step=1, betas=0.9)
    with pytest.raises(ValueError, match="eps"):
        K.adam_step(d, g, m, v, step=1, eps=float("inf"))
    assert (d == 1).all() and (m == 1).all() and (v == 1).all()


def test_raw_kernel_matches_a_plain_formula():
    # One float64 SGD-with-momentum step and one Adam step written out by hand (independent of the
    # optimizer classes).
    rng = np.random.default_rng(9)
    d, g, b = rng.standard_normal(50), rng.standard_normal(50), rng.standard_normal(50)
    want_b = b * 0.9 + g * (1.0 - 0.1)
    want_d = d - want_b * 0.05
    K.sgd_step(d, g, b, lr=0.05, momentum=0.9, dampening=0.1)
    assert_same_bits(b, want_b)
    assert_same_bits(d, want_d)
    d, g = rng.standard_normal(50), rng.standard_normal(50)
    m, v = np.zeros(50), np.zeros(50)
    want_m = 0.0 + (g - 0.0) * (1.0 - 0.9)
    want_v = 0.0 * 0.999 + g * g * (1.0 - 0.999)
    step_size = 1e-3 / (1.0 - 0.9)
    want_d = d + want_m / (np.sqrt(want_v) / math.sqrt(1.0 - 0.999) + 1e-8) * -step_size
    K.adam_step(d, g, m, v, step=1, lr=1e-3)
    assert_same_bits(m, want_m)
    assert_same_bits(v, want_v)
    assert_same_bits(d, want_d)


def test_kernel_helper_checks():
    # _kernel_arrays: the conditions under which the optimizers use the kernels.
    a = np.ones(8, np.float32)
    ok = optimizer_module._kernel_arrays
    assert ok(a, np.ones(8, np.float32), np.ones(8, np.float32))
    assert not ok(a, a)  # shared memory
    assert not ok(a, np.ones(8, np.float64))
    assert not ok(a, np.ones(16, np.float32)[::2])
    assert not ok(a.astype(np.float16), np.ones(8, np.float16))
    ro = np.ones(8, np.float32)
    ro.flags.writeable = False
    assert ok(a, ro)  # a read-only gradient is fine
    assert not ok(ro, a)  # a read-only parameter is not (numpy raises there, as before)
    assert not ok(a, np.ones(8, np.float32), ro)


def test_bench_suite_runs():
    # `cnnx bench optim` on small shapes: builds every case, checks kernel == numpy (and torch close
    # when installed), times and formats.
    from cnnx.bench import optim as bench_optim

    results = bench_optim.bench_optim(1, 1, bench_optim.CASES, shapes=[(40, 30), (30,)])
    text = bench_optim.format_optim(results)
    assert all(c.name in text for c in bench_optim.CASES) and "numpy ms" in text
