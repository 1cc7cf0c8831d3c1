"""A DetectNet-style single-shot grid detector whose layer widths are its (evolvable) architecture.

A plain conv backbone (conv -> BatchNorm -> ReLU blocks) downsamples the image to a grid; a 1x1 head predicts,
for every grid cell, a coverage logit (is an object centred here?) and four box distances (left, top, right,
bottom from the cell centre, in units of the grid stride). Every conv's output channels are the clusters of
the synthesis; the head's outputs are never removed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from evosynth.core.graph import ChannelGraph, GraphCost

HEAD_OUTPUTS = 5  # coverage logit + (left, top, right, bottom)
FRAME_SIZE = (480, 640)  # height, width of the camera frame a deployed detector runs on (the paper's unit of fps)


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the detector: input channels and each conv block's width and stride."""

    in_channels: int
    widths: tuple[int, ...]
    strides: tuple[int, ...]
    kernel_size: int = 3
    head_outputs: int = field(default=HEAD_OUTPUTS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ValueError(f"architecture needs one stride per width, got {self.widths} / {self.strides}")
        if min(self.widths) < 1:
            raise ValueError(f"every layer needs at least one channel, got widths {self.widths}")

    @property
    def stride(self) -> int:
        """Pixels per grid cell."""
        total = 1
        for s in self.strides:
            total *= s
        return total

    def with_widths(self, widths: tuple[int, ...]) -> Architecture:
        return Architecture(self.in_channels, widths, self.strides, self.kernel_size, self.head_outputs)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Architecture:
        try:
            return cls(
                in_channels=int(data["in_channels"]),
                widths=tuple(data["widths"]),
                strides=tuple(data["strides"]),
                kernel_size=int(data.get("kernel_size", 3)),
                head_outputs=int(data.get("head_outputs", HEAD_OUTPUTS)),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"architecture description is incomplete or malformed: {error}") from error


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Detector(nn.Module):
    """What the study needs of a detector: images in, [N, 5, H/stride, W/stride] raw maps out of a 1x1 head named
    ``head`` (``HEAD``), its ``stride`` (pixels per grid cell) and its ``in_channels``; any backbone."""

    head: nn.Conv2d

    @property
    def stride(self) -> int:
        raise NotImplementedError

    @property
    def in_channels(self) -> int:
        raise NotImplementedError


class GridDetector(Detector):
    """Backbone of ConvBlocks and a 1x1 head producing [N, 5, H/stride, W/stride] raw maps."""

    def __init__(self, architecture: Architecture) -> None:
        super().__init__()
        blocks = []
        in_channels = architecture.in_channels
        for width, stride in zip(architecture.widths, architecture.strides, strict=True):
            blocks.append(ConvBlock(in_channels, width, architecture.kernel_size, stride))
            in_channels = width
        self.backbone = nn.Sequential(*blocks)
        self.head = nn.Conv2d(in_channels, architecture.head_outputs, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    @property
    def stride(self) -> int:
        """Pixels per grid cell."""
        return self.architecture.stride

    @property
    def in_channels(self) -> int:
        return self.architecture.in_channels

    @property
    def architecture(self) -> Architecture:
        """The widths and strides the layers have now: read from them, so a network cut in place (by the
        dependency graph, or a pruning history replayed) describes itself."""
        blocks: list[ConvBlock] = list(self.backbone)  # type: ignore[arg-type]
        convs = [block.conv for block in blocks]
        return Architecture(convs[0].in_channels, tuple(conv.out_channels for conv in convs),
                            tuple(conv.stride[0] for conv in convs), convs[0].kernel_size[0], self.head.out_channels)

    def prunable_layers(self) -> list[tuple[str, nn.Conv2d]]:
        """The synapse-carrying layers in data-flow order, named by their weight's state-dict key."""
        blocks: list[ConvBlock] = list(self.backbone)  # type: ignore[arg-type]
        layers = [(f"backbone.{i}.conv.weight", block.conv) for i, block in enumerate(blocks)]
        layers.append(("head.weight", self.head))
        return layers


HEAD = "head"  # the module whose outputs the task needs: never removed


def example_frame(architecture: Architecture, image_size: tuple[int, int] = FRAME_SIZE) -> torch.Tensor:
    """One image of ``image_size`` (a camera frame by default): what the detector's graph is traced on."""
    return torch.zeros(1, architecture.in_channels, *image_size)


def channel_graph(model: GridDetector, image_size: tuple[int, int] = FRAME_SIZE) -> ChannelGraph:
    """The detector's channel graph, traced on a copy of it (the model is left as it is), its head kept."""
    return ChannelGraph.of(model, example_frame(model.architecture, image_size), keep_outputs_of=(HEAD,))


def cost_model(architecture: Architecture, image_size: tuple[int, int] = FRAME_SIZE) -> GraphCost:
    """The detector's multiply-accumulates as a function of its widths, on images of ``image_size``, counted on
    its traced graph."""
    with torch.random.fork_rng():
        model = GridDetector(architecture)
    return ChannelGraph(model, example_frame(architecture, image_size), keep_outputs_of=(HEAD,)).cost


def count_macs(architecture: Architecture, image_size: tuple[int, int]) -> int:
    """Dense multiply-accumulates of one forward pass: what the compacted network really computes."""
    chain = [architecture.in_channels, *architecture.widths, architecture.head_outputs]
    height, width = image_size
    k = architecture.kernel_size
    total = 0
    for index, stride in enumerate(architecture.strides):
        height = (height + 2 * (k // 2) - k) // stride + 1
        width = (width + 2 * (k // 2) - k) // stride + 1
        total += height * width * k * k * chain[index] * chain[index + 1]
    return total + height * width * chain[-2] * chain[-1]  # the 1x1 head
