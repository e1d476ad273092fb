"""``ImageFolder``: users' own images, one sub-folder per class (``root/cat/1.png``, ``root/dog/x.jpg``).

Classes are the sub-folder names in sorted order (``class_to_idx``); images are the files with an
image extension, in sorted order, decoded with Pillow when a sample is read and converted to
``mode`` ("RGB" by default, "L" for grey). Samples are ``(image, label)`` with the image an
``H x W x C`` (``H x W`` for "L") uint8 array; add ``transforms.Resize`` and ``ToTensor``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..dataset import Dataset, _check_index

__all__ = ["ImageFolder", "IMG_EXTENSIONS"]

# Pillow modes whose channels are 8-bit, so the uint8 array is the image itself (not a cast of it).
MODES = ("L", "RGB", "RGBA", "LA", "CMYK", "YCbCr", "LAB", "HSV", "1", "P")
IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("ImageFolder needs Pillow: pip install Pillow") from None
    return Image


class ImageFolder(Dataset):
    """``ImageFolder(root, transform=None, mode="RGB", extensions=IMG_EXTENSIONS)``."""

    def __init__(self, root, transform=None, mode: str = "RGB", extensions=IMG_EXTENSIONS):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: folder {self.root} does not exist")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: {self.root} has no class sub-folders (expected root/CLASS/IMAGE)")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        exts = tuple(e.lower() for e in extensions)
        self.samples = []
        empty = []
        for c in self.classes:
            files = sorted(p for p in (self.root / c).rglob("*") if p.is_file() and p.suffix.lower() in exts)
            if not files:
                empty.append(c)
            self.samples += [(p, self.class_to_idx[c]) for p in files]
        if empty:
            raise FileNotFoundError(f"ImageFolder: no images ({', '.join(exts)}) in {', '.join(str(self.root / c) for c in empty)}")
        self.targets = np.array([t for _, t in self.samples], dtype=np.int64)
        if mode not in MODES:
            raise ValueError(f"ImageFolder: mode must be one of {', '.join(MODES)} (Pillow modes with 8-bit "
                             f"channels), got {mode!r}")
        self.mode = mode
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, path: Path) -> np.ndarray:
        """Decode one image file as a uint8 array; ValueError naming the file when it is unreadable."""
        Image = _pil()
        try:
            with Image.open(path) as im:
                im = im.convert(self.mode)
                return np.asarray(im, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise ValueError(f"{path}: cannot read image ({e})") from None

    def __getitem__(self, index):
        path, target = self.samples[_check_index(index, len(self), "ImageFolder")]
        img = self.load(path)
        if self.transform is not None:
            img = self.transform(img)
        return img, target

    def __repr__(self) -> str:
        return f"ImageFolder(root={str(self.root)!r}, classes={len(self.classes)}, n={len(self)})"
