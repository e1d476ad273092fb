"""Adam and AdamW (PyTorch's update rules, including ``amsgrad`` and ``maximize``).

For each parameter ``p`` with gradient ``g`` at step ``t`` (1, 2, ...)::

    g = g + weight_decay * p                      (Adam: L2 penalty in the gradient)
    p = p * (1 - lr * weight_decay)               (AdamW: decoupled decay, before the update)
    m = m + (1 - beta1) * (g - m)                 (first moment, PyTorch's lerp)
    v = beta2 * v + (1 - beta2) * g * g           (second moment)
    vhat = max(vhat, v)  if amsgrad  else  v
    p = p - lr / (1 - beta1^t) * m / (sqrt(vhat) / sqrt(1 - beta2^t) + eps)

The moments live in the optimizer state as ``exp_avg`` / ``exp_avg_sq`` (``max_exp_avg_sq``) with the
parameter's dtype, and ``step`` counts updates. The numpy code in ``_step`` is the specification; it
runs block by block with two reused scratch arrays (``Optimizer._blocks``). Dense float32/float64
parameters go through ``cnnx._C.adam_step`` instead: one fused multithreaded pass over parameter,
gradient and moments, bitwise the same result (the same float operations in the same order;
csrc/include/cnnx/optim.h).
"""
from __future__ import annotations

import math

import numpy as np

from .. import _C
from .optimizer import Optimizer, _check_bool, _check_number, _floats, _kernel_arrays

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *, maximize=False)``."""

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _validate_group(self, group: dict) -> None:
        name = type(self).__name__
        group["lr"] = _check_number(name, "lr", group["lr"])
        group["eps"] = _check_number(name, "eps", group["eps"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (_check_number(name, "beta1 (betas[0])", betas[0], high=1.0, high_open=True),
                          _check_number(name, "beta2 (betas[1])", betas[1], high=1.0, high_open=True))
        group["weight_decay"] = _check_number(name, "weight_decay", group["weight_decay"])
        group["amsgrad"] = _check_bool(name, "amsgrad", group["amsgrad"])
        group["maximize"] = _check_bool(name, "maximize", group["maximize"])

    def _step(self) -> None:
        state = self.state
        for group in self.param_groups:
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            amsgrad, maximize = group["amsgrad"], group["maximize"]
            fused = self._fused and _floats(lr, eps, weight_decay, beta1, beta2)
            for d, g, p in self._grads(group):
                s = state.get(p)
                if s is None:
                    s = state[p] = {"step": 0, "exp_avg": np.zeros_like(d), "exp_avg_sq": np.zeros_like(d)}
                    if amsgrad:
                        s["max_exp_avg_sq"] = np.zeros_like(d)
                s["step"] = step = s["step"] + 1
                step_size = lr / (1.0 - beta1 ** step)
                bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
                vmax = None
                if amsgrad:
                    vmax = s.get("max_exp_avg_sq")
                    if vmax is None:
                        vmax = s["max_exp_avg_sq"] = np.zeros_like(d)
                arrays = (d, g, s["exp_avg"], s["exp_avg_sq"]) + (() if vmax is None else (vmax,))
                # step_size is a numpy float when a loaded state holds a numpy step count: numpy then
                # multiplies in float64, which the kernel does not reproduce.
                if fused and type(step_size) is float and _kernel_arrays(*arrays):
                    _C.adam_step(d, g, arrays[2], arrays[3], vmax, lr, beta1, beta2, eps, weight_decay, step_size,
                                 bc2_sqrt, self._decoupled, maximize)
                    continue
                scratch = self._scratch(d.dtype)
                for blk in self._blocks(*arrays):
                    db, gb, mb, vb = blk[:4]
                    a, b = self._work_arrays(scratch, db)
                    if maximize:
                        np.negative(gb, out=b)
                        gb = b
                    if weight_decay:
                        if self._decoupled:
                            db *= 1.0 - lr * weight_decay
                        elif gb is b:
                            np.multiply(db, weight_decay, out=a)
                            b += a
                        else:
                            np.multiply(db, weight_decay, out=b)
                            b += gb
                            gb = b
                    np.subtract(gb, mb, out=a)  # first moment: m + (1 - beta1) (g - m)
                    a *= 1.0 - beta1
                    mb += a
                    vb *= beta2  # second moment: beta2 v + (1 - beta2) g^2
                    np.multiply(gb, gb, out=a)
                    a *= 1.0 - beta2
                    vb += a
                    if vmax is not None:
                        np.maximum(blk[4], vb, out=blk[4])
                        vb = blk[4]
                    np.sqrt(vb, out=a)
                    a /= bc2_sqrt
                    a += eps
                    np.divide(mb, a, out=a)
                    a *= -step_size
                    db += a


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
    maximize=False)``: Adam with decoupled weight decay (Loshchilov & Hutter)."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)
