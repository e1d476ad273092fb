"""``cnnx.optim``: optimizers (``SGD``, ``Adam``, ``AdamW``) and ``lr_scheduler``, with PyTorch's update
rules, parameter groups and state dicts."""
from __future__ import annotations

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
