"""PyTorch definitions of the networks in cnnx.models, written independently from torchvision's source
layout (torchvision itself is not a dependency): torchvision's module names and forward order where it
has the model, the papers' networks otherwise. Test oracles only; import after
``pytest.importorskip("torch")``."""
from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------- LeNet-5


class LeNet5(nn.Module):
    def __init__(self, num_classes=10, activation="tanh", pooling="avg"):
        super().__init__()
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        pool = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}[pooling]
        self.c1, self.act1, self.s2 = nn.Conv2d(1, 6, 5), act(), pool(2, 2)
        self.c3, self.act3, self.s4 = nn.Conv2d(6, 16, 5), act(), pool(2, 2)
        self.c5, self.act5 = nn.Conv2d(16, 120, 5), act()
        self.f6, self.act6 = nn.Linear(120, 84), act()
        self.output = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.s2(self.act1(self.c1(x)))
        x = self.s4(self.act3(self.c3(x)))
        x = torch.flatten(self.act5(self.c5(x)), 1)
        return self.output(self.act6(self.f6(x)))


# --------------------------------------------------------------------------------------------- AlexNet


class AlexNet(nn.Module):
    def __init__(self, num_classes=1000, variant="paper", groups=1):
        super().__init__()
        if variant == "paper":
            lrn = dict(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)  # the paper's alpha, PyTorch's convention
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(inplace=True), nn.LocalResponseNorm(**lrn),
                nn.MaxPool2d(3, 2),
                nn.Conv2d(96, 256, 5, padding=2, groups=groups), nn.ReLU(inplace=True),
                nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),
                nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 384, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2))
        else:
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(9216, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# --------------------------------------------------------------------------------------------- VGG

VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, config, batch_norm=False, num_classes=1000):
        super().__init__()
        layers, c = [], 3
        for v in VGG_CONFIGS[config]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1)] + ([nn.BatchNorm2d(v)] if batch_norm else [])
                layers.append(nn.ReLU(inplace=True))
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(25088, 4096), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# --------------------------------------------------------------------------------------------- GoogLeNet

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, bn, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=not bn, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001) if bn else None

    def forward(self, x):
        x = self.conv(x)
        return F.relu(self.bn(x) if self.bn is not None else x, inplace=True)


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp, bn, k5):
        super().__init__()
        self.branch1 = BasicConv2d(cin, c1, bn, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, c3r, bn, kernel_size=1),
                                     BasicConv2d(c3r, c3, bn, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, c5r, bn, kernel_size=1),
                                     BasicConv2d(c5r, c5, bn, kernel_size=k5, padding=k5 // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv2d(cin, pp, bn, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, cin, num_classes, bn, paper):
        super().__init__()
        self.paper = paper
        self.conv = BasicConv2d(cin, 128, bn, kernel_size=1)
        self.fc1, self.fc2 = nn.Linear(2048, 1024), nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(0.7)

    def forward(self, x):
        if self.paper and x.shape[-1] in (14, 15, 16) and x.shape[-2] in (14, 15, 16):
            x = F.avg_pool2d(x, 5, 3)  # the paper's 5x5 / 3 window where it gives 4 x 4
        else:
            x = F.adaptive_avg_pool2d(x, (4, 4))
        x = torch.flatten(self.conv(x), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


INCEPTIONS = [("3a", 192, 64, 96, 128, 16, 32, 32), ("3b", 256, 128, 128, 192, 32, 96, 64),
              ("4a", 480, 192, 96, 208, 16, 48, 64), ("4b", 512, 160, 112, 224, 24, 64, 64),
              ("4c", 512, 128, 128, 256, 24, 64, 64), ("4d", 512, 112, 144, 288, 32, 64, 64),
              ("4e", 528, 256, 160, 320, 32, 128, 128), ("5a", 832, 256, 160, 320, 32, 128, 128),
              ("5b", 832, 384, 192, 384, 48, 128, 128)]


class GoogLeNet(nn.Module):
    def __init__(self, num_classes=1000, variant="paper", aux_logits=True):
        super().__init__()
        paper = variant == "paper"
        self.paper = paper
        bn, k5 = not paper, 5 if paper else 3
        self.conv1 = BasicConv2d(3, 64, bn, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.lrn = nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0) if paper else nn.Identity()
        self.conv2 = BasicConv2d(64, 64, bn, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, bn, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(3, 2, ceil_mode=True) if paper else nn.MaxPool2d(2, 2, ceil_mode=True)
        for name, *args in INCEPTIONS:
            setattr(self, "inception" + name, Inception(*args, bn, k5))
        self.aux1 = InceptionAux(512, num_classes, bn, paper) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, bn, paper) if aux_logits else None
        self.dropout = nn.Dropout(0.4 if paper else 0.2)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.lrn(self.maxpool1(self.conv1(x)))
        x = self.maxpool2(self.lrn(self.conv3(self.conv2(x))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        heads = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if heads else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if heads else None
        x = self.inception5b(self.inception5a(self.maxpool4(self.inception4e(x))))
        x = self.fc(self.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))
        return GoogLeNetOutputs(x, aux2, aux1) if heads else x


# --------------------------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


RESNETS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
           "resnet50": (Bottleneck, [3, 4, 6, 3]), "resnet101": (Bottleneck, [3, 4, 23, 3]),
           "resnet152": (Bottleneck, [3, 8, 36, 3])}


class ResNet(nn.Module):
    def __init__(self, depth, num_classes=1000, small_input=False):
        super().__init__()
        block, layers = RESNETS[depth]
        self.conv1 = (nn.Conv2d(3, 64, 3, 1, 1, bias=False) if small_input else nn.Conv2d(3, 64, 7, 2, 3, bias=False))
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (planes, n) in enumerate(zip([64, 128, 256, 512], layers)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != planes * block.expansion:
                down = nn.Sequential(nn.Conv2d(cin, planes * block.expansion, 1, stride, bias=False),
                                     nn.BatchNorm2d(planes * block.expansion))
            blocks = [block(cin, planes, stride, down)]
            cin = planes * block.expansion
            blocks += [block(cin, planes) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --------------------------------------------------------------------------------------------- MobileNet v1


def conv_bn_relu(cin, cout, k, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.depthwise = conv_bn_relu(cin, cin, 3, stride, groups=cin)
        self.pointwise = conv_bn_relu(cin, cout, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    def __init__(self, num_classes=1000, width_mult=1.0, small_input=False):
        super().__init__()
        cfg = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]
        c = int(32 * width_mult)
        layers = [conv_bn_relu(3, c, 3, 1 if small_input else 2)]
        for s, out in cfg:
            layers.append(DepthwiseSeparable(c, int(out * width_mult), s))
            c = int(out * width_mult)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def build(name, kwargs, num_classes):
    """The PyTorch twin of ``cnnx.models.get_model(name, num_classes=num_classes, **kwargs)``."""
    if name == "lenet5":
        return LeNet5(num_classes, **kwargs)
    if name == "alexnet":
        return AlexNet(num_classes, **kwargs)
    if name.startswith("vgg"):
        return VGG(name[:5], name.endswith("_bn"), num_classes)
    if name == "googlenet":
        return GoogLeNet(num_classes, **kwargs)
    if name.startswith("resnet"):
        return ResNet(name, num_classes, **kwargs)
    if name == "mobilenet_v1":
        return MobileNetV1(num_classes, **kwargs)
    raise KeyError(name)
