"""The handwritten digits that scikit-learn ships, bundled with cnnx (the offline default dataset).

1,797 grey-scale 8x8 images of the digits 0-9, pixel values 0..16: the test set of the UCI
"Optical Recognition of Handwritten Digits" data set (E. Alpaydin, C. Kaynak, 1998;
https://archive.ics.uci.edu/dataset/80, licence CC BY 4.0). Preprocessing programs made available by
NIST extracted 32x32 bitmaps from forms written by 43 people; each 4x4 block was counted, giving
the 8x8 images. The file ``digits.csv.gz`` here is byte-for-byte the copy in scikit-learn's wheel
(``sklearn/datasets/data/digits.csv.gz``, sha256 ``09f66e6d...e23aa22``): one image per line, 64
pixel values then the label.

``Digits(train=True)`` is a fixed, stratified 80% of the images (1,438) and ``Digits(train=False)``
the held-out 20% (359), the same split everywhere (``cnnx train`` reports accuracy on the latter).
Images come resized to ``size`` x ``size`` (32 for LeNet-5) with bilinear interpolation, as float32
``channels x size x size`` Tensors scaled to [0, 1] (``channels=3`` repeats the grey image for
networks that take colour input).
"""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from ..dataset import Dataset, _check_index
from ...tensor import _wrap

__all__ = ["Digits", "load_digits", "DIGITS_SHA256"]

_FILE = Path(__file__).with_name("digits.csv.gz")
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
_SPLIT_SEED = 0
_TEST_FRACTION = 0.2
_cache: dict = {}


def load_digits(path=None) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images as a (1797, 8, 8) uint8 array (values 0..16) and their labels (int64)."""
    path = Path(path) if path is not None else _FILE
    key = str(path)
    if key in _cache:
        return _cache[key]
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"the bundled digits file is missing: {path} (reinstall cnnx)") from None
    try:
        text = gzip.decompress(raw).decode("ascii")
        table = np.array([line.split(",") for line in text.split()], dtype=np.float64)
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: corrupt digits file ({e})") from None
    if table.ndim != 2 or table.shape[1] != 65 or table.min() < 0 or table[:, :64].max() > 16 or table[:, 64].max() > 9:
        raise ValueError(f"{path}: corrupt digits file (expected rows of 64 pixels in 0..16 and a label in 0..9, "
                         f"got a table of shape {table.shape})")
    images = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    labels = table[:, 64].astype(np.int64)
    _cache[key] = (images, labels)
    return images, labels


def split_indices(labels: np.ndarray, test_fraction: float = _TEST_FRACTION, seed: int = _SPLIT_SEED):
    """(train, test) indices: ``test_fraction`` of each class, rounded, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class Digits(Dataset):
    """The bundled handwritten digits: ``Digits(train=True, size=32, transform=None, channels=1)``.

    Samples are ``(image, label)``: a float32 ``channels x size x size`` Tensor in [0, 1] (after
    ``transform`` if given) and an int. ``images`` / ``targets`` hold the whole split (numpy arrays).
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, train: bool = True, size: int = 32, transform=None, channels: int = 1):
        from ..transforms import Resize

        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"Digits: size must be a positive int, got {size!r}")
        if channels not in (1, 3):
            raise ValueError(f"Digits: channels must be 1 or 3, got {channels!r}")
        images, labels = load_digits()
        train_idx, test_idx = split_indices(labels)
        idx = train_idx if train else test_idx
        x = images[idx].astype(np.float32)[:, None] / np.float32(16.0)
        if size != 8:
            x = Resize((size, size))(x)
        if channels == 3:
            x = np.repeat(x, 3, axis=1)
        self.images = np.ascontiguousarray(x, dtype=np.float32)
        self.targets = labels[idx]
        self.train = train
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        i = _check_index(index, len(self), "Digits")
        img = _wrap(self.images[i])
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[i])

    def get_batch(self, indices):
        if self.transform is not None:
            return None
        idx = np.asarray(indices, dtype=np.int64)
        return _wrap(self.images[idx]), _wrap(self.targets[idx])

    def __repr__(self) -> str:
        return f"Digits(train={self.train}, size={self.images.shape[-1]}, n={len(self)})"


def _verify_bundled() -> bool:
    """Whether the bundled file matches the recorded checksum."""
    return hashlib.sha256(_FILE.read_bytes()).hexdigest() == DIGITS_SHA256
