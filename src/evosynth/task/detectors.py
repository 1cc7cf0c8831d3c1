"""Deep detectors of the paper's kind: DetectNet's GoogLeNet-style backbone (inception modules that concatenate
their branches) or residual stages, under the same 1x1 grid head as the chain detector (``task.model``).

Both are built from JSON-able arguments (a run folder's recipe rebuilds them) and describe themselves as the study
needs: ``stride`` (pixels per grid cell) and ``in_channels``. Their prunable structure is whatever the channel
graph finds (``core.graph``): the inception branches and the residual stages' tied channels are groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from evosynth.task.model import HEAD_OUTPUTS, Detector
from evosynth.task.networks import BasicBlock, Inception, conv_bn


def inception_widths(width: int) -> tuple[int, tuple[int, int], tuple[int, int], int]:
    """GoogLeNet's proportions for a module of ``width`` output channels (its inception 3a: 64, 96 -> 128,
    16 -> 32, 32 of 256): a quarter 1x1, half 3x3 (reduced to three eighths), an eighth 5x5 (reduced to a
    sixteenth), an eighth pooled."""
    one, three, five = width // 4, width // 2, width // 8  # the pooled branch: what is left (an eighth)
    return one, (max(1, 3 * width // 8), three), (max(1, width // 16), five), width - one - three - five


class _DeepDetector(Detector):
    """A backbone at ``stride`` pixels per cell and the 1x1 head named ``head``."""

    def __init__(self, in_channels: int, stride: int) -> None:
        super().__init__()
        self._in_channels, self._stride = in_channels, stride

    @property
    def stride(self) -> int:
        return self._stride

    @property
    def in_channels(self) -> int:
        return self._in_channels


def stem(in_channels: int, widths: Sequence[int], patch: bool) -> nn.Sequential:
    """Down to a quarter of the resolution: two stride-2 3x3 convolutions (GoogLeNet's way), or with ``patch`` one
    4x4 convolution of stride 4 that reads each pixel once and writes nothing at half resolution (the frame's
    fixed cost: every later layer, however narrow the evolution makes it, runs at a quarter of the pixels or
    fewer)."""
    if patch:
        return nn.Sequential(nn.Conv2d(in_channels, widths[-1], 4, 4, bias=False), nn.BatchNorm2d(widths[-1]),
                             nn.ReLU())
    return nn.Sequential(conv_bn(in_channels, widths[0], 3, 2), conv_bn(widths[0], widths[-1], 3, 2))


class InceptionDetector(_DeepDetector):
    """A stem to a quarter of the resolution (``stem``), then stages of inception modules with a stride-2 max-pool
    between stages, and the grid head: stride 4 x 2^(stages - 1)."""

    def __init__(self, in_channels: int = 3, stem_widths: Sequence[int] = (32, 64),
                 stages: Sequence[Sequence[int]] = ((128, 128), (192, 192)), patch_stem: bool = False,
                 head_outputs: int = HEAD_OUTPUTS) -> None:
        super().__init__(in_channels, 4 * 2 ** (len(stages) - 1))
        self.stem = stem(in_channels, stem_widths, patch_stem)
        stages_built: list[nn.Module] = []
        channels = stem_widths[-1]
        for index, widths in enumerate(stages):
            modules: list[nn.Module] = [nn.MaxPool2d(3, 2, 1)] if index else []
            for width in widths:
                module = Inception(channels, *inception_widths(int(width)))
                modules.append(module)
                channels = module.out_channels
            stages_built.append(nn.Sequential(*modules))
        self.stages = nn.Sequential(*stages_built)
        self.head = nn.Conv2d(channels, head_outputs, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(images)))


class ResidualDetector(_DeepDetector):
    """A stem to a quarter of the resolution (``stem``), then stages of BasicBlocks (each stage after the first
    halves the resolution), and the grid head: stride 4 x 2^(stages - 1)."""

    def __init__(self, in_channels: int = 3, stem_widths: Sequence[int] = (32, 32), widths: Sequence[int] = (64, 128),
                 blocks: int = 2, patch_stem: bool = False, head_outputs: int = HEAD_OUTPUTS) -> None:
        super().__init__(in_channels, 4 * 2 ** (len(widths) - 1))
        self.stem = stem(in_channels, stem_widths, patch_stem)
        stages, channels = [], stem_widths[-1]
        for index, width in enumerate(widths):
            for block in range(blocks):
                stages.append(BasicBlock(channels, width, 2 if index > 0 and block == 0 else 1))
                channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(channels, head_outputs, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(images)))
