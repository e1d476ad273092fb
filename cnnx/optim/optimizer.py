"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad`` and state dicts (PyTorch's rules).

An optimizer holds ``param_groups`` (a list of dicts: ``"params"`` plus every hyper-parameter, so
groups can differ, e.g. no weight decay on biases) and ``state`` (per parameter, keyed by the
Parameter itself: momentum buffers, Adam moments, step counts). Subclasses implement ``step()``;
updates run under ``no_grad`` directly on the parameters' arrays, in place, so a Parameter keeps its
identity and memory (modules and the optimizer share it).

``state_dict()`` has PyTorch's shape: ``{"state": {index: {...}}, "param_groups": [{..., "params":
[index, ...]}]}`` where indices number the parameters in group order, so it can be saved with
``cnnx.save`` and loaded into an optimizer built the same way over a fresh model.
"""
from __future__ import annotations

import copy
import numbers
from typing import Callable, Iterable

import numpy as np

from ..autograd import enable_grad
from ..tensor import Tensor, _wrap

__all__ = ["Optimizer"]

# Updates run block by block over each parameter's flat array, so that every pass of an update
# (scale, add, multiply, ...) finds its operands in L2 instead of streaming whole arrays from memory
# once per pass, and no temporaries are allocated (large ones cost page faults on every step).
BLOCK = 1 << 14


def _check_number(owner: str, name: str, value, *, low: float = 0.0, high: float | None = None,
                  high_open: bool = False) -> float:
    """``value`` as a float, or a ValueError naming the hyper-parameter and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__}")
    v = float(value)
    bad = not (v >= low) or (high is not None and (v >= high if high_open else v > high))
    if bad:
        rng = f">= {low:g}" if high is None else f"in [{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{owner}: invalid {name} {value!r} (must be {rng})")
    return v


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``. ``params`` is an iterable of Tensors or of dicts
    (parameter groups: ``{"params": [...], "lr": ...}``); ``defaults`` fills what a group omits."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def _validate_group(self, group: dict) -> None:
        """Check a group's hyper-parameters (subclasses raise ValueError naming the bad one)."""

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (a dict with ``"params"`` and optional hyper-parameters)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if p.dtype.kind != "f":
                raise TypeError(f"optimizer can only optimize floating point Tensors, got {p.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group = {k: v for k, v in param_group.items() if k != "params"}
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._validate_group(group)
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default, as in PyTorch 2) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p._grad is not None:
                    if set_to_none:
                        p._grad = None
                    else:
                        p._grad._data[...] = 0

    def step(self, closure: Callable | None = None):
        """Update the parameters once from their ``.grad``; ``closure`` (re-evaluating and returning
        the loss) is called first with grad enabled when given. Returns its loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._step()
        return loss

    def _step(self) -> None:
        raise NotImplementedError

    # ---- state dict ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {index: {name: Tensor or number}}, "param_groups": [...]}`` (state shares
        memory with the optimizer: save or copy it before stepping again)."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: (_wrap(v) if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and state saved by ``state_dict()`` from an optimizer built over
        the same parameters (same group sizes, same shapes). Arrays are copied and cast to each
        parameter's dtype."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("optimizer state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, the optimizer has "
                             f"{len(self.param_groups)}")
        params_by_index = {}
        for g, sg in zip(self.param_groups, saved_groups):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 f"the optimizer's group ({len(sg['params'])} vs {len(g['params'])} parameters)")
            for i, p in zip(sg["params"], g["params"]):
                params_by_index[int(i)] = p
        new_state = {}
        for key, s in state_dict["state"].items():
            p = params_by_index.get(int(key))
            if p is None:
                raise ValueError(f"loaded optimizer state refers to parameter {key}, which no group holds")
            entry = {}
            for k, v in s.items():
                if isinstance(v, (Tensor, np.ndarray)) or hasattr(v, "__array__") and not np.isscalar(v):
                    a = np.array(v._data if isinstance(v, Tensor) else v, copy=True)
                    if a.ndim > 0 and a.shape != p.shape:
                        raise ValueError(f"loaded optimizer state {k!r} of parameter {key} has shape {a.shape}, "
                                         f"the parameter has shape {p.shape}")
                    entry[k] = a.astype(p.dtype) if a.dtype.kind == "f" and a.ndim > 0 else a
                else:
                    entry[k] = copy.deepcopy(v)
            new_state[p] = entry
        new_groups = []
        for g, sg in zip(self.param_groups, saved_groups):
            ng = {k: copy.deepcopy(v) for k, v in sg.items() if k != "params"}
            for k, v in ng.items():  # JSON round trips turn tuples (betas) into lists
                if isinstance(v, list) and isinstance(self.defaults.get(k), tuple):
                    ng[k] = tuple(v)
            ng["params"] = g["params"]
            new_groups.append(ng)
        self.state = new_state
        self.param_groups = new_groups

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(k for k in g if k != "params"):
                lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)

    @staticmethod
    def _grads(group: dict):
        """(parameter array, gradient array, parameter) for the group's parameters that have a grad."""
        for p in group["params"]:
            g = p._grad
            if g is not None:
                yield p._data, g._data, p

    def _scratch(self, dtype, count: int = 2) -> list[np.ndarray]:
        """``count`` reusable BLOCK-sized work arrays of ``dtype`` (kept across steps)."""
        cache = self.__dict__.setdefault("_scratch_cache", {})
        key = np.dtype(dtype)
        if key not in cache or len(cache[key]) < count:
            cache[key] = [np.empty(BLOCK, dtype=key) for _ in range(count)]
        return cache[key]

    @staticmethod
    def _blocks(*arrays: np.ndarray):
        """Matching BLOCK-element slices of same-shaped arrays (flat views: writes reach the arrays).
        Non-contiguous arrays are handed over whole."""
        if not all(a.flags.c_contiguous for a in arrays):
            yield arrays
            return
        flat = [a.reshape(-1) for a in arrays]
        n = flat[0].size
        if n <= BLOCK:
            yield flat
            return
        for i in range(0, n, BLOCK):
            yield [f[i:i + BLOCK] for f in flat]
