"""The environmental factor F(alpha): P(S_g) ~ P(S_g | W_{g-1}) * F(alpha).

Two models of the environment, applied separately to clusters and to synapses:

``multiplicative``
    F = alpha, the literal form of the papers: every inheritance probability is scaled by alpha in (0, 1].
    Strong synapses are no longer certain to survive, and the expected shrink per generation depends on how the
    probabilities happen to be distributed.

``budget``
    alpha in (0, 1] is the fraction of the parent's synapses (or clusters) that the environment can feed. A scalar
    c is solved so that sum_i min(1, c * P_i) = alpha * N over the N surviving entries. The ranking by strength is
    kept (the strongest are inherited first, with certainty if the budget allows) and alpha reads directly as
    "keep this fraction", which is what a slider should mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

EnvironmentModel = Literal["budget", "multiplicative"]
Level = Literal["synapse", "cluster"]
ENVIRONMENT_MODELS: tuple[str, ...] = ("budget", "multiplicative")


def check_alpha(name: str, value: float) -> float:
    """An alpha is a fraction in (0, 1]; anything else is a user error worth naming."""
    value = float(value)
    if math.isnan(value) or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return value


def multiplicative(probabilities: torch.Tensor, alpha: float) -> torch.Tensor:
    """F(alpha) = alpha: scale every probability."""
    return (probabilities * alpha).clamp(0.0, 1.0)


def budget(probabilities: torch.Tensor, alpha: float) -> torch.Tensor:
    """Scale so that the expected number of survivors is alpha * N (N = entries with P > 0), capped at 1 each.

    Solved exactly: with probabilities sorted descending, the top k entries saturate at 1 and the rest share the
    remaining budget in proportion to P; the smallest k that is consistent gives c.
    """
    flat = probabilities.reshape(-1).to(torch.float64)
    alive = flat > 0
    count = int(alive.sum())
    if count == 0:
        return probabilities.clone()
    target = alpha * count
    ordered = torch.sort(flat[alive], descending=True).values
    # tail[k] = sum of ordered[k:], the mass left after saturating the top k entries
    tail = torch.flip(torch.cumsum(torch.flip(ordered, [0]), 0), [0])
    saturated = torch.arange(count, dtype=torch.float64)
    scale = (target - saturated) / tail
    # consistent k: entry k is not saturated (scale * p_k <= 1) and entry k-1 is (scale * p_{k-1} >= 1)
    below = scale * ordered <= 1.0 + 1e-12
    above = torch.cat([torch.tensor([True]), scale[1:] * ordered[:-1] >= 1.0 - 1e-12])
    consistent = torch.nonzero(below & above & (scale > 0))
    if len(consistent) == 0:
        return torch.where(alive, 1.0, 0.0).reshape(probabilities.shape).to(probabilities.dtype)
    c = scale[int(consistent[0])]
    return (flat * c).clamp(0.0, 1.0).reshape(probabilities.shape).to(probabilities.dtype)


_MODELS = {"budget": budget, "multiplicative": multiplicative}


@dataclass(frozen=True)
class Environment:
    """Environmental conditions of the synthesis, one alpha for clusters and one for synapses."""

    model: str = "budget"
    alpha_synapse: float = 0.9
    alpha_cluster: float = 0.9

    def __post_init__(self) -> None:
        if self.model not in _MODELS:
            raise ValueError(
                f"unknown environment model {self.model!r}; choose one of {', '.join(ENVIRONMENT_MODELS)}"
            )
        object.__setattr__(self, "alpha_synapse", check_alpha("alpha_synapse", self.alpha_synapse))
        object.__setattr__(self, "alpha_cluster", check_alpha("alpha_cluster", self.alpha_cluster))

    def alpha(self, level: Level) -> float:
        if level == "synapse":
            return self.alpha_synapse
        if level == "cluster":
            return self.alpha_cluster
        raise ValueError(f"unknown level {level!r}; choose 'synapse' or 'cluster'")

    def apply(self, probabilities: torch.Tensor, level: Level = "synapse") -> torch.Tensor:
        """P(S_g) from P(S_g | W_{g-1}): impose this environment on one layer's synapse or cluster probabilities."""
        return _MODELS[self.model](probabilities, self.alpha(level))
