"""GoogLeNet / Inception v1 (Szegedy et al., "Going deeper with convolutions", CVPR 2015,
arXiv:1409.4842), as in the paper and as in torchvision."""
from __future__ import annotations

from collections import namedtuple

from .. import nn
from ..creation import cat
from ..nn import functional as F
from ..nn import init
from ..nn._fusion import conv_bn_act
from ._checks import check_bool, check_choice, check_num_classes

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "BasicConv2d", "Inception", "InceptionAux", "googlenet"]

#: What a GoogLeNet returns in training mode with its auxiliary heads: the main logits, then the heads
#: after inception 4d and 4a (torchvision's type and order). The paper adds each auxiliary loss with
#: weight 0.3: ``loss = ce(out.logits) + 0.3 * (ce(out.aux_logits1) + ce(out.aux_logits2))``.
GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

# Table 1 of the paper: in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTIONS = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class BasicConv2d(nn.Module):
    """Convolution + ReLU: with ``batch_norm`` (torchvision) the convolution has no bias and is followed
    by ``BatchNorm2d(eps=0.001)``; without (the paper) the convolution has a bias."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=not batch_norm, **conv_kwargs)
        if batch_norm:
            self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        else:
            self.bn = None

    def forward(self, x):
        if self.bn is not None:  # relu(bn(conv(x))), fused in inference
            return conv_bn_act(self.conv, self.bn, True, x)
        return F.relu(self.conv(x), inplace=True)


class Inception(nn.Module):
    """The Inception module: 1x1, 1x1 -> 3x3, 1x1 -> "5x5" and 3x3 max-pool -> 1x1 branches, concatenated
    along channels (ch1x1 + ch3x3 + ch5x5 + pool_proj output channels, same height and width).
    ``kernel5`` is the third branch's kernel: 5 in the paper, 3 in torchvision (a known quirk there,
    kept for its weights)."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, batch_norm: bool = True, kernel5: int = 3):
        super().__init__()
        bn = batch_norm
        self.branch1 = BasicConv2d(in_channels, ch1x1, bn, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, bn, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, bn, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, bn, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, bn, kernel_size=kernel5, padding=kernel5 // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, bn, kernel_size=1))

    def forward(self, x):
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """An auxiliary classifier (training only): average pooling to 4 x 4, 1x1 convolution to 128 maps +
    ReLU, FC 2048 -> 1024 + ReLU, dropout 0.7, FC 1024 -> num_classes.

    The paper pools with a 5x5 / 3 window (``paper_pooling``), which gives 4 x 4 on the 14 x 14 maps of
    the standard input; on other sizes, and always in torchvision, it pools adaptively to 4 x 4."""

    def __init__(self, in_channels: int, num_classes: int, batch_norm: bool = True, dropout: float = 0.7,
                 paper_pooling: bool = False):
        super().__init__()
        self.paper_pooling = paper_pooling
        self.conv = BasicConv2d(in_channels, 128, batch_norm, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        h, w = x.shape[-2:]
        if self.paper_pooling and h >= 5 and w >= 5 and (h - 5) // 3 == 3 and (w - 5) // 3 == 3:
            x = F.avg_pool2d(x, 5, 3)
        else:
            x = F.adaptive_avg_pool2d(x, (4, 4))
        x = self.conv(x).flatten(1)
        x = F.relu(self.fc1(x), inplace=True)
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """GoogLeNet on 3 x 224 x 224 images (Table 1 of the paper), torchvision's module names:

    ===========================  ======================================  ===============
    module                       what                                    output
    ===========================  ======================================  ===============
    conv1, maxpool1              conv 7x7 / 2, max 3x3 / 2               64 x 56 x 56
    (lrn1)                       local response norm (paper only)
    conv2, conv3                 conv 1x1 64, conv 3x3 192               192 x 56 x 56
    (lrn2), maxpool2             (LRN,) max 3x3 / 2                      192 x 28 x 28
    inception3a, 3b, maxpool3                                            480 x 14 x 14
    inception4a .. 4e, maxpool4  aux1 after 4a, aux2 after 4d            832 x 7 x 7
    inception5a, 5b                                                      1024 x 7 x 7
    avgpool, dropout, fc         global average, dropout, linear         num_classes
    ===========================  ======================================  ===============

    ``variant="paper"``: convolutions with bias and ReLU, LRN (size 5, alpha 1e-4, beta 0.75, as in the
    reference Caffe model) after maxpool1 and conv3, real 5x5 kernels in the third Inception branch,
    maxpool4 3x3 / 2, dropout 0.4: 6,998,552 parameters, 13,378,280 with the auxiliary heads.
    ``variant="torchvision"``: torchvision's ``googlenet`` (conv + batch norm + ReLU, no LRN, 3x3 in
    the "5x5" branch, maxpool4 2x2 / 2, dropout 0.2): 6,624,904 / 13,004,888 parameters, same
    state-dict keys. All max poolings round up (``ceil_mode``), as Caffe did. The global average
    pooling (the paper's 7x7 / 1) lets other input sizes through: at least 47 x 47 for the paper
    variant, 31 x 31 for torchvision's.

    With ``aux_logits`` the model holds the two auxiliary classifiers ``aux1`` and ``aux2``; in
    training mode it then returns :data:`GoogLeNetOutputs` ``(logits, aux_logits2, aux_logits1)``, in
    eval mode (and always without them) only the main logits.

    Initialisation: torchvision's (weights N(0, 0.01) truncated at +-2, batch norm 1 / 0) for its
    variant; for the paper variant, which has no batch norm, He-normal (fan_out) convolutions and
    N(0, 0.01) linear weights, zero biases.
    """

    def __init__(self, num_classes: int = 1000, variant: str = "paper", aux_logits: bool = True,
                 dropout: float | None = None, dropout_aux: float = 0.7):
        super().__init__()
        num_classes = check_num_classes("googlenet", num_classes)
        variant = check_choice("googlenet", "variant", variant, ("paper", "torchvision"))
        aux_logits = check_bool("googlenet", "aux_logits", aux_logits)
        paper = variant == "paper"
        bn, k5 = not paper, 5 if paper else 3
        self.variant = variant
        self.aux_logits = aux_logits

        self.conv1 = BasicConv2d(3, 64, bn, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        if paper:
            self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.conv2 = BasicConv2d(64, 64, bn, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, bn, kernel_size=3, padding=1)
        if paper:
            self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(*INCEPTIONS["3a"], batch_norm=bn, kernel5=k5)
        self.inception3b = Inception(*INCEPTIONS["3b"], batch_norm=bn, kernel5=k5)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(*INCEPTIONS["4a"], batch_norm=bn, kernel5=k5)
        self.inception4b = Inception(*INCEPTIONS["4b"], batch_norm=bn, kernel5=k5)
        self.inception4c = Inception(*INCEPTIONS["4c"], batch_norm=bn, kernel5=k5)
        self.inception4d = Inception(*INCEPTIONS["4d"], batch_norm=bn, kernel5=k5)
        self.inception4e = Inception(*INCEPTIONS["4e"], batch_norm=bn, kernel5=k5)
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True) if paper else nn.MaxPool2d(2, stride=2,
                                                                                              ceil_mode=True)
        self.inception5a = Inception(*INCEPTIONS["5a"], batch_norm=bn, kernel5=k5)
        self.inception5b = Inception(*INCEPTIONS["5b"], batch_norm=bn, kernel5=k5)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, bn, dropout_aux, paper_pooling=paper)
            self.aux2 = InceptionAux(528, num_classes, bn, dropout_aux, paper_pooling=paper)
        else:
            self.aux1 = None
            self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=(0.4 if paper else 0.2) if dropout is None else dropout)
        self.fc = nn.Linear(1024, num_classes)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if not paper:
                    init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.Conv2d):
                    init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    init.zeros_(m.bias)
                else:
                    init.normal_(m.weight, 0.0, 0.01)
                    init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)

    def forward(self, x):
        paper = self.variant == "paper"
        x = self.maxpool1(self.conv1(x))
        if paper:
            x = self.lrn1(x)
        x = self.conv3(self.conv2(x))
        if paper:
            x = self.lrn2(x)
        x = self.maxpool2(x)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        heads = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if heads else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if heads else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        if heads:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(num_classes: int = 1000, variant: str = "paper", aux_logits: bool = True) -> GoogLeNet:
    """GoogLeNet / Inception v1 (Szegedy et al. 2015) for 3 x 224 x 224 inputs: see :class:`GoogLeNet`.
    ``variant`` "paper" (6,998,552 parameters; 13,378,280 with the auxiliary heads) or "torchvision"
    (6,624,904 / 13,004,888). In training mode with ``aux_logits`` it returns
    ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``; weight each auxiliary loss by 0.3."""
    return GoogLeNet(num_classes=num_classes, variant=variant, aux_logits=aux_logits)
