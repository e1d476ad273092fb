"""Test helpers for people who extend cnnx: ``assert_close`` and ``gradcheck``.

``assert_close`` compares tensors (cnnx, numpy, or PyTorch) with PyTorch's default tolerances per
dtype. ``gradcheck`` compares the gradients a Function's backward computes with central finite
differences of its forward, in float64, through whatever kernels the function calls.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Callable, Sequence

import numpy as np

from .autograd import backward, no_grad
from .tensor import Tensor

__all__ = ["assert_close", "gradcheck", "GradcheckError"]

# (rtol, atol) by dtype, as torch.testing.assert_close
_TOLERANCES = {
    np.dtype(np.float16): (1e-3, 1e-5),
    np.dtype(np.float32): (1.3e-6, 1e-5),
    np.dtype(np.float64): (1e-7, 1e-7),
}


def _to_numpy(value):
    """A numpy array for a cnnx Tensor, numpy array, number, or PyTorch tensor."""
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # PyTorch
        return value.detach().cpu().numpy()
    if isinstance(value, (numbers.Number, np.generic)):
        return np.asarray(value)
    raise TypeError(f"assert_close(): cannot compare objects of type {type(value).__name__}")


def _tolerances(*dtypes):
    rtol = atol = 0.0
    for d in dtypes:
        r, a = _TOLERANCES.get(d, (0.0, 0.0))
        rtol, atol = max(rtol, r), max(atol, a)
    return rtol, atol


def assert_close(actual, expected, *, rtol: float | None = None, atol: float | None = None,
                 equal_nan: bool = False, check_dtype: bool = True, msg: str | None = None) -> None:
    """Raise AssertionError unless ``|actual - expected| <= atol + rtol * |expected|`` elementwise.

    Accepts cnnx Tensors, numpy arrays, Python numbers, PyTorch tensors, and (nested) sequences or
    mappings of them. Shapes must match exactly. Default tolerances by dtype, as PyTorch: float32
    rtol 1.3e-6 / atol 1e-5, float64 1e-7 / 1e-7, float16 1e-3 / 1e-5, integers and bools exact.
    NaN equals NaN only with ``equal_nan``; infinities must match exactly.
    """
    if (rtol is None) != (atol is None):
        raise ValueError("assert_close(): both 'rtol' and 'atol' must be given, or neither")
    if isinstance(actual, dict) and isinstance(expected, dict):
        if set(actual) != set(expected):
            raise AssertionError(f"assert_close(): keys differ: {sorted(map(str, set(actual) ^ set(expected)))}")
        for k in actual:
            assert_close(actual[k], expected[k], rtol=rtol, atol=atol, equal_nan=equal_nan,
                         check_dtype=check_dtype, msg=msg or f"item [{k!r}]")
        return
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            raise AssertionError(f"assert_close(): sequence lengths differ: {len(actual)} != {len(expected)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan, check_dtype=check_dtype,
                         msg=msg or f"item [{i}]")
        return
    scalar = isinstance(actual, numbers.Number) or isinstance(expected, numbers.Number)
    a, e = _to_numpy(actual), _to_numpy(expected)
    where = f"{msg}: " if msg else ""
    if a.shape != e.shape:
        raise AssertionError(f"{where}The values for attribute 'shape' do not match: {a.shape} != {e.shape}.")
    if check_dtype and not scalar and a.dtype != e.dtype:
        raise AssertionError(f"{where}The values for attribute 'dtype' do not match: {a.dtype} != {e.dtype}.")
    if rtol is None:
        rtol, atol = _tolerances(a.dtype, e.dtype)
    a64 = a.astype(np.float64) if a.dtype.kind not in "c" else a
    e64 = e.astype(np.float64) if e.dtype.kind not in "c" else e
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a64 - e64)
        ok = (diff <= atol + rtol * np.abs(e64)) & np.isfinite(e64)
        ok |= a64 == e64  # infinities are close only to themselves
        if equal_nan:
            ok |= np.isnan(a64) & np.isnan(e64)
    if ok.all():
        return
    bad = ~ok
    n_bad, n = int(bad.sum()), ok.size
    diff = np.where(np.isnan(diff), np.inf, diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / np.abs(e64)
    i_abs = np.unravel_index(int(np.argmax(np.where(bad, diff, -1))), a.shape) if a.ndim else ()
    i_rel = np.unravel_index(int(np.argmax(np.where(bad, np.nan_to_num(rel, nan=np.inf), -1))), a.shape) if a.ndim else ()
    raise AssertionError(
        f"{where}Tensor-likes are not close!\n\n"
        f"Mismatched elements: {n_bad} / {n} ({100.0 * n_bad / n:.1f}%)\n"
        f"Greatest absolute difference: {diff[i_abs]} at index {tuple(int(i) for i in i_abs)} "
        f"(up to {atol} allowed)\n"
        f"Greatest relative difference: {rel[i_rel]} at index {tuple(int(i) for i in i_rel)} "
        f"(up to {rtol} allowed)\n"
        f"actual {a[i_abs]!r} vs expected {e[i_abs]!r} at the first index")


class GradcheckError(RuntimeError):
    """Raised by ``gradcheck`` when analytical and numerical gradients differ."""


def _outputs(value) -> list[Tensor]:
    outs = list(value) if isinstance(value, (tuple, list)) else [value]
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _numerical_jacobians(fn, inputs, diff_inputs, n_outs, eps):
    """For each differentiable input: array (input size, total output size) of central differences."""
    jacobians = []
    for t in diff_inputs:
        flat = t._data.reshape(-1) if t._data.flags.c_contiguous else None
        if flat is None:
            raise ValueError("gradcheck(): inputs must be C-contiguous (use .contiguous())")
        jac = np.zeros((flat.size, n_outs), dtype=np.float64)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            with no_grad():
                plus = [o._data.astype(np.float64).reshape(-1) for o in _outputs(fn(*inputs))]
            flat[j] = orig - eps
            with no_grad():
                minus = [o._data.astype(np.float64).reshape(-1) for o in _outputs(fn(*inputs))]
            flat[j] = orig
            jac[j] = (np.concatenate(plus) - np.concatenate(minus)) / (2 * eps)
        jacobians.append(jac)
    return jacobians


def _analytical_jacobians(outputs, diff_inputs, n_outs):
    """Same layout as the numerical ones, one backward per output element (graph retained)."""
    jacobians = [np.zeros((t._data.size, n_outs), dtype=np.float64) for t in diff_inputs]
    saved = [t._grad for t in diff_inputs]
    column = 0
    try:
        for out in outputs:
            for k in range(out._data.size):
                if out.requires_grad:
                    for t in diff_inputs:
                        t._grad = None
                    seed = np.zeros(out.shape, dtype=out.dtype)
                    seed.reshape(-1)[k] = 1
                    backward(out, seed, retain_graph=True)
                    for jac, t in zip(jacobians, diff_inputs):
                        if t._grad is not None:
                            jac[:, column] = t._grad._data.astype(np.float64).reshape(-1)
                column += 1
    finally:
        for t, g in zip(diff_inputs, saved):
            t._grad = g
    return jacobians


def gradcheck(func: Callable, inputs: Tensor | Sequence, *, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Check ``func``'s backward against central finite differences of its forward.

    ``inputs`` is a Tensor or a sequence of arguments; the Tensors among them that require grad are
    differentiated (make them float64: finite differences in float32 are too noisy for these
    tolerances). ``func`` returns a Tensor or a tuple of Tensors and must be deterministic (reseed
    inside it for dropout). Every entry of every Jacobian must satisfy
    ``|analytical - numerical| <= atol + rtol * |numerical|`` (a NaN on either side fails, as in
    torch.autograd.gradcheck). Returns True, or raises
    ``GradcheckError`` describing the worst entry (returns False when ``raise_exception`` is false).
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    diff_inputs = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not diff_inputs:
        raise ValueError("gradcheck(): expected at least one input tensor with requires_grad=True")
    for i, t in enumerate(diff_inputs):
        if t.grad_fn is not None:
            raise ValueError(f"gradcheck(): differentiable input {i} is not a leaf (it was computed by "
                             f"{t.grad_fn.name()}); pass leaf tensors and compute inside func")
        if t.dtype != np.float64:
            warnings.warn(f"gradcheck(): input {i} requires grad but is {t.dtype}, not float64; the check "
                          "will likely fail", UserWarning, stacklevel=2)
    outputs = _outputs(func(*inputs))
    if not outputs:
        raise ValueError("gradcheck(): func returned no floating point Tensor")
    n_outs = sum(o._data.size for o in outputs)
    analytical = _analytical_jacobians(outputs, diff_inputs, n_outs)
    numerical = _numerical_jacobians(func, inputs, diff_inputs, n_outs, eps)
    for i, (a, n) in enumerate(zip(analytical, numerical)):
        bad = ~(np.abs(a - n) <= atol + rtol * np.abs(n))  # (written so that NaN on either side is bad)
        if bad.any():
            j, k = np.unravel_index(int(np.argmax(np.where(bad, np.abs(a - n), -1))), bad.shape)
            message = (f"Jacobian mismatch for differentiable input {i} (shape {diff_inputs[i].shape}): "
                       f"{int(bad.sum())} of {bad.size} entries differ; worst at input element {j}, output "
                       f"element {k}: analytical {float(a[j, k])!r}, numerical {float(n[j, k])!r} "
                       f"(atol {atol}, rtol {rtol})")
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True
