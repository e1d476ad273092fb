"""AlexNet (Krizhevsky, Sutskever and Hinton, "ImageNet classification with deep convolutional neural
networks", NIPS 2012), as in the paper and as in torchvision."""
from __future__ import annotations

from .. import nn
from ._checks import check_choice, check_num_classes

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    """AlexNet: ``features`` (convolutions), ``avgpool``, ``classifier`` (FC6-FC8), torchvision's names.

    ``variant="paper"`` (3 x 227 x 227 input): the 2012 network. Sizes, as in the seed's table:

    =====  =================================================  ==============
    layer  what                                               output
    =====  =================================================  ==============
    conv1  96 @ 11x11 / 4, ReLU, LRN                          96 x 55 x 55
    pool1  max 3x3 / 2 (overlapping)                          96 x 27 x 27
    conv2  256 @ 5x5, pad 2, ReLU, LRN                        256 x 27 x 27
    pool2  max 3x3 / 2                                        256 x 13 x 13
    conv3  384 @ 3x3, pad 1, ReLU                             384 x 13 x 13
    conv4  384 @ 3x3, pad 1, ReLU                             384 x 13 x 13
    conv5  256 @ 3x3, pad 1, ReLU                             256 x 13 x 13
    pool5  max 3x3 / 2                                        256 x 6 x 6
    FC6    dropout 0.5, 9216 -> 4096, ReLU                    4096
    FC7    dropout 0.5, 4096 -> 4096, ReLU                    4096
    FC8    4096 -> num_classes                                num_classes
    =====  =================================================  ==============

    LRN is the paper's (k=2, n=5, alpha=1e-4, beta=0.75; section 3.3) and, as in the paper, follows the
    ReLU and precedes the pooling (the seed's table lists the pooling first: sizes are the same).
    ``groups=2`` splits conv2, conv4 and conv5 into the paper's two GPU towers (each half sees only the
    maps of its own tower): 60,965,224 parameters; ``groups=1``: 62,378,344 (1000 classes).

    ``variant="torchvision"`` (3 x 224 x 224): torchvision's ``alexnet`` (the "one weird trick" widths
    64-192-384-256-256, conv1 padded by 2, no LRN): 61,100,840 parameters, same state-dict keys, so its
    weights load with ``strict=True``.

    Both end with ``AdaptiveAvgPool2d((6, 6))`` before the classifier, as torchvision does: the identity
    at the standard input, and it lets smaller inputs through (at least 67 x 67 for the paper variant,
    63 x 63 for torchvision's). Weights keep
    PyTorch's default initialisation, as torchvision's AlexNet.
    """

    def __init__(self, num_classes: int = 1000, variant: str = "paper", groups: int = 1, dropout: float = 0.5):
        super().__init__()
        num_classes = check_num_classes("alexnet", num_classes)
        variant = check_choice("alexnet", "variant", variant, ("paper", "torchvision"))
        groups = check_choice("alexnet", "groups", groups, (1, 2))
        if variant == "torchvision" and groups != 1:
            raise ValueError("alexnet(): groups=2 (the paper's two towers) needs variant='paper', "
                             f"got variant={variant!r}")
        self.variant = variant
        if variant == "paper":
            g = groups
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, kernel_size=11, stride=4),
                nn.ReLU(inplace=True),
                nn.LocalResponseNorm.alexnet_paper(size=5, alpha=1e-4, beta=0.75, k=2.0),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=g),
                nn.ReLU(inplace=True),
                nn.LocalResponseNorm.alexnet_paper(size=5, alpha=1e-4, beta=0.75, k=2.0),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(256, 384, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=g),
                nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=g),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            )
        else:
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(64, 192, kernel_size=5, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(192, 384, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def alexnet(num_classes: int = 1000, variant: str = "paper", groups: int = 1) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012): see :class:`AlexNet`. ``variant="paper"`` (3 x 227 x 227 input,
    LRN; ``groups`` 1 or 2 for the two-tower conv2/4/5) or ``"torchvision"`` (3 x 224 x 224, torchvision's
    layout and names)."""
    return AlexNet(num_classes=num_classes, variant=variant, groups=groups)
