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

from dataclasses import dataclass

import torch

from evosynth.core.environment import CostModel, Environment
from evosynth.core.genetics import cluster_probabilities, cluster_strengths, synapse_probabilities


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


def sample_layer(
    weight: torch.Tensor,
    mask: torch.Tensor | None,
    environment: Environment,
    generator: torch.Generator,
    *,
    input_keep: torch.Tensor | None = None,
    keep_all_clusters: bool = False,
    channel_multiple: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one layer of the offspring.

    ``input_keep`` is the previous layer's cluster decision (its removed channels take this layer's synapses on
    them along); ``keep_all_clusters`` marks the head; ``channel_multiple`` > 1 rounds the kept-cluster count
    (see the module docstring). Returns ``(cluster_keep [out], synapse_mask like weight)``.
    """
    if weight.dim() < 2:
        raise ValueError(f"a prunable layer needs a weight with an output and an input dimension, got {weight.shape}")
    alive = torch.ones_like(weight, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    if input_keep is not None:
        if input_keep.shape != (weight.shape[1],):
            raise ValueError(f"input_keep has shape {tuple(input_keep.shape)}, expected ({weight.shape[1]},)")
        view = (1, -1) + (1,) * (weight.dim() - 2)
        alive_on_inputs = alive & input_keep.to(torch.bool).reshape(view)
    else:
        alive_on_inputs = alive

    cluster_p = environment.apply(cluster_probabilities(weight, alive), "cluster")
    synapse_p = environment.apply(synapse_probabilities(weight, alive), "synapse")
    cluster_draw = torch.bernoulli(cluster_p, generator=generator).to(torch.bool)
    synapse_draw = torch.bernoulli(synapse_p, generator=generator).to(torch.bool)

    has_synapse_left = alive_on_inputs.reshape(weight.shape[0], -1).any(dim=1)
    if keep_all_clusters:
        cluster_keep = torch.ones(weight.shape[0], dtype=torch.bool)
    else:
        cluster_keep = cluster_draw & has_synapse_left
        if not cluster_keep.any():
            candidates = torch.where(has_synapse_left, cluster_probabilities(weight, alive), -1.0)
            if candidates.max() < 0:
                raise RuntimeError("layer collapsed: no cluster has a surviving synapse on the kept inputs")
            cluster_keep[candidates.argmax()] = True
        if channel_multiple > 1:
            strength = cluster_strengths(weight, alive_on_inputs)
            cluster_keep = round_cluster_count(cluster_keep, strength, has_synapse_left, channel_multiple, generator)

    view = (-1,) + (1,) * (weight.dim() - 1)
    synapse_mask = synapse_draw & alive_on_inputs & cluster_keep.reshape(view)
    empty = cluster_keep & ~synapse_mask.reshape(weight.shape[0], -1).any(dim=1)
    if empty.any():
        rescue = _strongest_synapse(weight, alive_on_inputs) & empty.reshape(view)
        synapse_mask |= rescue
    return cluster_keep, synapse_mask


@dataclass(frozen=True)
class LayerDecision:
    cluster_keep: torch.Tensor
    synapse_mask: torch.Tensor


def synthesize(
    layers: list[tuple[str, torch.Tensor]],
    masks: dict[str, torch.Tensor],
    environment: Environment,
    generator: torch.Generator,
    channel_multiple: int = 1,
    cost: CostModel | None = None,
) -> dict[str, LayerDecision]:
    """Decide a whole offspring from the parent's prunable layers, given in data-flow order (head last).

    ``cost`` is the parent's cost model, which the cost environment needs to decide how strongly each layer is cut.
    """
    alive = [torch.ones_like(weight, dtype=torch.bool) if masks.get(name) is None else masks[name].to(torch.bool)
             for name, weight in layers]
    laws = [cluster_probabilities(weight, mask) for (_, weight), mask in zip(layers, alive, strict=True)]
    environments = environment.layer_environments(laws, cost)
    decisions: dict[str, LayerDecision] = {}
    input_keep: torch.Tensor | None = None
    for index, (name, weight) in enumerate(layers):
        cluster_keep, synapse_mask = sample_layer(
            weight,
            masks.get(name),
            environments[index],
            generator,
            input_keep=input_keep,
            keep_all_clusters=index == len(layers) - 1,
            channel_multiple=channel_multiple,
        )
        decisions[name] = LayerDecision(cluster_keep, synapse_mask)
        input_keep = cluster_keep
    return decisions
