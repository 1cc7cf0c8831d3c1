"""Pruning baselines: other ways to decide an offspring, for comparison with stochastic synthesis.

Like ``synthesis``, this module only decides (it returns ``LayerDecision``s in the parent's coordinates) and
``compaction.compact`` does the surgery, so a baseline lineage is trained, restricted and measured by the very code
that the evolution uses. Both rules are deterministic: they need no random stream.

``l1_filter_decisions``
    Structured L1-norm filter pruning (Li et al., 2017, "Pruning Filters for Efficient ConvNets"): per group of
    coupled channels (a layer, in a chain), keep the requested number of filters with the largest L1 norm. The
    norm is taken over the synapses that are left after the previous groups' pruning (Li et al.'s "greedy"
    variant), so it measures what the filter will keep.
    Removed filters are cut out by ``compact``: the network gets faster exactly like an evolved one of that width.

``matched_decisions``
    The evolution's structure, decided greedily: L1 filter pruning to given widths, then, within each layer, the
    given number of synapses with the largest |w| (of those left). Given the widths *and* the per-layer synapse
    counts a generation of the evolution reached, it keeps the same structure by strength alone, so the two differ
    only in the rule that chose it: the synthesis's draw against the strongest-first choice.

``magnitude_decisions``
    Iterative magnitude pruning, unstructured (Han et al., 2015): per level, each layer loses the given fraction
    of its remaining synapses, smallest |w| first. Layer-wise, not global: every conv is followed by BatchNorm,
    which undoes any rescaling of the conv's weights, so the magnitudes of two layers are not comparable and one
    global threshold would prune layers in an arbitrary proportion. Masks only: no filter is removed, so the
    network costs the same MACs as its ancestor and is not faster on dense hardware, however sparse it gets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from evosynth.core.graph import ChannelGraph
from evosynth.core.synthesis import LayerDecision, group_sum

IMP_FRACTION = 0.2  # each level removes 20 % of the remaining synapses, the usual rate of iterative pruning


def _alive(weight: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(weight, dtype=torch.bool) if mask is None else mask.to(torch.bool)


def l1_filter_decisions(
    graph: ChannelGraph, masks: Mapping[str, torch.Tensor], widths: Sequence[int]
) -> dict[str, LayerDecision]:
    """Keep, per group of coupled channels, the ``widths[g]`` clusters with the largest L1 norm (summed over the
    group's producing layers; channels tied together are one cluster, their norms summed); the outputs the graph
    keeps stay. Groups are decided in data-flow order, each norm over the synapses left on the inputs decided so far
    (Li et al.'s greedy variant). Ties go to the lower channel index.
    """
    if len(widths) != len(graph.groups):
        raise ValueError(f"expected {len(graph.groups)} group widths, got {len(widths)}")
    decided: list[torch.Tensor] = [torch.ones(group.channels, dtype=torch.bool) for group in graph.groups]
    done = [False] * len(graph.groups)
    decisions: dict[str, LayerDecision] = {}
    for layer in graph.layers:
        for index in graph.producer_of(layer):
            if not done[index]:
                decided[index] = _strongest_clusters(graph, index, masks, decided, int(widths[index]))
                done[index] = True
        out_keep = layer.keep(decided, inputs=False)
        mask = layer.on_kept_inputs(_alive(layer.weight, masks.get(layer.parameter)), decided)
        decisions[layer.parameter] = LayerDecision(out_keep, mask & out_keep.reshape(layer.per_cluster))
    return decisions


def _strongest_clusters(graph: ChannelGraph, index: int, masks: Mapping[str, torch.Tensor],
                        decided: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """The ``width`` channels of group ``index`` whose filters (over the synapses left on the kept inputs) have the
    largest L1 norm, tied channels counted together."""
    group = graph.groups[index]
    if not 1 <= width <= group.channels:
        raise ValueError(f"{group.producers[0]}: cannot keep {width} of {group.channels} filters (nothing grows back)")
    per_filter = {}
    for name in group.producers:
        layer = graph.layer(name)
        alive = layer.on_kept_inputs(_alive(layer.weight, masks.get(layer.parameter)), decided)
        per_filter[name] = (layer.weight.detach().abs() * alive).reshape(layer.weight.shape[0], -1).sum(dim=1)
    norms = group_sum(graph, index, per_filter)
    ties = group.tie_index()
    sizes = torch.bincount(ties)
    if width % int(sizes[0]) or not torch.all(sizes == sizes[0]):
        raise ValueError(f"{group.producers[0]}: {width} filters cannot be kept in ties of {int(sizes[0])}")
    tie_norms = torch.zeros(len(sizes), dtype=torch.float32).index_add_(0, ties, norms)
    strongest = torch.argsort(tie_norms, descending=True, stable=True)[:width // int(sizes[0])]
    keep_tie = torch.zeros(len(sizes), dtype=torch.bool)
    keep_tie[strongest] = True
    return keep_tie[ties]


def _strongest(weight: torch.Tensor, alive: torch.Tensor, clusters: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` entries of ``alive``: each kept cluster's strongest (so a kept filter is never an empty shell, as
    in synthesis), then the largest |w| of the rest (ties: the lower index)."""
    strength = torch.where(alive, weight.detach().abs(), -math.inf).reshape(weight.shape[0], -1)
    keep = torch.zeros_like(strength, dtype=torch.bool)
    served = clusters & torch.isfinite(strength).any(dim=1)
    keep[served.nonzero().squeeze(1), strength[served].argmax(dim=1)] = True
    rest = torch.where(keep, -math.inf, strength).reshape(-1)
    extra = max(0, count - int(keep.sum()))
    keep.reshape(-1)[torch.argsort(rest, descending=True, stable=True)[:extra]] = True
    return keep.reshape(weight.shape) & alive


def matched_decisions(
    graph: ChannelGraph, masks: Mapping[str, torch.Tensor], widths: Sequence[int], synapses: Mapping[str, int],
) -> dict[str, LayerDecision]:
    """``l1_filter_decisions`` to ``widths``, then per layer ``synapses[name]`` of the synapses left, each kept
    filter's strongest first and then by |w| (all of them where fewer are left: nothing grows back)."""
    decisions = l1_filter_decisions(graph, masks, widths)
    for layer in graph.layers:
        name, decision = layer.parameter, decisions[layer.parameter]
        decisions[name] = LayerDecision(decision.cluster_keep, _strongest(
            layer.weight, decision.synapse_mask, decision.cluster_keep, synapses[name]))
    return decisions


def magnitude_decisions(
    graph: ChannelGraph, masks: Mapping[str, torch.Tensor], fraction: float = IMP_FRACTION
) -> dict[str, LayerDecision]:
    """One level of layer-wise magnitude pruning: each layer loses round(fraction x its remaining synapses), the
    smallest |w| first (ties: the lower index goes first); every cluster is kept and removed synapses stay removed.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the pruned fraction must be in [0, 1), got {fraction!r}")
    decisions: dict[str, LayerDecision] = {}
    for layer in graph.layers:
        name, weight = layer.parameter, layer.weight.detach()
        alive = _alive(weight, masks.get(name)).reshape(-1)
        remaining = int(alive.sum())
        removed = math.floor(fraction * remaining + 0.5)
        strength = torch.where(alive, weight.detach().abs().reshape(-1), math.inf)
        weakest = torch.argsort(strength, stable=True)[:removed]
        keep = alive.clone()
        keep[weakest] = False
        decisions[name] = LayerDecision(torch.ones(weight.shape[0], dtype=torch.bool), keep.reshape(weight.shape))
    return decisions
