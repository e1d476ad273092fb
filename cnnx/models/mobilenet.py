"""MobileNet v1 (Howard et al., "MobileNets: Efficient convolutional neural networks for mobile vision
applications", 2017, arXiv:1704.04861)."""
from __future__ import annotations

import math
import numbers

from .. import nn
from ..nn import init
from ._checks import check_bool, check_num_classes

__all__ = ["MobileNetV1", "ConvBNReLU", "DepthwiseSeparable", "mobilenet_v1"]

# Table 1 of the paper: (stride of the depthwise 3x3, output channels of the pointwise 1x1) for the 13
# depthwise-separable blocks. The table prints "s2" for the last depthwise layer, but its input and
# output are both 7 x 7: it is stride 1 (as in every released implementation).
BLOCKS = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
          (1, 512), (1, 512), (1, 512), (1, 512), (1, 512),
          (2, 1024), (1, 1024)]


class ConvBNReLU(nn.Sequential):
    """Convolution without bias, batch norm, ReLU: children ``0``, ``1``, ``2``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DepthwiseSeparable(nn.Module):
    """A depthwise-separable block (Fig. 3 of the paper): ``depthwise`` 3x3 (one filter per channel,
    ``groups == in_channels``) + BN + ReLU, then ``pointwise`` 1x1 + BN + ReLU. It costs
    ``1 / out_channels + 1 / 9`` of a full 3x3 convolution's multiply-adds."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.depthwise = ConvBNReLU(in_channels, in_channels, 3, stride=stride, groups=in_channels)
        self.pointwise = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    """MobileNet v1, Table 1 of the paper, on 3 x 224 x 224 images (any resolution works):
    ``features.0`` a full 3x3 / 2 convolution to 32 channels (+ BN + ReLU), ``features.1`` ..
    ``features.13`` the depthwise-separable blocks (64 .. 1024 channels, five of them strided: 1024 x
    7 x 7 at 224), ``avgpool`` global average, ``fc`` 1024 -> num_classes.

    ``width_mult`` (the paper's alpha) scales every layer's channels to ``int(channels * alpha)``;
    1.0 / 0.75 / 0.5 / 0.25 give 4,231,976 / 2,585,560 / 1,331,592 / 470,072 parameters with 1000
    classes (weights, the fc bias and batch-norm gamma/beta; Keras also counts the running statistics).
    The resolution multiplier is just the input size (224, 192, 160, 128).

    ``small_input=True`` makes the first convolution stride 1, for 3 x 32 x 32 images: the last blocks
    then work on 2 x 2 maps instead of 1 x 1.

    Initialised like torchvision's MobileNets: convolutions He-normal (fan_out), batch norm 1 / 0,
    ``fc`` N(0, 0.01) with zero bias.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, small_input: bool = False):
        super().__init__()
        num_classes = check_num_classes("mobilenet_v1", num_classes)
        if isinstance(width_mult, bool) or not isinstance(width_mult, numbers.Real):
            raise TypeError(f"mobilenet_v1(): width_mult must be a number, got {type(width_mult).__name__}")
        if not (math.isfinite(width_mult) and width_mult > 0):
            raise ValueError(f"mobilenet_v1(): width_mult must be > 0, got {width_mult}")
        small_input = check_bool("mobilenet_v1", "small_input", small_input)

        def width(channels: int) -> int:
            c = int(channels * width_mult)
            if c < 1:
                raise ValueError(f"mobilenet_v1(): width_mult={width_mult} leaves a layer of {channels} "
                                 "channels with none")
            return c

        self.width_mult = float(width_mult)
        channels = width(32)
        layers = [ConvBNReLU(3, channels, 3, stride=1 if small_input else 2)]
        for stride, out in BLOCKS:
            layers.append(DepthwiseSeparable(channels, width(out), stride))
            channels = width(out)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init.normal_(m.weight, 0.0, 0.01)
                init.zeros_(m.bias)

    def forward(self, x):
        return self.fc(self.avgpool(self.features(x)).flatten(1))


def mobilenet_v1(width_mult: float = 1.0, num_classes: int = 1000, small_input: bool = False) -> MobileNetV1:
    """MobileNet v1 (Howard et al. 2017) for 3 x 224 x 224 inputs, or any resolution: see
    :class:`MobileNetV1`. ``width_mult`` (first, so ``mobilenet_v1(0.5)`` is the half-width network)
    1.0 / 0.75 / 0.5 / 0.25: 4,231,976 / 2,585,560 / 1,331,592 / 470,072 parameters; ``small_input``
    for 32 x 32 images (first convolution stride 1)."""
    return MobileNetV1(num_classes=num_classes, width_mult=width_mult, small_input=small_input)
