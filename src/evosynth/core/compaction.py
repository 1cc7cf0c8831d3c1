"""Compaction: the surgery that turns keep-decisions into a physically smaller network, on any traced graph.

Removed clusters are cut out by Torch-Pruning's dependency graph (``ChannelGraph.cut``): every layer coupled to a
removed channel (its BatchNorm, its consumers, the layers tied to it by a residual addition or a concatenation)
loses it. Removed synapses inside kept clusters stay as a mask. Only this physical removal makes an offspring
faster; masked zeros cost the same as live weights.

``silenced_copy`` is the independent check of the surgery, written without Torch-Pruning: the full-size parent
with every removed channel silenced at its source (its producing layers' weights and biases and the affine
parameters of the normalisation that follows them set to zero) and the offspring's synapse masks applied. It
computes what the compacted offspring computes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from evosynth.core.graph import ChannelGraph, GraphError, run_hooked
from evosynth.core.synthesis import LayerDecision

NORMALISATIONS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


@dataclass
class Offspring:
    """A compacted network: the model (eval mode), its synapse masks by weight name, the pruning history from its
    parent (JSON), and the decision (each cut group's root module -> its removed channels, sorted)."""

    model: nn.Module
    masks: dict[str, torch.Tensor]
    history: list[Any]
    removed: dict[str, list[int]]


def group_decisions(graph: ChannelGraph, decisions: Mapping[str, LayerDecision]) -> list[torch.Tensor]:
    """Each group's kept clusters, read from its producing layers' decisions (which must agree)."""
    missing = [layer.parameter for layer in graph.layers if layer.parameter not in decisions]
    if missing:
        raise ValueError(f"no decision for layers {missing}")
    keeps: list[torch.Tensor] = []
    for group in graph.groups:
        keep = torch.ones(group.channels, dtype=torch.bool)
        seen = torch.zeros(group.channels, dtype=torch.bool)
        for name in group.producers:
            layer = graph.layer(name)
            for channel_map in layer.outputs:
                if channel_map.group != group.index:
                    continue
                values = decisions[layer.parameter].cluster_keep[channel_map.positions]
                overlap = seen[channel_map.channels]
                if not torch.equal(keep[channel_map.channels][overlap], values[overlap]):
                    raise GraphError(f"the decisions of the layers tied to {group.producers[0]} disagree on which "
                                     "of their channels to keep")
                keep[channel_map.channels] = values
                seen[channel_map.channels] = True
        keeps.append(keep)
    return keeps


def compact(graph: ChannelGraph, decisions: Mapping[str, LayerDecision]) -> Offspring:
    """Cut the network ``graph`` traced (a copy of the parent: ``ChannelGraph.of``) by the layers' decisions."""
    masks = {name: decision.synapse_mask for name, decision in decisions.items()}
    model, cut_masks, history, removed = graph.cut(group_decisions(graph, decisions), masks)
    return Offspring(model, cut_masks, history, removed)


def silenced_copy(model: nn.Module, example_inputs: Any, decisions: Mapping[str, LayerDecision]) -> nn.Module:
    """The full-size parent with the offspring's removed channels silenced at their source and its synapse masks
    applied: what the compacted offspring must compute (no Torch-Pruning involved).

    A layer's removed output channels lose their weights and bias; a normalisation layer that reads a layer's
    output directly (found by running the network once) loses its affine parameters on those channels.
    """
    silenced = copy.deepcopy(model).eval()
    modules = dict(silenced.named_modules())
    owners = {f"{name}.weight": name for name, module in modules.items() if hasattr(module, "weight")}
    produced: dict[int, torch.Tensor] = {}
    followers: dict[str, torch.Tensor] = {}

    def remember(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            produced[id(output)] = ~decisions[f"{name}.weight"].cluster_keep
        return hook

    def follow(name: str):
        def hook(_module: nn.Module, inputs: tuple[Any, ...]) -> None:
            removed = produced.get(id(inputs[0]))
            if removed is not None:
                followers[name] = removed
        return hook

    handles = [modules[owners[parameter]].register_forward_hook(remember(owners[parameter]))
               for parameter in decisions]
    handles += [module.register_forward_pre_hook(follow(name)) for name, module in modules.items()
                if isinstance(module, NORMALISATIONS)]
    run_hooked(silenced, example_inputs, handles)
    with torch.no_grad():
        for parameter, decision in decisions.items():
            module = modules[owners[parameter]]
            module.weight.mul_(decision.synapse_mask)
            module.weight[~decision.cluster_keep] = 0.0
            if getattr(module, "bias", None) is not None:
                module.bias[~decision.cluster_keep] = 0.0
        for name, removed in followers.items():
            for affine in (modules[name].weight, getattr(modules[name], "bias", None)):
                if affine is not None:
                    affine[removed] = 0.0
    return silenced
