"""``cnnx.save`` / ``cnnx.load``: checkpoints as safetensors files, never pickle.

A checkpoint is one safetensors file. Every Tensor (or numpy array) in the saved object becomes a
named tensor in it, named by its path (``model.conv1.weight``, ``optimizer.state.0.momentum_buffer``),
so other safetensors tools read the weights directly; everything else (numbers, strings, lists,
dicts with any keys, tuples, None) is kept as JSON in the file's metadata under ``"cnnx"``, with
the tensors referenced by name. Loading therefore never executes code from the file.

``cnnx.load`` also reads a plain safetensors file written by another tool (say, PyTorch weights
converted with ``safetensors.torch.save_file``) as a ``{name: Tensor}`` dict, ready for
``model.load_state_dict``. A file that is not a well-formed safetensors file (garbage, truncated,
inconsistent offsets, unknown dtypes) or whose cnnx metadata is corrupt raises ValueError naming the
file. Saving writes a temporary file next to the target and renames it, so an interrupted save never
leaves a half-written checkpoint behind. The reading and writing of the file format itself is
``cnnx._safetensors``, shared with ``cnnx.models.load_safetensors`` / ``save_safetensors``.
"""
from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np

from . import _safetensors
from .tensor import Tensor, _wrap

__all__ = ["save", "load"]

_FORMAT = "cnnx.checkpoint"
_VERSION = 1
_META_KEY = "cnnx"


def _encode(obj, path: str, tensors: dict, where: str):
    """``obj`` as JSON-able data; tensors go into ``tensors`` under names derived from ``path``."""
    if isinstance(obj, (Tensor, np.ndarray)):
        array = obj._data if isinstance(obj, Tensor) else obj
        if array.dtype.kind not in "biuf":
            raise TypeError(f"cnnx.save: cannot save an array of dtype {array.dtype} at {where}")
        name = path or "tensor"
        if name in tensors:
            n = 1
            while f"{name}#{n}" in tensors:
                n += 1
            name = f"{name}#{n}"
        tensors[name] = array if array.flags.c_contiguous else array.copy()  # (ascontiguousarray makes 0-d arrays 1-d)
        return {"$tensor" if isinstance(obj, Tensor) else "$ndarray": name}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else {"$float": repr(v)}
    if isinstance(obj, (dict, Counter)):
        sub = (lambda k: f"{path}.{k}" if path else str(k))
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: _encode(v, sub(k), tensors, f"{where}[{k!r}]") for k, v in obj.items()}
        return {"$dict": [[_encode(k, sub(k), tensors, f"{where} key {k!r}"),
                           _encode(v, sub(k), tensors, f"{where}[{k!r}]")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, f"{path}.{i}" if path else str(i), tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
        return {"$tuple": items} if isinstance(obj, tuple) else items
    raise TypeError(f"cnnx.save: cannot save an object of type {type(obj).__name__} at {where} (supported: "
                    "Tensors, numpy arrays, numbers, strings, None, and lists, tuples and dicts of them)")


def _decode(obj, tensors: dict, file: str):
    if isinstance(obj, list):
        return [_decode(v, tensors, file) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (key, value), = obj.items()
        if key in ("$tensor", "$ndarray"):
            if not isinstance(value, str) or value not in tensors:
                raise ValueError(f"{file}: checkpoint metadata refers to a tensor {value!r} that the file lacks")
            array = tensors[value]
            return _wrap(array) if key == "$tensor" else array
        if key == "$float":
            return float(value)
        if key == "$tuple":
            return tuple(_decode(v, tensors, file) for v in value)
        if key == "$dict":
            return {_freeze(_decode(k, tensors, file)): _decode(v, tensors, file) for k, v in value}
    return {k: _decode(v, tensors, file) for k, v in obj.items()}


def _freeze(key):
    return tuple(key) if isinstance(key, list) else key


def save(obj, path) -> None:
    """Write ``obj`` (a state dict, or any nesting of dicts/lists/tuples of Tensors, numpy arrays,
    numbers, strings and None) to ``path`` as a safetensors file (see the module docstring)."""
    tensors: dict = {}
    tree = _encode(obj, "", tensors, "the top level")
    metadata = {_META_KEY: json.dumps({"format": _FORMAT, "version": _VERSION, "tree": tree}, allow_nan=False)}
    _safetensors.write(path, tensors, metadata, owner="cnnx.save")


def load(path):
    """Read a file written by ``cnnx.save`` (the same structure, with cnnx Tensors), or a plain
    safetensors file (a ``{name: Tensor}`` dict). Raises ValueError naming the file when it is not
    a well-formed checkpoint, FileNotFoundError when it does not exist."""
    tensors, meta = _safetensors.read(path, owner="cnnx.load")
    file = str(path)
    if meta is None or _META_KEY not in meta:
        return {k: _wrap(v) for k, v in tensors.items()}
    try:
        doc = json.loads(meta[_META_KEY])
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{file}: corrupt cnnx metadata ({type(e).__name__}: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or "tree" not in doc:
        raise ValueError(f"{file}: corrupt cnnx metadata (no {_FORMAT!r} tree)")
    version = doc.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{file}: corrupt cnnx metadata (checkpoint format version {version!r})")
    if version > _VERSION:
        raise ValueError(f"{file}: written by a newer cnnx (checkpoint format {version}, this cnnx reads "
                         f"up to {_VERSION})")
    try:
        return _decode(doc["tree"], tensors, file)
    except (TypeError, ValueError, RecursionError) as e:
        if str(e).startswith(file):
            raise
        raise ValueError(f"{file}: corrupt cnnx metadata ({type(e).__name__}: {e})") from None
