"""Pruning baselines: other ways to decide an offspring, for comparison with stochastic synthesis.

Like ``synthesis``, this module only decides (it returns ``LayerDecision``s in the parent's coordinates) and
``compaction.compact`` does the surgery, so a baseline lineage is trained, restricted and measured by the very code
that the evolution uses. Both rules are deterministic: they need no random stream.

``l1_filter_decisions``
    Structured L1-norm filter pruning (Li et al., 2017, "Pruning Filters for Efficient ConvNets"): per layer, keep
    the requested number of filters with the largest L1 norm. The norm is taken over the synapses that are left
    after the previous layer's pruning (Li et al.'s "greedy" variant), so it measures what the filter will keep.
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
from collections.abc import Sequence

import torch

from evosynth.core.synthesis import LayerDecision

IMP_FRACTION = 0.2  # each level removes 20 % of the remaining synapses, the usual rate of iterative pruning


def _alive(weight: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(weight, dtype=torch.bool) if mask is None else mask.to(torch.bool)


def l1_filter_decisions(
    layers: Sequence[tuple[str, torch.Tensor]], masks: dict[str, torch.Tensor], widths: Sequence[int]
) -> dict[str, LayerDecision]:
    """Keep, per backbone layer, the ``widths[i]`` filters with the largest L1 norm; the head keeps all outputs.

    ``layers`` are the parent's prunable weights in data-flow order (head last), ``widths`` the backbone widths
    to reach (one per layer but the head). Ties go to the lower filter index.
    """
    if len(widths) != len(layers) - 1:
        raise ValueError(f"expected {len(layers) - 1} backbone widths, got {len(widths)}")
    decisions: dict[str, LayerDecision] = {}
    input_keep: torch.Tensor | None = None
    for index, (name, weight) in enumerate(layers):
        alive = _alive(weight, masks.get(name))
        if input_keep is not None:
            alive = alive & input_keep.reshape((1, -1) + (1,) * (weight.dim() - 2))
        clusters = weight.shape[0]
        if index == len(layers) - 1:
            cluster_keep = torch.ones(clusters, dtype=torch.bool)
        else:
            width = int(widths[index])
            if not 1 <= width <= clusters:
                raise ValueError(f"{name}: cannot keep {width} of {clusters} filters (nothing grows back)")
            norms = (weight.detach().abs() * alive).reshape(clusters, -1).sum(dim=1)
            strongest = torch.argsort(norms, descending=True, stable=True)[:width]
            cluster_keep = torch.zeros(clusters, dtype=torch.bool)
            cluster_keep[strongest] = True
        decisions[name] = LayerDecision(cluster_keep, alive & cluster_keep.reshape((-1,) + (1,) * (weight.dim() - 1)))
        input_keep = cluster_keep
    return decisions


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
    layers: Sequence[tuple[str, torch.Tensor]], masks: dict[str, torch.Tensor], widths: Sequence[int],
    synapses: dict[str, int],
) -> dict[str, LayerDecision]:
    """``l1_filter_decisions`` to ``widths``, then per layer ``synapses[name]`` of the synapses left, each kept
    filter's strongest first and then by |w| (all of them where fewer are left: nothing grows back)."""
    decisions = l1_filter_decisions(layers, masks, widths)
    for name, weight in layers:
        decision = decisions[name]
        decisions[name] = LayerDecision(
            decision.cluster_keep, _strongest(weight, decision.synapse_mask, decision.cluster_keep, synapses[name]))
    return decisions


def magnitude_decisions(
    layers: Sequence[tuple[str, torch.Tensor]], masks: dict[str, torch.Tensor], fraction: float = IMP_FRACTION
) -> dict[str, LayerDecision]:
    """One level of layer-wise magnitude pruning: each layer loses round(fraction x its remaining synapses), the
    smallest |w| first (ties: the lower index goes first); every cluster is kept and removed synapses stay removed.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the pruned fraction must be in [0, 1), got {fraction!r}")
    decisions: dict[str, LayerDecision] = {}
    for name, weight in layers:
        alive = _alive(weight, masks.get(name)).reshape(-1)
        remaining = int(alive.sum())
        removed = math.floor(fraction * remaining + 0.5)
        strength = torch.where(alive, weight.detach().abs().reshape(-1), math.inf)
        weakest = torch.argsort(strength, stable=True)[:removed]
        keep = alive.clone()
        keep[weakest] = False
        decisions[name] = LayerDecision(torch.ones(weight.shape[0], dtype=torch.bool), keep.reshape(weight.shape))
    return decisions
