"""The comparison's methods and ablations, as registries of small strategy objects that ``compare`` looks up.

A ``Method`` is one way a lineage decides its offspring: its legend label, its run folder's name and identity
(derived from the evolution run it follows), what its metrics say about it, the level it removes structure at and
its decider. ``evolution`` decides by ``evolution.synthesis_decider`` and its lineage is the evolution run itself
(``evolve`` makes it); a baseline decides by a pruning rule of ``evosynth.core.pruning`` and *follows* an evolution
run: it adopts that run's generation 1 into a folder of its own and goes through the same generation step.
A new baseline is one ``Baseline`` subclass here and one line in ``METHODS``.

An ``Ablation`` is one axis the evolution is varied along around the reference run (``precision``, ``level``,
``environment``, ``seed``, ``task``): the run it makes of a value and how the legend names that run. Its key is the
comparison table's column and ``compare.question_rows``'s question.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from evosynth.core.graph import ChannelGraph
from evosynth.core.pruning import IMP_FRACTION, l1_filter_decisions, magnitude_decisions, matched_decisions
from evosynth.core.synthesis import LayerDecision
from evosynth.storage.runs import Generation, RunFolder
from evosynth.study.config import RunConfig
from evosynth.study.evolution import Decide, synthesis_decider

LEVELS: tuple[str, ...] = ("both", "synapse", "cluster")
SWITCHABLE_ENVIRONMENTS = ("budget", "cost")  # where alpha = 1 keeps every entry


def level_config(config: RunConfig, level: str) -> RunConfig:
    """The run that synthesizes at one level only: an alpha of 1 in the budget and cost environments keeps every
    entry (all of the count, all of the cost)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    if level != "both" and config.environment not in SWITCHABLE_ENVIRONMENTS:
        raise ValueError("a level is switched off by alpha = 1, which keeps every entry only in the "
                         f"{' and '.join(SWITCHABLE_ENVIRONMENTS)} environments, not in {config.environment!r}")
    if level == "synapse":
        return replace(config, alpha_cluster=1.0)
    if level == "cluster":
        return replace(config, alpha_synapse=1.0)
    return config


def level_of(alpha_synapse: float, alpha_cluster: float) -> str:
    """Which levels a budget- or cost-environment run synthesizes at (the inverse of ``level_config``)."""
    if alpha_cluster == 1.0 and alpha_synapse < 1.0:
        return "synapse"
    if alpha_synapse == 1.0 and alpha_cluster < 1.0:
        return "cluster"
    return "both"


# ------------------------------------------------------------------------------------------------------ methods


class Method(ABC):
    """One way to decide a lineage's offspring. ``config`` is always the evolution run the lineage follows (for
    ``evolution``, its own run)."""

    key: ClassVar[str]  # the registry key and the table's ``method`` column
    label: ClassVar[str]  # the legend entry (``compare.METHOD_LABELS``)
    follows: ClassVar[bool]  # True: a folder of its own that adopts the run's generation 1; False: the run itself

    @abstractmethod
    def run_name(self, config: RunConfig) -> str:
        """The lineage's run folder name."""

    @abstractmethod
    def identity(self, config: RunConfig) -> dict[str, Any]:
        """What the lineage's generations depend on."""

    @abstractmethod
    def metrics_fields(self, config: RunConfig) -> dict[str, Any]:
        """What the lineage's metrics say about the method, on top of the generation step's."""

    @abstractmethod
    def level(self, config: RunConfig) -> str:
        """The level the lineage removes structure at (the table's ``level`` column)."""

    @abstractmethod
    def decider(self, config: RunConfig, reference: RunFolder) -> Decide:
        """How the lineage decides generation ``number`` from its parent; ``reference`` is ``config``'s folder."""

    def legend(self, config: RunConfig, reference: RunConfig) -> str:
        """The legend entry of a lineage of a comparison around ``reference``."""
        return self.label


class Evolution(Method):
    """Stochastic synthesis, ``evolve`` itself; its ablations are evolution runs that differ from the reference in
    one ``Ablation``."""

    key = "evolution"
    label = "evolutionary synthesis"
    follows = False

    def run_name(self, config: RunConfig) -> str:
        return config.name

    def identity(self, config: RunConfig) -> dict[str, Any]:
        return config.identity()

    def metrics_fields(self, config: RunConfig) -> dict[str, Any]:  # what ``evolve`` writes
        return {"environment": config.environment, "alpha_synapse": config.alpha_synapse,
                "alpha_cluster": config.alpha_cluster}

    def level(self, config: RunConfig) -> str:
        return level_of(config.alpha_synapse, config.alpha_cluster)

    def decider(self, config: RunConfig, reference: RunFolder) -> Decide:
        return synthesis_decider(config)

    def legend(self, config: RunConfig, reference: RunConfig) -> str:
        """The label, and for an ablation how the run differs from the reference (the first axis it differs in)."""
        if config == reference:
            return self.label
        for ablation in ABLATIONS.values():
            if ablation.varies(config, reference):
                return f"{self.label}, {ablation.describe(config)}"
        raise ValueError(f"{config.name} differs from the reference {reference.name} in no ablation "
                         f"({', '.join(ABLATIONS)})")


class Baseline(Method):
    """A pruning rule that follows an evolution run: its generation 1 is that run's, its environment and alphas do
    not apply."""

    follows = True
    prunes: ClassVar[str]  # the level it removes structure at

    def parameters(self) -> dict[str, Any]:
        """The rule's own parameters that its metrics record."""
        return {}

    def metrics_fields(self, config: RunConfig) -> dict[str, Any]:
        return {"method": self.key, "environment": None, "alpha_synapse": None, "alpha_cluster": None,
                "follows": config.name, **self.parameters()}

    def level(self, config: RunConfig) -> str:
        return self.prunes


class L1Filter(Baseline):
    """L1-norm filter pruning to the widths the evolution reached in the same generation: the same MACs, every
    filter dense."""

    key = "l1-filter"
    label = "L1-norm filter pruning"
    prunes = "cluster"

    def run_name(self, config: RunConfig) -> str:
        return f"l1filter-{config.name}"

    def identity(self, config: RunConfig) -> dict[str, Any]:
        return {"method": self.key, "norm": "L1 over the synapses left (greedy)", "widths_of": config.identity()}

    def decider(self, config: RunConfig, reference: RunFolder) -> Decide:
        def by_l1_norm(graph: ChannelGraph, parent: Generation, number: int) -> dict[str, LayerDecision]:
            return l1_filter_decisions(graph, parent.masks, reference.metrics(number)["widths"])

        return by_l1_norm


class MatchedStructure(Baseline):
    """The evolution's structure chosen by strength: per generation, L1 filter pruning to the widths the evolution
    reached and, within each layer, as many synapses as the evolution kept there, the largest |w| first. Same
    MACs and same synapses as the evolution; only the rule that chose them differs (draw against strongest-first)."""

    key = "matched"
    label = "strongest-first, the evolution's widths and synapses"
    prunes = "both"

    def run_name(self, config: RunConfig) -> str:
        return f"matched-{config.name}"

    def identity(self, config: RunConfig) -> dict[str, Any]:
        return {"method": self.key, "filters": "L1 over the synapses left (greedy)",
                "synapses": "largest |w| per layer", "structure_of": config.identity()}

    def decider(self, config: RunConfig, reference: RunFolder) -> Decide:
        def by_strength(graph: ChannelGraph, parent: Generation, number: int) -> dict[str, LayerDecision]:
            target: Generation = reference.load(number)
            counts = {name: int(mask.sum()) for name, mask in target.masks.items()}
            return matched_decisions(graph, parent.masks, target.metrics["widths"], counts)

        return by_strength


class IterativeMagnitude(Baseline):
    """Iterative magnitude pruning, ``IMP_FRACTION`` of the remaining synapses per generation and layer, masks
    only."""

    key = "imp"
    label = "iterative magnitude pruning (masks only)"
    prunes = "synapse"

    def parameters(self) -> dict[str, Any]:
        return {"prune_fraction": IMP_FRACTION}

    def run_name(self, config: RunConfig) -> str:  # no environment: it depends on the ancestor (and budgets) only
        return f"imp{IMP_FRACTION:g}-layerwise-{config.ancestor_name}"

    def identity(self, config: RunConfig) -> dict[str, Any]:
        shared = {k: v for k, v in config.identity().items()
                  if k not in ("environment", "alpha_synapse", "alpha_cluster")}
        return {"method": self.key, "fraction": IMP_FRACTION, "scope": "layer-wise", **shared}

    def decider(self, config: RunConfig, reference: RunFolder) -> Decide:
        def by_magnitude(graph: ChannelGraph, parent: Generation, _number: int) -> dict[str, LayerDecision]:
            return magnitude_decisions(graph, parent.masks, IMP_FRACTION)

        return by_magnitude


METHODS: dict[str, Method] = {method.key: method for method in
                              (Evolution(), L1Filter(), MatchedStructure(), IterativeMagnitude())}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


# ---------------------------------------------------------------------------------------------------- ablations


class Ablation(ABC):
    """One axis the evolution is varied along around the reference run."""

    @abstractmethod
    def vary(self, reference: RunConfig, value: Any) -> RunConfig:
        """The evolution run that takes ``value`` on this axis and is the reference in everything else."""

    @abstractmethod
    def varies(self, config: RunConfig, reference: RunConfig) -> bool:
        """Whether ``config`` differs from the reference on this axis."""

    @abstractmethod
    def describe(self, config: RunConfig) -> str:
        """How the legend names the run's value on this axis."""


@dataclass(frozen=True)
class SettingAblation(Ablation):
    """An axis that is one run setting, taken as it is: ``setting`` is the ``RunConfig`` field, ``legend`` names its
    value."""

    setting: str
    legend: Callable[[Any], str]

    def vary(self, reference: RunConfig, value: Any) -> RunConfig:
        return replace(reference, **{self.setting: value})

    def varies(self, config: RunConfig, reference: RunConfig) -> bool:
        return getattr(config, self.setting) != getattr(reference, self.setting)

    def describe(self, config: RunConfig) -> str:
        return self.legend(getattr(config, self.setting))


class LevelAblation(Ablation):
    """The level of synthesis (``LEVELS``): an alpha of 1 switches the other level off."""

    def vary(self, reference: RunConfig, value: Any) -> RunConfig:
        return level_config(reference, value)

    def varies(self, config: RunConfig, reference: RunConfig) -> bool:
        return level_of(config.alpha_synapse, config.alpha_cluster) != level_of(reference.alpha_synapse,
                                                                              reference.alpha_cluster)

    def describe(self, config: RunConfig) -> str:
        return f"{level_of(config.alpha_synapse, config.alpha_cluster)} level only"


def environment_equivalent(reference: RunConfig, environment: str) -> RunConfig:
    """The reference run in the budget or the cost environment at the same expected MAC shrink per generation: a
    layer keeping a fraction a of its filters feeds a next layer that keeps a of its own, so each convolution's
    MACs shrink by about a squared (budget a is cost a squared; cost c is budget the square root of c)."""
    if {reference.environment, environment} - {"budget", "cost"}:
        raise ValueError(f"the environment ablation compares the budget with the cost environment, not "
                         f"{reference.environment!r} with {environment!r}")
    if environment == reference.environment:
        return reference
    alpha = reference.alpha_cluster**2 if environment == "cost" else math.sqrt(reference.alpha_cluster)
    return replace(reference, environment=environment, alpha_cluster=round(alpha, 3))


class EnvironmentAblation(Ablation):
    """How the environment reads alpha_cluster: a fraction of the filters (the budget), or of the MACs (cost),
    at the same expected MAC shrink per generation (``environment_equivalent``)."""

    def vary(self, reference: RunConfig, value: Any) -> RunConfig:
        return environment_equivalent(reference, value)

    def varies(self, config: RunConfig, reference: RunConfig) -> bool:
        return config.environment != reference.environment

    def describe(self, config: RunConfig) -> str:
        what = "MACs" if config.environment == "cost" else "filters"
        return f"{config.environment} environment (keep {config.alpha_cluster:g} of the {what})"


# the presets that change the ancestor's network, not the task, named as such
PRESET_LEGENDS = {"shallow": "shallow ancestor (5-layer chain)"}

# in the order a plan's lineages list them; keys are the table's columns and ``question_rows``'s questions
ABLATIONS: dict[str, Ablation] = {
    # the precision restriction: fp32 (none), fp16, bf16, int8
    "precision": SettingAblation("precision", str.upper),
    "level": LevelAblation(),
    "environment": EnvironmentAblation(),
    # the run seed: the ancestor's initialisation and every random stream
    "seed": SettingAblation("seed", "seed {}".format),
    # the task or the ancestor (a ``digits`` preset: its data and the network trained on it), e.g. the cluttered
    # task, or the shallow chain the study began with; each lineage is read against its own generation 1
    "task": SettingAblation("preset", lambda preset: PRESET_LEGENDS.get(preset, f"{preset} task")),
}
