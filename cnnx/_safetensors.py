"""The one safetensors reader and writer: ``cnnx.save`` / ``cnnx.load`` (checkpoints) and
``cnnx.models.load_safetensors`` / ``save_safetensors`` (weights) both go through it.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
N bytes of UTF-8 JSON mapping each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(plus an optional ``"__metadata__"`` of string to string), then the data section: each tensor's raw
little-endian bytes at its offsets, which tile the section without gaps or overlaps.

Reading trusts nothing in the file: the header must be a JSON object of well-formed entries, every
dtype one cnnx knows, every shape a list of sizes >= 0 whose byte count (computed without overflow)
equals its byte range, every range inside the file, the ranges tiling the data section. Anything
else raises ValueError naming the file and the entry; nothing is ever unpickled or executed. A
missing file raises FileNotFoundError, as ``open`` and ``torch.load`` do. Writing goes to a temporary
file next to the target that is renamed once complete, so an interrupted save never leaves a
half-written file behind.
"""
from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping

import numpy as np

__all__ = ["read", "write", "DTYPES"]

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
          "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 2**20  # the limit the reference implementation enforces


def _fspath(path, owner: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{owner}: path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def read(path, owner: str = "load") -> tuple[dict, dict | None]:
    """``({name: numpy array}, metadata or None)`` from the safetensors file ``path``, in the header's
    order. Arrays are native-endian, writable copies; BF16 is widened to float32."""
    path = _fspath(path, owner)
    with open(path, "rb") as f:
        blob = f.read()

    def bad(why: str) -> ValueError:
        return ValueError(f"{path}: not a valid safetensors file ({why})")

    if len(blob) < 8:
        raise bad(f"only {len(blob)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER:
        raise bad(f"header length {n} exceeds the {MAX_HEADER} byte limit: garbage, or not safetensors")
    if n < 2 or n > len(blob) - 8:
        raise bad(f"header length {n} does not fit in the file's {len(blob)} bytes: truncated, or not safetensors")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise bad(f"the header is not valid JSON: {type(e).__name__}: {e}") from None
    if not isinstance(header, dict):
        raise bad(f"the header is a JSON {type(header).__name__}, not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(v, str) for v in metadata.values())):
        raise bad(f"__metadata__ must map strings to strings, got {metadata!r:.80}")
    data = memoryview(blob)[8 + n:]
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise bad(f"entry {name!r} is a {type(info).__name__}, not an object")
        lacking = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
        if lacking:
            raise bad(f"entry {name!r} lacks {', '.join(lacking)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or (dtype not in DTYPES and dtype != "BF16"):
            raise bad(f"entry {name!r} has unsupported dtype {dtype!r} (cnnx reads {', '.join(DTYPES)} and BF16)")
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                  for s in shape):
            raise bad(f"entry {name!r} has an invalid shape {shape!r} (expected a list of sizes >= 0)")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise bad(f"entry {name!r} has invalid data_offsets {offsets!r} (expected [begin, end], 0 <= begin <= end)")
        begin, end = offsets
        if end > len(data):
            raise bad(f"truncated: entry {name!r} needs bytes up to {end} of the data section, which holds "
                      f"{len(data)}")
        need = math.prod(shape) * (2 if dtype == "BF16" else np.dtype(DTYPES[dtype]).itemsize)
        if end - begin != need:
            raise bad(f"entry {name!r}: shape {shape} of {dtype} needs {need} bytes, its data_offsets [{begin}, {end}] "
                      f"hold {end - begin}")
        entries.append((begin, end, name, dtype, shape))
    position, previous = 0, None
    for begin, end, name, *_ in sorted(entries):
        if begin < position:
            raise bad(f"entries {previous!r} and {name!r} overlap in the data section")
        if begin > position:
            raise bad(f"a gap of {begin - position} bytes precedes entry {name!r} in the data section")
        position, previous = end, name
    if position != len(data):
        raise bad(f"{len(data) - position} bytes after the last tensor's data")
    out = {}
    for begin, end, name, dtype, shape in entries:
        raw = data[begin:end]
        if dtype == "BF16":  # the top half of a float32
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<"))
            if dtype == "BOOL" and array.size and np.frombuffer(raw, dtype=np.uint8).max() > 1:
                raise bad(f"entry {name!r} of dtype BOOL holds bytes other than 0 and 1")
            array = array.astype(array.dtype.newbyteorder("="), copy=True)
        out[name] = array.reshape(shape)
    return out, metadata


def write(path, tensors: Mapping, metadata: Mapping | None = None, owner: str = "save") -> None:
    """Write ``{name: numpy array}`` (and string ``metadata``) to ``path`` as a safetensors file that
    the ``safetensors`` package and PyTorch tools read."""
    path = _fspath(path, owner)
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks, offset = [], 0
    for name, array in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"{owner}: tensor names must be strings, got the name {name!r} ({type(name).__name__})")
        if name == "__metadata__":
            raise ValueError(f"{owner}: '__metadata__' is reserved by the safetensors format; rename that tensor")
        native = array.dtype.newbyteorder("=")
        if native not in _NAMES:
            raise TypeError(f"{owner}: {name!r} has dtype {array.dtype}, which safetensors cannot hold (supported: "
                            f"{', '.join(str(np.dtype(d)) for d in DTYPES.values())})")
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _NAMES[native], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format aligns the data section to 8 bytes
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for raw in chunks:
                f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
