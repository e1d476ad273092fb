"""Learning-rate schedules: ``StepLR``, ``MultiStepLR``, ``CosineAnnealingLR``, ``ReduceLROnPlateau``.

Same rules and formulas as ``torch.optim.lr_scheduler``: a scheduler sets each group's ``lr`` when it
is built (remembering ``initial_lr``) and again at every ``step()``, normally once per epoch after the
optimizer's steps. The epoch-based schedules use PyTorch's chainable (recursive) forms, so they
compose with other code that changes ``lr``. ``ReduceLROnPlateau`` is AlexNet's rule (divide the
learning rate by 10 when the validation loss stops improving): ``step(val_loss)``.

``state_dict()`` holds every attribute but the optimizer (plain numbers and lists, JSON-friendly).
"""
from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Mapping

from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "CosineAnnealingLR", "ReduceLROnPlateau"]


def _check_optimizer(owner: str, optimizer) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{owner}: {type(optimizer).__name__} is not an Optimizer")


def _positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be a positive int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)


def _number(owner: str, name: str, value, *, positive: bool) -> float:
    """``value`` as a finite float that is > 0 (``positive``) or >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not (math.isfinite(v) and (v > 0 if positive else v >= 0)):
        raise ValueError(f"{owner}: {name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return v


def _positive_float(owner: str, name: str, value) -> float:
    return _number(owner, name, value, positive=True)


def _check_state_dict(owner: str, state_dict) -> None:
    if not isinstance(state_dict, Mapping) or not all(isinstance(k, str) for k in state_dict):
        raise TypeError(f"{owner}.load_state_dict(): state_dict must be a dict of attribute names (from "
                        f"state_dict()), got {type(state_dict).__name__}")


class LRScheduler:
    """Base of the epoch-based schedules: subclasses define ``get_lr()`` (the new lrs, computed from
    the groups' current ``lr`` and ``last_epoch``)."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        _check_optimizer(type(self).__name__, optimizer)
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral):
            raise TypeError(f"{type(self).__name__}: last_epoch must be an int (-1 to start), got "
                            f"{type(last_epoch).__name__} {last_epoch!r}")
        if last_epoch < -1:
            raise ValueError(f"{type(self).__name__}: last_epoch must be >= -1, got {last_epoch}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming an "
                                   "optimizer")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self) -> list[float]:
        """The learning rates of this epoch: each schedule (StepLR, CosineAnnealingLR, ...) defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_lr()")

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step()`` set."""
        return self._last_lr

    def step(self) -> None:
        """Advance one epoch and set each group's learning rate."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = float(lr)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, (list, tuple)) else dict(v) if isinstance(v, Counter) else v)
                for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        _check_state_dict(type(self).__name__, state_dict)
        for k, v in state_dict.items():
            if k == "optimizer":
                continue
            if k == "milestones":
                v = Counter({int(m): int(c) for m, c in dict(v).items()})
            self.__dict__[k] = v

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, last_lr={self.get_last_lr()})"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = _positive_int("StepLR", "step_size", step_size)
        self.gamma = _positive_float("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [g["lr"] for g in self.optimizer.param_groups]
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each epoch listed in ``milestones``."""

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        if isinstance(milestones, (str, bytes, Mapping)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"MultiStepLR: milestones must be a list of epochs (ints), got {type(milestones).__name__}")
        milestones = list(milestones)
        for m in milestones:
            _positive_int("MultiStepLR", "each milestone", m)
        if milestones != sorted(milestones):
            raise ValueError(f"MultiStepLR: milestones must be increasing, got {milestones}")
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = _positive_float("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return [g["lr"] for g in self.optimizer.param_groups]
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [g["lr"] * factor for g in self.optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    """Anneal from the initial learning rate to ``eta_min`` along half a cosine over ``T_max`` epochs
    (SGDR without restarts; past ``T_max`` the cosine continues, as in PyTorch)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max = _positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _number("CosineAnnealingLR", "eta_min", eta_min, positive=False)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups, T, e, eta_min = self.optimizer.param_groups, self.T_max, self.last_epoch, self.eta_min
        if e == 0:
            return [g["lr"] for g in groups]
        if self._step_count == 1 and e > 0:  # built with last_epoch > -1: closed form
            return [eta_min + (base - eta_min) * (1 + math.cos(e * math.pi / T)) / 2 for base in self.base_lrs]
        if (e - 1 - T) % (2 * T) == 0:
            return [g["lr"] + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, g in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (g["lr"] - eta_min) + eta_min
                for g in groups]


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when a metric has not improved for ``patience`` epochs.

    ``mode="min"`` (a loss) or ``"max"`` (an accuracy); an improvement must beat the best value by
    ``threshold`` (relative, ``threshold_mode="rel"``, or absolute, ``"abs"``); after a reduction,
    ``cooldown`` epochs pass before bad epochs count again; lrs never go below ``min_lr`` (a number or
    one per group), and changes smaller than ``eps`` are skipped. Call ``step(metric)`` once per epoch.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr=0.0,
                 eps: float = 1e-8):
        _check_optimizer("ReduceLROnPlateau", optimizer)
        if not (_number("ReduceLROnPlateau", "factor", factor, positive=True) < 1):
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"ReduceLROnPlateau: {name} must be an int >= 0, got {value!r}")
        for name, value in (("threshold", threshold), ("eps", eps)):
            _number("ReduceLROnPlateau", name, value, positive=False)
        n = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        if len(min_lrs) != n:
            raise ValueError(f"ReduceLROnPlateau: expected {n} min_lr values (one per group), got {len(min_lrs)}")
        for m in min_lrs:
            _number("ReduceLROnPlateau", "min_lr", m, positive=False)
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode, self.cooldown = float(threshold), threshold_mode, int(cooldown)
        self.min_lrs = [float(m) for m in min_lrs]
        self.eps = float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < best * (1.0 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (1.0 + self.threshold) if self.threshold_mode == "rel" else a > best + self.threshold

    def step(self, metrics) -> None:
        """Record this epoch's metric (a number or one-element tensor) and reduce lrs on a plateau.
        A NaN metric counts as no improvement, as in PyTorch."""
        if isinstance(metrics, (str, bytes, bool)) or not hasattr(metrics, "__float__"):
            raise TypeError(f"ReduceLROnPlateau.step(): metrics must be a number or a one-element tensor, got "
                            f"{type(metrics).__name__}")
        try:
            current = float(metrics)
        except (TypeError, ValueError) as e:
            raise ValueError(f"ReduceLROnPlateau.step(): metrics must be a single number: {e}") from None
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return self._last_lr

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def state_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in self.__dict__.items()
                if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        _check_state_dict("ReduceLROnPlateau", state_dict)
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})

    def __repr__(self) -> str:
        return (f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor}, patience={self.patience}, "
                f"best={self.best}, num_bad_epochs={self.num_bad_epochs})")
