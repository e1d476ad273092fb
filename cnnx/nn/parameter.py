"""``Parameter``: a leaf Tensor that a Module registers as one of its trainable weights."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A Tensor that requires grad by default and that ``Module`` registers when assigned as an
    attribute (``self.weight = Parameter(...)``). Shares memory with the data it is made from."""

    __slots__ = ()

    def __new__(cls, data=None, requires_grad: bool = True):
        if data is None:
            array = np.empty((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            array = data._data
        elif isinstance(data, np.ndarray):
            array = data
        else:
            raise TypeError(f"Parameter(): data must be a Tensor or numpy array, got {type(data).__name__}")
        p = object.__new__(cls)
        p._data = array
        p._rg = False
        p.grad_fn = None
        p._grad = None
        p.requires_grad_(requires_grad)
        return p

    def __init__(self, data=None, requires_grad: bool = True):
        pass  # everything happens in __new__ (Tensor.__init__ would copy the data)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
