"""The run's settings: the evolution's knobs and the preset (the task, the ancestor, the training budgets).

A run's identity is everything except the number of generations, so that a longer run resumes a shorter one,
while a run with other alphas, seed, precision, preset or data set can never write into the same folder.

``RunConfig`` is the one declaration of the run settings and their defaults (``settings.setting`` fields);
everything else derives from it: the CLI options (``add_arguments``), the pages' run (``config.json``:
``identity``, ``from_json``), the sweep-file keys (``run_settings``) and the sweep tables' columns. A new setting
is one field; a new default is one value.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from evosynth.core.environment import ENVIRONMENT_MODELS, Environment, check_alpha
from evosynth.core.precision import PRECISIONS, precision_dtype
from evosynth.paths import RUNS_DIR
from evosynth.study import settings
from evosynth.study.presets import (
    BUILT_IN_PRESETS,
    PRESETS,
    Preset,
    check_known_data,
    default_preset,
    get_preset,
    presets_for,
)
from evosynth.study.settings import Setting, setting
from evosynth.task.digits import DigitsSpec
from evosynth.task.imageset import ImageSetSpec
from evosynth.task.registry import DATASETS, FOLDER_DATASETS

# Channel rounding: off, or the block sizes that vector units and tensor cores work in.
CHANNEL_MULTIPLES = (1, 4, 8, 16)


def _first_preset_for_data(values: Mapping[str, Any]) -> str:
    return default_preset(values["data"])


def _by_preset(value_of: Callable[[Preset], float]) -> str:
    """Each built-in preset's value of a setting, for the option's help: "0.84 for paper, smoke; ..."."""
    names: dict[float, list[str]] = {}
    for name, preset in BUILT_IN_PRESETS.items():
        names.setdefault(value_of(preset), []).append(name)
    return "; ".join(f"{value:g} for {', '.join(presets)}" for value, presets in names.items())


@dataclass(frozen=True)
class RunConfig:
    preset: str = setting(
        "paper", "paper = the full study (a deep residual ancestor); shallow = its task with the 5-layer chain "
        "ancestor; smoke = tiny and fast, for tests; smoke-deep = tiny, with a residual ancestor; pedestrians = "
        "photographs; cluttered = the study's ancestor on harder, cluttered digits; smoke-cluttered = smoke on more "
        "clutter (default: the first made for --data: paper for digits, pedestrians for pennfudan and coco)",
        choices=PRESETS, sweep=("grid", "datasets"), fallback=_first_preset_for_data)
    # The default environment was chosen by measurement (benchmarks/README.md, "The default environment"): the cost
    # environment removes what the study's targets ask for in 13 generations, most of it as whole filters, with the
    # highest whole-frame speed-up at equal accuracy. Its strength (the alphas) is each preset's.
    environment: str = setting(
        "cost", "how alpha acts on the probabilities: budget = keep this fraction of the count, "
        "multiplicative = scale every probability, cost = alpha_cluster is the fraction of the parent's "
        "multiply-accumulates kept",
        choices=ENVIRONMENT_MODELS)
    alpha_synapse: float = setting(  # None: the preset's (resolved when the config is made)
        None, f"environmental factor for synapses, in (0, 1] (default: the preset's, "
        f"{_by_preset(lambda preset: preset.alphas[0])})")
    alpha_cluster: float = setting(
        None, f"environmental factor for clusters (filters), in (0, 1] (default: the preset's, "
        f"{_by_preset(lambda preset: preset.alphas[1])})")
    precision: str = setting(
        "fp16", "synaptic precision restriction after training (fp32 = none)", choices=PRECISIONS,
        ancestor=True)
    seed: int = setting(0, "run seed: same seed, same offspring; on photographs it also picks the test fold "
                        "(seed mod the preset's folds), so that seeds differ in the images they test on too",
                        ancestor=True)
    generations: int = setting(13, "generations including the ancestor", identity="never")
    data: str = setting(
        "digits", "digits = generated; pennfudan, coco = read from --data-dir", choices=DATASETS,
        ancestor=True, sweep=("datasets",))
    data_root: str | None = setting(  # made absolute
        None, "the data set's folder, for pennfudan (PennFudanPed/) and coco (annotations.json and its images)",
        flag="--data-dir", identity="unless_default", ancestor=True, sweep=("datasets",))
    category: str | None = setting(
        None, "coco: the category that is the one class (default: the only one)", identity="unless_default",
        ancestor=True, sweep=("datasets",))
    channel_multiple: int = setting(  # every backbone layer's kept clusters
        None, "round each layer's kept filters to a multiple of this, by strength (1 = off; default: the preset's, "
        f"{_by_preset(lambda preset: preset.channel_multiple)})", choices=CHANNEL_MULTIPLES,
        identity="unless_preset")

    def __post_init__(self) -> None:
        preset = get_preset(self.preset)
        self._check_data(preset)
        for name, alpha in zip(("alpha_synapse", "alpha_cluster"), preset.alphas, strict=True):
            if getattr(self, name) is None:  # the environment made for the preset's task
                object.__setattr__(self, name, alpha)
        if self.channel_multiple is None:  # the rounding made for the preset's network
            object.__setattr__(self, "channel_multiple", preset.channel_multiple)
        self.make_environment()
        precision_dtype(self.precision)
        if self.generations < 1:
            raise ValueError(f"generations must be at least 1, got {self.generations}")
        check_alpha("alpha_synapse", self.alpha_synapse)
        check_alpha("alpha_cluster", self.alpha_cluster)
        if self.channel_multiple not in CHANNEL_MULTIPLES:
            raise ValueError(f"channel_multiple must be one of {CHANNEL_MULTIPLES}, got {self.channel_multiple}")

    def _check_data(self, preset: Preset) -> None:
        check_known_data(self.data)
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

    def data_spec(self) -> DigitsSpec | ImageSetSpec:
        """The preset's data spec for this run: photographs test on the fold of the run's seed."""
        spec = self.resolved_preset.data
        return replace(spec, fold=self.seed % spec.folds) if isinstance(spec, ImageSetSpec) else spec

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
        # named where it is in the identity (not the default)
        rounding = f"-cm{self.channel_multiple}" if "channel_multiple" in self._identity_values() else ""
        return (
            f"{self.preset}-{self.data_label}-{self.environment}-as{self.alpha_synapse:g}-ac{self.alpha_cluster:g}"
            f"-{self.precision}-seed{self.seed}{rounding}"
        )

    def default_out(self) -> Path:
        return RUNS_DIR / self.name

    def _identity_values(self, *, ancestor: bool = False) -> dict[str, Any]:
        """The settings in the identity by their rule (of the ancestor's settings only, with ``ancestor``)."""
        def differs(setting: Setting) -> bool:
            default = getattr(self.resolved_preset, setting.name) if setting.identity == "unless_preset" \
                else setting.default
            return bool(getattr(self, setting.name) != default)

        return {s.name: getattr(self, s.name) for s in run_settings()
                if s.identity == "always" or (s.identity in ("unless_default", "unless_preset") and differs(s))
                if s.ancestor or not ancestor}

    def identity(self) -> dict[str, Any]:
        """Everything that changes the result of a generation (not how many generations run)."""
        return {**self._identity_values(), "preset_definition": self.resolved_preset.to_json()}

    def with_generations(self, generations: int) -> RunConfig:
        return replace(self, generations=generations)

    def ancestor_identity(self) -> dict[str, Any]:
        """What generation 1 depends on: the task, the full-size architecture, its training, seed and precision.

        Not the environment nor the offspring budget, which act only from generation 2 on.
        """
        preset = self.resolved_preset
        identity = {
            **self._identity_values(ancestor=True), "data_spec": asdict(self.data_spec()),
            "network": asdict(preset.network), "ancestor_budget": asdict(preset.ancestor),
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
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        """The configuration stored in a run folder's config.json (its identity, and the run's length): a setting
        the identity leaves out takes its default, one it always holds must be there."""
        missing = [s.name for s in run_settings() if s.identity == "always" and s.name not in data]
        if missing:
            raise ValueError(f"a stored run configuration lacks {', '.join(missing)}")
        return cls(**{s.name: data[s.name] for s in run_settings() if s.name in data})

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> RunConfig:
        """The configuration of the settings in ``values`` (parsed CLI options, a sweep-file point; other keys are
        ignored): one missing takes its default, one with a fallback that is missing or None the fallback's value."""
        return cls(**settings.settled_values(cls, values))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """A CLI option per setting: its flag, type, default (None where it has a fallback), choices and help."""
        settings.add_arguments(cls, parser)


def run_settings() -> tuple[Setting, ...]:
    """RunConfig's settings in field order (the order of the CLI options, parameters and sweep axes)."""
    return settings.settings_of(RunConfig)
