"""A DetectNet-style single-shot grid detector whose layer widths are its (evolvable) architecture.

A plain conv backbone (conv -> BatchNorm -> ReLU blocks) downsamples the image to a grid; a 1x1 head predicts,
for every grid cell, a coverage logit (is an object centred here?) and four box distances (left, top, right,
bottom from the cell centre, in units of the grid stride). Every conv's output channels are the clusters of
the synthesis; the head's outputs are never removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from evosynth.core.graph import ChannelGraph, GraphError, count_macs

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


def detector_input(model: Detector, image_size: tuple[int, int] = FRAME_SIZE) -> torch.Tensor:
    """One image of ``image_size`` (a camera frame by default) for the detector: what its graph is traced on."""
    return torch.zeros(1, model.in_channels, *image_size)


def trace_size(model: Detector) -> tuple[int, int]:
    """The smallest image that makes a two-by-two grid: enough to trace the graph (its groups do not depend on the
    image's size, the tracing's time does)."""
    return 2 * model.stride, 2 * model.stride


def channel_graph(model: Detector, image_size: tuple[int, int] = FRAME_SIZE) -> ChannelGraph:
    """The detector's channel graph, traced on a copy of it (the model is left as it is), its head kept; its
    ``cost`` counts multiply-accumulates on images of ``image_size``."""
    return ChannelGraph.of(model, detector_input(model, image_size), keep_outputs_of=(HEAD,))


def group_widths(model: Detector) -> list[int]:
    """The channels of each group of coupled channels, in data-flow order (the chain detector: each layer's)."""
    return [group.channels for group in channel_graph(model, trace_size(model)).groups]


def frame_macs(model: Detector, image_size: tuple[int, int] = FRAME_SIZE) -> int:
    """Dense multiply-accumulates of one forward pass on an image of ``image_size``: what the compacted network
    really computes."""
    return count_macs(model, detector_input(model, image_size))


def fresh_network(model: Detector, widths: Sequence[int] | None = None) -> Detector:
    """A network of ``model``'s structure at ``widths`` channels per group (its own where None; a group keeps its
    first channels), initialised anew from the current random state: every module is reset in the order a
    constructor creates them, so for the chain detector it is bit for bit the network its constructor builds."""
    graph = channel_graph(model, trace_size(model))
    network: nn.Module = graph.model
    if widths is not None:
        if len(widths) != len(graph.groups):
            raise ValueError(f"expected {len(graph.groups)} group widths, got {len(widths)}")
        if any(group.ties is not None for group in graph.groups):
            raise GraphError("a network with tied channels (grouped convolutions) cannot be narrowed by width")
        keeps = [torch.arange(group.channels) < int(width) for group, width in zip(graph.groups, widths, strict=True)]
        masks = {layer.parameter: torch.ones_like(layer.weight, dtype=torch.bool) for layer in graph.layers}
        network = graph.cut(keeps, masks)[0]
    for module in network.modules():
        reset = getattr(module, "reset_parameters", None)
        if module is not network and callable(reset):
            reset()
    assert isinstance(network, Detector)
    return network
