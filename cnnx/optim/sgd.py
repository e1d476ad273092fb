"""Stochastic gradient descent with momentum, dampening, weight decay and Nesterov (PyTorch's rule).

For each parameter ``p`` with gradient ``g``, at learning rate ``lr``::

    g = g + weight_decay * p                      (if weight_decay)
    buf = g                      on the first step  (if momentum)
    buf = momentum * buf + (1 - dampening) * g    afterwards
    g = g + momentum * buf  if nesterov  else  buf
    p = p - lr * g                                (g negated first with maximize)

This is PyTorch's formulation (the learning rate multiplies the whole update, so changing it does
not rescale the momentum buffer), which differs from Sutskever et al. where ``lr`` sits inside the
buffer.

The numpy code in ``_step`` is the specification: it runs block by block through two reused scratch
arrays. Dense float32/float64 parameters go through ``cnnx._C.sgd_step`` instead, one fused
multithreaded pass over parameter, gradient and buffer with bitwise the same result (the kernel
performs the same float operations in the same order; csrc/include/cnnx/optim.h).
"""
from __future__ import annotations

import numpy as np

from .. import _C
from .optimizer import Optimizer, _check_bool, _check_number, _floats, _kernel_arrays

__all__ = ["SGD"]


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False)``."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _validate_group(self, group: dict) -> None:
        group["lr"] = _check_number("SGD", "lr", group["lr"])
        group["momentum"] = _check_number("SGD", "momentum", group["momentum"])
        group["dampening"] = _check_number("SGD", "dampening", group["dampening"])
        group["weight_decay"] = _check_number("SGD", "weight_decay", group["weight_decay"])
        group["nesterov"] = _check_bool("SGD", "nesterov", group["nesterov"])
        group["maximize"] = _check_bool("SGD", "maximize", group["maximize"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov=True requires momentum > 0 and dampening = 0 "
                             f"(got momentum={group['momentum']:g}, dampening={group['dampening']:g})")

    def _step(self) -> None:
        state = self.state
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
            fused = self._fused and _floats(lr, momentum, dampening, weight_decay)
            for d, g, p in self._grads(group):
                buf, first = None, False
                if momentum:
                    s = state.get(p)
                    if s is None:
                        s = state[p] = {}
                    buf = s.get("momentum_buffer")
                    if buf is None:
                        buf = s["momentum_buffer"] = np.empty_like(d)
                        first = True
                if fused and (_kernel_arrays(d, g) if buf is None else _kernel_arrays(d, g, buf)):
                    _C.sgd_step(d, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first)
                    continue
                scratch = self._scratch(d.dtype)
                for blk in self._blocks(d, g) if buf is None else self._blocks(d, g, buf):
                    db, gb = blk[0], blk[1]
                    a, b = self._work_arrays(scratch, db)
                    if maximize:
                        np.negative(gb, out=a)
                        gb = a
                    if weight_decay:
                        np.multiply(db, weight_decay, out=b)
                        b += gb
                        gb = b
                    if buf is not None:
                        bb = blk[2]
                        if first:
                            np.copyto(bb, gb)
                        else:
                            bb *= momentum
                            if dampening:
                                c = a if gb is not a else b
                                np.multiply(gb, 1.0 - dampening, out=c)
                                bb += c
                            else:
                                bb += gb
                        if nesterov:
                            c = b if gb is a else a
                            np.multiply(bb, momentum, out=c)
                            c += gb
                            gb = c
                        else:
                            gb = bb
                    c = a if gb is not a else b
                    np.multiply(gb, lr, out=c)
                    db -= c
