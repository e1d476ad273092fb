"""``cnnx train`` / ``cnnx eval``: the closing line, outputs, --resume, data sources, user errors."""
import gzip
import pickle
import re
import struct

import numpy as np
import pytest

import cnnx
from cnnx import train
from cnnx.cli import main

from conftest import num_threads

ACCURACY = re.compile(r"^test accuracy: (\d{1,3}\.\d\d)%$", re.MULTILINE)


def _train(capsys, *args):
    code = main(["train", *args, "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_lenet5_on_digits_writes_outputs_and_resumes_bitwise(tmp_path, capsys, monkeypatch):
    full, part = tmp_path / "full", tmp_path / "part"
    with num_threads(2):
        code, out, err = _train(capsys, "lenet5", "--epochs", "2", "--out", str(full))
        assert code == 0, err
        assert out.strip().splitlines()[-1] == ACCURACY.search(out).group(0)
        assert float(ACCURACY.search(out).group(1)) > 50
        assert {"last.ckpt", "model.safetensors", "history.json"} <= {p.name for p in full.iterdir()}
        # the same run interrupted (Ctrl-C) after its first checkpoint, then resumed: identical weights
        save = train.Checkpoint.on_epoch_end

        def interrupt(self, epoch, logs, run):
            save(self, epoch, logs, run)
            raise KeyboardInterrupt

        monkeypatch.setattr(train.Checkpoint, "on_epoch_end", interrupt)
        code, _, err = _train(capsys, "lenet5", "--epochs", "2", "--out", str(part))
        assert code == 130 and "interrupted" in err
        monkeypatch.undo()
        code, out_resumed, err = _train(capsys, "lenet5", "--epochs", "2", "--out", str(part), "--resume",
                                        str(part / "last.ckpt"))
        assert code == 0, err
    a, b = cnnx.load(full / "model.safetensors"), cnnx.load(part / "model.safetensors")
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy()), k
    assert ACCURACY.search(out_resumed).group(1) == ACCURACY.search(out).group(1)

    code = main(["eval", "lenet5", str(full / "model.safetensors")])
    out_eval = capsys.readouterr().out
    assert code == 0 and ACCURACY.search(out_eval).group(1) == ACCURACY.search(out).group(1)
    code = main(["eval", "lenet5", str(full / "last.ckpt")])
    assert code == 0 and ACCURACY.search(capsys.readouterr().out).group(1) == ACCURACY.search(out).group(1)


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    code, _, err = _train(capsys, "lenet5", "--epochs", "1", "--out", str(tmp_path), "--no-augment")
    assert code == 0, err
    code, _, err = _train(capsys, "lenet5", "--epochs", "2", "--resume", str(tmp_path / "last.ckpt"))
    assert code == 2 and "augment" in err


@pytest.mark.parametrize("args,code,needle", [
    (["train", "lenet6"], 2, "valid models: lenet5, "),
    (["train", "lenet5", "--data", "imagenet"], 2, "valid datasets: digits, mnist:DIR, cifar10:DIR, folder:DIR"),
    (["train", "lenet5", "--data", "mnist"], 2, "mnist:DIR"),
    (["train", "lenet5", "--data", "mnist:/nonexistent/mnist"], 2, "/nonexistent/mnist"),
    (["train", "lenet5", "--epochs", "-1"], 2, "--epochs"),
    (["train", "lenet5", "--lr", "0"], 2, "--lr"),
    (["train", "lenet5", "--resume", "/nonexistent.ckpt"], 2, "/nonexistent.ckpt"),
    (["eval", "lenet5", "/nonexistent.ckpt"], 2, "/nonexistent.ckpt"),
    (["eval", "resnet19", "x"], 2, "valid models"),
])
def test_user_errors_name_the_problem(args, code, needle, capsys):
    assert main(args) == code
    assert needle in capsys.readouterr().err


def test_eval_refuses_a_garbage_checkpoint(tmp_path, capsys):
    (tmp_path / "bad.ckpt").write_bytes(b"garbage" * 10)
    assert main(["eval", "lenet5", str(tmp_path / "bad.ckpt")]) == 1
    assert "bad.ckpt" in capsys.readouterr().err


def _idx(a):
    return bytes([0, 0, 8, a.ndim]) + b"".join(struct.pack(">I", s) for s in a.shape) + a.tobytes()


def test_train_on_mnist_cifar_and_folder_files(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for prefix, n in (("train", 40), ("t10k", 20)):
        (mnist / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))))
        (mnist / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, n, dtype=np.uint8)))
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, 8)]}
        (cifar / name).write_bytes(pickle.dumps(batch, protocol=2))
    folder = tmp_path / "folder"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / c / f"{i}.png")
    for data, n_test in ((f"mnist:{mnist}", 20), (f"cifar10:{cifar}", 8), (f"folder:{folder}", 2)):
        code, out, err = _train(capsys, "lenet5", "--data", data, "--epochs", "1", "--batch-size", "8")
        assert code == 0, err
        assert f"{n_test} test images" in out and ACCURACY.search(out), out
    code, out, err = _train(capsys, "mobilenet_v1", "--data", f"folder:{folder}", "--epochs", "1",
                            "--batch-size", "4", "--val-fraction", "0.25", "--image-size", "32")
    assert code == 0, err
    assert "small-input variant" in out and "6 training, 2 validation, 2 test images" in out


def test_help_lists_train_and_eval(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "train" in out and "eval" in out
