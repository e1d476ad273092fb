"""``DataLoader``: batches from a dataset, shuffled with a seed, prefetched by a background thread.

Determinism. Each pass over the loader is an *epoch* (counted by the loader, see ``set_epoch``).
The order of epoch ``e`` is ``default_rng([seed, e]).permutation(n)``, and the random transforms of
the samples of batch ``b`` draw from ``default_rng([seed, e, b])`` (``transforms.sample_rng()``), so
a batch's content depends only on (seed, epoch, batch index): not on the thread that builds it, on
how far the prefetch runs ahead, or on anything the training loop draws from ``cnnx.random``.
``state_dict()`` (seed and epoch) is all a checkpoint needs to resume the data stream exactly.

Prefetch. With ``prefetch > 0`` a daemon thread builds up to that many batches ahead while the
main thread trains; cnnx's kernels release the GIL, so loading overlaps compute. An exception in
the thread is re-raised by the iterator in the main thread; abandoning the iterator (``break``)
stops the thread.
"""
from __future__ import annotations

import numbers
import queue
import threading

import numpy as np

from ..tensor import Tensor, _wrap
from . import transforms as _transforms

__all__ = ["DataLoader", "default_collate"]


class CollateError(RuntimeError, ValueError):
    """Samples that cannot form one batch: a RuntimeError as in PyTorch, and a ValueError as cnnx's
    contract for bad arguments asks."""


def default_collate(samples: list):
    """Stack a list of samples into a batch: Tensors and arrays are stacked along a new first
    dimension (a Tensor), ints become an int64 Tensor, floats a float64 Tensor, tuples/lists/dicts
    are collated element by element."""
    first = samples[0]
    if isinstance(first, Tensor):
        return _wrap(np.stack([s._data for s in samples]))
    if isinstance(first, np.ndarray):
        return _wrap(np.stack(samples))
    if isinstance(first, (bool, np.bool_)):
        return _wrap(np.array(samples, dtype=np.bool_))
    if isinstance(first, numbers.Integral):
        return _wrap(np.array(samples, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return _wrap(np.array(samples, dtype=np.float64))
    if isinstance(first, (str, bytes)):
        return list(samples)
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    if isinstance(first, (tuple, list)):
        lengths = [len(s) for s in samples]
        if any(n != len(first) for n in lengths):
            raise CollateError(f"default_collate: each sample in the batch should have the same number of elements, "
                               f"got samples of {sorted(set(lengths))} elements")
        return tuple(default_collate(list(group)) for group in zip(*samples))
    raise TypeError(f"default_collate: don't know how to batch samples of type {type(first).__name__}")


def _positive_int(name: str, value, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        kind = "" if isinstance(value, numbers.Number) else f"{type(value).__name__} "
        raise ValueError(f"DataLoader: {name} must be an int >= {low}, got {kind}{value!r}")
    return int(value)


def _bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"DataLoader: {name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


class DataLoader:
    """Iterate over ``dataset`` in batches.

    ``DataLoader(dataset, batch_size=1, shuffle=False, *, seed=None, drop_last=False,
    collate_fn=None, prefetch=2)``. ``seed`` fixes the shuffle order and the random transforms
    (default: drawn from ``cnnx.random`` when the loader is built, so ``cnnx.manual_seed`` governs
    it). ``prefetch`` is the number of batches the background thread prepares ahead (0: load in the
    main thread).
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, *, seed: int | None = None,
                 drop_last: bool = False, collate_fn=None, prefetch: int = 2):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = _positive_int("batch_size", batch_size)
        self.shuffle = _bool("shuffle", shuffle)
        self.drop_last = _bool("drop_last", drop_last)
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable or None, got {type(collate_fn).__name__}")
        self.collate_fn = default_collate if collate_fn is None else collate_fn
        self.prefetch = _positive_int("prefetch", prefetch, allow_zero=True)
        if seed is None:
            from ..random import generator

            seed = int(generator().integers(2**63))
        self.seed = _positive_int("seed", seed, allow_zero=True)
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (its order and augmentation)."""
        self.epoch = _positive_int("epoch", epoch, allow_zero=True)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or "seed" not in state or "epoch" not in state:
            raise ValueError(f"DataLoader.load_state_dict(): state must be a dict with 'seed' and 'epoch' (from "
                             f"state_dict()), got {state!r:.80}")
        self.seed = _positive_int("seed", state["seed"], allow_zero=True)
        self.set_epoch(state["epoch"])

    def _batches(self, epoch: int):
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            yield b, order[b * self.batch_size:(b + 1) * self.batch_size]

    def _load(self, epoch: int, b: int, indices: np.ndarray):
        get_batch = getattr(self.dataset, "get_batch", None)
        if get_batch is not None and self.collate_fn is default_collate:
            batch = get_batch(indices)
            if batch is not None:
                return batch
        with _transforms.using_rng(np.random.default_rng([self.seed, epoch, b])):
            samples = [self.dataset[int(i)] for i in indices]
        return self.collate_fn(samples)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        if self.prefetch == 0:
            return (self._load(epoch, b, idx) for b, idx in self._batches(epoch))
        return _PrefetchIterator(self, epoch)

    def __repr__(self) -> str:
        return (f"DataLoader(dataset={type(self.dataset).__name__}[{len(self.dataset)}], batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, prefetch={self.prefetch})")


_DONE = object()


class _PrefetchIterator:
    """Batches of one epoch, built by a daemon thread up to ``loader.prefetch`` ahead."""

    def __init__(self, loader: DataLoader, epoch: int):
        self._queue: queue.Queue = queue.Queue(maxsize=loader.prefetch)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._work, args=(loader, epoch, self._queue, self._stop),
                                        name="cnnx-dataloader", daemon=True)
        self._thread.start()

    @staticmethod
    def _work(loader, epoch, out: queue.Queue, stop: threading.Event) -> None:
        def put(item) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for b, idx in loader._batches(epoch):
                if not put(("batch", loader._load(epoch, b, idx))):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            put(("error", e))
            return
        put(("done", _DONE))

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        kind, item = self._queue.get()
        if kind == "batch":
            return item
        self.close()
        if kind == "error":
            raise item
        raise StopIteration

    def close(self) -> None:
        """Stop the worker thread (called on exhaustion, on error and when the iterator is dropped)."""
        self._finished = True
        self._stop.set()

    def __del__(self):
        self.close()
