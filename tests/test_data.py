"""cnnx.data: datasets, DataLoader (order, determinism, prefetch), transforms, file formats."""
import gzip
import io
import os
import pickle
import struct
import tarfile
import threading

import numpy as np
import pytest

import cnnx
from cnnx.data import DataLoader, Subset, TensorDataset, random_split, transforms as T
from cnnx.data.datasets import CIFAR10, MNIST, Digits, ImageFolder, load_digits, read_cifar_batch, read_idx
from cnnx.data.datasets._download import download_url, extract_tar, file_md5

try:
    import torch
except ImportError:
    torch = None


# ---- datasets in memory ---------------------------------------------------------------------------

def test_tensor_dataset_and_subset():
    x, y = cnnx.arange(10).reshape(5, 2), np.arange(5)
    ds = TensorDataset(x, y)
    assert len(ds) == 5
    a, b = ds[-1]
    assert a.tolist() == [8, 9] and b.item() == 4
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(x, np.arange(4))
    sub = Subset(ds, [4, 0])
    assert sub[0][1].item() == 4 and len(sub) == 2
    xs, ys = sub.get_batch([1, 0])
    assert ys.tolist() == [0, 4]


def test_random_split():
    ds = TensorDataset(np.arange(10))
    a, b = random_split(ds, [7, 3], seed=1)
    got = sorted(int(a[i][0].item()) for i in range(7)) + sorted(int(b[i][0].item()) for i in range(3))
    assert sorted(got) == list(range(10))
    assert [len(s) for s in random_split(ds, [0.8, 0.2])] == [8, 2]
    assert a.indices.tolist() == random_split(ds, [7, 3], seed=1)[0].indices.tolist()
    with pytest.raises(ValueError, match="lengths"):
        random_split(ds, [5, 4])


def test_digits_split_is_fixed_stratified_and_disjoint():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.max() == 16 and labels.max() == 9
    train, test = Digits(train=True), Digits(train=False)
    assert len(train) + len(test) == 1797 and len(test) == 359
    assert np.all(np.bincount(test.targets) >= 35)
    x, y = train[0]
    assert isinstance(x, cnnx.Tensor) and x.shape == (1, 32, 32) and x.dtype == np.float32
    assert 0 <= x.numpy().min() and x.numpy().max() <= 1
    # the splits do not share an image (compare at 8x8)
    small_train = {a.tobytes() for a in Digits(True, size=8).images}
    assert sum(a.tobytes() in small_train for a in Digits(False, size=8).images) < 5  # (a few duplicates exist)
    from cnnx.data.datasets.digits import _verify_bundled
    assert _verify_bundled()


# ---- DataLoader -----------------------------------------------------------------------------------

def _ids(loader):
    return [b[0].numpy().ravel().tolist() for b in loader]


def test_loader_batches_and_drop_last():
    ds = TensorDataset(np.arange(10))
    assert _ids(DataLoader(ds, batch_size=4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _ids(DataLoader(ds, batch_size=4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(ds, batch_size=4)) == 3 and len(DataLoader(ds, batch_size=4, drop_last=True)) == 2


def test_loader_shuffle_is_seeded_per_epoch_and_independent_of_prefetch():
    ds = TensorDataset(np.arange(50))
    a = DataLoader(ds, batch_size=8, shuffle=True, seed=3)
    b = DataLoader(ds, batch_size=8, shuffle=True, seed=3, prefetch=0)
    e0, e1 = _ids(a), _ids(a)
    assert e0 == _ids(b) and e1 == _ids(b)
    assert e0 != e1
    assert sorted(sum(e0, [])) == list(range(50))
    c = DataLoader(ds, batch_size=8, shuffle=True, seed=3)
    c.load_state_dict(a.state_dict())
    assert _ids(c) == _ids(a)
    c.set_epoch(1)
    assert _ids(c) == e1


def test_loader_default_seed_comes_from_cnnx_generator():
    ds = TensorDataset(np.arange(20))
    cnnx.manual_seed(5)
    a = DataLoader(ds, batch_size=5, shuffle=True)
    cnnx.manual_seed(5)
    b = DataLoader(ds, batch_size=5, shuffle=True)
    assert a.seed == b.seed and _ids(a) == _ids(b)


class _Samples:
    def __init__(self, n, transform=None, fail_at=None):
        self.n, self.transform, self.fail_at = n, transform, fail_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise KeyError(f"sample {i} is broken")
        img = cnnx.full((1, 4, 4), float(i))
        return (self.transform(img) if self.transform else img), i


def test_random_transforms_are_reproducible_whatever_the_thread():
    aug = T.Compose([T.RandomCrop(4, padding=2), T.RandomHorizontalFlip()])
    ds = _Samples(30, aug)
    runs = []
    for prefetch in (0, 1, 3):
        cnnx.manual_seed(prefetch)  # the global stream must not matter
        loader = DataLoader(ds, batch_size=7, shuffle=True, seed=11, prefetch=prefetch)
        runs.append([x.numpy().copy() for x, _ in loader])
    for other in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0], other))


def test_collate_types():
    ds = [((np.zeros(2), 1.5), {"k": 3}), ((np.ones(2), 2.5), {"k": 4})]
    loader = DataLoader(ds, batch_size=2, prefetch=0)
    (x, f), d = next(iter(loader))
    assert x.shape == (2, 2) and f.dtype == np.float64 and d["k"].tolist() == [3, 4] and d["k"].dtype == np.int64


def test_worker_errors_reach_the_main_thread():
    loader = DataLoader(_Samples(10, fail_at=6), batch_size=3)
    with pytest.raises(KeyError, match="sample 6"):
        for _ in loader:
            pass


def test_abandoned_iteration_stops_the_thread():
    before = threading.active_count()
    loader = DataLoader(_Samples(1000), batch_size=2, prefetch=2)
    it = iter(loader)
    next(it)
    it.close()
    del it
    for _ in range(50):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.02)
    assert threading.active_count() <= before


@pytest.mark.parametrize("kwargs,match", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=2.5), "batch_size"), (dict(prefetch=-1), "prefetch"),
    (dict(seed=-3), "seed"),
])
def test_loader_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataLoader(TensorDataset(np.arange(3)), **kwargs)
    with pytest.raises(TypeError, match="dataset"):
        DataLoader(5)


# ---- transforms -----------------------------------------------------------------------------------

def test_to_tensor_and_normalize():
    img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
    t = T.ToTensor()(img)
    assert isinstance(t, cnnx.Tensor) and t.shape == (3, 2, 2) and t.dtype == np.float32
    np.testing.assert_allclose(t.numpy()[1], img[:, :, 1] / 255.0, rtol=1e-6)
    assert T.ToTensor()(np.zeros((5, 7), np.uint8)).shape == (1, 5, 7)
    n = T.Normalize((0.5, 0.25, 0.0), (0.5, 0.5, 2.0))(t)
    np.testing.assert_allclose(n.numpy()[2], t.numpy()[2] / 2.0, rtol=1e-6)
    np.testing.assert_allclose(n.numpy()[0], (t.numpy()[0] - 0.5) / 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="std"):
        T.Normalize(0.5, 0.0)
    with pytest.raises(ValueError, match="channels"):
        T.Normalize((0.5, 0.5), (1, 1))(t)
    with pytest.raises(TypeError, match="float"):
        T.Normalize(0.5, 0.5)(img)


def test_to_tensor_accepts_pil_images():
    from PIL import Image

    img = Image.fromarray(np.full((3, 5, 3), 255, np.uint8))
    t = T.ToTensor()(img)
    assert t.shape == (3, 3, 5) and float(t.numpy().min()) == 1.0


def test_pad_and_random_crop():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    padded = T.Pad(2)(cnnx.tensor(img[None])).numpy()
    assert padded.shape == (1, 8, 8) and padded[0, 2:6, 2:6].tolist() == img.tolist()
    assert T.Pad((1, 2))(img).shape == (8, 6)
    assert T.Pad(1)(np.zeros((4, 4, 3), np.uint8)).shape == (6, 6, 3)
    seen = set()
    with T.using_rng(np.random.default_rng(0)):
        for _ in range(200):
            out = T.RandomCrop(4, padding=1)(img)
            assert out.shape == (4, 4)
            r, c = np.argwhere(out == 5.0)[0] if (out == 5.0).any() else (None, None)
            seen.add((r, c))
    assert len(seen) == 9  # all 3x3 offsets are drawn
    hwc = np.zeros((10, 10, 3), np.uint8)
    assert T.RandomCrop((6, 8))(hwc).shape == (6, 8, 3)
    with pytest.raises(ValueError, match="larger"):
        T.RandomCrop(5)(img)
    assert T.CenterCrop(2)(img).tolist() == [[5, 6], [9, 10]]


def test_horizontal_flip():
    img = cnnx.tensor(np.arange(6, dtype=np.float32).reshape(1, 2, 3))
    out = T.RandomHorizontalFlip(p=1.0)(img)
    assert isinstance(out, cnnx.Tensor) and out.numpy()[0, 0].tolist() == [2, 1, 0]
    assert T.RandomHorizontalFlip(p=0.0)(img) is img
    with pytest.raises(ValueError, match="p"):
        T.RandomHorizontalFlip(1.5)


def test_rotation_by_right_angles_is_exact_and_counter_clockwise():
    img = np.random.default_rng(0).random((2, 5, 5)).astype(np.float32)
    for interpolation in ("nearest", "bilinear"):
        out = T.RandomRotation((90, 90), interpolation=interpolation)(cnnx.tensor(img)).numpy()
        np.testing.assert_allclose(out, np.rot90(img, 1, axes=(1, 2)), atol=1e-5)
        hwc = T.RandomRotation((90, 90), interpolation=interpolation)(img.transpose(1, 2, 0))
        np.testing.assert_allclose(hwc, np.rot90(img.transpose(1, 2, 0), 1, axes=(0, 1)), atol=1e-5)
    zero = T.RandomRotation(0)(img)
    np.testing.assert_array_equal(zero, img)
    # a 45-degree rotation leaves the corners uncovered: they get the fill value
    out = T.RandomRotation((45, 45), fill=-1.0)(np.ones((9, 9), np.float32))
    assert out[0, 0] == -1.0 and out[4, 4] == 1.0
    u8 = T.RandomRotation(30, interpolation="bilinear")(np.full((8, 8), 200, np.uint8))
    assert u8.dtype == np.uint8 and u8.max() <= 200
    with pytest.raises(ValueError, match="degrees"):
        T.RandomRotation(-5)


def test_resize_upsamples_like_torch_bilinear():
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)  # 4-D: a batch, N x C x H x W
    out = T.Resize((32, 32))(x)
    assert out.shape == (3, 1, 32, 32)
    if torch is not None:
        want = torch.nn.functional.interpolate(torch.tensor(x), size=(32, 32), mode="bilinear",
                                               align_corners=False, antialias=True).numpy()
        np.testing.assert_allclose(out, want, atol=1e-5)
        down = T.Resize((5, 3))(x)
        want = torch.nn.functional.interpolate(torch.tensor(x), size=(5, 3), mode="bilinear",
                                               align_corners=False, antialias=True).numpy()
        np.testing.assert_allclose(down, want, atol=1e-5)
    assert T.Resize(16)(np.zeros((20, 40, 3), np.uint8)).shape == (16, 32, 3)
    assert isinstance(T.Resize(4)(cnnx.zeros(1, 8, 8)), cnnx.Tensor)
    assert T.Resize((4, 6))(cnnx.zeros(3, 8, 8)).shape == (3, 4, 6)


# ---- files: MNIST ---------------------------------------------------------------------------------

def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape) + array.tobytes()


def _write_mnist(root, n=5, train=True, gz=False):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    prefix = "train" if train else "t10k"
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = _idx(arr)
        if gz:
            (root / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (root / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path, gz):
    images, labels = _write_mnist(tmp_path, train=False, gz=gz)
    ds = MNIST(tmp_path, train=False)
    assert len(ds) == 5 and ds[2][1] == labels[2]
    np.testing.assert_array_equal(ds[2][0], images[2])
    ds = MNIST(tmp_path, train=False, transform=T.Compose([T.ToTensor(), T.Pad(2)]))
    assert ds[0][0].shape == (1, 32, 32)


def test_mnist_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MNIST(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        MNIST(tmp_path)
    _write_mnist(tmp_path, n=4)
    f = tmp_path / "train-images-idx3-ubyte"
    good = f.read_bytes()
    f.write_bytes(good[:-10])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated"):
        MNIST(tmp_path)
    f.write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic"):
        MNIST(tmp_path)
    f.write_bytes(_idx(np.zeros((3, 28, 28), np.uint8)))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*3 labels"):
        MNIST(tmp_path)
    f.unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        MNIST(tmp_path)
    assert read_idx(tmp_path / "train-labels-idx1-ubyte").shape == (4,)


# ---- files: CIFAR-10 ------------------------------------------------------------------------------

def _cifar_batch(n, seed=0):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}


def _write_cifar(root, n=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batches[name] = _cifar_batch(n, seed=i)
        (folder / name).write_bytes(pickle.dumps(batches[name], protocol=2))
    return folder, batches


def test_cifar10_reads_python_batches(tmp_path):
    folder, batches = _write_cifar(tmp_path)
    train, test = CIFAR10(tmp_path), CIFAR10(tmp_path, train=False)
    assert len(train) == 20 and len(test) == 4
    img, label = test[1]
    raw = batches["test_batch"][b"data"][1]
    assert img.shape == (32, 32, 3) and label == batches["test_batch"][b"labels"][1]
    np.testing.assert_array_equal(img[:, :, 0].ravel(), raw[:1024])
    np.testing.assert_array_equal(img[:, :, 2].ravel(), raw[2048:])
    assert T.ToTensor()(img).shape == (3, 32, 32)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar10_refuses_foreign_objects_and_bad_files(tmp_path):
    folder, _ = _write_cifar(tmp_path)
    f = folder / "test_batch"
    f.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch.*refusing to load (posix|os)\.system"):
        CIFAR10(tmp_path, train=False)
    f.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), dtype=object), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(ValueError, match="test_batch"):
        CIFAR10(tmp_path, train=False)
    good = pickle.dumps(_cifar_batch(3), protocol=2)
    f.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="test_batch"):
        CIFAR10(tmp_path, train=False)
    f.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="test_batch"):
        CIFAR10(tmp_path, train=False)
    bad = _cifar_batch(3)
    bad[b"labels"] = [0, 1]
    f.write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ValueError, match="test_batch.*labels"):
        read_cifar_batch(f)
    f.unlink()
    with pytest.raises(FileNotFoundError, match="test_batch"):
        CIFAR10(tmp_path, train=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CIFAR10(tmp_path / "nowhere")


# ---- files: ImageFolder ---------------------------------------------------------------------------

def test_image_folder(tmp_path):
    from PIL import Image

    for c, colour in (("cat", 10), ("dog", 200)):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 4, 3), colour + i, np.uint8)).save(tmp_path / c / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and len(ds) == 4 and ds.targets.tolist() == [0, 0, 1, 1]
    img, label = ds[3]
    assert img.shape == (6, 4, 3) and label == 1 and img[0, 0, 0] == 201
    grey = ImageFolder(tmp_path, mode="L", transform=T.Compose([T.Resize((8, 8)), T.ToTensor()]))
    assert grey[0][0].shape == (1, 8, 8)
    loader = DataLoader(ImageFolder(tmp_path, transform=T.ToTensor()), batch_size=4)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 6, 4) and y.tolist() == [0, 0, 1, 1]
    (tmp_path / "dog" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match="2.png"):
        ImageFolder(tmp_path)[4]


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no class"):
        ImageFolder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        ImageFolder(tmp_path)


# ---- downloads (local files only: the tests never touch the network) ------------------------------

def test_download_checks_the_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    md5 = file_md5(src)
    out = download_url(src.as_uri(), tmp_path / "out" / "f.bin", md5)
    assert out.read_bytes() == b"payload"
    with pytest.raises(RuntimeError, match="checksum"):
        download_url(src.as_uri(), tmp_path / "g.bin", "0" * 32)
    assert not (tmp_path / "g.bin").exists() and not (tmp_path / "g.bin.part").exists()
    with pytest.raises(RuntimeError, match="failed"):
        download_url((tmp_path / "missing").as_uri(), tmp_path / "h.bin", md5)


def test_extract_tar_refuses_escaping_members(tmp_path):
    ok = tmp_path / "ok.tar.gz"
    with tarfile.open(ok, "w:gz") as tar:
        data = b"hello"
        info = tarfile.TarInfo("cifar-10-batches-py/readme")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    extract_tar(ok, tmp_path / "x")
    assert (tmp_path / "x" / "cifar-10-batches-py" / "readme").read_bytes() == b"hello"
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ValueError, match="escape"):
        extract_tar(bad, tmp_path / "y")


def test_grayscale_both_ways():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    grey = T.Grayscale(1)(rgb)
    assert grey.shape == (4, 5, 1) and grey[0, 0, 0] == round(0.299 * 100 + 0.587 * 200 + 0.114 * 50)
    assert T.Grayscale(3)(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    t = T.Grayscale(3)(cnnx.ones(1, 4, 5))
    assert isinstance(t, cnnx.Tensor) and t.shape == (3, 4, 5)
    assert T.Grayscale(1)(cnnx.ones(3, 4, 5)).shape == (1, 4, 5)
    with pytest.raises(ValueError, match="num_output_channels"):
        T.Grayscale(2)


def test_digits_in_three_channels():
    d = Digits(False, channels=3)
    assert d.images.shape == (359, 3, 32, 32)
    np.testing.assert_array_equal(d.images[:, 0], d.images[:, 2])
    with pytest.raises(ValueError, match="channels"):
        Digits(channels=2)
