"""ResNet (He, Zhang, Ren and Sun, "Deep residual learning for image recognition", CVPR 2016,
arXiv:1512.03385), in torchvision's "v1.5" layout and names."""
from __future__ import annotations

from .. import nn
from ..nn import init
from ..nn._fusion import conv_bn_act
from ._checks import check_bool, check_num_classes

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (the first strided) with batch norm; the input, projected by ``downsample``
    (1x1 convolution + batch norm) where the shape changes, is added before the last ReLU."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = conv_bn_act(self.conv1, self.bn1, self.relu, x)  # relu(bn1(conv1(x))), fused in inference
        out = conv_bn_act(self.conv2, self.bn2, None, out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided: torchvision's v1.5, where the paper strides the first 1x1), 1x1 expand
    to 4 x planes, each with batch norm; shortcut as in :class:`BasicBlock`."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = conv_bn_act(self.conv1, self.bn1, self.relu, x)  # relu(bn1(conv1(x))), fused in inference
        out = conv_bn_act(self.conv2, self.bn2, self.relu, out)
        out = conv_bn_act(self.conv3, self.bn3, None, out)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet on 3 x 224 x 224 images (Table 1 of the paper), torchvision's names:

    =========================  ===========================================  ====================
    module                     what                                         output (ResNet-50)
    =========================  ===========================================  ====================
    conv1, bn1, relu, maxpool  conv 7x7 / 2, batch norm, ReLU, max 3x3 / 2  64 x 56 x 56
    layer1 .. layer4           residual blocks (conv2_x .. conv5_x)         2048 x 7 x 7
    avgpool, fc                global average, linear                       num_classes
    =========================  ===========================================  ====================

    The first block of layer2..4 strides by 2 and has a projection shortcut (``downsample``: 1x1
    convolution + batch norm, the paper's option B), as has layer1's first bottleneck (64 -> 256).
    ``small_input=True`` is the CIFAR-style stem for 32 x 32 images: conv1 3x3 / 1 and no max pooling
    (``maxpool`` is an ``Identity``), so layer4 works on 4 x 4 maps. Any input size works
    (global average pooling).

    Initialised as torchvision: convolutions He-normal (fan_out, ReLU gain), batch norm 1 / 0, ``fc``
    PyTorch's default.
    """

    def __init__(self, block: type, layers: list, num_classes: int = 1000, small_input: bool = False):
        super().__init__()
        num_classes = check_num_classes("ResNet", num_classes)
        small_input = check_bool("ResNet", "small_input", small_input)
        self.inplanes = 64
        if small_input:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(conv_bn_act(self.conv1, self.bn1, self.relu, x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _resnet(fn: str, block: type, layers: list, num_classes, small_input) -> ResNet:
    check_num_classes(fn, num_classes)
    check_bool(fn, "small_input", small_input)
    return ResNet(block, layers, num_classes=num_classes, small_input=small_input)


def resnet18(num_classes: int = 1000, small_input: bool = False) -> ResNet:
    """ResNet-18 (He et al. 2016), 3 x 224 x 224 input (``small_input``: 3 x 32 x 32 stem); basic blocks
    [2, 2, 2, 2]: 11,689,512 parameters."""
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], num_classes, small_input)


def resnet34(num_classes: int = 1000, small_input: bool = False) -> ResNet:
    """ResNet-34 (He et al. 2016), 3 x 224 x 224 input (``small_input``: 3 x 32 x 32 stem); basic blocks
    [3, 4, 6, 3]: 21,797,672 parameters."""
    return _resnet("resnet34", BasicBlock, [3, 4, 6, 3], num_classes, small_input)


def resnet50(num_classes: int = 1000, small_input: bool = False) -> ResNet:
    """ResNet-50 (He et al. 2016), 3 x 224 x 224 input (``small_input``: 3 x 32 x 32 stem); bottlenecks
    [3, 4, 6, 3]: 25,557,032 parameters."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], num_classes, small_input)


def resnet101(num_classes: int = 1000, small_input: bool = False) -> ResNet:
    """ResNet-101 (He et al. 2016), 3 x 224 x 224 input (``small_input``: 3 x 32 x 32 stem); bottlenecks
    [3, 4, 23, 3]: 44,549,160 parameters."""
    return _resnet("resnet101", Bottleneck, [3, 4, 23, 3], num_classes, small_input)


def resnet152(num_classes: int = 1000, small_input: bool = False) -> ResNet:
    """ResNet-152 (He et al. 2016), 3 x 224 x 224 input (``small_input``: 3 x 32 x 32 stem); bottlenecks
    [3, 8, 36, 3]: 60,192,808 parameters."""
    return _resnet("resnet152", Bottleneck, [3, 8, 36, 3], num_classes, small_input)
