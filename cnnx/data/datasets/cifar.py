"""CIFAR-10 from its "python version" batches, read without unpickling arbitrary objects.

The batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch`` in ``cifar-10-batches-py/``) are
Python 2 pickles of a dict: ``data`` (a 10000 x 3072 uint8 array, each row 1024 red, 1024 green, 1024
blue values of a 32x32 image in row order), ``labels`` (10,000 ints 0..9), ``batch_label`` and
``filenames``. ``pickle`` can run any code a file names, so the batches are read with an
unpickler that resolves only the handful of globals this structure uses (numpy's array
reconstruction, dtypes without Python objects, latin-1 byte strings) and refuses everything else;
the result is then checked against the expected structure. Samples are ``(image, label)`` with the
image a 32 x 32 x 3 uint8 array (``transforms.ToTensor()`` makes it ``3 x 32 x 32``).
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ..dataset import Dataset, _check_index
from ._download import download_url, extract_tar

__all__ = ["CIFAR10", "read_cifar_batch"]

_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_MD5 = "c58f30108f718f92721af3b95e74349a"
_FOLDER = "cifar-10-batches-py"
_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_TEST = ["test_batch"]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _reconstruct(subtype, shape, dtype_code):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"array subclass {subtype!r} is not allowed")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _dtype(spec, align=False, copy=False):
    dt = np.dtype(spec, align, copy)
    if dt.hasobject:
        raise pickle.UnpicklingError("object arrays are not allowed")
    return dt


def _encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError("only latin-1 byte strings are allowed")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): _encode,
    }

    def find_class(self, module, name):
        fn = self._ALLOWED.get((module, name))
        if fn is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR-10 format")
        return fn

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 32 x 32 x 3 uint8, labels int64) from one batch file; ValueError naming the file
    when it is not a well-formed CIFAR-10 batch (or names anything outside the format)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - truncated and corrupt pickles raise many types
        raise ValueError(f"{path}: not a CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch (a {type(obj).__name__}, expected a dict)")
    obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = obj.get("data"), obj.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: not a CIFAR-10 batch ('data' must be an N x 3072 uint8 array, got {got})")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 9 for v in labels):
        raise ValueError(f"{path}: not a CIFAR-10 batch ('labels' must be {len(data)} ints in 0..9)")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


class CIFAR10(Dataset):
    """``CIFAR10(root, train=True, transform=None, download=False)``: the 50,000 training or 10,000
    test images from ``root/cifar-10-batches-py/`` (or the batch files directly in ``root``).
    ``download=True`` fetches and unpacks the archive (MD5-checked) into ``root``."""

    classes = CLASSES

    def __init__(self, root, train: bool = True, transform=None, download: bool = False):
        self.root = Path(root)
        self.train = train
        self.transform = transform
        names = _TRAIN if train else _TEST
        folder = self._folder(names)
        if folder is None and download:
            archive = download_url(_URL, self.root / "cifar-10-python.tar.gz", _MD5)
            extract_tar(archive, self.root)
            folder = self._folder(names)
        if not self.root.is_dir():
            raise FileNotFoundError(f"CIFAR10: folder {self.root} does not exist (pass download=True to fetch the "
                                    "dataset)")
        if folder is None:
            raise FileNotFoundError(f"CIFAR10: neither {self.root / _FOLDER} nor {self.root} holds all of "
                                    f"{', '.join(names)}; pass download=True to fetch them")
        parts = [read_cifar_batch(folder / n) for n in names]
        self.data = np.concatenate([p[0] for p in parts])
        self.targets = np.concatenate([p[1] for p in parts])

    def _folder(self, names) -> Path | None:
        for folder in (self.root / _FOLDER, self.root):
            if all((folder / n).is_file() for n in names):
                return folder
        return None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        i = _check_index(index, len(self), "CIFAR10")
        img = self.data[i]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[i])

    def __repr__(self) -> str:
        return f"CIFAR10(root={str(self.root)!r}, train={self.train}, n={len(self)})"
