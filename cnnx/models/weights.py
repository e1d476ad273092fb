"""Loading PyTorch / torchvision weights into cnnx models.

A converted state dict is a ``{name: array}`` mapping with torchvision's names, so it loads with
``Module.load_state_dict(strict=True)``; ``load_torch_state_dict`` adds what PyTorch's own loading
does beyond that (files, and the batch-norm counters that old checkpoints lack). Files are read in
the safetensors format (an 8-byte little-endian header length, a JSON header of names, dtypes,
shapes and byte offsets, then the raw little-endian data) by the small reader below, so neither
``safetensors`` nor PyTorch is needed to load them. See ``docs/models.md`` for converting a ``.pth``.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

from .. import nn
from ..tensor import Tensor

__all__ = ["load_safetensors", "save_safetensors", "load_torch_state_dict"]

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 2**20


def load_safetensors(path) -> dict:
    """The tensors of a safetensors file as ``{name: numpy array}`` (BF16 is widened to float32).
    A file that is not valid safetensors raises ValueError naming the file."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        blob = f.read()

    def bad(why: str):
        return ValueError(f"{path}: not a valid safetensors file ({why})")

    if len(blob) < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > min(_MAX_HEADER, len(blob) - 8):
        raise bad(f"header length {n} exceeds the file")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
        except (TypeError, KeyError, ValueError) as e:
            raise bad(f"entry {name!r} is malformed: {e!r}") from None
        if dtype not in _DTYPES and dtype != "BF16":
            raise bad(f"entry {name!r} has unsupported dtype {dtype!r}")
        item = 2 if dtype == "BF16" else np.dtype(_DTYPES[dtype]).itemsize
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= len(data) or end - begin != count * item:
            raise bad(f"entry {name!r} has offsets [{begin}, {end}) that do not hold {count} x {dtype}")
        raw = data[begin:end]
        if dtype == "BF16":  # the top half of a float32
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<"))
            array = array.astype(array.dtype.newbyteorder("="), copy=True)
        out[name] = array.reshape(shape)
    return out


def save_safetensors(state: dict, path, metadata: dict | None = None) -> None:
    """Write ``{name: array}`` (numpy arrays, cnnx Tensors, or anything ``np.asarray`` takes, such as a
    PyTorch tensor on the CPU) as a safetensors file that ``safetensors`` and PyTorch tools read."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in state.items():
        array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
        if array.dtype not in _NAMES:
            raise TypeError(f"save_safetensors(): {name!r} has dtype {array.dtype}, which safetensors cannot hold")
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format aligns the data to 8 bytes
    with open(os.fspath(path), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def _read(path) -> dict:
    path = os.fspath(path)
    if path.endswith((".pth", ".pt", ".bin")):
        try:
            import torch
        except ImportError:
            raise ValueError(f"{path}: a PyTorch checkpoint needs PyTorch to read; convert it to safetensors "
                             "once (docs/models.md) and load that") from None
        state = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.detach().numpy() for k, v in state.items()}
    return load_safetensors(path)


def load_torch_state_dict(model: nn.Module, state, strict: bool = True):
    """Load a PyTorch/torchvision state dict into ``model`` (a cnnx model with torchvision's names).

    ``state``: a mapping of names to numpy arrays, cnnx Tensors or PyTorch tensors, or the path of a
    ``.safetensors`` file (a ``.pth``/``.pt`` file too when PyTorch is installed). As PyTorch does for
    checkpoints older than batch norm's ``num_batches_tracked`` (saved before PyTorch 0.4.1), a missing
    counter keeps the model's value. Everything else is
    ``model.load_state_dict(state, strict)``: missing or unexpected keys and shape mismatches raise.
    Returns ``(missing_keys, unexpected_keys)``.
    """
    if isinstance(state, (str, os.PathLike)):
        state = _read(state)
    if not hasattr(state, "keys"):
        raise TypeError(f"load_torch_state_dict(): expected a mapping or a file path, got {type(state).__name__}")
    state = dict(state)
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d) and module.num_batches_tracked is not None:
            prefix = f"{name}." if name else ""
            if prefix + "num_batches_tracked" not in state and prefix + "running_mean" in state:
                state[prefix + "num_batches_tracked"] = module.num_batches_tracked
    return model.load_state_dict(state, strict=strict)
