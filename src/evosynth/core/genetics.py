"""Genetic encoding: the synaptic probability model P(S_g | W_{g-1}), the network's 'DNA'.

A synapse (one weight) of generation g exists with probability ``exp(|w| / Z - 1)``, where ``w`` is its trained
strength in generation g-1 and ``Z`` the layer's largest surviving strength, so the strongest synapse is always
inherited and weaker ones are inherited less often. A cluster (an output filter or neuron) follows the same law
on the summed strength of its surviving synapses. Absent synapses and clusters have probability 0: nothing grows
back.
"""

from __future__ import annotations

import torch


def _as_mask(weight: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(weight, dtype=torch.bool)
    if mask.shape != weight.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match weight shape {tuple(weight.shape)}")
    return mask.to(torch.bool)


def _check_finite(weight: torch.Tensor) -> None:
    if not torch.isfinite(weight).all():
        raise ValueError("weights contain NaN or Inf; the parent checkpoint is unusable as DNA")


def exponential_law(strength: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """``exp(s / Z - 1)`` on alive entries with Z = max alive strength; 0 elsewhere (the law of synapses, clusters
    and groups of clusters alike)."""
    strength = strength.to(torch.float32)
    probabilities = torch.zeros_like(strength)
    if not alive.any():
        return probabilities
    normalizer = strength[alive].max()
    if normalizer <= 0:
        # every surviving entry has zero strength: none is favoured, all are equally (un)likely
        probabilities[alive] = torch.exp(torch.tensor(-1.0))
        return probabilities
    probabilities[alive] = torch.exp(strength[alive] / normalizer - 1.0)
    return probabilities


def synapse_probabilities(weight: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """P(s_i = 1 | w_i) = exp(|w_i| / Z_l - 1) for every synapse of one layer (same shape; 0 where masked)."""
    _check_finite(weight)
    alive = _as_mask(weight, mask)
    return exponential_law(weight.detach().abs(), alive)


def cluster_strengths(weight: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """S_c: summed |w| of each output cluster's surviving synapses (one value per output channel)."""
    alive = _as_mask(weight, mask)
    return (weight.detach().abs() * alive).reshape(weight.shape[0], -1).sum(dim=1)


def cluster_probabilities(weight: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """P(c = 1 | W) = exp(S_c / Z^c_l - 1) per output cluster (dim 0); 0 for clusters with no surviving synapse."""
    _check_finite(weight)
    alive = _as_mask(weight, mask)
    cluster_alive = alive.reshape(weight.shape[0], -1).any(dim=1)
    return exponential_law(cluster_strengths(weight, alive), cluster_alive)
