"""MNIST from its IDX files (``train-images-idx3-ubyte`` etc., plain or ``.gz``).

IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian header, two zero bytes, a type byte
(0x08 = unsigned byte), the number of dimensions, one 32-bit size per dimension, then the data.
Images are 28x28 uint8 (0 = background), labels uint8 0..9. Samples are ``(image, label)`` with
the image a 28x28 uint8 array (``transforms.ToTensor()`` makes it a ``1 x 28 x 28`` float Tensor;
``transforms.Pad(2)`` gives LeNet-5's 32x32).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..dataset import Dataset, _check_index
from ._download import download_url

__all__ = ["MNIST", "read_idx"]

# The files the PyTorch ecosystem downloads (a mirror of yann.lecun.com) and their MD5 checksums.
_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_RESOURCES = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
           0x0E: np.dtype(">f8")}


def read_idx(path) -> np.ndarray:
    """The array in an IDX file (gzipped or not); ValueError naming the file when it is malformed."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or raw[3] == 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    need = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != need:
        raise ValueError(f"{path}: {'truncated' if len(raw) < need else 'trailing data after'} IDX data: shape "
                         f"{shape} needs {need} bytes, the file has {len(raw)}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


class MNIST(Dataset):
    """``MNIST(root, train=True, transform=None, download=False)``: the 60,000 training or 10,000 test
    images from IDX files in ``root`` (or ``root/MNIST/raw``, ``root/raw``; ``.gz`` or not).
    ``download=True`` fetches missing files into ``root`` and checks their MD5."""

    classes = [str(d) for d in range(10)]

    def __init__(self, root, train: bool = True, transform=None, download: bool = False):
        self.root = Path(root)
        self.train = train
        self.transform = transform
        prefix = "train" if train else "t10k"
        stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        if download:
            for stem in stems:
                if _find(self.root, stem) is None:
                    download_url(_MIRROR + stem + ".gz", self.root / (stem + ".gz"), _RESOURCES[stem])
        if not self.root.is_dir():
            raise FileNotFoundError(f"MNIST: folder {self.root} does not exist (pass download=True to fetch the "
                                    "dataset)")
        paths = [_find(self.root, stem) for stem in stems]
        missing = [stem for stem, p in zip(stems, paths) if p is None]
        if missing:
            raise FileNotFoundError(f"MNIST: {self.root} lacks {', '.join(missing)} (or .gz); pass download=True "
                                    "to fetch them")
        images, labels = (read_idx(p) for p in paths)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{paths[0]}: expected a 3-D uint8 IDX array of images, got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{paths[1]}: expected {len(images)} labels (one per image in {paths[0].name}), got "
                             f"shape {labels.shape}")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{paths[1]}: labels must be 0..9, found {int(labels.max())}")
        self.data = images
        self.targets = labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        i = _check_index(index, len(self), "MNIST")
        img = self.data[i]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[i])

    def __repr__(self) -> str:
        return f"MNIST(root={str(self.root)!r}, train={self.train}, n={len(self)})"
