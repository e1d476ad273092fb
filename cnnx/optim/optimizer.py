"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad`` and state dicts (PyTorch's rules).

An optimizer holds ``param_groups`` (a list of dicts: ``"params"`` plus every hyper-parameter, so
groups can differ, e.g. no weight decay on biases) and ``state`` (per parameter, keyed by the
Parameter itself: momentum buffers, Adam moments, step counts). Subclasses implement ``step()``;
updates run under ``no_grad`` directly on the parameters' arrays, in place, so a Parameter keeps its
identity and memory (modules and the optimizer share it).

``state_dict()`` has PyTorch's shape: ``{"state": {index: {...}}, "param_groups": [{..., "params":
[index, ...]}]}`` where indices number the parameters in group order, so it can be saved with
``cnnx.save`` and loaded into an optimizer built the same way over a fresh model.

Updates of dense float32/float64 parameters run in one fused, multithreaded C++ pass per parameter
(``cnnx._C.sgd_step`` / ``adam_step``, csrc/include/cnnx/optim.h) that reproduces the numpy code of
each optimizer bit for bit; that numpy code stays the specification and the path for everything
else (strided views, other dtypes, hyper-parameters that are not Python floats).
"""
from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping
from typing import Callable

import numpy as np

from ..autograd import enable_grad
from ..tensor import Tensor, _wrap

__all__ = ["Optimizer"]

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Updates run block by block over each parameter's flat array, so that every pass of an update
# (scale, add, multiply, ...) finds its operands in L2 instead of streaming whole arrays from memory
# once per pass, and no temporaries are allocated (large ones cost page faults on every step).
BLOCK = 1 << 14


def _check_number(owner: str, name: str, value, *, low: float = 0.0, high: float | None = None,
                  high_open: bool = False) -> float:
    """``value`` as a float: a TypeError when it is not a real number, a ValueError naming the
    hyper-parameter and the allowed range when it is outside it (NaN and infinities never are in it)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__}")
    v = float(value)
    bad = not (low <= v < math.inf) or (high is not None and (v >= high if high_open else v > high))
    if bad:
        rng = f"finite and >= {low:g}" if high is None else f"in [{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{owner}: invalid {name} {value!r} (must be {rng})")
    return v


def _check_bool(owner: str, name: str, value) -> bool:
    """``value`` as a bool; anything else (``"no"``, 1) is a TypeError rather than a truth test."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _floats(*values) -> bool:
    """True when every value is a Python float: the fused kernels round each hyper-parameter to the
    arrays' dtype as numpy does with a Python float (a weak scalar, NEP 50). A numpy scalar (an
    ``np.float64`` learning rate set by hand) promotes differently, so it keeps the numpy code."""
    for v in values:
        if type(v) is not float:
            return False
    return True


def _kernel_arrays(d: np.ndarray, g: np.ndarray, *state: np.ndarray) -> bool:
    """True when the fused step kernels take the parameter ``d``, its gradient ``g`` and its ``state``
    arrays as they are: numpy arrays of one shape and one dtype, float32 or float64, C-contiguous
    and aligned, all but the gradient writeable, and the gradient apart from the parameter. (The
    state arrays are the optimizer's own, made by ``empty_like`` / ``zeros_like`` or copied by
    ``load_state_dict``, so they share memory with nothing; the kernel refuses them if they do.)
    Anything else stays on the numpy code, which never needs a copy."""
    dtype, shape = d.dtype, d.shape
    if dtype not in _KERNEL_DTYPES:
        return False
    for a in (d, g) + state:
        if type(a) is not np.ndarray or a.dtype != dtype or a.shape != shape:
            return False
        flags = a.flags
        if not (flags.c_contiguous and flags.aligned and (flags.writeable or a is g)):
            return False
    return not np.may_share_memory(d, g)


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``. ``params`` is an iterable of Tensors or of dicts
    (parameter groups: ``{"params": [...], "lr": ...}``); ``defaults`` fills what a group omits."""

    # Run the fused C++ step where it applies (see _kernel_arrays). The numpy code gives the same
    # bits; tests switch this off on an instance to compare the two.
    _fused = True

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list[dict] = []
        owner = type(self).__name__
        if isinstance(params, (Tensor, Mapping, str, bytes)) or not hasattr(params, "__iter__"):
            what = "a Tensor" if isinstance(params, Tensor) else type(params).__name__
            raise TypeError(f"{owner}: params argument given to the optimizer should be an iterable of Tensors or "
                            f"dicts, but got {what}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{owner}: params is empty: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def _validate_group(self, group: dict) -> None:
        """Check a group's hyper-parameters (subclasses raise ValueError naming the bad one)."""

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (a dict with ``"params"`` and optional hyper-parameters)."""
        owner = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{owner}: param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{owner}: param_group must have a 'params' entry (its Tensors), got keys "
                             f"{sorted(map(str, param_group))}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (Mapping, str, bytes)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{owner}: param_group['params'] must be a Tensor or an iterable of Tensors, got "
                            f"{type(params).__name__}")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{owner}: params must hold Tensors (optimizer can only optimize Tensors), but one "
                                f"of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{owner}: params must be leaf Tensors: can't optimize a non-leaf Tensor")
            if p.dtype.kind != "f":
                raise TypeError(f"{owner}: params must hold floating point Tensors (optimizer can only optimize "
                                f"those), got one of dtype {p.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{owner}: optimizer contains a parameter group with duplicate parameters")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{owner}: some parameters appear in more than one parameter group")
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
        """The update of every parameter with a gradient: each optimizer (SGD, Adam, ...) defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define _step()")

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
        """Restore hyper-parameters and state saved by ``state_dict()`` from an optimizer of the same
        class built over the same parameters (same group sizes, same shapes). Arrays are copied and
        cast to each parameter's dtype. Everything is checked before anything changes: a structure
        that is not a state dict, one from another kind of optimizer (its groups lack this one's
        hyper-parameters), other group sizes or shapes, or invalid hyper-parameters raise."""
        where = f"{type(self).__name__}.load_state_dict()"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{where}: state_dict must be a dict with 'state' and 'param_groups', got "
                            f"{type(state_dict).__name__}")
        lacking = [k for k in ("state", "param_groups") if k not in state_dict]
        if lacking:
            raise ValueError(f"{where}: state_dict must be a dict with 'state' and 'param_groups'; it lacks "
                             f"{' and '.join(map(repr, lacking))}")
        saved_state, saved_groups = state_dict["state"], state_dict["param_groups"]
        if not isinstance(saved_state, Mapping):
            raise TypeError(f"{where}: state_dict['state'] must be a dict (parameter index -> state), got "
                            f"{type(saved_state).__name__}")
        if not isinstance(saved_groups, (list, tuple)) or not all(isinstance(g, Mapping) for g in saved_groups):
            raise TypeError(f"{where}: state_dict['param_groups'] must be a list of dicts, got {saved_groups!r:.80}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{where}: loaded state dict has {len(saved_groups)} parameter groups, the optimizer has "
                             f"{len(self.param_groups)}")
        params_by_index = {}
        for i, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            ids = sg.get("params")
            if not isinstance(ids, (list, tuple)) or not all(
                    isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in ids):
                raise TypeError(f"{where}: state_dict['param_groups'][{i}]['params'] must be a list of parameter "
                                f"indices, got {ids!r:.80}")
            if len(g["params"]) != len(ids):
                raise ValueError(f"{where}: loaded state dict contains a parameter group that doesn't match the size "
                                 f"of the optimizer's group ({len(ids)} vs {len(g['params'])} parameters)")
            lacks = [k for k in self.defaults if k not in sg]
            if lacks:
                saved = ", ".join(str(k) for k in sg if k not in ("params", "initial_lr"))
                raise ValueError(f"{where}: state_dict['param_groups'][{i}] lacks {', '.join(lacks)}: it was saved by "
                                 f"another kind of optimizer (its hyper-parameters are {saved})")
            for k, p in zip(ids, g["params"]):
                params_by_index[int(k)] = p
        new_state = {}
        for key, s in saved_state.items():
            try:
                p = params_by_index.get(int(key))
            except (TypeError, ValueError):
                p = None
            if p is None:
                raise ValueError(f"{where}: loaded optimizer state refers to parameter {key!r}, which no group holds")
            if not isinstance(s, Mapping):
                raise TypeError(f"{where}: state of parameter {key} must be a dict, got {type(s).__name__}")
            entry = {}
            for k, v in s.items():
                if isinstance(v, (Tensor, np.ndarray)) or hasattr(v, "__array__") and not np.isscalar(v):
                    a = np.array(v._data if isinstance(v, Tensor) else v, copy=True)
                    if a.dtype.kind not in "biuf":
                        raise TypeError(f"{where}: loaded optimizer state {k!r} of parameter {key} has dtype {a.dtype}")
                    if a.ndim > 0 and a.shape != p.shape:
                        raise ValueError(f"{where}: loaded optimizer state {k!r} of parameter {key} has shape "
                                         f"{a.shape}, the parameter has shape {p.shape}")
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
            self._validate_group(ng)
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
    def _work_arrays(scratch: list[np.ndarray], like: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two work arrays shaped like the block ``like``: views of ``scratch`` (from ``_scratch``)
        when it fits, else fresh ones (a non-contiguous parameter comes as one whole block)."""
        n = like.size
        if n <= scratch[0].size:
            return scratch[0][:n].reshape(like.shape), scratch[1][:n].reshape(like.shape)
        return np.empty_like(like), np.empty_like(like)

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
