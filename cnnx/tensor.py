"""``cnnx.Tensor``: an array on a device plus what autograd needs to know about it.

A Tensor holds its data in one backend array (``_data``; numpy on ``"cpu"``, see ``_storage``),
whether it requires grad, the ``Function`` that produced it (``grad_fn``; None for leaves), and its
accumulated gradient (``grad``). Operators and methods are thin: each calls one ``Function`` in
``cnnx/ops/`` (the same ones ``cnnx.nn.functional`` uses). Construction helpers (``cnnx.tensor``,
``zeros``, ``randn``, ...) live in ``cnnx/creation.py``.

Semantics follow PyTorch: float32 is the default floating dtype; a float32 tensor combined with a
Python number stays float32; ``numpy()`` shares memory and refuses tensors that require grad;
in-place methods (``add_``, ``zero_``, ...) are for tensors outside the graph (parameters under
``no_grad``, buffers) and refuse to run where they would have to be recorded.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _storage

__all__ = ["Tensor"]


def _wrap(array, requires_grad: bool = False) -> Tensor:
    """A Tensor around ``array`` without copying or checking (the hot path of every op)."""
    t = object.__new__(Tensor)
    t._data = array
    t._rg = requires_grad
    t.grad_fn = None
    t._grad = None
    return t


def _shape_arg(args, name: str = "size") -> tuple:
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` all mean shape (2, 3)."""
    if len(args) == 1 and not isinstance(args[0], numbers.Integral):
        args = args[0]
    if not isinstance(args, (tuple, list)) or not all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in args):
        raise TypeError(f"argument '{name}' must be ints or a tuple of ints, got {args!r}")
    return tuple(int(a) for a in args)


class Tensor:
    """An n-dimensional array that can record the operations applied to it for backward.

    Create one with ``cnnx.tensor(data)``, ``cnnx.zeros(...)``, ``cnnx.from_numpy(a)``, ... .
    """

    __slots__ = ("_data", "_rg", "grad_fn", "_grad", "__weakref__")
    # numpy defers binary operators to Tensor (so ``array + tensor`` is a Tensor).
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False):
        from .creation import tensor as _tensor

        src = _tensor(data, requires_grad=requires_grad)
        self._data = src._data
        self._rg = src._rg
        self.grad_fn = None
        self._grad = None

    # ---- attributes -----------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """The size of each dimension (a tuple)."""
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        """The element type (a numpy dtype; compare with ``cnnx.float32`` etc.)."""
        return self._data.dtype

    @property
    def device(self) -> _storage.device:
        """Where the data lives (``"cpu"``)."""
        return _storage.device_of(self._data)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def requires_grad(self) -> bool:
        """Whether operations on this tensor are recorded so gradients can flow back to it."""
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` on a leaf tensor in place; returns self."""
        if self.grad_fn is not None:
            if not requires_grad:
                raise RuntimeError("you can only change requires_grad flags of leaf tensors; use "
                                   "detach() to get a tensor outside the graph")
            return self
        if requires_grad and not _storage.is_floating(self._data.dtype):
            raise RuntimeError(f"only tensors of floating point dtype can require gradients, got {self.dtype}")
        self._rg = bool(requires_grad)
        return self

    @property
    def grad(self) -> Tensor | None:
        """The accumulated gradient of a leaf (None until a backward reaches it)."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has shape {value.shape} but the tensor has shape {self.shape}")
        self._grad = value

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded operation (inputs, parameters)."""
        return self.grad_fn is None

    @property
    def data(self) -> Tensor:
        """This tensor's data as a tensor outside the graph (shares memory, like ``detach()``)."""
        return _wrap(self._data)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be set to a Tensor, got {type(value).__name__}")
        self._data = value._data

    @property
    def T(self) -> Tensor:
        """All dimensions reversed (a 2-D tensor's transpose)."""
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None):
        """The shape, or the size of dimension ``dim``."""
        return self._data.shape if dim is None else self._data.shape[dim]

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    # ---- leaving the graph / converting --------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a numpy array sharing memory with the tensor."""
        if self._rg:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self._rg:
            raise RuntimeError("Can't convert a Tensor that requires grad to a numpy array. "
                               "Use tensor.detach().numpy() instead.")
        a = self._data
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to a Python scalar")
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._data.size} elements is ambiguous")
        return bool(self._data.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._data.item())

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, outside the graph (never requires grad)."""
        return _wrap(self._data)

    def clone(self) -> Tensor:
        """A copy of the data; gradients flow back to this tensor."""
        return _shape.Clone.apply(self)

    def contiguous(self) -> Tensor:
        """This tensor if its data is C-contiguous, else a contiguous copy (gradient flows)."""
        return self if self._data.flags.c_contiguous else _shape.Clone.apply(self)

    def to(self, *args, dtype=None, device=None, copy: bool = False) -> Tensor:
        """Convert the dtype and/or device: ``t.to(cnnx.float64)``, ``t.to("cpu")``."""
        for a in args:
            if isinstance(a, (str, _storage.device)):
                device = a
            else:
                dtype = a
        if device is not None:
            _storage.resolve_device(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype != self._data.dtype:
                return _shape.Cast.apply(self, dtype)
        return self.clone() if copy else self

    def cpu(self) -> Tensor:
        return self

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return self.to(np.int64)

    def int(self) -> Tensor:
        return self.to(np.int32)

    def bool(self) -> Tensor:
        return self.to(np.bool_)

    # ---- autograd -------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool | None = None) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf that requires grad.

        ``gradient`` (same shape) is required unless the tensor has one element. The graph is
        freed afterwards unless ``retain_graph=True``.
        """
        _autograd.backward(self, gradient, retain_graph)

    # ---- arithmetic -----------------------------------------------------------------------
    def __add__(self, other):
        return _ew.Add.apply(self, other)

    def __radd__(self, other):
        return _ew.Add.apply(other, self)

    def __sub__(self, other):
        return _ew.Sub.apply(self, other)

    def __rsub__(self, other):
        return _ew.Sub.apply(other, self)

    def __mul__(self, other):
        return _ew.Mul.apply(self, other)

    def __rmul__(self, other):
        return _ew.Mul.apply(other, self)

    def __truediv__(self, other):
        return _ew.Div.apply(self, other)

    def __rtruediv__(self, other):
        return _ew.Div.apply(other, self)

    def __pow__(self, other):
        return _ew.Pow.apply(self, other)

    def __rpow__(self, other):
        return _ew.Pow.apply(other, self)

    def __neg__(self):
        return _ew.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ew.Abs.apply(self)

    def __matmul__(self, other):
        return _linalg.matmul(self, other)

    def __rmatmul__(self, other):
        return _linalg.matmul(other, self)

    neg = __neg__
    abs = __abs__
    matmul = __matmul__

    # The named methods take PyTorch's arguments (``alpha=``; Tensors and real numbers only), the
    # operators above also take numpy arrays and stay the short path.
    def add(self, other, *, alpha=1) -> Tensor:
        """``self + alpha * other``, broadcasting (``other``: a Tensor or a number)."""
        return _ew.add(self, other, alpha=alpha)

    def sub(self, other, *, alpha=1) -> Tensor:
        """``self - alpha * other``, broadcasting (``other``: a Tensor or a number)."""
        return _ew.sub(self, other, alpha=alpha)

    def mul(self, other) -> Tensor:
        return _ew.mul(self, other)

    def div(self, other, *, rounding_mode=None) -> Tensor:
        return _ew.div(self, other, rounding_mode=rounding_mode)

    def pow(self, exponent) -> Tensor:
        return _ew.pow(self, exponent)

    def exp(self) -> Tensor:
        return _ew.Exp.apply(self)

    def log(self) -> Tensor:
        return _ew.Log.apply(self)

    def sqrt(self) -> Tensor:
        return _ew.Sqrt.apply(self)

    def relu(self) -> Tensor:
        return _act.relu(self)

    def tanh(self) -> Tensor:
        return _act.tanh(self)

    def sigmoid(self) -> Tensor:
        return _act.sigmoid(self)

    def softmax(self, dim: int, dtype=None) -> Tensor:
        return _act.softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim: int, dtype=None) -> Tensor:
        return _act.log_softmax(self, dim, dtype=dtype)

    # ---- comparisons (results never require grad) ----------------------------------------
    def _compare(self, other, op, name: str):
        other = other._data if isinstance(other, Tensor) else other
        try:
            out = op(self._data, other)
        except ValueError as e:
            _ew.reraise_broadcast(e, name, self._data, other)
        return _wrap(_storage.ensure_array(out))

    def __eq__(self, other):
        return self._compare(other, np.equal, "eq")

    def __ne__(self, other):
        return self._compare(other, np.not_equal, "ne")

    def __lt__(self, other):
        return self._compare(other, np.less, "lt")

    def __le__(self, other):
        return self._compare(other, np.less_equal, "le")

    def __gt__(self, other):
        return self._compare(other, np.greater, "gt")

    def __ge__(self, other):
        return self._compare(other, np.greater_equal, "ge")

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    __hash__ = object.__hash__  # identity, as in PyTorch (== is elementwise)

    # ---- reductions -----------------------------------------------------------------------
    def sum(self, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
        """Sum over ``dim`` (an int or tuple; all dimensions when None), in ``dtype`` if given."""
        return _reduce.sum(self, dim, keepdim, dtype=dtype)

    def mean(self, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
        """Mean over ``dim`` (an int or tuple; all dimensions when None), in ``dtype`` if given."""
        return _reduce.mean(self, dim, keepdim, dtype=dtype)

    def max(self, dim=None, keepdim: bool = False):
        """The largest element, or ``(values, indices)`` along ``dim``."""
        return _reduce.max(self, dim, keepdim)

    def argmax(self, dim=None, keepdim: bool = False) -> Tensor:
        """Index of the largest element (of the flattened tensor when ``dim`` is None)."""
        return _reduce.argmax(self, dim, keepdim)

    # ---- shape ----------------------------------------------------------------------------
    def reshape(self, *shape) -> Tensor:
        """The same elements in a new shape (one dimension may be -1); a view when possible."""
        return _shape.reshape(self, _shape_arg(shape, "shape"))

    def view(self, *shape) -> Tensor:
        """Like ``reshape`` but never copies: raises when the layout does not allow a view."""
        return _shape.view(self, _shape_arg(shape, "shape"))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge dimensions ``start_dim`` .. ``end_dim`` into one."""
        return _shape.flatten(self, start_dim, end_dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return _shape.unsqueeze(self, dim)

    def squeeze(self, dim=None) -> Tensor:
        return _shape.squeeze(self, dim)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        """Swap two dimensions (a view)."""
        return _shape.transpose(self, dim0, dim1)

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, got {self.ndim}")
        return self.T

    def permute(self, *dims) -> Tensor:
        """Reorder the dimensions (a view)."""
        return _shape.permute(self, _shape_arg(dims, "dims"))

    def __getitem__(self, index) -> Tensor:
        return _shape.getitem(self, index)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    # ---- in place (outside the graph) ----------------------------------------------------
    def _inplace_target(self, *others) -> np.ndarray:
        """The array an in-place method may overwrite; refuses where autograd would need a record."""
        from .autograd import is_grad_enabled

        if is_grad_enabled() and (self._rg or any(isinstance(o, Tensor) and o._rg for o in others)):
            raise RuntimeError(
                "in-place operations on tensors that require grad are not recorded by cnnx's autograd: "
                "use the out-of-place operation, or wrap the update in cnnx.no_grad()")
        return self._data

    @staticmethod
    def _arr(x):
        return x._data if isinstance(x, Tensor) else x

    def copy_(self, src) -> Tensor:
        """Copy ``src`` (broadcast, cast to this dtype) into this tensor; returns self."""
        np.copyto(self._inplace_target(src), self._arr(src), casting="unsafe")
        return self

    def zero_(self) -> Tensor:
        self._inplace_target()[...] = 0
        return self

    def fill_(self, value) -> Tensor:
        self._inplace_target(value)[...] = self._arr(value)
        return self

    def add_(self, other, *, alpha=1) -> Tensor:
        """``self += alpha * other`` in place."""
        a = self._inplace_target(other)
        o = self._arr(other)
        try:
            a += o if alpha == 1 else o * alpha
        except ValueError as e:
            _ew.reraise_broadcast(e, "add_", a, o, inplace=True)
        return self

    def sub_(self, other, *, alpha=1) -> Tensor:
        a = self._inplace_target(other)
        o = self._arr(other)
        try:
            a -= o if alpha == 1 else o * alpha
        except ValueError as e:
            _ew.reraise_broadcast(e, "sub_", a, o, inplace=True)
        return self

    def mul_(self, other) -> Tensor:
        a = self._inplace_target(other)
        o = self._arr(other)
        try:
            a *= o
        except ValueError as e:
            _ew.reraise_broadcast(e, "mul_", a, o, inplace=True)
        return self

    def div_(self, other) -> Tensor:
        a = self._inplace_target(other)
        o = self._arr(other)
        try:
            a /= o
        except ValueError as e:
            _ew.reraise_broadcast(e, "div_", a, o, inplace=True)
        return self

    def addcmul_(self, tensor1, tensor2, *, value=1) -> Tensor:
        """``self += value * tensor1 * tensor2`` in place."""
        a = self._inplace_target(tensor1, tensor2)
        a += value * (self._arr(tensor1) * self._arr(tensor2))
        return self

    def addcdiv_(self, tensor1, tensor2, *, value=1) -> Tensor:
        """``self += value * tensor1 / tensor2`` in place."""
        a = self._inplace_target(tensor1, tensor2)
        a += value * (self._arr(tensor1) / self._arr(tensor2))
        return self

    def clamp_(self, min=None, max=None) -> Tensor:
        a = self._inplace_target()
        np.clip(a, min, max, out=a)
        return self

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    def __setitem__(self, index, value) -> None:
        a = self._inplace_target(value)
        if isinstance(index, Tensor):
            index = index._data
        a[index] = self._arr(value)

    # ---- printing -------------------------------------------------------------------------
    def __repr__(self) -> str:
        a = self._data
        body = np.array2string(a, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if a.dtype.kind == "f" and a.dtype != np.float32 or a.dtype.kind not in "fib":
            extras.append(f"dtype=cnnx.{a.dtype.name}")
        elif a.dtype.kind == "i" and a.dtype != np.int64:
            extras.append(f"dtype=cnnx.{a.dtype.name}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self._rg:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"


# Imported last: these modules import Tensor from here.
from . import autograd as _autograd  # noqa: E402
from .ops import activation as _act  # noqa: E402
from .ops import elementwise as _ew  # noqa: E402
from .ops import linalg as _linalg  # noqa: E402
from .ops import reduce as _reduce  # noqa: E402
from .ops import shape as _shape  # noqa: E402
