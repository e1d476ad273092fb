"""Losses: cross_entropy (fused log-softmax + NLL), nll_loss, mse_loss.

Both classification losses are written as ``loss_i = -sum_c A[i, c] * logp[i, c]`` over the rows
i (samples, times spatial positions for (N, C, d1, ...) inputs) with a coefficient matrix A that
encodes the target: one-hot class indices scaled by the class weight, label smoothing
(``(1 - eps) * onehot + eps / C``, times the weights), probability targets, and zero rows for
``ignore_index``. Then the gradient of cross_entropy with respect to the logits is
``g_i * (sum_c A[i, c] * softmax[i] - A[i])`` and that of nll_loss is ``-g_i * A[i]``: one
vectorised expression for every option. ``reduction="mean"`` divides by the summed weight of the
non-ignored targets (by the number of rows for probability targets), as PyTorch does.

Reference: https://pytorch.org/docs/stable/generated/torch.nn.functional.cross_entropy.html
"""
from __future__ import annotations

import numbers

import numpy as np

from ..autograd import Function
from ..tensor import Tensor

__all__ = ["CrossEntropy", "CrossEntropyIndex", "NLLLoss", "MSELoss", "cross_entropy", "nll_loss", "mse_loss"]


def _rows(x):
    """(N, C, d1, ...) -> (N * d1 * ..., C); (C,) -> (1, C); (N, C) unchanged."""
    if x.ndim == 1:
        return x[None, :]
    if x.ndim == 2:
        return x
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _unrows(g2, shape):
    """Inverse of ``_rows`` for a gradient with the input's ``shape``."""
    if len(shape) <= 2:
        return g2.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(g2.reshape(moved), -1, 1)


def _coefficients(x2, target, weight, ignore_index, label_smoothing, probabilities):
    """The coefficient matrix A (rows, C) and the 'mean' denominator (see the module docstring)."""
    rows, classes = x2.shape
    dtype = x2.dtype
    if probabilities:
        a = _rows(target).astype(dtype, copy=True)  # (a copy: A is scaled in place below)
        if label_smoothing:
            a *= 1.0 - label_smoothing
            a += label_smoothing / classes
        if weight is not None:
            a *= weight
        return a, float(rows)
    t = target.reshape(-1)
    valid = t != ignore_index
    t_safe = np.where(valid, t, 0)
    a = np.zeros((rows, classes), dtype=dtype)
    w_row = valid.astype(dtype) if weight is None else weight[t_safe] * valid
    a[np.arange(rows), t_safe] = (1.0 - label_smoothing) * w_row
    if label_smoothing:
        a += (label_smoothing / classes) * (valid[:, None] * (1.0 if weight is None else weight[None, :]))
    return a, float(w_row.sum())


def _reduce(per_row, reduction, denom, target_shape):
    if reduction == "none":
        return per_row.reshape(target_shape)
    total = per_row.sum()
    return total if reduction == "sum" else total / denom


def _row_grads(g, reduction, denom, rows):
    """d(loss)/d(loss_i) for every row, from the incoming gradient ``g``."""
    if reduction == "none":
        return g.reshape(rows, 1)
    return np.full((rows, 1), g / denom if reduction == "mean" else g, dtype=g.dtype)


class CrossEntropy(Function):
    """Probability targets are differentiable too (as in PyTorch):
    d loss_i / d target[i, c] = -(1 - eps) * weight[c] * logp[i, c]."""

    __slots__ = ("shape", "reduction", "denom", "target_grad")

    def forward(ctx, x, target, weight, ignore_index, reduction, label_smoothing, probabilities):
        x2 = _rows(x)
        logp = x2 - x2.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        a, denom = _coefficients(x2, target, weight, ignore_index, label_smoothing, probabilities)
        ctx.shape, ctx.reduction, ctx.denom = x.shape, reduction, denom
        # what the target's gradient needs: (scale per class, target dtype), when it is wanted
        ctx.target_grad = None
        if probabilities and ctx.needs_input_grad[1]:
            scale = (1.0 - label_smoothing) * (1.0 if weight is None else weight)
            ctx.target_grad = (scale, target.dtype)
        ctx.save_for_backward(a, logp)
        per_row = -(a * logp).sum(axis=1)
        return _reduce(per_row, reduction, denom, x.shape[:1] + x.shape[2:] if x.ndim > 1 else ())

    def backward(ctx, g):
        a, logp = ctx.saved_tensors
        row_grads = _row_grads(g, ctx.reduction, ctx.denom, a.shape[0])
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = np.exp(logp)
            gx *= a.sum(axis=1, keepdims=True)
            gx -= a
            gx *= row_grads
            gx = _unrows(gx, ctx.shape)
        if ctx.target_grad is not None:
            scale, dtype = ctx.target_grad
            gt = _unrows(-(logp * scale) * row_grads, ctx.shape).astype(dtype, copy=False)
        return gx, gt


class CrossEntropyIndex(Function):
    """The common case, without the coefficient matrix: integer class targets, no class weights, no
    label smoothing. loss_i = -logp[i, t_i]; d loss_i / d x_i = softmax_i - onehot(t_i), and 0 for
    rows whose target is ``ignore_index``."""

    __slots__ = ("shape", "reduction", "denom")

    def forward(ctx, x, target, ignore_index, reduction):
        x2 = _rows(x)
        logp = x2 - x2.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        t = target.reshape(-1)
        valid = None
        # Targets were validated to lie in [0, C) unless ignored, so with a negative ignore_index
        # (the default -100) a non-negative minimum means nothing is ignored.
        if t.size and (ignore_index >= 0 or t.min() < 0):
            valid = t != ignore_index
            t = np.where(valid, t, 0)
        rows = np.arange(t.shape[0])
        picked = logp[rows, t]
        if valid is not None:
            picked = picked * valid
        denom = float(t.shape[0] if valid is None else valid.sum())
        ctx.shape, ctx.reduction, ctx.denom = x.shape, reduction, denom
        ctx.save_for_backward(logp, t, valid)
        return _reduce(-picked, reduction, denom, x.shape[:1] + x.shape[2:] if x.ndim > 1 else ())

    def backward(ctx, g):
        logp, t, valid = ctx.saved_tensors
        gx = np.exp(logp)
        gx[np.arange(t.shape[0]), t] -= 1
        if valid is not None:
            gx *= valid[:, None]
        gx *= _row_grads(g, ctx.reduction, ctx.denom, t.shape[0])
        return _unrows(gx, ctx.shape)


class NLLLoss(Function):
    __slots__ = ("shape", "reduction", "denom")

    def forward(ctx, x, target, weight, ignore_index, reduction):
        x2 = _rows(x)
        a, denom = _coefficients(x2, target, weight, ignore_index, 0.0, False)
        ctx.shape, ctx.reduction, ctx.denom = x.shape, reduction, denom
        ctx.save_for_backward(a)
        return _reduce(-(a * x2).sum(axis=1), reduction, denom, x.shape[:1] + x.shape[2:] if x.ndim > 1 else ())

    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return _unrows(-a * _row_grads(g, ctx.reduction, ctx.denom, a.shape[0]), ctx.shape)


class MSELoss(Function):
    __slots__ = ("reduction", "dtypes")

    def forward(ctx, x, y, reduction):
        diff = x - y
        ctx.reduction = reduction
        ctx.dtypes = (x.dtype, getattr(y, "dtype", None))
        ctx.save_for_backward(diff)
        sq = diff * diff
        return sq if reduction == "none" else sq.sum() if reduction == "sum" else sq.mean()

    def backward(ctx, g):
        (diff,) = ctx.saved_tensors
        scale = 2.0 / diff.size if ctx.reduction == "mean" else 2.0
        gx = diff * (g * scale)
        n = ctx.needs_input_grad
        return (gx.astype(ctx.dtypes[0], copy=False) if n[0] else None,
                (-gx).astype(ctx.dtypes[1], copy=False) if n[1] else None)


# ---- functional wrappers ---------------------------------------------------------------------

def _reduction(fn: str, size_average, reduce, reduction: str) -> str:
    if size_average is not None or reduce is not None:  # PyTorch's deprecated arguments
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else "mean" if size_average else "sum"
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{fn}(): {reduction!r} is not a valid value for reduction "
                         "(expected 'none', 'mean' or 'sum')")
    return reduction


class TargetOutOfRange(IndexError, ValueError):
    """A class label outside [0, C): an IndexError as in PyTorch, and a ValueError as cnnx's contract
    for bad arguments asks."""


def _check_class_target(fn: str, x, target, weight, ignore_index):
    """Validate input (N, C, ...) / (C,) against integer class targets; returns the class count."""
    if x.ndim == 0:
        raise ValueError(f"{fn}(): input must have at least 1 dimension (classes), got a 0-d tensor")
    classes = x.shape[1] if x.ndim > 1 else x.shape[0]
    expected = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
    if target.shape != expected:
        raise ValueError(f"{fn}(): expected target of shape {expected} for input of shape {x.shape}, "
                         f"got {target.shape}")
    t = target._data
    if t.size and (t.min() < 0 or t.max() >= classes):  # two reductions in the common, valid case
        bad = (t != ignore_index) & ((t < 0) | (t >= classes))
        if bad.any():
            raise TargetOutOfRange(f"{fn}(): argument 'target' holds {int(t[bad].flat[0])}, out of bounds for "
                                   f"{classes} classes (expected 0 to {classes - 1} or ignore_index)")
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"{fn}(): weight must have shape ({classes},), got {weight.shape}")
    return classes


def _check_ignore_index(fn: str, ignore_index) -> int:
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{fn}(): ignore_index must be an int, got {type(ignore_index).__name__} {ignore_index!r}")
    return int(ignore_index)


def _common(fn, input, target, weight):
    for name, v in (("input", input), ("target", target)):
        if not isinstance(v, Tensor):
            raise TypeError(f"{fn}(): argument '{name}' must be a Tensor, got {type(v).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{fn}(): input must be a floating point tensor, got {input.dtype}")
    if weight is not None:
        if not isinstance(weight, Tensor):
            raise TypeError(f"{fn}(): argument 'weight' must be a Tensor or None, got {type(weight).__name__}")
        return weight._data.astype(input.dtype, copy=False)
    return None


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy between logits ``input`` (N, C), (C,) or (N, C, d1, ...) and ``target``:
    class indices (int, shape (N,), () or (N, d1, ...)) or class probabilities (float, same shape
    as input). Options as in PyTorch: per-class ``weight``, ``ignore_index`` (index targets only),
    ``reduction`` ('none' | 'mean' | 'sum'), ``label_smoothing`` in [0, 1]."""
    w = _common("cross_entropy", input, target, weight)
    reduction = _reduction("cross_entropy", size_average, reduce, reduction)
    ignore_index = _check_ignore_index("cross_entropy", ignore_index)
    if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(label_smoothing, numbers.Real):
        raise TypeError(f"cross_entropy(): label_smoothing must be a number, got {type(label_smoothing).__name__}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy(): label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    probabilities = target.dtype.kind == "f"
    if probabilities:
        if target.shape != input.shape:
            raise ValueError(f"cross_entropy(): probability targets must have the input's shape "
                             f"{input.shape}, got {target.shape}")
        if w is not None and w.shape != (input.shape[1 if input.ndim > 1 else 0],):
            raise ValueError(f"cross_entropy(): weight must have one entry per class, got shape {w.shape}")
        tgt = target
    elif target.dtype.kind in "iu":
        _check_class_target("cross_entropy", input, target, weight, ignore_index)
        tgt = target._data
    else:
        raise TypeError(f"cross_entropy(): target must hold class indices (int) or probabilities (float), "
                        f"got {target.dtype}")
    if not probabilities and w is None and not label_smoothing:
        return CrossEntropyIndex.apply(input, tgt, int(ignore_index), reduction)
    return CrossEntropy.apply(input, tgt, w, int(ignore_index), reduction, float(label_smoothing), probabilities)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log likelihood of log-probabilities ``input`` (N, C), (C,) or (N, C, d1, ...) at the
    integer class ``target``."""
    w = _common("nll_loss", input, target, weight)
    reduction = _reduction("nll_loss", size_average, reduce, reduction)
    ignore_index = _check_ignore_index("nll_loss", ignore_index)
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss(): target must hold integer class indices, got {target.dtype}")
    _check_class_target("nll_loss", input, target, weight, ignore_index)
    return NLLLoss.apply(input, target._data, w, int(ignore_index), reduction)


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """Mean squared error (or its sum, or per element) between equally shaped tensors."""
    _common("mse_loss", input, target, None)
    reduction = _reduction("mse_loss", size_average, reduce, reduction)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss(): input shape {input.shape} and target shape {target.shape} differ")
    return MSELoss.apply(input, target, reduction)
