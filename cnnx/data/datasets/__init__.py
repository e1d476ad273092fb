"""Datasets: the bundled handwritten ``Digits`` (offline default), ``MNIST`` (IDX files),
``CIFAR10`` (python batches, restricted unpickler) and ``ImageFolder`` (your own images)."""
from __future__ import annotations

from .cifar import CIFAR10, read_cifar_batch
from .digits import Digits, load_digits
from .folder import IMG_EXTENSIONS, ImageFolder
from .mnist import MNIST, read_idx

__all__ = ["Digits", "load_digits", "MNIST", "read_idx", "CIFAR10", "read_cifar_batch", "ImageFolder",
           "IMG_EXTENSIONS"]
