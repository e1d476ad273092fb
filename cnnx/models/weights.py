"""Loading PyTorch / torchvision weights into cnnx models.

A converted state dict is a ``{name: array}`` mapping with torchvision's names, so it loads with
``Module.load_state_dict(strict=True)``; ``load_torch_state_dict`` adds what PyTorch's own loading
does beyond that (files, and the batch-norm counters that old checkpoints lack). Files are read in
the safetensors format (an 8-byte little-endian header length, a JSON header of names, dtypes,
shapes and byte offsets, then the raw little-endian data) by ``cnnx._safetensors``, the reader
``cnnx.load`` uses too, so neither ``safetensors`` nor PyTorch is needed to load them. See
``docs/models.md`` for converting a ``.pth``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from .. import _safetensors, nn
from ..nn.module import _as_array

__all__ = ["load_safetensors", "save_safetensors", "load_torch_state_dict"]


def load_safetensors(path) -> dict:
    """The tensors of a safetensors file as ``{name: numpy array}`` (BF16 is widened to float32).
    A file that is not valid safetensors raises ValueError naming the file."""
    return _safetensors.read(path, owner="load_safetensors()")[0]


def save_safetensors(state: dict, path, metadata: dict | None = None) -> None:
    """Write ``{name: array}`` (numpy arrays, cnnx Tensors, or anything ``np.asarray`` takes, such as a
    PyTorch tensor on the CPU) as a safetensors file that ``safetensors`` and PyTorch tools read."""
    if not isinstance(state, Mapping):
        raise TypeError(f"save_safetensors(): state must be a mapping of names to arrays, got {type(state).__name__}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"save_safetensors(): metadata must be a mapping of strings or None, got "
                        f"{type(metadata).__name__}")
    arrays = {name: _as_array(name, value) for name, value in state.items()}
    _safetensors.write(path, arrays, metadata, owner="save_safetensors()")


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
    if not isinstance(state, Mapping):
        raise TypeError(f"load_torch_state_dict(): state must be a mapping or a file path, got "
                        f"{type(state).__name__}")
    state = dict(state)
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d) and module.num_batches_tracked is not None:
            prefix = f"{name}." if name else ""
            if prefix + "num_batches_tracked" not in state and prefix + "running_mean" in state:
                state[prefix + "num_batches_tracked"] = module.num_batches_tracked
    return model.load_state_dict(state, strict=strict)
