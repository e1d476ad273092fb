"""Datasets: ``Dataset`` (the protocol), ``TensorDataset``, ``Subset``, ``random_split``.

A dataset is anything with ``__len__`` and ``__getitem__(i)`` returning one sample (for
classification, ``(image, label)``). A dataset may also define ``get_batch(indices)`` returning an
already-collated batch (a tuple of arrays or Tensors); ``DataLoader`` then fetches each batch with one
call instead of one call per sample (``TensorDataset`` does this: a batch is one fancy-indexing copy).
"""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from ..tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split"]


class Dataset:
    """Base class of map-style datasets: define ``__len__`` and ``__getitem__``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


def _array(x, what: str) -> np.ndarray:
    if isinstance(x, Tensor):
        if x.requires_grad:
            raise ValueError(f"{what} requires grad: pass tensor.detach()")
        return x._data
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{what} must be a cnnx Tensor or a numpy array, got {type(x).__name__}")


class TensorDataset(Dataset):
    """Samples are rows of the given tensors (all with the same first dimension): sample ``i`` is
    ``(t0[i], t1[i], ...)``. ``transform`` (optional) applies to the first tensor's rows."""

    def __init__(self, *tensors, transform=None):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        arrays = [_array(t, f"TensorDataset tensor {i}") for i, t in enumerate(tensors)]
        n = arrays[0].shape[0] if arrays[0].ndim else None
        for i, a in enumerate(arrays):
            if a.ndim == 0 or a.shape[0] != n:
                raise ValueError(f"TensorDataset: size mismatch between tensors: tensor 0 has {n} rows, tensor {i} "
                                 f"has shape {a.shape}")
        self.tensors = tuple(_to_tensor(a) for a in arrays)
        self._arrays = arrays
        self.transform = transform

    def __len__(self) -> int:
        return self._arrays[0].shape[0]

    def __getitem__(self, index):
        index = _check_index(index, len(self), "TensorDataset")
        sample = tuple(_to_tensor(a[index]) for a in self._arrays)
        if self.transform is not None:
            sample = (self.transform(sample[0]),) + sample[1:]
        return sample

    def get_batch(self, indices) -> tuple | None:
        """The rows at ``indices`` of every tensor (None when a transform needs per-sample calls)."""
        if self.transform is not None:
            return None
        idx = np.asarray(indices, dtype=np.int64)
        return tuple(_to_tensor(a[idx]) for a in self._arrays)


def _to_tensor(a):
    from ..tensor import _wrap

    return _wrap(np.asarray(a)) if isinstance(a, (np.ndarray, np.generic)) else a


def _check_index(index, n: int, owner: str) -> int:
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"{owner} indices must be integers, got {type(index).__name__}")
    i = int(index)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"{owner} index {index} is out of range for {n} samples")
    return i


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and (idx.dtype.kind not in "iu")):
            raise TypeError(f"Subset: indices must be a sequence of ints, got {idx.dtype} values of shape {idx.shape}")
        self.indices = idx.astype(np.int64)
        n = len(dataset)
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise IndexError(f"Subset: indices out of range for a dataset of {n} samples")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[_check_index(index, len(self), "Subset")])]

    def get_batch(self, indices):
        get = getattr(self.dataset, "get_batch", None)
        return None if get is None else get(self.indices[np.asarray(indices, dtype=np.int64)])


def random_split(dataset, lengths: Sequence, seed: int = 0) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths (ints summing to
    ``len(dataset)``, or fractions summing to 1; leftovers from rounding go to the first subsets
    in turn). The permutation depends only on ``seed``."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-9:
        if any(x < 0 for x in lengths):
            raise ValueError(f"random_split: fractions must be >= 0, got {lengths}")
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 0 for x in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths must be non-negative ints summing to {n} (or fractions summing to "
                         f"1), got {lengths}")
    perm = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[start:start + length]))
        start += length
    return out
