"""Shape and layout: reshape/view/flatten/squeeze/unsqueeze, transpose/permute, indexing, cat,
stack, pad, clone, dtype casts.

reshape, view, permute and basic indexing return numpy views (no copy) where numpy can, as
PyTorch's views do; their backward is the inverse rearrangement of the gradient. ``view`` refuses a
layout that would need a copy (PyTorch raises there too); ``reshape`` copies instead.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._args import _is_int

__all__ = ["Reshape", "View", "Permute", "GetItem", "Cat", "Pad", "Clone", "Cast", "reshape", "view",
           "flatten", "unsqueeze", "squeeze", "transpose", "permute", "getitem", "cat", "stack", "pad"]


class Reshape(Function):
    __slots__ = ("shape",)

    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    def backward(ctx, g):
        return g.reshape(ctx.shape)


class View(Reshape):
    """Reshape that never copies."""

    __slots__ = ()

    def forward(ctx, x, shape):
        ctx.shape = x.shape
        try:
            return np.reshape(x, shape, copy=False)
        except ValueError:
            if np.prod(shape) == x.size or -1 in shape:
                raise RuntimeError(
                    f"view(): shape {tuple(shape)} is not compatible with the input's layout (shape "
                    f"{tuple(x.shape)}, strides {x.strides}): use reshape() instead") from None
            raise


class Permute(Function):
    __slots__ = ("dims",)

    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    def backward(ctx, g):
        return g.transpose(np.argsort(ctx.dims))


class GetItem(Function):
    """``x[index]``. Basic indexing (ints, slices, None, Ellipsis) is a view and its backward
    writes the gradient into a zero array; advanced indexing (integer or boolean arrays) copies, and
    its backward adds with ``np.add.at`` so repeated indices accumulate."""

    __slots__ = ("shape", "index", "advanced")

    def forward(ctx, x, index, advanced):
        ctx.shape, ctx.index, ctx.advanced = x.shape, index, advanced
        return x[index]

    def backward(ctx, g):
        gx = np.zeros(ctx.shape, dtype=g.dtype)
        if ctx.advanced:
            np.add.at(gx, ctx.index, g)
        else:
            gx[ctx.index] = g
        return gx


class Cat(Function):
    __slots__ = ("dim", "sizes", "dtypes")

    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        ctx.sizes = [a.shape[dim] for a in arrays]
        ctx.dtypes = [a.dtype for a in arrays]
        return np.concatenate(arrays, axis=dim)

    def backward(ctx, g):
        grads, start = [None], 0
        index = [slice(None)] * g.ndim
        for needed, size, dtype in zip(ctx.needs_input_grad[1:], ctx.sizes, ctx.dtypes):
            if needed:
                index[ctx.dim] = slice(start, start + size)
                piece = g[tuple(index)]
                grads.append(piece if piece.dtype == dtype else piece.astype(dtype))
            else:
                grads.append(None)
            start += size
        return tuple(grads)


class Pad(Function):
    """Constant padding; ``widths`` is numpy's ((before, after), ...) per dimension."""

    __slots__ = ("crop",)

    def forward(ctx, x, widths, value):
        out = np.full(tuple(n + b + a for n, (b, a) in zip(x.shape, widths)), value, dtype=x.dtype)
        ctx.crop = tuple(slice(b, b + n) for n, (b, _) in zip(x.shape, widths))
        out[ctx.crop] = x
        return out

    def backward(ctx, g):
        return g[ctx.crop]


class Clone(Function):
    __slots__ = ()

    def forward(ctx, x):
        return np.array(x, copy=True, order="C")

    def backward(ctx, g):
        return g


class Cast(Function):
    __slots__ = ("dtype",)

    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    def backward(ctx, g):
        return g.astype(ctx.dtype)


# ---- functional wrappers ---------------------------------------------------------------------

def _check(fn: str, input) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}(): argument 'input' must be a Tensor, got {type(input).__name__}")


def _dim(fn: str, dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise IndexError(f"{fn}(): dimension out of range (expected to be in range of [{-ndim}, {ndim - 1}], "
                         f"but got {dim})")
    return dim % ndim


def reshape(input: Tensor, shape) -> Tensor:
    """The elements of ``input`` in ``shape`` (one entry may be -1); a view when the layout allows."""
    _check("reshape", input)
    shape = tuple(int(s) for s in shape)
    return input if shape == input.shape else Reshape.apply(input, shape)


def view(input: Tensor, shape) -> Tensor:
    _check("view", input)
    return View.apply(input, tuple(int(s) for s in shape))


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim`` .. ``end_dim`` (inclusive) into one."""
    _check("flatten", input)
    shape = input.shape
    if not shape:
        return reshape(input, (1,))
    s, e = _dim("flatten", start_dim, len(shape)), _dim("flatten", end_dim, len(shape))
    if s > e:
        raise ValueError(f"flatten(): start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(input, shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a dimension of size 1 at ``dim``."""
    _check("unsqueeze", input)
    d = _dim("unsqueeze", dim, input.ndim + 1)
    return Reshape.apply(input, input.shape[:d] + (1,) + input.shape[d:])


def squeeze(input: Tensor, dim=None) -> Tensor:
    """Remove dimensions of size 1 (all of them, or those in ``dim`` that have size 1)."""
    _check("squeeze", input)
    shape = input.shape
    if dim is None:
        dims = {i for i, s in enumerate(shape) if s == 1}
    else:
        dims = {_dim("squeeze", d, max(len(shape), 1)) for d in ((dim,) if isinstance(dim, int) else dim)}
        dims = {d for d in dims if d < len(shape) and shape[d] == 1}
    return reshape(input, tuple(s for i, s in enumerate(shape) if i not in dims))


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap dimensions ``dim0`` and ``dim1`` (a view)."""
    _check("transpose", input)
    for name, d in (("dim0", dim0), ("dim1", dim1)):
        if not _is_int(d):
            raise TypeError(f"transpose(): argument '{name}' must be an int, got {d!r}")
    n = max(input.ndim, 1)
    d0, d1 = _dim("transpose", dim0, n), _dim("transpose", dim1, n)
    dims = list(range(input.ndim))
    if input.ndim:
        dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(input, tuple(dims))


def permute(input: Tensor, dims) -> Tensor:
    """Reorder dimensions: output dimension i is input dimension ``dims[i]`` (a view)."""
    _check("permute", input)
    if not isinstance(dims, (tuple, list)) or not all(_is_int(d) for d in dims):
        raise TypeError(f"permute(): argument 'dims' must be a tuple of ints, got {dims!r}")
    dims = tuple(_dim("permute", int(d), input.ndim) for d in dims)
    if sorted(dims) != list(range(input.ndim)):
        raise ValueError(f"permute(): dims {dims} must be a permutation of the {input.ndim} dimensions")
    return Permute.apply(input, dims)


def _index_part(i):
    """One entry of an index with Tensors turned into arrays; returns (entry, is_advanced)."""
    if isinstance(i, Tensor):
        i = i._data
    if i is None or i is Ellipsis or isinstance(i, (slice, numbers.Integral)) and not isinstance(i, (bool, np.bool_)):
        return i, False
    if isinstance(i, (list, tuple, np.ndarray, bool, np.bool_)):
        arr = np.asarray(i)
        if arr.dtype.kind not in "biu":
            raise IndexError(f"tensors used as indices must be integer or bool, got {arr.dtype}")
        return arr, True
    raise IndexError(f"unsupported index of type {type(i).__name__}: use ints, slices, None, Ellipsis, "
                     "or integer/bool tensors")


def getitem(input: Tensor, index) -> Tensor:
    """``input[index]`` with numpy's indexing rules (which match PyTorch's for these forms)."""
    parts = index if isinstance(index, tuple) else (index,)
    converted = [_index_part(i) for i in parts]
    advanced = any(adv for _, adv in converted)
    index = tuple(i for i, _ in converted)
    return GetItem.apply(input, index if len(index) != 1 else index[0], advanced)


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate tensors along ``dim``; all other dimensions must match."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat(): expected a non-empty sequence of tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"cat(): expected a sequence of Tensors, element {i} is {type(t).__name__}")
    ref = tensors[0].shape
    d = _dim("cat", dim, max(len(ref), 1))
    for i, t in enumerate(tensors):
        s = t.shape
        if len(s) != len(ref) or s[:d] + s[d + 1:] != ref[:d] + ref[d + 1:]:
            raise ValueError(f"cat(): sizes of tensors must match except in dimension {d}: tensor 0 has "
                             f"shape {tuple(ref)}, tensor {i} has shape {tuple(s)}")
    return Cat.apply(d, *tensors)


def stack(tensors, dim: int = 0) -> Tensor:
    """Stack equally shaped tensors along a new dimension ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack(): expected a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack(): expects each tensor to be equal size, got shapes {sorted(shapes)}")
    d = _dim("stack", dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last dimensions: ``pad = (left, right, top, bottom, ...)`` starting from the last
    dimension, as in PyTorch. Only ``mode="constant"`` and non-negative widths are supported."""
    _check("pad", input)
    if mode != "constant":
        raise ValueError(f"pad(): only mode='constant' is supported, got {mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad(): padding length must be even and at most 2 * ndim = {2 * input.ndim}, "
                         f"got {len(pad)}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad(): negative padding (cropping) is not supported, got {pad}")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return Pad.apply(input, tuple(widths), 0 if value is None else value)
