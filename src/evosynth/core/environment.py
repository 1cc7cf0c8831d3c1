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

``cost`` (clusters; synapses as in ``budget``)
    The paper's computational environment: alpha_cluster is the fraction of the parent's *cost* the offspring may
    keep, cost being the multiply-accumulates of the network (``CostModel``, counted on its traced graph). The
    environment decides how strongly each group of coupled channels is cut: a group keeps 1 - beta * (its share of
    the cost) of its clusters in expectation, its share being the MACs its channels carry (the layers they are
    outputs of and the layers they are inputs of) over all groups', and beta is solved so that the expected cost
    is alpha times the parent's. Within a layer the budget
    law decides which filters survive (the strongest first). A layer that holds much of the cost is cut much; as
    it shrinks its share falls and so does its cut, so the widths settle where the costs are spread evenly
    instead of draining one layer. (Pricing each filter by its marginal MACs alone does drain: a cut layer makes
    its neighbours cheap, so they are spared and it is cut again: tried on the default run, it drained two layers
    to a couple of filters and the detector's accuracy collapsed.)
    The cost is analytical, not measured: a run then replays bit for bit on any machine (measured per-layer times
    on a shared machine vary from run to run), and dense MACs are what a compacted network computes. Channel
    blocks (vector widths) are ``channel_multiple``'s business, not the cost model's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import torch

Level = Literal["synapse", "cluster"]
COST_MODEL = "cost"
COST_SOLVE_STEPS = 100  # bisection steps on beta: far below float64's resolution of the expected cost


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


LAYER_MODELS = {"budget": budget, "multiplicative": multiplicative}  # a law that acts on one layer by itself
ENVIRONMENT_MODELS: tuple[str, ...] = (*LAYER_MODELS, COST_MODEL)


class CostModel(Protocol):
    """The multiply-accumulates of a network as a function of its groups' widths (``graph.GraphCost``)."""

    def cost(self, widths: Sequence[float]) -> float: ...

    def shares(self, widths: Sequence[float]) -> list[float]: ...


COST_MIN_KEEP = 0.05  # the cost environment keeps at least this fraction of a layer's filters per generation


def cost_alphas(cluster_probabilities: Sequence[torch.Tensor], cost: CostModel, alpha: float) -> list[float]:
    """Per backbone layer, the fraction of its clusters the cost environment keeps in expectation:
    max(COST_MIN_KEEP, 1 - beta * share), with beta solved so that the offspring's expected cost is ``alpha`` times
    the parent's. ``cluster_probabilities[l]`` is layer l's DNA, 0 for clusters already gone."""
    widths = [int((p.reshape(-1) > 0).sum()) for p in cluster_probabilities]
    shares = cost.shares(widths)
    target = alpha * cost.cost(widths)

    def fractions(beta: float) -> list[float]:
        return [max(COST_MIN_KEEP, 1.0 - beta * share) for share in shares]

    def expected_cost(beta: float) -> float:
        return cost.cost([width * kept for width, kept in zip(widths, fractions(beta), strict=True)])

    low, high = 0.0, 1.0 / min(shares)  # beta = high cuts every layer to COST_MIN_KEEP
    if expected_cost(high) >= target:
        return fractions(high)
    for _ in range(COST_SOLVE_STEPS):
        middle = (low + high) / 2
        if expected_cost(middle) > target:
            low = middle
        else:
            high = middle
    return fractions(high)


@dataclass(frozen=True)
class Environment:
    """Environmental conditions of the synthesis, one alpha for clusters and one for synapses.

    An alpha left out is 1, no pressure at that level; the study's environment is its run settings' (``RunConfig``).
    """

    model: str
    alpha_synapse: float = 1.0
    alpha_cluster: float = 1.0

    def __post_init__(self) -> None:
        if self.model not in ENVIRONMENT_MODELS:
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
        if self.model == COST_MODEL:
            if level == "cluster":
                raise ValueError("the cost environment decides clusters for the whole network (group_environments)")
            return budget(probabilities, self.alpha_synapse)
        return LAYER_MODELS[self.model](probabilities, self.alpha(level))

    def group_environments(
        self, cluster_probabilities: Sequence[torch.Tensor], cost: CostModel | None
    ) -> tuple[list[Environment], Environment]:
        """The environment each group of clusters is sampled in, and the one of layers whose outputs are kept:
        this one, except under the cost environment, where each group gets the budget whose cluster alpha the
        network's cost decided (``cost_alphas``) and the kept layers the plain budget."""
        if self.model != COST_MODEL:
            return [self] * len(cluster_probabilities), self
        if cost is None:
            raise ValueError("the cost environment needs the network's cost model")
        alphas = cost_alphas(cluster_probabilities, cost, self.alpha_cluster)
        return [replace(self, model="budget", alpha_cluster=alpha) for alpha in alphas], \
            replace(self, model="budget", alpha_cluster=1.0)
