"""``cnnx.nn``: layers and models with PyTorch's names, parameters and state-dict keys."""
from __future__ import annotations

from . import functional, init
from .activation import Dropout, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .containers import ModuleList, Sequential
from .conv import Conv2d
from .linear import Flatten, Identity, Linear
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module
from .normalization import BatchNorm2d, LocalResponseNorm
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["functional", "init", "Module", "Parameter", "Sequential", "ModuleList", "Conv2d", "Linear",
           "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "LocalResponseNorm", "BatchNorm2d", "Dropout",
           "ReLU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "Flatten", "Identity", "CrossEntropyLoss",
           "NLLLoss", "MSELoss"]
