"""Training loop: ``fit``, ``evaluate``, ``History``, callbacks, and whole-run checkpoints.

``fit(model, train_loader, val_loader, optimizer=..., epochs=...)`` runs the usual loop (zero_grad,
forward, loss, backward, step) for classification and returns a ``History``: per epoch the training
loss and top-1/top-5 accuracy (measured on the fly, in training mode), the validation loss and
accuracies when a ``val_loader`` is given (``evaluate``, in eval mode), the learning rate and the
seconds taken. A tqdm bar shows progress on a terminal and stays quiet otherwise.

- **Auxiliary heads** (GoogLeNet): a model in training mode may return a tuple ``(main, aux1, aux2,
  ...)``; the loss is ``loss(main) + aux_loss_weight * sum(loss(aux))`` and accuracies use ``main``.
- **Schedules**: ``scheduler.step()`` after each epoch; ``ReduceLROnPlateau`` gets the validation loss
  (the training loss without a validation set).
- **Callbacks**: ``EarlyStopping``, ``Checkpoint`` or your own ``Callback`` subclass.
- **Resuming**: ``save_training_state`` stores everything a run depends on (model, optimizer,
  scheduler, epoch, history, the loaders' seed and epoch, cnnx's random generator); ``fit(...,
  resume=path)`` restores it and continues. A resumed run ends with bitwise the same weights as an
  uninterrupted one (same thread count), because the data order and augmentation depend only on
  (seed, epoch) and every other random draw comes from the restored generator.
"""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import random as _random
from .autograd import no_grad
from .io import load, save
from .nn.loss import CrossEntropyLoss
from .optim.lr_scheduler import ReduceLROnPlateau
from .tensor import Tensor

__all__ = ["fit", "evaluate", "History", "Callback", "EarlyStopping", "Checkpoint", "save_training_state",
           "load_training_state", "topk_correct"]

_STATE_FORMAT = "cnnx.training_state"


class History:
    """Per-epoch records of a run. ``history["val_acc1"]`` is the list of one metric over epochs
    (None where an epoch lacks it); ``history.epochs`` the list of per-epoch dicts."""

    def __init__(self, epochs: Iterable[dict] = ()):
        self.epochs: list[dict] = [dict(e) for e in epochs]

    def append(self, logs: dict) -> None:
        self.epochs.append(dict(logs))

    def keys(self) -> list[str]:
        keys: dict = {}
        for e in self.epochs:
            keys.update(dict.fromkeys(e))
        return list(keys)

    def __getitem__(self, key: str) -> list:
        if key not in self.keys():
            raise KeyError(f"history has no metric {key!r}; it has {', '.join(self.keys()) or 'none yet'}")
        return [e.get(key) for e in self.epochs]

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __len__(self) -> int:
        return len(self.epochs)

    def state_dict(self) -> list[dict]:
        return [dict(e) for e in self.epochs]

    def plot(self, path) -> Path:
        """Draw loss, accuracy and learning rate curves to a PNG at ``path`` (needs matplotlib, the
        ``plot`` extra). Returns the path."""
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("plotting training curves needs matplotlib: pip install 'cnnx[plot]'") from None
        epochs = [e.get("epoch", i + 1) for i, e in enumerate(self.epochs)]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, (title, keys) in zip(axes, [("loss", ["loss", "val_loss"]),
                                            ("top-1 accuracy (%)", ["acc1", "val_acc1"]),
                                            ("learning rate", ["lr"])]):
            for k in keys:
                if k in self:
                    values = [np.nan if v is None else v * (100 if "acc" in k else 1) for v in self[k]]
                    ax.plot(epochs, values, marker="o", markersize=3, label=k)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            if title == "learning rate":
                ax.set_yscale("log")
            else:
                ax.legend()
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def __repr__(self) -> str:
        last = self.epochs[-1] if self.epochs else {}
        return f"History({len(self)} epochs, last={last})"


class Callback:
    """Hooks ``fit`` calls; override what you need. ``run`` is the ``_Run`` in progress: it has
    ``model``, ``optimizer``, ``scheduler``, ``history``, ``epoch`` and ``stop_training`` (set it to
    True to end after the current epoch)."""

    def on_train_begin(self, run) -> None: ...

    def on_epoch_begin(self, epoch: int, run) -> None: ...

    def on_batch_end(self, batch: int, logs: dict, run) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict, run) -> None: ...

    def on_train_end(self, run) -> None: ...


def _resolve_mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` (default ``val_loss``) has not improved by more than ``min_delta`` for
    ``patience`` epochs; ``restore_best_weights`` puts back the best epoch's weights at the end."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode = _resolve_mode(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.wait = 0
        self.stopped_epoch = None
        self._best_state = None

    def on_epoch_end(self, epoch, logs, run):
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"EarlyStopping: metric {self.monitor!r} is not logged; available: {', '.join(logs)}")
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_state = {k: v.numpy().copy() for k, v in run.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                run.stop_training = True

    def on_train_end(self, run):
        if self.restore_best_weights and self._best_state is not None:
            run.model.load_state_dict(self._best_state)


class Checkpoint(Callback):
    """Save the whole training state to ``path`` every ``every`` epochs (and after the last), so
    ``fit(..., resume=path)`` continues the run; ``extra`` (JSON-able) is stored with it. With
    ``best_path`` and ``monitor``, the model's weights at the best epoch also go to ``best_path``.
    (Callbacks' own counters, such as EarlyStopping's patience, are not part of the state.)"""

    def __init__(self, path, every: int = 1, best_path=None, monitor: str = "val_loss", mode: str = "auto",
                 extra: dict | None = None):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Checkpoint: every must be a positive int, got {every!r}")
        self.path = Path(path)
        self.every = every
        self.best_path = None if best_path is None else Path(best_path)
        self.monitor = monitor
        self.mode = _resolve_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.extra = extra

    def on_epoch_end(self, epoch, logs, run):
        if (epoch + 1) % self.every == 0 or epoch + 1 == run.epochs or run.stop_training:
            run.save(self.path, self.extra)
        if self.best_path is not None and logs.get(self.monitor) is not None:
            value = logs[self.monitor]
            if value < self.best if self.mode == "min" else value > self.best:
                self.best = value
                save(run.model.state_dict(), self.best_path)


def topk_correct(logits: np.ndarray, target: np.ndarray, ks: Sequence[int] = (1, 5)) -> list[int]:
    """How many rows of ``logits`` (N x C) have ``target`` among their k largest entries, per k
    (k is capped at C). Ties count in the target's favour only when it is strictly inside the top k."""
    n, c = logits.shape
    out = []
    target_score = logits[np.arange(n), target]
    higher = (logits > target_score[:, None]).sum(axis=1)
    for k in ks:
        out.append(int((higher < min(k, c)).sum()))
    return out


def _split_output(output):
    if isinstance(output, Tensor):
        return output, ()
    if isinstance(output, (tuple, list)) and output and all(isinstance(o, Tensor) for o in output):
        return output[0], tuple(output[1:])
    raise TypeError(f"the model returned {type(output).__name__}; fit expects a Tensor of logits, or in training "
                    "mode a tuple (main, aux1, ...) of them")


def _batch(batch):
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError("each batch must be an (inputs, targets) pair")
    x, y = batch[0], batch[1]
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if not isinstance(y, Tensor):
        y = Tensor(y)
    return x, y


def evaluate(model, loader, loss=None, topk: Sequence[int] = (1, 5)) -> dict:
    """Mean loss and top-k accuracies (fractions) of ``model`` over ``loader``, in eval mode and
    without recording gradients; the model's mode is restored afterwards. Returns ``{"loss": ...,
    "acc1": ..., "acc5": ..., "n": samples}``."""
    loss_fn = CrossEntropyLoss() if loss is None else loss
    was_training = model.training
    model.eval()
    total, n, correct = 0.0, 0, [0] * len(topk)
    try:
        with no_grad():
            for batch in loader:
                x, y = _batch(batch)
                out, _ = _split_output(model(x))
                b = len(y)
                total += float(loss_fn(out, y).item()) * b
                for i, c in enumerate(topk_correct(out.numpy(), y.numpy(), topk)):
                    correct[i] += c
                n += b
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    result = {"loss": total / n}
    result.update({f"acc{k}": c / n for k, c in zip(topk, correct)})
    result["n"] = n
    return result


def save_training_state(path, *, model, optimizer=None, scheduler=None, epoch: int = 0, history=None,
                        loaders: dict | None = None, extra: dict | None = None) -> None:
    """Write everything a run depends on to ``path`` (a ``cnnx.save`` file): the model's state dict,
    the optimizer's and scheduler's, the number of finished epochs, the history, the loaders' seed and
    epoch (``{"train": loader, ...}``), cnnx's random generator state and ``extra`` (JSON-able)."""
    state = {
        "format": _STATE_FORMAT,
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "history": [] if history is None else history.state_dict(),
        "loaders": {name: ld.state_dict() for name, ld in (loaders or {}).items() if ld is not None},
        "rng": _random.get_rng_state(),
        "extra": extra or {},
    }
    save(state, path)


def load_training_state(path, *, model, optimizer=None, scheduler=None, loaders: dict | None = None) -> dict:
    """Restore what ``save_training_state`` wrote into the given objects (and cnnx's generator);
    returns ``{"epoch": finished epochs, "history": History, "extra": dict}``. ValueError naming the
    file when it is not a training state."""
    state = load(path)
    if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
        raise ValueError(f"{path}: not a cnnx training state (use cnnx.load for plain checkpoints)")
    model.load_state_dict(state["model"])
    if optimizer is not None:
        if state["optimizer"] is None:
            raise ValueError(f"{path}: the checkpoint has no optimizer state")
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    for name, loader in (loaders or {}).items():
        if loader is not None and name in state["loaders"]:
            loader.load_state_dict(state["loaders"][name])
    _random.set_rng_state(state["rng"])
    return {"epoch": int(state["epoch"]), "history": History(state["history"]), "extra": state.get("extra", {})}


class _Run:
    """The state of one ``fit`` call, handed to callbacks."""

    def __init__(self, model, optimizer, scheduler, train_loader, val_loader, epochs, history):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.epochs, self.history = epochs, history
        self.epoch = 0
        self.stop_training = False

    def save(self, path, extra: dict | None = None) -> None:
        """Save the training state after the current epoch (``fit(resume=path)`` continues from it)."""
        save_training_state(path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                            epoch=self.epoch + 1, history=self.history,
                            loaders={"train": self.train_loader, "val": self.val_loader}, extra=extra)


def _progress(loader, epoch: int, epochs: int, verbose: int):
    if verbose < 1:
        return loader, None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return loader, None
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=None, unit="batch",
               dynamic_ncols=True)
    return bar, bar


def _format_logs(epoch: int, epochs: int, logs: dict) -> str:
    parts = [f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}", f"loss {logs['loss']:.4f}",
             f"acc {100 * logs['acc1']:.2f}%"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_acc {100 * logs['val_acc1']:.2f}%"]
    parts += [f"lr {logs['lr']:.3g}", f"{logs['time']:.1f}s"]
    return "  ".join(parts)


def fit(model, train_loader, val_loader=None, *, optimizer, epochs: int, scheduler=None, loss=None,
        aux_loss_weight: float = 0.3, callbacks: Sequence[Callback] = (), resume=None, verbose: int = 1,
        plot=None) -> History:
    """Train ``model`` for ``epochs`` epochs (counting from 0, or from where ``resume`` — a file saved by
    ``Checkpoint`` / ``save_training_state`` — left off) and return the ``History``.

    ``loss`` defaults to cross entropy. ``verbose``: 0 silent, 1 a progress bar on terminals and one
    line per epoch. ``plot``: a PNG path for the training curves (skipped with a warning when
    matplotlib is missing).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
    if not (isinstance(aux_loss_weight, (int, float)) and aux_loss_weight >= 0):
        raise ValueError(f"fit: aux_loss_weight must be a number >= 0, got {aux_loss_weight!r}")
    loss_fn = CrossEntropyLoss() if loss is None else loss
    history = History()
    start = 0
    if resume is not None:
        restored = load_training_state(resume, model=model, optimizer=optimizer, scheduler=scheduler,
                                       loaders={"train": train_loader, "val": val_loader})
        start, history = restored["epoch"], restored["history"]
        if verbose:
            print(f"resumed from {resume} after epoch {start}", flush=True)
    run = _Run(model, optimizer, scheduler, train_loader, val_loader, epochs, history)
    callbacks = list(callbacks)
    for cb in callbacks:
        cb.on_train_begin(run)
    for epoch in range(start, epochs):
        run.epoch = epoch
        for cb in callbacks:
            cb.on_epoch_begin(epoch, run)
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        total, n, c1, c5 = 0.0, 0, 0, 0
        batches, bar = _progress(train_loader, epoch, epochs, verbose)
        for b, batch in enumerate(batches):
            x, y = _batch(batch)
            optimizer.zero_grad()
            main, aux = _split_output(model(x))
            objective = loss_fn(main, y)
            for a in aux:
                objective = objective + aux_loss_weight * loss_fn(a, y)
            objective.backward()
            optimizer.step()
            value = float(objective.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"fit: the loss became {value} at epoch {epoch + 1}, batch {b + 1} "
                                         "(try a lower learning rate)")
            k = len(y)
            top1, top5 = topk_correct(main.detach().numpy(), y.numpy(), (1, 5))
            total, n, c1, c5 = total + value * k, n + k, c1 + top1, c5 + top5
            if bar is not None:
                bar.set_postfix(loss=f"{total / n:.4f}", acc=f"{100 * c1 / n:.1f}%", refresh=False)
            if callbacks:
                for cb in callbacks:
                    cb.on_batch_end(b, {"loss": value, "batch_size": k}, run)
        if bar is not None:
            bar.close()
        if n == 0:
            raise ValueError("fit: the training loader yielded no batches")
        logs = {"epoch": epoch + 1, "loss": total / n, "acc1": c1 / n, "acc5": c5 / n}
        if val_loader is not None:
            val = evaluate(model, val_loader, loss_fn)
            logs.update(val_loss=val["loss"], val_acc1=val["acc1"], val_acc5=val["acc5"])
        logs["lr"] = lr
        if scheduler is not None:
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(logs.get("val_loss", logs["loss"]))
            else:
                scheduler.step()
        logs["time"] = time.perf_counter() - t0
        history.append(logs)
        if verbose:
            print(_format_logs(epoch, epochs, logs), flush=True)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs, run)
        if run.stop_training:
            if verbose:
                print(f"stopping early after epoch {epoch + 1}", flush=True)
            break
    for cb in callbacks:
        cb.on_train_end(run)
    if plot is not None and len(history):
        try:
            history.plot(plot)
        except ImportError as e:
            warnings.warn(f"{e}; training curves not drawn", RuntimeWarning, stacklevel=2)
    return history
