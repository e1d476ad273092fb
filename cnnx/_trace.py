"""Shape-only tracing for ``cnnx.summary``: one forward pass that runs no heavy kernel.

While a trace is active (on the tracing thread only), the compiled forward entry points that the
Functions call (``cnnx._C.conv2d_forward``, ``gemm``, the pooling, LRN and batch-norm forwards) are
replaced by *shape rules*: each computes its output shape with PyTorch's arithmetic, checks the
arguments the kernel would reject, records a ``KernelCall`` (shapes, window, groups, MACs) and
returns zeros. Everything else in the forward (ReLU, residual adds, ``cat``, reshapes, a user's own
numpy work) runs as usual on those zeros, so any ``Module`` traces, branches included, and a
VGG16 forward at 224x224 costs milliseconds instead of 15 GMACs. The elementwise kernels that ReLU
and the residual add call (``UNTRACED``) are such ordinary work: they run for real, unrecorded.

Adding a kernel (docs/adding-a-kernel.md, step 5): give its forward entry point a rule here with
``@shape_rule("<name>", kind)``; ``tests/test_summary.py`` fails for a ``*_forward`` kernel without
one, unless it is listed in ``UNTRACED``. MACs count only convolution and matrix products
(docs/summary.md).

The patch is thread-aware (other threads calling the same entry points get the real kernels) and
is removed when the last active trace ends, so code that never calls ``summary`` pays nothing.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import _C

__all__ = ["output_size", "KernelCall", "shape_rule", "RULES", "UNTRACED", "intercept"]


def output_size(n: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                ceil_mode: bool = False) -> int:
    """Output length of a convolution or pooling window along one dimension (PyTorch's rule).

    ``o = floor((n + 2p - d(k-1) - 1) / s) + 1``; for k = d = 1 this is the seed's
    ``o = (n + 2p - k) / s + 1``. With ``ceil_mode`` the division rounds up, but the last window
    must start inside the input or its left padding (else one window fewer). Raises ValueError
    when the (dilated) kernel does not fit the padded input.
    """
    span = dilation * (kernel_size - 1) + 1
    room = n + 2 * padding - span
    if room < 0:
        raise ValueError(f"kernel {kernel_size} (dilation {dilation}) is larger than the padded input "
                         f"{n} + 2*{padding} = {n + 2 * padding}")
    if ceil_mode:
        o = -(-room // stride) + 1
        if (o - 1) * stride >= n + padding:
            o -= 1
    else:
        o = room // stride + 1
    return o


@dataclass(frozen=True)
class KernelCall:
    """One kernel call seen by a trace. Shapes are as traced (batch 1); ``macs`` likewise."""

    kernel: str                    # the _C entry point, e.g. "conv2d_forward"
    kind: str                      # "conv", "linear", "pool", "lrn", "batch_norm"
    input_shape: tuple
    output_shape: tuple
    macs: int = 0
    kernel_size: tuple | None = None
    stride: tuple | None = None
    padding: tuple | None = None
    dilation: tuple | None = None
    groups: int | None = None
    identity: bool = False         # a pooling whose windows are single elements (copies its input)

    @property
    def op(self) -> str:
        return self.kernel[:-len("_forward")] if self.kernel.endswith("_forward") else self.kernel


# name -> (kind, rule); a rule takes the entry point's arguments and returns (result, KernelCall).
RULES: dict[str, tuple[str, Callable]] = {}


# ``_C`` entry points deliberately left without a rule: elementwise kernels (cnnx/elementwise.h). They
# are not layers: no MACs, no counted activations (summary.COUNTED_KINDS), and a rule would give a
# ReLU, a tanh or a residual add made in a container's forward a row of its own, which the tables of
# docs/summary.md do not have. On the traced batch of one they cost microseconds, so they run for
# real on the zeros, like the numpy work around them.
UNTRACED = frozenset({"relu_forward", "relu_backward", "add", "tanh_forward", "tanh_backward", "sigmoid_forward",
                      "sigmoid_backward"})


def shape_rule(name: str, kind: str):
    """Register the shape rule of the ``_C`` entry point ``name`` (a decorator)."""
    def register(fn):
        RULES[name] = (kind, fn)
        return fn
    return register


def _out_hw(fn: str, h: int, w: int, k, s, p, d, ceil_mode=False):
    try:
        return (output_size(h, k[0], s[0], p[0], d[0], ceil_mode), output_size(w, k[1], s[1], p[1], d[1], ceil_mode))
    except ValueError:
        raise ValueError(f"{fn}(): kernel {k[0]}x{k[1]} (dilation {d[0]}x{d[1]}) is larger than the padded input "
                         f"{h + 2 * p[0]}x{w + 2 * p[1]}") from None


def _check_4d(fn: str, x) -> None:
    if x.ndim != 4:
        raise ValueError(f"{fn}(): argument 'input' must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")


@shape_rule("conv2d_forward", "conv")
def _conv2d(x, weight, bias, stride, padding, dilation, groups):
    fn = "conv2d_forward"
    _check_4d(fn, x)
    n, c, h, w = x.shape
    k, cg, kh, kw = weight.shape
    if groups < 1 or c % groups or k % groups:
        raise ValueError(f"{fn}(): groups={groups} must divide both the input channels ({c}) and the output "
                         f"channels ({k})")
    if cg * groups != c:
        raise ValueError(f"{fn}(): weight of shape {tuple(weight.shape)} expects {cg * groups} input channels "
                         f"(in/groups = {cg}, groups = {groups}), but the input has {c}")
    oh, ow = _out_hw(fn, h, w, (kh, kw), stride, padding, dilation)
    out = np.zeros((n, k, oh, ow), x.dtype)
    return out, KernelCall(fn, "conv", x.shape, out.shape, n * k * oh * ow * cg * kh * kw, (kh, kw),
                           tuple(stride), tuple(padding), tuple(dilation), groups)


@shape_rule("gemm", "linear")
def _gemm(a, b, out, trans_a, trans_b, alpha, beta):
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != kb:
        raise ValueError(f"gemm(): inner dimensions differ: op(a) has shape {(m, k)} but op(b) has shape {(kb, n)}")
    if out is None:
        out = np.zeros((m, n), a.dtype)
    else:
        out[...] = 0
    return out, KernelCall("gemm", "linear", (m, k), (m, n), m * n * k)


def _pool_call(fn, x, out_hw, k, s, p, d, identity):
    n, c = x.shape[:2]
    return KernelCall(fn, "pool", x.shape, (n, c, *out_hw), 0, k, s, p, d, None, identity)


def _check_pool_padding(fn, kh, kw, ph, pw):
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{fn}(): argument 'padding' must be at most half of kernel_size, got padding "
                         f"{(ph, pw)} for kernel_size {(kh, kw)}")


@shape_rule("max_pool2d_forward", "pool")
def _max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode):
    fn = "max_pool2d_forward"
    _check_4d(fn, x)
    _check_pool_padding(fn, kh, kw, ph, pw)
    k, s, p, d = (kh, kw), (sh, sw), (ph, pw), (dh, dw)
    oh, ow = _out_hw(fn, *x.shape[2:], k, s, p, d, ceil_mode)
    out = np.zeros((*x.shape[:2], oh, ow), x.dtype)
    identity = k == (1, 1) and s == (1, 1)
    return (out, np.zeros(out.shape, np.int64)), _pool_call(fn, x, (oh, ow), k, s, p, d, identity)


@shape_rule("avg_pool2d_forward", "pool")
def _avg_pool2d(x, kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad, divisor_override):
    fn = "avg_pool2d_forward"
    _check_4d(fn, x)
    _check_pool_padding(fn, kh, kw, ph, pw)
    k, s, p = (kh, kw), (sh, sw), (ph, pw)
    oh, ow = _out_hw(fn, *x.shape[2:], k, s, p, (1, 1), ceil_mode)
    out = np.zeros((*x.shape[:2], oh, ow), x.dtype)
    identity = k == (1, 1) and s == (1, 1) and divisor_override in (0, 1)
    return out, _pool_call(fn, x, (oh, ow), k, s, p, (1, 1), identity)


@shape_rule("adaptive_avg_pool2d_forward", "pool")
def _adaptive_avg_pool2d(x, oh, ow):
    fn = "adaptive_avg_pool2d_forward"
    _check_4d(fn, x)
    h, w = x.shape[2:]
    out = np.zeros((*x.shape[:2], oh, ow), x.dtype)
    # Windows of PyTorch's adaptive pooling: uniform only when the sizes divide; shown when they do.
    k = s = (h // oh, w // ow) if h % oh == 0 and w % ow == 0 else None
    return out, _pool_call(fn, x, (oh, ow), k, s, (0, 0) if k else None, None, (oh, ow) == (h, w))


@shape_rule("local_response_norm_forward", "lrn")
def _lrn(x, size, alpha, beta, k):
    _check_4d("local_response_norm_forward", x)
    out = np.zeros(x.shape, x.dtype)
    return (out, np.ones(x.shape, x.dtype)), KernelCall("local_response_norm_forward", "lrn", x.shape, x.shape)


@shape_rule("batch_norm_forward", "batch_norm")
def _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    _check_4d("batch_norm_forward", x)
    c = x.shape[1]
    # No running-statistics update: a summary leaves the model as it found it.
    out = (np.zeros(x.shape, x.dtype), np.zeros(c, x.dtype), np.ones(c, x.dtype))
    return out, KernelCall("batch_norm_forward", "batch_norm", x.shape, x.shape)


# --------------------------------------------------------------------------------------------
# Installing the rules in cnnx._C

class _Local(threading.local):
    sink = None   # the active trace's callback on this thread: sink(KernelCall) -> None; or None
    timer = None  # during profiling: timer(name, real, args) -> result


_local = _Local()
_lock = threading.Lock()
_installed: dict[str, Callable] = {}  # name -> the real entry point, while patched
_users = 0


def _dispatcher(name: str, real: Callable, rule: Callable) -> Callable:
    def entry(*args):
        local = _local
        if local.sink is not None:
            result, call = rule(*args)
            local.sink(call)
            return result
        if local.timer is not None:
            return local.timer(name, real, args)
        return real(*args)
    entry.__name__ = name
    entry.__doc__ = getattr(real, "__doc__", None)
    return entry


def _install() -> None:
    global _users
    with _lock:
        if _users == 0:
            for name, (_, rule) in RULES.items():
                real = getattr(_C, name, None)
                if real is not None:
                    _installed[name] = real
                    setattr(_C, name, _dispatcher(name, real, rule))
        _users += 1


def _uninstall() -> None:
    global _users
    with _lock:
        _users -= 1
        if _users == 0:
            for name, real in _installed.items():
                setattr(_C, name, real)
            _installed.clear()


class intercept:
    """Context manager: on this thread, route the ruled ``_C`` entry points to ``sink`` (shape
    rules: nothing is computed) or, with ``timer``, through ``timer(name, real, args)`` (the real
    kernels, timed)."""

    def __init__(self, sink: Callable[[KernelCall], None] | None = None, timer: Callable | None = None):
        if (sink is None) == (timer is None):
            raise ValueError("intercept() takes exactly one of sink= and timer=")
        self.sink, self.timer = sink, timer

    def __enter__(self):
        self._prev = (_local.sink, _local.timer)
        _install()
        _local.sink, _local.timer = self.sink, self.timer
        return self

    def __exit__(self, *exc):
        _local.sink, _local.timer = self._prev
        _uninstall()
        return False


def real_kernel(name: str) -> Callable:
    """The compiled entry point ``name`` even while a trace has patched it."""
    return _installed.get(name) or getattr(_C, name)


def prod(shape) -> int:
    return math.prod(int(s) for s in shape)
