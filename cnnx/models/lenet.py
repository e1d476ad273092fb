"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998), in the form common today: full C3 connections, parameter-free
sub-sampling and a linear output layer instead of the paper's RBF units."""
from __future__ import annotations

from .. import nn
from ._checks import check_choice, check_num_classes

__all__ = ["LeNet5", "lenet5"]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(nn.Module):
    """LeNet-5 on 1 x 32 x 32 images (MNIST's 28 x 28 digits padded by 2), layers named as in the paper:

    ======  ==========================================  ============
    layer   what                                        output
    ======  ==========================================  ============
    c1      conv 6 @ 5x5                                6 x 28 x 28
    s2      2x2 / 2 sub-sampling                        6 x 14 x 14
    c3      conv 16 @ 5x5 (every C3 map sees all of S2) 16 x 10 x 10
    s4      2x2 / 2 sub-sampling                        16 x 5 x 5
    c5      conv 120 @ 5x5 (a full connection here)     120 x 1 x 1
    f6      linear 120 -> 84                            84
    output  linear 84 -> num_classes                    num_classes
    ======  ==========================================  ============

    With 10 classes: 61,706 parameters. The paper's C3 connects each map to only some S2 maps, its
    sub-sampling layers have a trainable coefficient and bias, its squashing function is
    1.7159 tanh(2a/3) and its output layer is 84 -> 10 Euclidean RBF units: 60,000 trainable
    parameters. ``activation`` ("tanh" as in the paper, or "relu") follows c1, c3, c5 and f6;
    ``pooling`` ("avg", the paper's averaging sub-sampling without its coefficients, or "max") is s2/s4.
    """

    def __init__(self, num_classes: int = 10, activation: str = "tanh", pooling: str = "avg"):
        super().__init__()
        num_classes = check_num_classes("lenet5", num_classes)
        act = _ACTIVATIONS[check_choice("lenet5", "activation", activation, tuple(_ACTIVATIONS))]
        pool = _POOLS[check_choice("lenet5", "pooling", pooling, tuple(_POOLS))]
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)
        self.act1 = act()
        self.s2 = pool(kernel_size=2, stride=2)
        self.c3 = nn.Conv2d(6, 16, kernel_size=5)
        self.act3 = act()
        self.s4 = pool(kernel_size=2, stride=2)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.act5 = act()
        self.flatten = nn.Flatten()
        self.f6 = nn.Linear(120, 84)
        self.act6 = act()
        self.output = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.s2(self.act1(self.c1(x)))
        x = self.s4(self.act3(self.c3(x)))
        x = self.flatten(self.act5(self.c5(x)))
        return self.output(self.act6(self.f6(x)))


def lenet5(num_classes: int = 10, activation: str = "tanh", pooling: str = "avg") -> LeNet5:
    """LeNet-5 (LeCun et al. 1998) for 1 x 32 x 32 inputs: see :class:`LeNet5`. 61,706 parameters
    with 10 classes; ``activation`` "tanh" | "relu", ``pooling`` "avg" | "max"."""
    return LeNet5(num_classes=num_classes, activation=activation, pooling=pooling)
