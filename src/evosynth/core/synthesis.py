"""Stochastic synthesis of an offspring: decide which clusters and synapses of the parent are inherited.

This module only decides (it returns boolean keep-decisions in the parent's coordinates); ``compaction`` does
the surgery. Per layer: clusters are drawn from the environment-modulated cluster law, synapses from the
environment-modulated synapse law, and a synapse survives only if its cluster and its input channel survive and
it is drawn itself.

Guards, so that an offspring is always a working detector:
- the head's output clusters (coverage and box maps) are never removed;
- every layer keeps at least one cluster (the most probable one if the draw kept none);
- a kept cluster keeps at least its strongest surviving synapse, so a kept filter is never an empty shell;
  a backbone cluster that has no surviving synapse left on the kept inputs is removed.

Channel rounding (``channel_multiple``, off by default): CPU and GPU convolution kernels work on channel blocks
(8 floats per AVX2 register, 16 per AVX-512 register, tensor-core tiles of 8), so a width of 33 costs about as
much as 48. With rounding, each backbone layer's kept-cluster count is moved to one of its two neighbouring
multiples, by strength: the strongest clusters the draw removed are added back, or the weakest kept ones removed.
The multiple is chosen at random so that the expected count is the draw's: the environment's shrink per
generation is kept (rounding to the nearest multiple would put a layer of 32 back at 32 whenever its draw keeps
29, the count a budget of 0.915 expects, so it would shrink only on unusually small draws). The draw still decides
which clusters compete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from evosynth.core.environment import Environment
from evosynth.core.genetics import cluster_probabilities, cluster_strengths, exponential_law, synapse_probabilities
from evosynth.core.graph import ChannelGraph, GraphError, Group, Layer


def generation_generator(seed: int, generation: int) -> torch.Generator:
    """The random stream of one generation: a pure function of (run seed, generation), so offspring replay."""
    generator = torch.Generator()
    generator.manual_seed(int(seed) * 1_000_003 + int(generation))
    return generator


def _strongest_synapse(weight: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Per cluster, a one-hot mask of its strongest allowed synapse (all-false rows where nothing is allowed)."""
    flat_strength = torch.where(allowed, weight.detach().abs(), -1.0).reshape(weight.shape[0], -1)
    best = flat_strength.argmax(dim=1)
    one_hot = torch.zeros_like(flat_strength, dtype=torch.bool)
    one_hot[torch.arange(weight.shape[0]), best] = True
    one_hot &= allowed.reshape(weight.shape[0], -1).any(dim=1, keepdim=True)
    return one_hot.reshape(weight.shape)


def round_cluster_count(
    cluster_keep: torch.Tensor, strength: torch.Tensor, eligible: torch.Tensor, multiple: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Move the number of kept clusters to a neighbouring multiple of ``multiple`` (the one above with probability
    (count - the one below) / multiple, so the expected count is unchanged; at least one multiple), adding the
    strongest eligible removed clusters or dropping the weakest kept ones.

    When fewer than ``multiple`` clusters are eligible, all of them are kept; the count cannot exceed the eligible.
    """
    if multiple < 1:
        raise ValueError(f"channel multiple must be at least 1, got {multiple}")
    count, available = int(cluster_keep.sum()), int(eligible.sum())
    below = count // multiple * multiple
    round_up = bool(torch.rand((), generator=generator) < (count - below) / multiple)
    target = max(multiple, below + multiple * round_up)
    target = min(target, available // multiple * multiple) or available
    keep = cluster_keep.clone()
    if target > count:
        candidates = torch.where(eligible & ~keep, strength, -1.0)
        keep[candidates.topk(target - count).indices] = True
    elif target < count:
        kept_strength = torch.where(keep, strength, float("inf"))
        keep[kept_strength.topk(count - target, largest=False).indices] = False
    return keep


@dataclass(frozen=True)
class LayerDecision:
    """One layer's part of an offspring, in the parent's coordinates: which of its output channels (clusters)
    survive, and which of its synapses."""

    cluster_keep: torch.Tensor
    synapse_mask: torch.Tensor


def _alive(layer: Layer, masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
    mask = masks.get(layer.parameter)
    return torch.ones_like(layer.weight, dtype=torch.bool) if mask is None else mask.to(torch.bool)


def group_sum(graph: ChannelGraph, group: int, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per channel of a group, the sum over its producing layers of ``values[layer]`` (one value per output
    channel of that layer)."""
    total = torch.zeros(graph.groups[group].channels, dtype=torch.float32)
    for name in graph.groups[group].producers:
        for channel_map in graph.layer(name).outputs:
            if channel_map.group == group:
                total[channel_map.channels] += values[name][channel_map.positions].to(torch.float32)
    return total


def _per_tie(group: Group, values: torch.Tensor) -> torch.Tensor:
    """Per channel, the sum of ``values`` over the channels tied to it (the values themselves where none are)."""
    if group.ties is None:
        return values
    return torch.zeros(int(group.ties.max()) + 1, dtype=values.dtype).index_add_(0, group.ties, values)[group.ties]


def _draw(group: Group, probabilities: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One Bernoulli draw per cluster; channels tied together are one cluster (one draw, kept or removed as one)."""
    if group.ties is None:
        return torch.bernoulli(probabilities, generator=generator).to(torch.bool)
    firsts: dict[int, int] = {}
    for channel, tie in enumerate(group.ties.tolist()):
        firsts.setdefault(tie, channel)
    first = torch.tensor([firsts[tie] for tie in range(len(firsts))], dtype=torch.long)
    return torch.bernoulli(probabilities[first], generator=generator).to(torch.bool)[group.ties]


def group_laws(graph: ChannelGraph, masks: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """P(c = 1 | W) = exp(S_c / Z - 1) per cluster of each group: S_c the summed |w| of the channel's surviving
    synapses across the group's producing layers, Z the group's largest; 0 for clusters with no synapse left.
    Channels tied together (``Group.ties``) are one cluster: S_c sums their filters, each of them carries its law."""
    for layer in graph.layers:
        if not torch.isfinite(layer.weight).all():
            raise ValueError(f"{layer.name}: weights contain NaN or Inf; the parent checkpoint is unusable as DNA")
    alive = {layer.name: _alive(layer, masks) for layer in graph.layers}
    strengths = {layer.name: cluster_strengths(layer.weight.detach(), alive[layer.name]) for layer in graph.layers}
    has_synapse = {name: mask.reshape(mask.shape[0], -1).any(dim=1).to(torch.float32) for name, mask in alive.items()}
    return [exponential_law(_per_tie(group, group_sum(graph, group.index, strengths)),
                            _per_tie(group, group_sum(graph, group.index, has_synapse)) > 0)
            for group in graph.groups]


def synthesize(
    graph: ChannelGraph,
    masks: Mapping[str, torch.Tensor],
    environment: Environment,
    generator: torch.Generator,
    channel_multiple: int = 1,
) -> dict[str, LayerDecision]:
    """Decide a whole offspring of the network ``graph`` traced, layer by layer in data-flow order.

    A group's clusters are drawn at its first producing layer, from the environment-modulated group law, and
    kept where they have a synapse left on the inputs decided so far; a layer's synapses are drawn from the
    environment-modulated synapse law and survive where their cluster, their input channel and their own draw do.
    A layer whose outputs the caller keeps draws its clusters too (and ignores the draw), so that every layer
    takes the same share of the random stream whatever is kept. Returns each layer's decision by weight name.
    """
    laws = group_laws(graph, masks)
    environments, kept_environment = environment.group_environments(laws, graph.cost)
    decided: list[torch.Tensor | None] = [None] * len(graph.groups)
    decisions: dict[str, LayerDecision] = {}
    for layer in graph.layers:
        weight = layer.weight.detach()
        if weight.dim() < 2:
            raise ValueError(f"{layer.name}: a prunable layer needs an output and an input dimension, got "
                             f"{tuple(weight.shape)}")
        alive = _alive(layer, masks)
        so_far = [keep if keep is not None else torch.ones(group.channels, dtype=torch.bool)
                  for keep, group in zip(decided, graph.groups, strict=True)]
        alive_on_inputs = layer.on_kept_inputs(alive, so_far)
        own = [g for g in graph.producer_of(layer) if decided[g] is None and graph.groups[g].producers[0] == layer.name]
        layer_environment = environments[own[0]] if own else kept_environment
        if own:
            draws = {g: _draw(graph.groups[g], environments[g].apply(laws[g], "cluster"), generator) for g in own}
        elif not layer.outputs:  # kept outputs: drawn and ignored
            kept_p = layer_environment.apply(cluster_probabilities(weight, alive), "cluster")
            torch.bernoulli(kept_p, generator=generator)
        synapse_p = layer_environment.apply(synapse_probabilities(weight, alive), "synapse")
        synapse_draw = torch.bernoulli(synapse_p, generator=generator).to(torch.bool)
        for g in own:
            decided[g] = _decide_group(graph, g, laws[g], draws[g], masks, so_far, channel_multiple, generator)
        out_keep = layer.keep([keep if keep is not None else torch.ones(group.channels, dtype=torch.bool)
                               for keep, group in zip(decided, graph.groups, strict=True)], inputs=False)
        view = layer.per_cluster
        synapse_mask = synapse_draw & alive_on_inputs & out_keep.reshape(view)
        empty = out_keep & ~synapse_mask.reshape(weight.shape[0], -1).any(dim=1)
        if empty.any():
            synapse_mask |= _strongest_synapse(weight, alive_on_inputs) & empty.reshape(view)
        decisions[layer.parameter] = LayerDecision(out_keep, synapse_mask)
    return decisions


def _decide_group(
    graph: ChannelGraph, group: int, law: torch.Tensor, draw: torch.Tensor, masks: Mapping[str, torch.Tensor],
    decided: Sequence[torch.Tensor], channel_multiple: int, generator: torch.Generator,
) -> torch.Tensor:
    """A group's clusters: the draw where a cluster has a synapse left on the inputs decided so far, at least the
    most probable one, and rounded to ``channel_multiple``."""
    on_inputs = {name: graph.layer(name).on_kept_inputs(_alive(graph.layer(name), masks), decided)
                 for name in graph.groups[group].producers}
    left = _per_tie(graph.groups[group], group_sum(graph, group, {
        name: mask.reshape(mask.shape[0], -1).any(dim=1).to(torch.float32) for name, mask in on_inputs.items()})) > 0
    keep = draw & left
    if not keep.any():
        candidates = torch.where(left, law, -1.0)
        if candidates.max() < 0:
            raise RuntimeError(f"group of {graph.groups[group].producers[0]} collapsed: no cluster has a surviving "
                               "synapse on the kept inputs")
        keep |= _per_tie(graph.groups[group], (torch.arange(len(keep)) == candidates.argmax()).to(torch.long)) > 0
    if channel_multiple > 1:
        if graph.groups[group].ties is not None:
            raise GraphError(f"channel rounding is not supported for the channels a grouped convolution ties "
                             f"(the group of {graph.groups[group].producers[0]}); use channel_multiple 1")
        strength = group_sum(graph, group, {name: cluster_strengths(graph.layer(name).weight.detach(), mask)
                                             for name, mask in on_inputs.items()})
        keep = round_cluster_count(keep, strength, left, channel_multiple, generator)
    return keep
