"""Autograd-lite: ``Function`` (forward and backward side by side), the tape, grad mode.

The tape is implicit, as in PyTorch: every Tensor produced by a recorded ``Function`` holds the
Function's instance as ``grad_fn``; that instance (the *ctx*) holds the input Tensors that need a
gradient (``parents``) and whatever forward saved. ``backward()`` sorts the nodes reachable from
the root in reverse topological order, calls each node's ``backward`` once with the sum of the
gradients of its output, and accumulates leaf gradients into ``Tensor.grad``. Unless
``retain_graph=True`` every node drops its parents and saved arrays as soon as it has run, so the
graph of a training step is freed by the step's own backward (memory stays flat).

Contracts every Function keeps (docs/autograd.md explains them):

- ``forward(ctx, *args)`` receives the *arrays* of Tensor arguments (``Tensor._data``) and every
  other argument unchanged; it returns one array, or a tuple whose first element is the
  differentiable output and whose other elements become Tensors that do not require grad
  (indices, statistics).
- ``backward(ctx, grad_output)`` returns one gradient per forward argument (a tuple, or a bare
  array for one argument; trailing entries may be omitted), ``None`` where
  ``ctx.needs_input_grad[i]`` is false or the argument is not a Tensor. Each gradient has the
  argument's shape and dtype (the tape checks). ``grad_output`` may be a read-only or
  non-contiguous view and must not be written to; a returned gradient may be a view of it.
- Only arrays are saved (``ctx.save_for_backward``), never Tensors, so the graph has no cycles and
  is freed by reference counting alone.
"""
from __future__ import annotations

import functools
import sys
import threading

import numpy as np

from . import _C, _storage
from .tensor import Tensor, _wrap

_new_tensor = object.__new__

__all__ = ["Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "backward"]


# --------------------------------------------------------------------------------------------
# Grad mode (per thread, as in PyTorch)

class _GradMode(threading.local):
    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad are being recorded."""
    return _mode.enabled


class set_grad_enabled:
    """Turn recording on or off: as a function call, a context manager or a decorator."""

    __slots__ = ("_prev", "_mode_on")

    def __init__(self, mode: bool):
        self._prev = _mode.enabled
        self._mode_on = bool(mode)
        _mode.enabled = self._mode_on

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        _mode.enabled = self._prev
        return False

    def __call__(self, fn):
        mode = self._mode_on
        _mode.enabled = self._prev  # used as a decorator: the constructor's switch must not linger

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


class _GradModeContext:
    _on = True
    __slots__ = ("_prev",)

    def __enter__(self):
        self._prev = _mode.enabled
        _mode.enabled = self._on
        return None

    def __exit__(self, *exc):
        _mode.enabled = self._prev
        return False

    def __call__(self, fn):
        on = self._on

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = _mode.enabled
            _mode.enabled = on
            try:
                return fn(*args, **kwargs)
            finally:
                _mode.enabled = prev
        return wrapper


class no_grad(_GradModeContext):
    """Context manager (and decorator) in which nothing is recorded for backward.

    Results of operations inside do not require grad, and no graph is kept, so inference and
    parameter updates cost no tape memory::

        with cnnx.no_grad():
            logits = model(x)
    """

    _on = False
    __slots__ = ()


class enable_grad(_GradModeContext):
    """Context manager (and decorator) that turns recording back on inside ``no_grad``."""

    _on = True
    __slots__ = ()


# --------------------------------------------------------------------------------------------
# Function

class Function:
    """Base class of every differentiable operation.

    Subclass it and write ``forward(ctx, *args)`` and ``backward(ctx, grad_output)`` next to each
    other (as plain methods whose first parameter is named ``ctx``, or as ``@staticmethod``s, as
    in PyTorch), then call ``MyFunction.apply(*args)``. Tensor arguments reach ``forward`` as
    arrays; other arguments (strides, flags) pass through unchanged. Use
    ``ctx.save_for_backward(*arrays)`` for what backward needs, plain attributes for small
    settings, and ``ctx.needs_input_grad`` to skip gradients nobody wants::

        class Square(Function):
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            def backward(ctx, grad_output):
                (x,) = ctx.saved_tensors
                return 2 * x * grad_output

        y = Square.apply(t)
    """

    # parents: per forward argument, the Tensor whose gradient is wanted, or None.
    # needs_input_grad: per forward argument, whether a gradient is wanted.
    __slots__ = ("parents", "needs_input_grad", "saved_tensors")

    # True for Functions that save their own output for backward (relu, tanh, sigmoid, softmax):
    # an in-place operation on that output would silently corrupt the gradient, so in-place ops
    # refuse to overwrite such a Tensor.
    saves_output = False

    def save_for_backward(self, *arrays) -> None:
        """Keep arrays for backward (read back as ``ctx.saved_tensors``; freed after backward)."""
        self.saved_tensors = arrays

    def forward(ctx, *args):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError(f"{type(ctx).__name__} does not define forward()")

    def backward(ctx, grad_output):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError(f"{type(ctx).__name__} does not define backward()")

    @classmethod
    def apply(cls, *args):
        """Run forward on ``args`` and, when grad mode is on and a Tensor argument requires grad,
        record the call so ``backward()`` reaches it. Returns a Tensor (or a tuple, see above)."""
        ctx = object.__new__(cls)
        record = _mode.enabled
        arrays = list(args)
        needs = [False] * len(args)
        parents = None
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                arrays[i] = a._data
                if record and a._rg:
                    needs[i] = True
                    if parents is None:
                        parents = [None] * len(args)
                    parents[i] = a
        ctx.needs_input_grad = tuple(needs)
        ctx.saved_tensors = ()
        out = cls.forward(ctx, *arrays)
        extras = None
        if type(out) is tuple:
            extras = tuple(_wrap(_storage.ensure_array(e)) for e in out[1:])
            out = out[0]
        if type(out) is not _storage.ARRAY_TYPE:
            out = _storage.ensure_array(out)
        # _wrap inlined: this is the hottest line of every op
        result = _new_tensor(Tensor)
        result._data = out
        result._grad = None
        if parents is None:
            result._rg = False
            result.grad_fn = None
        else:
            ctx.parents = parents
            result._rg = True
            result.grad_fn = ctx
        return result if extras is None else (result, *extras)

    def name(self) -> str:
        return f"{type(self).__name__}Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"


# --------------------------------------------------------------------------------------------
# Backward

def _topological_order(root_fn):
    """Nodes reachable from ``root_fn``, each one before every node that produced its inputs.

    Iterative depth-first post-order (a node is marked when it is expanded, not when it is
    pushed, so a node reached first through a short path still waits for the longer ones).
    """
    order = []
    visited = set()
    stack = [(root_fn, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        parents = node.parents
        if parents is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or after its saved arrays were "
                f"freed) at {node.name()}. Pass retain_graph=True to the first backward() to keep it.")
        for p in parents:
            if p is not None:
                fn = p.grad_fn
                if fn is not None and fn not in visited:
                    stack.append((fn, False))
    order.reverse()
    return order


def _mismatch(node, i, parent, g):
    data = parent._data
    return RuntimeError(
        f"{node.name()} returned a gradient of shape {tuple(g.shape)} and dtype {g.dtype} for "
        f"argument {i}, which has shape {tuple(data.shape)} and dtype {data.dtype}")


def backward(tensor: Tensor, gradient=None, retain_graph: bool | None = None) -> None:
    """Accumulate d(tensor)/d(leaf) into the ``.grad`` of every leaf that requires grad.

    ``gradient`` is d(loss)/d(tensor); it may be omitted only for a one-element tensor.
    The graph is freed afterwards unless ``retain_graph`` is true.
    """
    if not tensor._rg:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    data = tensor._data
    if gradient is None:
        if data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; this tensor has shape "
                f"{tuple(data.shape)}: pass backward(gradient=...) with that shape")
        seed = _storage.ones_like(data)
    else:
        seed = gradient._data if isinstance(gradient, Tensor) else gradient
        seed = _storage.ensure_array(seed)
        if seed.shape != data.shape:
            raise RuntimeError(f"backward(): gradient has shape {tuple(seed.shape)} but the tensor has "
                               f"shape {tuple(data.shape)}")
        if seed.dtype != data.dtype:
            seed = seed.astype(data.dtype)
    root = tensor.grad_fn
    if root is None:  # a leaf: its gradient is the seed
        _accumulate_leaf(tensor, seed)
        return
    free = not retain_graph
    array_type = _storage.ARRAY_TYPE
    grads = {root: seed}
    for node in _topological_order(root):
        g = grads.pop(node, None)
        if g is None:  # every consumer returned None for this node: nothing flows further
            continue
        in_grads = type(node).backward(node, g)
        g = None  # a backward that passes its gradient through (Add) leaves it referenced only there
        in_grads = list(in_grads) if type(in_grads) is tuple else [in_grads]
        parents = node.parents
        if len(in_grads) > len(parents):
            raise RuntimeError(f"{node.name()} returned {len(in_grads)} gradients for "
                               f"{len(parents)} forward arguments")
        for i in range(len(in_grads)):
            ig = in_grads[i]
            in_grads[i] = None  # so that _sole_array counts only `ig` (and other slots holding it)
            p = parents[i]
            if p is None or ig is None:
                continue
            if type(ig) is not array_type:
                ig = _storage.ensure_array(ig)
            data = p._data
            if ig.shape != data.shape or ig.dtype != data.dtype:
                raise _mismatch(node, i, p, ig)
            fn = p.grad_fn
            if fn is None:
                # Its own statement: as an argument of the call below, `ig` would already sit on the
                # interpreter's stack once more.
                sole = _SOLE is not None and _sole_array(ig, _SOLE)
                _accumulate_leaf(p, ig, sole)
            else:
                prev = grads.pop(fn, None)
                if prev is None:
                    grads[fn] = ig
                else:
                    # In place only when nothing else holds `prev` (another node may have returned
                    # it, or a view of it, to others too); its own statement, as above.
                    sole = _SOLE is not None and _sole_array(prev, _SOLE)
                    grads[fn] = _add_grads(prev, ig, sole)
        if free:
            node.parents = None
            node.saved_tensors = None


def _add_grads(prev, g, sole: bool):
    """``prev + g`` for two gradients of one node's output (same shape and dtype, checked by the
    caller): written into ``prev`` when ``sole``, on the add kernel when both are dense float
    arrays (two threads; numpy's bits), else by numpy."""
    array_type = _storage.ARRAY_TYPE
    if (type(prev) is array_type and type(g) is array_type and prev.ndim > 0 and prev.dtype in _KERNEL_DTYPES
            and prev.flags.c_contiguous and g.flags.c_contiguous and prev.flags.aligned and g.flags.aligned):
        return _C.add(prev, g, prev if sole else None)
    if sole:
        np.add(prev, g, out=prev)
        return prev
    return prev + g


def _accumulate_leaf(leaf: Tensor, g, sole: bool = False) -> None:
    """Add ``g`` into ``leaf.grad``. The first gradient becomes the grad itself when ``sole`` (nothing
    else references it: see _sole_array), else a copy (``g`` may be shared with other leaves or be a
    read-only view); later ones are added in place, keeping the grad's identity."""
    if leaf._grad is None:
        leaf._grad = _wrap(g if sole else g.copy())
    else:
        acc = leaf._grad._data
        if acc.flags.writeable and acc.shape == g.shape:
            acc += g
        else:
            leaf._grad = _wrap(acc + g)


# Taking a leaf's first gradient without a copy, as PyTorch does when nothing else holds the tensor:
# the copy costs a pass over every weight per step (AlexNet: 240 MB, 62 ms of a 460 ms batch-8
# step). Python has no owner count but the reference count, so the gradient is taken only when the
# array is referenced by the one variable of the caller that passes it, owns its memory (no base,
# or the capsule of a kernel output that only it references) and is writeable. What the count of a
# sole array is depends on the interpreter (CPython 3.14 borrows some references): _calibrate
# measures it through the same call path, and turns the shortcut off if a second reference does not
# show.


_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _refs(obj) -> int:
    return sys.getrefcount(obj)


def _sole_array(g, sole_count: int) -> bool:
    """True when the array ``g``, held by one local variable of the caller, is referenced nowhere
    else and owns its memory alone."""
    if type(g) is not _storage.ARRAY_TYPE or _refs(g) != sole_count or not g.flags.writeable:
        return False
    base = g.base
    if base is None:
        return g.flags.owndata
    return type(base).__name__ == "PyCapsule" and _refs(base) == sole_count


def _probe(g) -> int:
    return _refs(g)  # the count _sole_array sees: same depth of calls


def _calibrate():
    a = np.empty(4)
    sole = _probe(a)
    b = a
    shared = _probe(a)
    del b
    return sole if shared == sole + 1 else None


_SOLE = _calibrate()
