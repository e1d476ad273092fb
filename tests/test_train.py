"""cnnx.train: fit/evaluate semantics, auxiliary losses, callbacks, schedules, and bitwise
reproducibility (same seed twice; resumed from a checkpoint vs uninterrupted)."""
import re

import numpy as np
import pytest

import cnnx
import cnnx.nn as nn
from cnnx import optim, train
from cnnx.data import DataLoader, TensorDataset, transforms as T
from cnnx.data.datasets import Digits

from conftest import num_threads


class Tiny(nn.Module):
    """conv -> BN -> relu -> pool -> dropout -> linear on 1 x 8 x 8 digits (exercises buffers and the
    global generator)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(36, 10)

    def forward(self, x):
        x = self.pool(nn.functional.relu(self.bn(self.conv(x))))
        return self.fc(self.drop(x.flatten(1)))


def _setup(seed=0, n=160):
    cnnx.manual_seed(seed)
    model = Tiny()
    aug = T.Compose([T.RandomCrop(8, padding=1), T.RandomHorizontalFlip()])
    data = Digits(True, size=8, transform=aug)
    train_loader = DataLoader(_Head(data, n), batch_size=32, shuffle=True)
    val_loader = DataLoader(_Head(Digits(False, size=8), 64), batch_size=64)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    return model, train_loader, val_loader, opt, sched


class _Head:
    def __init__(self, ds, n):
        self.ds, self.n = ds, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.ds[i]


def _weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _fit(epochs, resume=None, callbacks=(), seed=0):
    model, tl, vl, opt, sched = _setup(seed)
    history = train.fit(model, tl, vl, optimizer=opt, epochs=epochs, scheduler=sched, verbose=0, resume=resume,
                        callbacks=callbacks)
    return model, history


def test_fit_learns_and_logs_every_metric():
    model, history = _fit(4)
    assert len(history) == 4
    for key in ("epoch", "loss", "acc1", "acc5", "val_loss", "val_acc1", "val_acc5", "lr", "time"):
        assert key in history
    assert history["epoch"] == [1, 2, 3, 4]
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_acc1"][-1] > 0.25  # chance is 0.1 (160 images, 4 epochs)
    assert all(a5 >= a1 for a1, a5 in zip(history["acc1"], history["acc5"]))
    assert history["lr"][0] == 0.1 and history["lr"][1] < 0.1
    with pytest.raises(KeyError, match="val_acc1"):
        history["nope"]


def test_same_seed_same_threads_is_bitwise_identical():
    with num_threads(2):
        a, ha = _fit(2)
        b, hb = _fit(2)
    wa, wb = _weights(a), _weights(b)
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k
    assert ha["loss"] == hb["loss"]


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    with num_threads(2):
        full, hfull = _fit(4)
        _fit(2, callbacks=[train.Checkpoint(ckpt)])
        # a different seed: everything that matters must come from the checkpoint
        resumed, hres = _fit(4, resume=ckpt, seed=123)
    wf, wr = _weights(full), _weights(resumed)
    for k in wf:
        assert np.array_equal(wf[k], wr[k]), k
    assert len(hres) == 4 and hres["loss"] == hfull["loss"]


def test_resume_refuses_other_files(tmp_path):
    cnnx.save({"a": 1}, tmp_path / "x.ckpt")
    model, tl, vl, opt, _ = _setup()
    with pytest.raises(ValueError, match="x.ckpt.*training state"):
        train.fit(model, tl, optimizer=opt, epochs=1, resume=tmp_path / "x.ckpt", verbose=0)


class WithAux(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 3)

    def forward(self, x):
        if self.training:
            return self.main(x), self.aux(x), self.aux(x * 2)
        return self.main(x)


def test_auxiliary_losses_are_weighted_into_the_objective():
    cnnx.manual_seed(0)
    model = WithAux()
    x = cnnx.randn(8, 4)
    y = cnnx.tensor(np.arange(8) % 3)
    with cnnx.no_grad():
        ce = nn.CrossEntropyLoss()
        want = (ce(model.main(x), y) + 0.5 * (ce(model.aux(x), y) + ce(model.aux(x * 2), y))).item()
    seen = []

    class Spy(train.Callback):
        def on_batch_end(self, batch, logs, run):
            seen.append(logs["loss"])

    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    history = train.fit(model, loader, loader, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=1,
                        aux_loss_weight=0.5, callbacks=[Spy()], verbose=0)
    assert seen[0] == pytest.approx(want, rel=1e-6)
    assert model.training  # fit leaves the model in training mode; evaluate restored it
    assert "val_loss" in history


def test_evaluate_matches_a_manual_computation():
    logits = np.array([[3.0, 2, 1, 0, -1, -2], [0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]], np.float32)
    y = np.array([0, 0, 5])
    model = nn.Identity()
    model.eval()
    result = train.evaluate(model, DataLoader(TensorDataset(logits, y), batch_size=2), topk=(1, 5))
    assert result["n"] == 3 and result["acc1"] == pytest.approx(1 / 3) and result["acc5"] == pytest.approx(1 / 3)
    want = nn.functional.cross_entropy(cnnx.tensor(logits), cnnx.tensor(y)).item()
    assert result["loss"] == pytest.approx(want, rel=1e-6)
    assert not model.training


def test_topk_correct_caps_k_and_handles_ties():
    logits = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    assert train.topk_correct(logits, np.array([1, 0]), (1, 2, 5)) == [1, 1, 2]


def test_early_stopping_and_restore_best_weights():
    stop = train.EarlyStopping(monitor="loss", patience=1, min_delta=1e9, restore_best_weights=True)
    snapshots = []

    class Snap(train.Callback):
        def on_epoch_end(self, epoch, logs, run):
            snapshots.append(_weights(run.model))

    model, history = _fit(4, callbacks=[Snap(), stop])
    assert len(history) == 2 and stop.stopped_epoch == 1 and stop.best_epoch == 0
    for k, v in _weights(model).items():
        assert np.array_equal(v, snapshots[0][k])
    with pytest.raises(ValueError, match="patience"):
        train.EarlyStopping(patience=-1)


def test_plateau_scheduler_gets_the_validation_loss():
    model, tl, vl, opt, _ = _setup()
    seen = []

    class Recording(optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metrics):
            seen.append(metrics)
            super().step(metrics)

    history = train.fit(model, tl, vl, optimizer=opt, epochs=2, scheduler=Recording(opt), verbose=0)
    assert seen == history["val_loss"]


def test_non_finite_loss_stops_with_a_clear_error():
    model, tl, _, opt, _ = _setup()
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
        train.fit(model, tl, optimizer=opt, epochs=1, loss=lambda out, y: out.sum() * float("nan"), verbose=0)


def test_progress_is_quiet_off_a_terminal_and_one_line_per_epoch(capsys):
    model, tl, vl, opt, sched = _setup()
    train.fit(model, tl, vl, optimizer=opt, epochs=2, scheduler=sched, verbose=1)
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.strip().splitlines()
    assert len(lines) == 2 and re.match(r"epoch 1/2  loss \d+\.\d{4}  acc \d+\.\d\d%  val_loss", lines[0])


def test_bad_arguments():
    model, tl, _, opt, _ = _setup()
    with pytest.raises(ValueError, match="epochs"):
        train.fit(model, tl, optimizer=opt, epochs=-1)
    with pytest.raises(ValueError, match="aux_loss_weight"):
        train.fit(model, tl, optimizer=opt, epochs=1, aux_loss_weight=-1)
    with pytest.raises(TypeError, match="pair"):
        train.fit(model, [cnnx.zeros(2, 1, 8, 8)], optimizer=opt, epochs=1, verbose=0)


def test_training_curves_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = train.History([{"epoch": 1, "loss": 1.0, "acc1": 0.5, "lr": 0.1},
                             {"epoch": 2, "loss": 0.5, "acc1": 0.8, "val_loss": 0.6, "val_acc1": 0.7, "lr": 0.01}])
    path = history.plot(tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
