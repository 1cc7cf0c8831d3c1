"""Run configuration: presets (the task, the ancestor, the training budgets) plus the evolution's knobs.

A run's identity is everything except the number of generations, so that a longer run resumes a shorter one,
while a run with other alphas, seed, precision or preset can never write into the same folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from evosynth.environment import Environment, check_alpha
from evosynth.precision import precision_dtype
from evosynth.task.data import DigitsSpec
from evosynth.task.training import TrainingBudget


@dataclass(frozen=True)
class Preset:
    """A task and its training budgets; ``paper`` is the study, ``smoke`` a tiny copy for tests."""

    name: str
    data: DigitsSpec
    widths: tuple[int, ...]
    strides: tuple[int, ...]
    ancestor: TrainingBudget
    offspring: TrainingBudget

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        data=DigitsSpec(),
        widths=(32, 48, 64, 96, 128),
        strides=(2, 2, 2, 1, 1),
        ancestor=TrainingBudget(max_epochs=40, patience=6),
        offspring=TrainingBudget(max_epochs=5, learning_rate=1.5e-3),
    ),
    "smoke": Preset(
        name="smoke",
        data=DigitsSpec(canvas=48, n_train=96, n_val=32, n_test=32, digits=(1, 2), digit_height=(14.0, 24.0)),
        widths=(8, 16, 16),
        strides=(2, 2, 2),
        ancestor=TrainingBudget(max_epochs=3, batch_size=32, patience=2),
        offspring=TrainingBudget(max_epochs=1, batch_size=32),
    ),
}

# The default environment; the README explains the choice (10x fewer synapses and 6x fewer MACs in 13 generations).
DEFAULT_ENVIRONMENT = "budget"
DEFAULT_ALPHA_SYNAPSE = 0.96
DEFAULT_ALPHA_CLUSTER = 0.915


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class RunConfig:
    preset: str = "paper"
    environment: str = DEFAULT_ENVIRONMENT
    alpha_synapse: float = DEFAULT_ALPHA_SYNAPSE
    alpha_cluster: float = DEFAULT_ALPHA_CLUSTER
    precision: str = "fp16"
    seed: int = 0
    generations: int = 13
    data: str = "digits"

    def __post_init__(self) -> None:
        get_preset(self.preset)
        self.make_environment()
        precision_dtype(self.precision)
        if self.generations < 1:
            raise ValueError(f"generations must be at least 1, got {self.generations}")
        check_alpha("alpha_synapse", self.alpha_synapse)
        check_alpha("alpha_cluster", self.alpha_cluster)

    def make_environment(self) -> Environment:
        return Environment(self.environment, self.alpha_synapse, self.alpha_cluster)

    @property
    def resolved_preset(self) -> Preset:
        return get_preset(self.preset)

    @property
    def name(self) -> str:
        return (
            f"{self.preset}-{self.data}-{self.environment}-as{self.alpha_synapse:g}-ac{self.alpha_cluster:g}"
            f"-{self.precision}-seed{self.seed}"
        )

    def default_out(self) -> Path:
        return Path("runs") / self.name

    def identity(self) -> dict[str, Any]:
        """Everything that changes the result of a generation (not how many generations run)."""
        values = asdict(self)
        values.pop("generations")
        values["preset_definition"] = self.resolved_preset.to_json()
        return values

    def with_generations(self, generations: int) -> RunConfig:
        return replace(self, generations=generations)

    def ancestor_identity(self) -> dict[str, Any]:
        """What generation 1 depends on: the task, the full-size architecture, its training, seed and precision.

        Not the environment nor the offspring budget, which act only from generation 2 on.
        """
        preset = self.resolved_preset
        identity = {
            "data": self.data, "seed": self.seed, "precision": self.precision, "data_spec": asdict(preset.data),
            "widths": preset.widths, "strides": preset.strides, "ancestor_budget": asdict(preset.ancestor),
        }
        return json.loads(json.dumps(identity))

    @property
    def ancestor_name(self) -> str:
        """Readable, and keyed by a hash of the ancestor's identity so that two ancestors never share a folder."""
        digest = hashlib.sha256(json.dumps(self.ancestor_identity(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.preset}-{self.data}-{self.precision}-seed{self.seed}-{digest}"

    def check_generation(self, number: int) -> int:
        if not 1 <= int(number) <= self.generations:
            raise ValueError(f"generation must be between 1 and {self.generations}, got {number}")
        return int(number)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        """The configuration stored in a run folder's config.json."""
        fields = {key: data[key] for key in ("preset", "environment", "alpha_synapse", "alpha_cluster",
                                              "precision", "seed", "generations", "data") if key in data}
        return cls(**fields)
