"""VGG (Simonyan and Zisserman, "Very deep convolutional networks for large-scale image recognition",
ICLR 2015, arXiv:1409.1556), configurations A, B, D and E with and without batch norm, in torchvision's
layout and names."""
from __future__ import annotations

from .. import nn
from ..nn import init
from ._checks import check_num_classes

__all__ = ["VGG", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]

# Table 1 of the paper: output channels of each 3x3 convolution, "M" a 2x2 / 2 max pooling.
CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # A
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # B
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # D
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],  # E
}


def make_layers(config: list, batch_norm: bool = False) -> nn.Sequential:
    """The convolutional part: 3x3 / 1, pad 1 convolutions (+ batch norm) + ReLU, and 2x2 / 2 pooling."""
    layers, channels = [], 3
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG on 3 x 224 x 224 images: ``features`` (the configuration's 3x3 convolutions and five 2x2 / 2
    poolings: 512 x 7 x 7), ``avgpool`` (``AdaptiveAvgPool2d((7, 7))``, the identity at 224; other
    input sizes, down to 32 x 32, are pooled or repeated to 7 x 7 as in torchvision), ``classifier``
    (FC 25088 -> 4096 -> 4096 -> num_classes, ReLU and dropout 0.5 after the first two).

    Initialised as torchvision: convolutions He-normal (fan_out, ReLU gain) with zero bias, batch norm
    weight 1 and bias 0, linear layers N(0, 0.01) with zero bias.
    """

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5,
                 init_weights: bool = True):
        super().__init__()
        num_classes = check_num_classes("VGG", num_classes)
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    init.ones_(m.weight)
                    init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    init.normal_(m.weight, 0.0, 0.01)
                    init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def _vgg(name: str, batch_norm: bool, num_classes) -> VGG:
    fn = name + ("_bn" if batch_norm else "")
    num_classes = check_num_classes(fn, num_classes)
    return VGG(make_layers(CONFIGS[name], batch_norm), num_classes=num_classes)


def vgg11(num_classes: int = 1000) -> VGG:
    """VGG-11, configuration A (Simonyan and Zisserman 2015), 3 x 224 x 224 input: 132,863,336 parameters."""
    return _vgg("vgg11", False, num_classes)


def vgg11_bn(num_classes: int = 1000) -> VGG:
    """VGG-11 with batch norm after every convolution (torchvision's ``vgg11_bn``), 3 x 224 x 224 input."""
    return _vgg("vgg11", True, num_classes)


def vgg13(num_classes: int = 1000) -> VGG:
    """VGG-13, configuration B (Simonyan and Zisserman 2015), 3 x 224 x 224 input: 133,047,848 parameters."""
    return _vgg("vgg13", False, num_classes)


def vgg13_bn(num_classes: int = 1000) -> VGG:
    """VGG-13 with batch norm after every convolution (torchvision's ``vgg13_bn``), 3 x 224 x 224 input."""
    return _vgg("vgg13", True, num_classes)


def vgg16(num_classes: int = 1000) -> VGG:
    """VGG-16, configuration D (Simonyan and Zisserman 2015), 3 x 224 x 224 input: 138,357,544 parameters."""
    return _vgg("vgg16", False, num_classes)


def vgg16_bn(num_classes: int = 1000) -> VGG:
    """VGG-16 with batch norm after every convolution (torchvision's ``vgg16_bn``), 3 x 224 x 224 input."""
    return _vgg("vgg16", True, num_classes)


def vgg19(num_classes: int = 1000) -> VGG:
    """VGG-19, configuration E (Simonyan and Zisserman 2015), 3 x 224 x 224 input: 143,667,240 parameters."""
    return _vgg("vgg19", False, num_classes)


def vgg19_bn(num_classes: int = 1000) -> VGG:
    """VGG-19 with batch norm after every convolution (torchvision's ``vgg19_bn``), 3 x 224 x 224 input."""
    return _vgg("vgg19", True, num_classes)
