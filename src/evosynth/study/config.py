"""Run configuration: presets (the task, the ancestor, the training budgets) plus the evolution's knobs.

A run's identity is everything except the number of generations, so that a longer run resumes a shorter one,
while a run with other alphas, seed, precision, preset or data set can never write into the same folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from evosynth.core.environment import Environment, check_alpha
from evosynth.core.precision import precision_dtype
from evosynth.task.data import DATASETS, FOLDER_DATASETS, DigitsSpec
from evosynth.task.imageset import ImageSetSpec
from evosynth.task.training import TrainingBudget


@dataclass(frozen=True)
class Preset:
    """A task and its training budgets: ``paper`` is the study, ``smoke`` a tiny copy for tests, ``pedestrians``
    the same experiment on photographs (Penn-Fudan, or a COCO folder).

    ``data`` is the spec of the data sets the preset is made for (``data.datasets``): its architecture and budgets
    suit that kind of image.
    """

    name: str
    data: DigitsSpec | ImageSetSpec
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
    "pedestrians": Preset(
        name="pedestrians",
        # 128 x 160 is Penn-Fudan's median aspect ratio (1.26); pedestrians come out about 28 x 80 pixels. Six
        # blocks at stride 8 give a 16 x 20 grid and a 63-pixel receptive field; 110 training images call for
        # small batches (more steps per epoch) and a gentler learning rate than digits.
        data=ImageSetSpec(height=128, width=160),
        widths=(16, 24, 32, 48, 64, 96),
        strides=(2, 2, 2, 1, 1, 1),
        ancestor=TrainingBudget(max_epochs=100, batch_size=16, learning_rate=2e-3, patience=12),
        offspring=TrainingBudget(max_epochs=12, batch_size=16, learning_rate=1e-3),
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


def presets_for(data: str) -> list[str]:
    """The presets made for a data set, the default (the first) first."""
    return [name for name, preset in PRESETS.items() if data in preset.data.datasets]


def _check_known(data: str) -> None:
    if data not in DATASETS:
        raise ValueError(f"unknown data set {data!r}; known: {', '.join(sorted(DATASETS))}")


def default_preset(data: str) -> str:
    """The preset a data set gets when none is named (the first made for it): paper for digits, pedestrians for
    photographs."""
    _check_known(data)
    return presets_for(data)[0]


# Channel rounding: off, or the block sizes that vector units and tensor cores work in.
CHANNEL_MULTIPLES = (1, 4, 8, 16)

# The fields that name where a run's data comes from; unset for generated digits.
_SOURCE_FIELDS = ("data_root", "category")


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
    data_root: str | None = None  # the data set's folder, for those read from one (pennfudan, coco); made absolute
    category: str | None = None  # coco: the category that is the one class (default: the only one)
    channel_multiple: int = 1  # round every backbone layer's kept clusters to a multiple of this (1 = off)

    def __post_init__(self) -> None:
        self._check_data(get_preset(self.preset))
        self.make_environment()
        precision_dtype(self.precision)
        if self.generations < 1:
            raise ValueError(f"generations must be at least 1, got {self.generations}")
        check_alpha("alpha_synapse", self.alpha_synapse)
        check_alpha("alpha_cluster", self.alpha_cluster)
        if self.channel_multiple not in CHANNEL_MULTIPLES:
            raise ValueError(f"channel_multiple must be one of {CHANNEL_MULTIPLES}, got {self.channel_multiple}")

    def _check_data(self, preset: Preset) -> None:
        _check_known(self.data)
        if self.data in FOLDER_DATASETS:
            if self.data_root is None:
                raise ValueError(f"data set {self.data!r} is read from its folder: name it (--data-dir PATH)")
            # Absolute, so that the same relative path given from another directory is not taken for this data.
            object.__setattr__(self, "data_root", str(Path(self.data_root).expanduser().resolve()))
        elif self.data_root is not None:
            raise ValueError(f"data set {self.data!r} is generated and reads no folder: drop --data-dir "
                             "(its cache folder is --cache-dir)")
        if self.category is not None and self.data != "coco":
            raise ValueError(f"a category (--category) picks a class of a coco data set, not of {self.data!r}")
        if self.data not in preset.data.datasets:
            raise ValueError(f"preset {self.preset!r} is made for {', '.join(preset.data.datasets)}, not "
                             f"{self.data!r}; choose one of: {', '.join(presets_for(self.data))}")

    def make_environment(self) -> Environment:
        return Environment(self.environment, self.alpha_synapse, self.alpha_cluster)

    @property
    def resolved_preset(self) -> Preset:
        return get_preset(self.preset)

    def data_source(self) -> dict[str, str]:
        """The loader's options that say which data to read (``root``, ``category``); empty for digits."""
        source = {"root": self.data_root, "category": self.category}
        return {option: value for option, value in source.items() if value is not None}

    @property
    def data_label(self) -> str:
        """The data set in folder names; one read from a folder adds its category and a hash of folder and
        category, so that runs on two folders get two run folders."""
        if self.data_root is None:
            return self.data
        digest = hashlib.sha256(json.dumps([self.data_root, self.category]).encode()).hexdigest()[:8]
        category = [re.sub(r"[^A-Za-z0-9]+", "_", self.category)] if self.category else []
        return "-".join([self.data, *category, digest])

    @property
    def name(self) -> str:
        return (
            f"{self.preset}-{self.data_label}-{self.environment}-as{self.alpha_synapse:g}-ac{self.alpha_cluster:g}"
            f"-{self.precision}-seed{self.seed}" + (f"-cm{self.channel_multiple}" if self.channel_multiple > 1 else "")
        )

    def default_out(self) -> Path:
        return Path("runs") / self.name

    def _source_identity(self) -> dict[str, str]:
        """data_root and category where set: a digits run keeps the identity it had before other data sets
        existed, so that its existing run folders still resume."""
        return {name: getattr(self, name) for name in _SOURCE_FIELDS if getattr(self, name) is not None}

    def identity(self) -> dict[str, Any]:
        """Everything that changes the result of a generation (not how many generations run)."""
        values = {key: value for key, value in asdict(self).items()
                  if key not in ("generations", "channel_multiple", *_SOURCE_FIELDS)}
        values.update(self._source_identity())
        if self.channel_multiple > 1:  # absent when off, so runs made before the option existed still resume
            values["channel_multiple"] = self.channel_multiple
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
            **self._source_identity(),
        }
        return json.loads(json.dumps(identity))

    @property
    def ancestor_name(self) -> str:
        """Readable, and keyed by a hash of the ancestor's identity so that two ancestors never share a folder."""
        digest = hashlib.sha256(json.dumps(self.ancestor_identity(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.preset}-{self.data_label}-{self.precision}-seed{self.seed}-{digest}"

    def check_generation(self, number: int) -> int:
        if not 1 <= int(number) <= self.generations:
            raise ValueError(f"generation must be between 1 and {self.generations}, got {number}")
        return int(number)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        """The configuration stored in a run folder's config.json."""
        fields = {key: data[key] for key in ("preset", "environment", "alpha_synapse", "alpha_cluster",
                                              "precision", "seed", "generations", "data", "channel_multiple",
                                              *_SOURCE_FIELDS)
                  if key in data}
        return cls(**fields)
