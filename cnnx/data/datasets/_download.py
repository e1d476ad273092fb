"""Downloading dataset files: fetch a URL to a file, verify its checksum, unpack a tar archive.

Used by ``MNIST(root, download=True)`` and ``CIFAR10(root, download=True)``; cnnx never downloads
anything unless asked. A download goes to a temporary file that is renamed only once its checksum
matches, so an interrupted or corrupted transfer never leaves a file that looks complete.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

__all__ = ["file_md5", "download_url", "extract_tar"]


def file_md5(path) -> str:
    """The MD5 hex digest of a file (the checksum the datasets publish; integrity, not security)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_url(url: str, path, md5: str, *, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``path`` unless a file with the right ``md5`` is already there; raise
    RuntimeError naming the URL when the transfer fails or the checksum does not match."""
    path = Path(path)
    if path.is_file() and file_md5(path) == md5:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"downloading {url} failed: {e}") from None
    got = file_md5(tmp)
    if got != md5:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"downloading {url}: checksum mismatch (md5 {got}, expected {md5}); not saved")
    os.replace(tmp, path)
    return path


def extract_tar(archive, dest) -> None:
    """Unpack a (gzipped) tar archive into ``dest``, refusing members that would land outside it
    (absolute paths, ``..``, links)."""
    dest = Path(dest)
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if not (member.isfile() or member.isdir()) or dest.resolve() not in (target, *target.parents):
                raise ValueError(f"{archive}: refusing to extract {member.name!r} (link or path outside {dest})")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: also strips unsafe modes
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
