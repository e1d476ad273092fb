"""cnnx.save / cnnx.load: round trips, interop with plain safetensors, no pickle, bad files."""
import json
import struct

import numpy as np
import pytest

import cnnx
import cnnx.nn as nn


def _model():
    cnnx.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))


def test_state_dict_round_trip(tmp_path):
    model = _model()
    cnnx.save(model.state_dict(), tmp_path / "m.safetensors")
    loaded = cnnx.load(tmp_path / "m.safetensors")
    assert list(loaded) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert isinstance(loaded[k], cnnx.Tensor)
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy())
    other = _model()
    other.load_state_dict(loaded)


def test_nested_structures_round_trip(tmp_path):
    obj = {
        "epoch": 3, "lr": 0.1, "best": float("inf"), "worst": float("-inf"), "nan": float("nan"),
        "name": "run", "flag": True, "none": None, "betas": (0.9, 0.999), "list": [1, [2, 3]],
        "int_keys": {0: {"step": 2, "buf": cnnx.ones(2, 3)}, 1: {}}, "$odd": 1,
        "arr": np.arange(6, dtype=np.int64).reshape(2, 3), "scalar": cnnx.tensor(2.5),
        "u8": np.array([1, 2, 255], dtype=np.uint8), "b": np.array([True, False]),
        "f64": cnnx.zeros(2, dtype=cnnx.float64), "np_scalar": np.float32(1.5), "empty": cnnx.zeros(0, 4),
        "big": 2**100 + 7,
    }
    cnnx.save(obj, tmp_path / "o.ckpt")
    back = cnnx.load(tmp_path / "o.ckpt")
    assert back["epoch"] == 3 and back["lr"] == 0.1 and back["best"] == float("inf")
    assert back["worst"] == float("-inf") and np.isnan(back["nan"])
    assert back["name"] == "run" and back["flag"] is True and back["none"] is None
    assert back["betas"] == (0.9, 0.999) and back["list"] == [1, [2, 3]]
    assert set(back["int_keys"]) == {0, 1} and back["int_keys"][0]["step"] == 2
    np.testing.assert_array_equal(back["int_keys"][0]["buf"].numpy(), np.ones((2, 3), np.float32))
    assert back["$odd"] == 1 and back["big"] == 2**100 + 7
    assert isinstance(back["arr"], np.ndarray) and back["arr"].dtype == np.int64
    assert back["scalar"].shape == () and back["scalar"].item() == 2.5
    assert back["u8"].dtype == np.uint8 and back["b"].dtype == np.bool_
    assert back["f64"].dtype == np.float64 and back["empty"].shape == (0, 4)
    assert back["np_scalar"] == 1.5
    assert back["int_keys"][0]["buf"].numpy().flags.writeable


def test_file_is_plain_safetensors_with_path_names(tmp_path):
    from safetensors.numpy import load_file

    model = _model()
    cnnx.save({"model": model.state_dict(), "epoch": 1}, tmp_path / "c.ckpt")
    arrays = load_file(tmp_path / "c.ckpt")
    assert "model.0.weight" in arrays and "model.1.running_mean" in arrays
    np.testing.assert_array_equal(arrays["model.4.bias"], model.state_dict()["4.bias"].numpy())


def test_reads_foreign_safetensors(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}, tmp_path / "f.safetensors")
    loaded = cnnx.load(tmp_path / "f.safetensors")
    assert set(loaded) == {"w", "b"} and isinstance(loaded["w"], cnnx.Tensor)


def test_unsupported_objects_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"object.*\['f'\]"):
        cnnx.save({"f": object()}, tmp_path / "x")
    with pytest.raises(TypeError, match="dtype"):
        cnnx.save({"s": np.array(["a"])}, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_never_pickles(tmp_path):
    cnnx.save({"a": cnnx.ones(2), "n": 1}, tmp_path / "c.ckpt")
    data = (tmp_path / "c.ckpt").read_bytes()
    assert b"\x80\x04" not in data[:16] and b"pickle" not in data


@pytest.mark.parametrize("content", [
    b"", b"garbage", b"\x00" * 8, b"this is definitely not a checkpoint, it is a text file " * 4,
    struct.pack("<Q", 10) + b"{not json}", struct.pack("<Q", 2) + b"[]",
])
def test_garbage_files_raise_value_error_naming_the_file(tmp_path, content):
    f = tmp_path / "bad.ckpt"
    f.write_bytes(content)
    with pytest.raises(ValueError, match="bad.ckpt"):
        cnnx.load(f)


def test_truncated_file_raises_value_error(tmp_path):
    cnnx.save({"w": cnnx.ones(100, 100), "epoch": 2}, tmp_path / "ok.ckpt")
    data = (tmp_path / "ok.ckpt").read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 100, 9):
        f = tmp_path / "cut.ckpt"
        f.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut.ckpt"):
            cnnx.load(f)


def test_corrupt_metadata_raises(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones(2, np.float32)}, tmp_path / "m.ckpt", metadata={"cnnx": "{oops"})
    with pytest.raises(ValueError, match="m.ckpt"):
        cnnx.load(tmp_path / "m.ckpt")
    save_file({"w": np.ones(2, np.float32)}, tmp_path / "r.ckpt",
              metadata={"cnnx": json.dumps({"format": "cnnx.checkpoint", "version": 1, "tree": {"$tensor": "x"}})})
    with pytest.raises(ValueError, match="r.ckpt"):
        cnnx.load(tmp_path / "r.ckpt")


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        cnnx.load("/nonexistent/cnnx.ckpt")


def test_save_replaces_atomically(tmp_path):
    f = tmp_path / "c.ckpt"
    cnnx.save({"v": 1}, f)
    cnnx.save({"v": 2}, f)
    assert cnnx.load(f) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


# ---- the one safetensors reader/writer (cnnx._safetensors), shared with cnnx.models ---------------

def _st(header, payload=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


BAD_FILES = {
    "bad dtype": _st({"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
    "shape vs bytes": _st({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}, bytes(8)),
    "offsets past the end": _st({"w": {"dtype": "U8", "shape": [9], "data_offsets": [0, 9]}}, bytes(8)),
    "negative offset": _st({"w": {"dtype": "U8", "shape": [0], "data_offsets": [-4, -4]}}),
    "overlap": _st({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                    "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, bytes(6)),
    "gap": _st({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, bytes(4)),
    "shape overflowing int64": _st({"w": {"dtype": "F64", "shape": [2**40, 2**40], "data_offsets": [0, 0]}}),
    "bool shape": _st({"w": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}}, b"\0"),
    "metadata not strings": _st({"__metadata__": {"a": 1}}),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_one_reader_refuses_malformed_files_for_both_entry_points(tmp_path, name):
    from cnnx import models

    f = tmp_path / "weights.safetensors"
    f.write_bytes(BAD_FILES[name])
    for read in (cnnx.load, models.load_safetensors):
        with pytest.raises(ValueError, match="weights.safetensors"):
            read(f)


def test_every_dtype_round_trips_and_interoperates(tmp_path):
    from safetensors.numpy import load_file, save_file

    from cnnx import _safetensors, models

    arrays = {name: (np.arange(6) % 2).astype(dt).reshape(2, 3) for name, dt in _safetensors.DTYPES.items()}
    arrays["big_endian"] = np.arange(4, dtype=">f4")
    arrays["scalar"] = np.array(2.5)
    arrays["empty"] = np.zeros((0, 3), np.float32)
    models.save_safetensors(arrays, tmp_path / "ours.safetensors", metadata={"k": "v"})
    save_file({k: v.astype(v.dtype.newbyteorder("=")) for k, v in arrays.items()},
              tmp_path / "theirs.safetensors")
    for f in ("ours.safetensors", "theirs.safetensors"):
        for read in (load_file, models.load_safetensors, lambda p: {k: v.numpy() for k, v in cnnx.load(p).items()}):
            got = read(tmp_path / f)
            assert set(got) == set(arrays)
            for k, v in arrays.items():
                assert got[k].dtype == v.dtype.newbyteorder("=") and got[k].shape == v.shape, (f, k)
                np.testing.assert_array_equal(got[k], v)


def test_save_refuses_names_and_values_it_cannot_store(tmp_path):
    from cnnx import models

    for state, err, match in (({1: np.ones(2)}, TypeError, "names must be strings"),
                              ({"__metadata__": np.ones(2)}, ValueError, "reserved"),
                              ({"w": np.ones(2, np.complex128)}, TypeError, "complex128"),
                              ({"w": [[1.0], [2.0, 3.0]]}, TypeError, "'w'"),
                              ([np.ones(2)], TypeError, "mapping")):
        with pytest.raises(err, match=match):
            models.save_safetensors(state, tmp_path / "w.safetensors")
    with pytest.raises(TypeError, match="path"):
        cnnx.save({"w": cnnx.ones(2)}, 5)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
