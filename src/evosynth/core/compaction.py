"""Compaction: the surgery that turns keep-decisions into a physically smaller network.

Removed clusters are cut out: a conv is rebuilt with fewer output channels, its BatchNorm follows, and the next
layer (or the head) loses the matching input channels. Removed synapses inside kept clusters stay as a mask.
Only this physical removal makes an offspring faster; masked zeros cost the same as live weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Self, TypeVar

import torch

from evosynth.core.synthesis import LayerDecision


class Shape(Protocol):
    """What compaction needs of a network's architecture: its input channels, and itself at other widths."""

    @property
    def in_channels(self) -> int: ...

    def with_widths(self, widths: tuple[int, ...]) -> Self: ...


class Compactable(Protocol):
    """A network compaction can cut: built from an architecture, listing its prunable layers in data-flow order
    (head last); each conv's BatchNorm is the sibling ``bn`` of a ``conv`` module. The paper's surgery needs no
    more of the task's detector than this."""

    def __init__(self, architecture: Any) -> None: ...  # Any: each network takes its own kind of Shape

    @property
    def architecture(self) -> Shape: ...

    def prunable_layers(self) -> list[tuple[str, torch.nn.Conv2d]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = ..., assign: bool = ...) -> Any: ...


Network = TypeVar("Network", bound=Compactable)


def compact(
    model: Network, decisions: dict[str, LayerDecision]
) -> tuple[Network, dict[str, torch.Tensor]]:
    """Build the offspring from the parent and per-layer decisions; returns (offspring, offspring masks)."""
    layers = model.prunable_layers()
    missing = [name for name, _ in layers if name not in decisions]
    if missing:
        raise ValueError(f"no decision for layers {missing}")
    keeps = [decisions[name].cluster_keep for name, _ in layers]
    widths = tuple(int(keep.sum()) for keep in keeps[:-1])
    offspring = type(model)(model.architecture.with_widths(widths))

    parent_state = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    input_keep = torch.ones(model.architecture.in_channels, dtype=torch.bool)
    for (name, _), keep in zip(layers, keeps, strict=True):
        prefix = name.removesuffix("weight")
        state[name] = parent_state[name][keep][:, input_keep].clone()
        masks[name] = decisions[name].synapse_mask[keep][:, input_keep].clone()
        for key, value in parent_state.items():
            owner = key.rsplit(".", 1)[0]
            is_bn = prefix.endswith("conv.") and owner == prefix.removesuffix("conv.") + "bn"
            if is_bn or (key == prefix + "bias"):
                state[key] = value[keep].clone() if value.dim() else value.clone()
        input_keep = keep
    offspring.load_state_dict(state)
    with torch.no_grad():
        for name, layer in offspring.prunable_layers():
            layer.weight.mul_(masks[name])
    return offspring, masks


def masked_copy(model: Network, decisions: dict[str, LayerDecision]) -> Network:
    """The full-size parent with the offspring's zeros applied: what compaction must compute identically."""
    copy = type(model)(model.architecture)
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, layer in copy.prunable_layers():
            layer.weight.mul_(decisions[name].synapse_mask)
    return copy
