"""Small networks of the kinds the paper's synthesis must handle beyond a chain: residual additions (a ResNet of
BasicBlocks), concatenations (GoogLeNet-style inception modules), depthwise-separable convolutions, and a plain MLP.
Each is built from JSON-able arguments by its name in ``NETWORKS``, so that a run folder can rebuild its ancestor;
each classifies into ``classes`` by a final linear layer named ``fc`` (the outputs the task keeps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a residual addition (a 1x1 projection where the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    """A stem, stages of BasicBlocks (the first block of every stage but the first halves the resolution), global
    average pooling and ``fc``."""

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (16, 32), blocks: int = 2,
                 classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, widths[0], 3, 2)
        stages, channels = [], widths[0]
        for index, width in enumerate(widths):
            for block in range(blocks):
                stages.append(BasicBlock(channels, width, 2 if index > 0 and block == 0 else 1))
                channels = width
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(self.stem(x)).mean(dim=(2, 3)))


class Inception(nn.Module):
    """GoogLeNet's module: 1x1, 1x1 -> 3x3, 1x1 -> 5x5 (as two 3x3) and 3x3 max-pool -> 1x1 branches, concatenated."""

    def __init__(self, in_channels: int, one: int, three: tuple[int, int], five: tuple[int, int], pool: int) -> None:
        super().__init__()
        self.one = conv_bn(in_channels, one, 1)
        self.three = nn.Sequential(conv_bn(in_channels, three[0], 1), conv_bn(three[0], three[1], 3))
        self.five = nn.Sequential(conv_bn(in_channels, five[0], 1), conv_bn(five[0], five[1], 3),
                                  conv_bn(five[1], five[1], 3))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(in_channels, pool, 1))
        self.out_channels = one + three[1] + five[1] + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.one(x), self.three(x), self.five(x), self.pool(x)], dim=1)


class InceptionNet(nn.Module):
    """A stem, two inception modules with a max-pool between them, global average pooling and ``fc``."""

    def __init__(self, in_channels: int = 1, stem: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, stem, 3, 2)
        self.a = Inception(stem, 8, (8, 12), (4, 6), 6)
        self.b = Inception(self.a.out_channels, 12, (12, 16), (6, 8), 8)
        self.fc = nn.Linear(self.b.out_channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(self.stem(x))
        return self.fc(self.b(nn.functional.max_pool2d(x, 2)).mean(dim=(2, 3)))


class DepthwiseSeparable(nn.Module):
    """A stem and blocks of a depthwise 3x3 and a pointwise 1x1 convolution (MobileNet's), pooling and ``fc``."""

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (16, 32, 48), classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, widths[0], 3, 2)
        blocks, channels = [], widths[0]
        for index, width in enumerate(widths[1:]):
            blocks.append(nn.Sequential(conv_bn(channels, channels, 3, 2 if index == 0 else 1, groups=channels),
                                        conv_bn(channels, width, 1)))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class MLP(nn.Module):
    """Fully connected layers on the flattened image, ReLU between them, and ``fc``."""

    def __init__(self, inputs: int = 784, hidden: Sequence[int] = (128, 64), classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = inputs
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.hidden = nn.Sequential(*layers)
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.hidden(x))


NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "resnet": ResNet, "inception": InceptionNet, "depthwise-separable": DepthwiseSeparable, "mlp": MLP,
}
KEPT_OUTPUTS = ("fc",)  # every network here classifies by ``fc``: its outputs are the classes
