"""Image transforms (torchvision's names and arguments) on numpy arrays and cnnx Tensors.

Images are ``C x H x W`` (after ``ToTensor``) or ``H x W`` / ``H x W x C`` uint8 arrays (what the
datasets return, like PIL images in torchvision); ``ToTensor`` converts the latter to a float32
``C x H x W`` Tensor in [0, 1]. The geometric transforms accept either layout and return the kind
they were given (a Tensor stays a Tensor). The layout follows the type, as in torchvision: a 3-D
Tensor is ``C x H x W``, a 3-D numpy array ``H x W x C`` (an image as PIL and the datasets give it).

Randomness. Random transforms draw from ``sample_rng()``: inside a ``DataLoader`` that is a
generator seeded by (loader seed, epoch, batch index), so augmentation is reproducible whatever
thread runs it; elsewhere it is cnnx's global generator (``cnnx.manual_seed``).

AlexNet's augmentation (seed: flips and rotations, with crops) is ``RandomCrop(size, padding)``,
``RandomHorizontalFlip()`` and ``RandomRotation(degrees)``; ``Resize`` upsamples small images
(the 8x8 digits to LeNet-5's 32x32).
"""
from __future__ import annotations

import contextlib
import functools
import math
import numbers
import threading
from typing import Callable, Sequence

import numpy as np

from ..tensor import Tensor, _wrap

__all__ = ["Compose", "ToTensor", "Normalize", "Pad", "RandomCrop", "CenterCrop", "RandomHorizontalFlip",
           "RandomRotation", "Resize", "Grayscale", "Lambda", "sample_rng", "using_rng"]

_local = threading.local()


def sample_rng() -> np.random.Generator:
    """The generator random transforms draw from on this thread (see the module docstring)."""
    rng = getattr(_local, "rng", None)
    if rng is None:
        from ..random import generator

        return generator()
    return rng


@contextlib.contextmanager
def using_rng(rng: np.random.Generator):
    """Make ``rng`` this thread's ``sample_rng()`` inside the block."""
    previous = getattr(_local, "rng", None)
    _local.rng = rng
    try:
        yield rng
    finally:
        _local.rng = previous


def _unwrap(img, owner: str):
    """(array, was_tensor, channels_last) for an image given as a Tensor or numpy array."""
    if isinstance(img, Tensor):
        a, was_tensor = img._data, True
    elif isinstance(img, np.ndarray):
        a, was_tensor = img, False
    else:
        raise TypeError(f"{owner}: expected an image as a cnnx Tensor or numpy array, got {type(img).__name__}")
    if a.ndim not in (2, 3):
        raise ValueError(f"{owner}: expected an image of shape (H, W), (H, W, C) or (C, H, W), got {a.shape}")
    channels_last = a.ndim == 3 and not was_tensor  # Tensors are C x H x W, arrays H x W x C
    return a, was_tensor, channels_last


def _to_chw(a: np.ndarray, channels_last: bool) -> np.ndarray:
    if a.ndim == 2:
        return a[None]
    return np.moveaxis(a, -1, 0) if channels_last else a


def _from_chw(a: np.ndarray, like: np.ndarray, channels_last: bool, was_tensor: bool):
    if like.ndim == 2:
        a = a[0]
    elif channels_last:
        a = np.moveaxis(a, 0, -1)
    a = np.ascontiguousarray(a)
    return _wrap(a) if was_tensor else a


def _pair(value, name: str, owner: str) -> tuple[int, int]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0 for v in value)):
        raise ValueError(f"{owner}: {name} must be a positive int or a pair of them, got {value!r}")
    return int(value[0]), int(value[1])


class Compose:
    """Apply ``transforms`` in order."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(\n" + "".join(f"    {t!r}\n" for t in self.transforms) + ")"


class Lambda:
    """Apply a user function."""

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"Lambda: {fn!r} is not callable")
        self.fn = fn

    def __call__(self, img):
        return self.fn(img)

    def __repr__(self) -> str:
        return "Lambda()"


class ToTensor:
    """An ``H x W`` or ``H x W x C`` image (numpy array or PIL image) as a float32 ``C x H x W``
    Tensor; uint8 values are scaled to [0, 1], other dtypes keep their values."""

    def __call__(self, img) -> Tensor:
        if isinstance(img, Tensor):
            return img
        if not isinstance(img, np.ndarray):
            if hasattr(img, "mode") and hasattr(img, "size"):  # a PIL image
                img = np.asarray(img)
            else:
                raise TypeError(f"ToTensor: expected a numpy array or PIL image, got {type(img).__name__}")
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3:
            raise ValueError(f"ToTensor: expected an image of shape (H, W) or (H, W, C), got {img.shape}")
        chw = np.moveaxis(img, -1, 0)
        if img.dtype == np.uint8:
            out = chw.astype(np.float32)
            out *= 1.0 / 255.0
        else:
            out = chw.astype(np.float32)
        return _wrap(np.ascontiguousarray(out))

    def __repr__(self) -> str:
        return "ToTensor()"


def _per_channel(name: str, value) -> np.ndarray:
    """A number or a sequence of finite numbers as a 1-D float64 array (Normalize's mean / std)."""
    try:
        a = np.asarray(value)
    except ValueError as e:  # ragged
        raise ValueError(f"Normalize: {name} must be a number or a sequence of numbers, got {value!r} ({e})") from None
    if a.dtype.kind not in "biuf" or a.dtype.kind == "b" or a.ndim > 1 or a.size == 0:
        raise ValueError(f"Normalize: {name} must be a number or a sequence of numbers, got {value!r}")
    a = np.atleast_1d(a.astype(np.float64))
    if not np.all(np.isfinite(a)):
        raise ValueError(f"Normalize: {name} must be finite, got {value!r}")
    return a


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel of a ``C x H x W`` float image."""

    def __init__(self, mean, std, inplace: bool = False):
        self.mean, self.std = _per_channel("mean", mean), _per_channel("std", std)
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {std!r}")
        if self.mean.size > 1 and self.std.size > 1 and self.mean.size != self.std.size:
            raise ValueError(f"Normalize: mean and std must have one value per channel each, got {self.mean.size} "
                             f"mean and {self.std.size} std values")
        self.inplace = inplace

    def __call__(self, img):
        a, was_tensor, channels_last = _unwrap(img, "Normalize")
        if a.dtype.kind != "f":
            raise TypeError(f"Normalize: expected a float image (apply ToTensor first), got {a.dtype}")
        chw = _to_chw(a, channels_last)
        c = chw.shape[0]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ValueError(f"Normalize: {name} has {v.size} values for an image with {c} channels")
        mean = self.mean.astype(a.dtype).reshape(-1, 1, 1)
        std = self.std.astype(a.dtype).reshape(-1, 1, 1)
        if self.inplace and a.flags.writeable:
            chw -= mean
            chw /= std
            return img
        return _from_chw((chw - mean) / std, a, channels_last, was_tensor)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _pad_chw(chw: np.ndarray, left: int, top: int, right: int, bottom: int, fill) -> np.ndarray:
    """Constant padding (one allocation and one copy: several times faster than ``np.pad`` on the
    small images a loader transforms one by one)."""
    c, h, w = chw.shape
    out = np.empty((c, h + top + bottom, w + left + right), dtype=chw.dtype)
    out[...] = fill
    out[:, top:top + h, left:left + w] = chw
    return out


def _padding4(padding, owner: str) -> tuple[int, int, int, int]:
    """torchvision's padding: int (all sides), (left/right, top/bottom) or (left, top, right, bottom)."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        p = (padding,) * 4
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        p = (padding[0], padding[1], padding[0], padding[1])
    elif isinstance(padding, (tuple, list)) and len(padding) == 4:
        p = tuple(padding)
    else:
        raise ValueError(f"{owner}: padding must be an int or a sequence of 2 or 4 ints, got {padding!r}")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0 for v in p):
        raise ValueError(f"{owner}: padding must be >= 0, got {padding!r}")
    return tuple(int(v) for v in p)


class Pad:
    """Pad the borders with ``fill`` (LeNet-5 on MNIST: ``Pad(2)`` centres 28x28 digits in 32x32)."""

    def __init__(self, padding, fill=0):
        self.padding = _padding4(padding, "Pad")
        self.fill = fill

    def __call__(self, img):
        a, was_tensor, cl = _unwrap(img, "Pad")
        return _from_chw(_pad_chw(_to_chw(a, cl), *self.padding, self.fill), a, cl, was_tensor)

    def __repr__(self) -> str:
        return f"Pad(padding={self.padding}, fill={self.fill})"


class RandomCrop:
    """Pad by ``padding`` (optional), then cut a random ``size`` window (AlexNet's random crops)."""

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0):
        self.size = _pair(size, "size", "RandomCrop")
        self.padding = None if padding is None else _padding4(padding, "RandomCrop")
        self.pad_if_needed = pad_if_needed
        self.fill = fill

    def __call__(self, img):
        a, was_tensor, cl = _unwrap(img, "RandomCrop")
        chw = _to_chw(a, cl)
        if self.padding is not None:
            chw = _pad_chw(chw, *self.padding, self.fill)
        th, tw = self.size
        h, w = chw.shape[1:]
        if self.pad_if_needed and (h < th or w < tw):
            dh, dw = max(th - h, 0), max(tw - w, 0)
            chw = _pad_chw(chw, dw, dh, dw, dh, self.fill)
            h, w = chw.shape[1:]
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the (padded) image {h}x{w}")
        rng = sample_rng()
        i = int(rng.integers(0, h - th + 1))
        j = int(rng.integers(0, w - tw + 1))
        return _from_chw(chw[:, i:i + th, j:j + tw], a, cl, was_tensor)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class CenterCrop:
    """Cut the central ``size`` window."""

    def __init__(self, size):
        self.size = _pair(size, "size", "CenterCrop")

    def __call__(self, img):
        a, was_tensor, cl = _unwrap(img, "CenterCrop")
        chw = _to_chw(a, cl)
        th, tw = self.size
        h, w = chw.shape[1:]
        if h < th or w < tw:
            raise ValueError(f"CenterCrop: crop size {self.size} is larger than the image {h}x{w}")
        i, j = (h - th) // 2, (w - tw) // 2
        return _from_chw(chw[:, i:i + th, j:j + tw], a, cl, was_tensor)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if not (isinstance(p, numbers.Real) and 0 <= p <= 1):
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, img):
        a, was_tensor, cl = _unwrap(img, "RandomHorizontalFlip")
        if sample_rng().random() >= self.p:
            return img
        return _from_chw(_to_chw(a, cl)[:, :, ::-1], a, cl, was_tensor)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def _bilinear_sample(chw: np.ndarray, ys: np.ndarray, xs: np.ndarray, fill, nearest: bool) -> np.ndarray:
    """Sample ``chw`` at fractional pixel coordinates (pixel centres at integers); points outside
    the image get ``fill``."""
    c, h, w = chw.shape
    src = chw.astype(np.float32) if chw.dtype.kind != "f" else chw
    fill = src.dtype.type(fill)
    if nearest:
        yi, xi = np.floor(ys + 0.5).astype(np.int64), np.floor(xs + 0.5).astype(np.int64)
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        out = src[:, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
        out = np.where(inside, out, np.asarray(fill, dtype=src.dtype))
    else:
        padded = _pad_chw(src, 1, 1, 1, 1, fill)
        ys, xs = ys + 1, xs + 1  # coordinates in the padded image
        y0, x0 = np.floor(ys), np.floor(xs)
        wy, wx = (ys - y0).astype(src.dtype), (xs - x0).astype(src.dtype)
        y0 = np.clip(y0.astype(np.int64), 0, h)
        x0 = np.clip(x0.astype(np.int64), 0, w)
        y1, x1 = np.minimum(y0 + 1, h + 1), np.minimum(x0 + 1, w + 1)
        out = (padded[:, y0, x0] * (1 - wy) * (1 - wx) + padded[:, y0, x1] * (1 - wy) * wx
               + padded[:, y1, x0] * wy * (1 - wx) + padded[:, y1, x1] * wy * wx)
        outside = (ys < 0) | (ys > h + 1) | (xs < 0) | (xs > w + 1)
        out = np.where(outside, np.asarray(fill, dtype=src.dtype), out)
    if chw.dtype.kind in "iu":
        info = np.iinfo(chw.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(chw.dtype)


@functools.lru_cache(maxsize=16)
def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets of every pixel from the image centre (read-only, cached per size)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = yy - (h - 1) / 2, xx - (w - 1) / 2
    dy.flags.writeable = dx.flags.writeable = False
    return dy, dx


class RandomRotation:
    """Rotate by an angle drawn uniformly from ``degrees`` (a number d means (-d, d)) about the image
    centre, counter-clockwise for positive angles; uncovered pixels get ``fill``. ``interpolation``
    is ``"nearest"`` (torchvision's default) or ``"bilinear"``."""

    def __init__(self, degrees, interpolation: str = "nearest", fill=0):
        if isinstance(degrees, numbers.Real) and not isinstance(degrees, bool):
            if not degrees >= 0:
                raise ValueError(f"RandomRotation: degrees must be >= 0 when a single number, got {degrees!r}")
            degrees = (-float(degrees), float(degrees))
        if (not isinstance(degrees, (tuple, list)) or len(degrees) != 2
                or not all(isinstance(d, numbers.Real) and not isinstance(d, bool) and math.isfinite(d) for d in degrees)
                or degrees[0] > degrees[1]):
            raise ValueError(f"RandomRotation: degrees must be a number or a (min, max) pair, got {degrees!r}")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"RandomRotation: interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.interpolation = interpolation
        self.fill = fill

    def __call__(self, img):
        a, was_tensor, cl = _unwrap(img, "RandomRotation")
        angle = float(sample_rng().uniform(self.degrees[0], self.degrees[1]))
        chw = _to_chw(a, cl)
        h, w = chw.shape[1:]
        cy, cx = (h - 1) / 2, (w - 1) / 2
        t = math.radians(angle)
        dy, dx = _centred_grid(h, w)
        # Inverse map: the source of output pixel (y, x) for a counter-clockwise rotation on screen
        # (y grows downwards).
        cos, sin = math.cos(t), math.sin(t)
        xs = cx + dx * cos - dy * sin
        ys = cy + dx * sin + dy * cos
        out = _bilinear_sample(chw, ys, xs, self.fill, self.interpolation == "nearest")
        return _from_chw(out, a, cl, was_tensor)

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees}, interpolation={self.interpolation})"


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of PIL-style bilinear resampling: a triangle filter with half-pixel
    centres, widened by the scale when shrinking (antialiasing), weights normalised per output."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    src = np.arange(n_in) + 0.5
    wts = np.maximum(0.0, 1.0 - np.abs(src[None, :] - centres[:, None]) / support)
    wts /= wts.sum(axis=1, keepdims=True)
    return wts


class Resize:
    """Resize to ``size`` ((h, w), or an int for the shorter side keeping the aspect ratio) with
    PIL-style bilinear resampling (antialiased when shrinking). Works on single images and on
    batches ``N x C x H x W`` (one matrix product per axis)."""

    def __init__(self, size, interpolation: str = "bilinear"):
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            if size <= 0:
                raise ValueError(f"Resize: size must be positive, got {size!r}")
            self.size = int(size)
        else:
            self.size = _pair(size, "size", "Resize")
        if interpolation != "bilinear":
            raise ValueError(f"Resize: only interpolation='bilinear' is supported, got {interpolation!r}")
        self.interpolation = interpolation

    def _target(self, h: int, w: int) -> tuple[int, int]:
        if isinstance(self.size, tuple):
            return self.size
        if h <= w:
            return self.size, max(1, int(self.size * w / h))
        return max(1, int(self.size * h / w)), self.size

    def __call__(self, img):
        if isinstance(img, (Tensor, np.ndarray)) and np.ndim(img) == 4:
            a = img._data if isinstance(img, Tensor) else img
            out = self._resize(a)
            return _wrap(out) if isinstance(img, Tensor) else out
        a, was_tensor, cl = _unwrap(img, "Resize")
        return _from_chw(self._resize(_to_chw(a, cl)), a, cl, was_tensor)

    def _resize(self, a: np.ndarray) -> np.ndarray:
        h, w = a.shape[-2:]
        th, tw = self._target(h, w)
        dtype = a.dtype if a.dtype.kind == "f" else np.float32
        ry = _resize_matrix(h, th).astype(dtype)
        rx = _resize_matrix(w, tw).astype(dtype)
        out = np.matmul(np.matmul(ry, a.astype(dtype, copy=False)), rx.T)
        if a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            return np.clip(np.rint(out), info.min, info.max).astype(a.dtype)
        return np.ascontiguousarray(out)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation})"


class Grayscale:
    """Convert between grey and colour: ``num_output_channels=1`` takes the ITU-R 601 luma of an RGB
    image (0.299 R + 0.587 G + 0.114 B, as PIL and torchvision); ``3`` repeats a grey channel (or
    the luma of a colour image) three times."""

    def __init__(self, num_output_channels: int = 1):
        if num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale: num_output_channels must be 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        a, was_tensor, cl = _unwrap(img, "Grayscale")
        chw = _to_chw(a, cl)
        if chw.shape[0] == 3:
            dtype = chw.dtype if chw.dtype.kind == "f" else np.float32
            w = np.array([0.299, 0.587, 0.114], dtype=dtype).reshape(3, 1, 1)
            grey = (chw.astype(dtype, copy=False) * w).sum(axis=0, keepdims=True)
            if chw.dtype.kind in "iu":
                grey = np.clip(np.rint(grey), 0, np.iinfo(chw.dtype).max).astype(chw.dtype)
        elif chw.shape[0] == 1:
            grey = chw
        else:
            raise ValueError(f"Grayscale: expected 1 or 3 channels, got {chw.shape[0]}")
        out = np.repeat(grey, self.num_output_channels, axis=0)
        if a.ndim == 2 and self.num_output_channels == 3:  # a 2-D image gains a channel axis
            return _wrap(np.ascontiguousarray(out)) if was_tensor else np.ascontiguousarray(np.moveaxis(out, 0, -1))
        return _from_chw(out, a, cl, was_tensor)

    def __repr__(self) -> str:
        return f"Grayscale(num_output_channels={self.num_output_channels})"
