"""``cnnx.models``: the seed's architectures, faithful to their papers, with torchvision's layouts and
parameter names where torchvision has the model (so converted weights load with ``strict=True``).

``list_models()`` names every constructor; ``get_model(name, **kwargs)`` builds one by name (the
``cnnx train`` / ``cnnx summary`` commands use these). ``docs/models.md`` tabulates parameters, MACs and
input sizes.
"""
from __future__ import annotations

from typing import Callable

from .. import nn
from .alexnet import AlexNet, alexnet
from .googlenet import GoogLeNet, GoogLeNetOutputs, googlenet
from .lenet import LeNet5, lenet5
from .mobilenet import MobileNetV1, mobilenet_v1
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from .vgg import VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn
from .weights import load_safetensors, load_torch_state_dict, save_safetensors

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "lenet5": lenet5,
    "alexnet": alexnet,
    "vgg11": vgg11, "vgg11_bn": vgg11_bn, "vgg13": vgg13, "vgg13_bn": vgg13_bn,
    "vgg16": vgg16, "vgg16_bn": vgg16_bn, "vgg19": vgg19, "vgg19_bn": vgg19_bn,
    "googlenet": googlenet,
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
    "resnet152": resnet152,
    "mobilenet_v1": mobilenet_v1,
}

# (channels, height, width) of each model's standard input (the size its paper trains on).
INPUT_SIZES = {name: (3, 224, 224) for name in _REGISTRY}
INPUT_SIZES["lenet5"] = (1, 32, 32)
INPUT_SIZES["alexnet"] = (3, 227, 227)


def list_models() -> list[str]:
    """The names ``get_model`` accepts, in the seed's order (LeNet-5 to MobileNet v1)."""
    return list(_REGISTRY)


def get_model(name: str, **kwargs) -> nn.Module:
    """Build the model called ``name`` (see ``list_models()``) with the constructor's keyword arguments,
    e.g. ``get_model("resnet18", num_classes=10, small_input=True)``."""
    if not isinstance(name, str):
        raise TypeError(f"get_model(): name must be a str, got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"get_model(): unknown model {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[key](**kwargs)


__all__ = ["list_models", "get_model", "INPUT_SIZES", "load_torch_state_dict", "load_safetensors",
           "save_safetensors", "LeNet5", "AlexNet", "VGG", "GoogLeNet", "GoogLeNetOutputs", "ResNet", "MobileNetV1",
           *_REGISTRY]
