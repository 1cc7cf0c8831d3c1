"""Run configuration: presets (the task, the ancestor, the training budgets) plus the evolution's knobs.

A run's identity is everything except the number of generations, so that a longer run resumes a shorter one,
while a run with other alphas, seed, precision, preset or data set can never write into the same folder.

``RunConfig`` is the one declaration of the run settings (in the manner of open_lth's ``hparams``): each field's
metadata (``setting``) carries its help text, its choices and how it enters the identity and the sweep files, and
everything else derives from the dataclass: the CLI options (``add_arguments``), the generation notebook's
parameters (``parameters``, ``from_parameters``), ``config.json`` (``identity``, ``from_json``) and the sweep-file
keys (``run_settings``). A new setting is one field.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from evosynth.core.environment import ENVIRONMENT_MODELS, Environment, check_alpha
from evosynth.core.precision import PRECISIONS, precision_dtype
from evosynth.task.digits import DigitsSpec
from evosynth.task.imageset import ImageSetSpec
from evosynth.task.registry import DATASETS, FOLDER_DATASETS
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


def digits_preset(name: str, data: DigitsSpec) -> Preset:
    """The study's ancestor and training budgets on one ``digits`` task."""
    return Preset(name=name, data=data, widths=(32, 48, 64, 96, 128), strides=(2, 2, 2, 1, 1),
                  ancestor=TrainingBudget(max_epochs=40, patience=6),
                  offspring=TrainingBudget(max_epochs=5, learning_rate=1.5e-3))


# The study's task, chosen for the paper's regime (an ancestor with slack): one to three clear digits 16-29 px tall
# on a 64-pixel canvas, little clutter. A dense network of 0.41 of the ancestor's widths (0.18 of its MACs) trained
# from scratch gives up 0.9 AP50 points over seeds 0-2 (0.7 / 1.2 / 0.8; ancestor AP50 0.89-0.91, Intel Xeon): drawn
# this small, what limits the detector is the size of its objects more than its width. The same task drawn at 96
# pixels (digits 24-44 px; ancestor AP50 0.94) gave up 1.4 (Intel Xeon) and 1.8 (AMD EPYC) at 2.2x the compute per
# image, at 80 pixels 3.1 (seed 0), the cluttered task and its variants 2.1-6.3 (AMD EPYC)
# (benchmarks/task_regime_scan.py and its JSON files).
SLACK_TASK = DigitsSpec(canvas=64, digits=(1, 3), digit_height=(16.0, 29.3), fragments=(0, 0), scribbles=(0, 0),
                        lines=(0, 2), blobs=(0, 2), texture=(0.02, 0.08), max_occlusion=0.3, min_contrast=0.45)

SMOKE_TASK = DigitsSpec(canvas=48, n_train=96, n_val=32, n_test=32, digits=(1, 2), digit_height=(14.0, 24.0))
SMOKE = Preset(
    name="smoke",
    data=SMOKE_TASK,
    widths=(8, 16, 16),
    strides=(2, 2, 2),
    ancestor=TrainingBudget(max_epochs=3, batch_size=32, patience=2),
    offspring=TrainingBudget(max_epochs=1, batch_size=32),
)

PRESETS: dict[str, Preset] = {
    "paper": digits_preset("paper", SLACK_TASK),
    "smoke": SMOKE,
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
    # the smoke preset on a more cluttered task: the smoke comparison's task ablation
    "smoke-cluttered": replace(SMOKE, name="smoke-cluttered",
                               data=replace(SMOKE_TASK, fragments=(2, 4), scribbles=(1, 3))),
    # the study's default before its task was chosen for slack: the same ancestor on the cluttered task at 96
    # pixels, which leaves it no slack (the comparison's task ablation)
    "cluttered": digits_preset("cluttered", DigitsSpec()),
}

# The default environment, chosen by measuring whole-frame speed at equal accuracy: the cost environment ended, on
# the AMD kind, at about the count budget's AP50 with more MACs removed and a higher frame speed-up on every CPU
# backend measured; channel rounding to 8 or 16 did not raise the speed-up (benchmarks/ holds the measurements).
# Its strength removes what the study's targets ask for in 13 generations (ten-fold fewer synapses, six-fold fewer
# MACs), most of it as whole filters. On the study's task, seeds 0-2 (Intel Xeon): keeping 0.84 of the parent's MACs
# and 0.98 of its synapses per generation ends 12.2-13.3x below the ancestor's synapses and 7.6-9.0x below its MACs,
# AP50 +0.5 / -1.8 / -1.2 as bred and +0.5 / -1.3 / -0.7 after the final training, against L1 filter pruning to the
# same widths with the same training -0.9 and -0.7 on the mean; 0.85 ended at 9.2-10.7x fewer synapses (mean 9.98x,
# short of ten-fold), AP50 -1.1 both ways, L1 -0.4 / +0.0. On the same task drawn at 96 pixels, 0.85 and 0.98 gave
# 10.5x at -1.5 / -0.6 (benchmarks/alpha_lever.py and its JSON files).
DEFAULT_ENVIRONMENT = "cost"
DEFAULT_ALPHA_SYNAPSE = 0.98
DEFAULT_ALPHA_CLUSTER = 0.84


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

# How a setting enters a run's identity: always; only where it differs from its default (so that a run that does
# not use it has the identity, name and ancestor it has without it); or never (how many generations run).
IdentityRule = Literal["always", "unless_default", "never"]
# The tables of a sweep file a setting's key may appear in: an axis of [grid], or a key of a [[datasets]] entry.
SweepTable = Literal["grid", "datasets"]


def setting(
    default: Any,
    help: str,
    *,
    choices: Collection[Any] | None = None,
    flag: str | None = None,
    identity: IdentityRule = "always",
    ancestor: bool = False,
    sweep: tuple[SweepTable, ...] = ("grid",),
    fallback: Callable[[Mapping[str, Any]], Any] | None = None,
) -> Any:
    """A field of RunConfig and what the front ends derive from it.

    ``help``: the CLI option's help text. ``choices``: the allowed values (from their registry). ``flag``: the CLI
    option (``--`` and the name with dashes). ``identity``: see ``IdentityRule``. ``ancestor``: generation 1 depends
    on it. ``sweep``: see ``SweepTable``. ``fallback``: where a front end leaves the setting unset (None), its value
    is ``fallback(the other settings)`` rather than the default.
    """
    metadata = {"help": help, "choices": choices, "flag": flag, "identity": identity, "ancestor": ancestor,
                "sweep": sweep, "fallback": fallback}
    return field(default=default, metadata=metadata)


def _first_preset_for_data(values: Mapping[str, Any]) -> str:
    return default_preset(values["data"])


@dataclass(frozen=True)
class RunConfig:
    preset: str = setting(
        "paper", "paper = the full study; smoke = tiny and fast, for tests; pedestrians = photographs; cluttered = "
        "the study's ancestor on harder, cluttered digits; smoke-cluttered = smoke on more clutter (default: the "
        "first made for --data: paper for digits, pedestrians for pennfudan and coco)",
        choices=PRESETS, sweep=("grid", "datasets"), fallback=_first_preset_for_data)
    environment: str = setting(
        DEFAULT_ENVIRONMENT, "how alpha acts on the probabilities: budget = keep this fraction of the count, "
        "multiplicative = scale every probability, cost = alpha_cluster is the fraction of the parent's "
        f"multiply-accumulates kept ({DEFAULT_ENVIRONMENT})",
        choices=ENVIRONMENT_MODELS)
    alpha_synapse: float = setting(
        DEFAULT_ALPHA_SYNAPSE, f"environmental factor for synapses, in (0, 1] ({DEFAULT_ALPHA_SYNAPSE})")
    alpha_cluster: float = setting(
        DEFAULT_ALPHA_CLUSTER, f"environmental factor for clusters (filters), in (0, 1] ({DEFAULT_ALPHA_CLUSTER})")
    precision: str = setting(
        "fp16", "synaptic precision restriction after training (fp16; fp32 = none)", choices=PRECISIONS,
        ancestor=True)
    seed: int = setting(0, "run seed: same seed, same offspring (0)", ancestor=True)
    generations: int = setting(13, "generations including the ancestor (13)", identity="never")
    data: str = setting(
        "digits", "digits = generated (default); pennfudan, coco = read from --data-dir", choices=DATASETS,
        ancestor=True, sweep=("datasets",))
    data_root: str | None = setting(  # made absolute
        None, "the data set's folder, for pennfudan (PennFudanPed/) and coco (annotations.json and its images)",
        flag="--data-dir", identity="unless_default", ancestor=True, sweep=("datasets",))
    category: str | None = setting(
        None, "coco: the category that is the one class (default: the only one)", identity="unless_default",
        ancestor=True, sweep=("datasets",))
    channel_multiple: int = setting(  # every backbone layer's kept clusters
        1, "round each layer's kept filters to a multiple of this, by strength (1 = off)", choices=CHANNEL_MULTIPLES,
        identity="unless_default")

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

    def _identity_values(self, *, ancestor: bool = False) -> dict[str, Any]:
        """The settings in the identity by their rule (of the ancestor's settings only, with ``ancestor``)."""
        return {s.name: getattr(self, s.name) for s in run_settings()
                if s.identity == "always" or (s.identity == "unless_default" and getattr(self, s.name) != s.default)
                if s.ancestor or not ancestor}

    def identity(self) -> dict[str, Any]:
        """Everything that changes the result of a generation (not how many generations run)."""
        return {**self._identity_values(), "preset_definition": self.resolved_preset.to_json()}

    def parameters(self) -> dict[str, Any]:
        """Every setting by name: the generation notebook's parameters (``from_parameters`` reads them back)."""
        return {s.name: getattr(self, s.name) for s in run_settings()}

    def with_generations(self, generations: int) -> RunConfig:
        return replace(self, generations=generations)

    def ancestor_identity(self) -> dict[str, Any]:
        """What generation 1 depends on: the task, the full-size architecture, its training, seed and precision.

        Not the environment nor the offspring budget, which act only from generation 2 on.
        """
        preset = self.resolved_preset
        identity = {
            **self._identity_values(ancestor=True), "data_spec": asdict(preset.data), "widths": preset.widths,
            "strides": preset.strides, "ancestor_budget": asdict(preset.ancestor),
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
        """The configuration of the settings in ``values`` (parsed CLI options, a notebook's globals, a sweep-file
        point; other keys are ignored): one missing takes its default, and one with a fallback that is missing or
        None takes the fallback's value."""
        given = {s.name: values[s.name] for s in run_settings()
                 if s.name in values and not (s.fallback is not None and values[s.name] is None)}
        settled = {s.name: given.get(s.name, s.default) for s in run_settings()}
        for s in run_settings():
            if s.fallback is not None and s.name not in given:
                given[s.name] = s.fallback(settled)
        return cls(**given)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """A CLI option per setting: its flag, type, default (None where it has a fallback), choices and help."""
        for s in run_settings():
            options: dict[str, Any] = {"type": s.kind, "default": None if s.fallback else s.default, "help": s.help}
            if s.choices is not None:
                options["choices"] = list(s.choices)
            else:
                options["metavar"] = s.flag.removeprefix("--").upper().replace("-", "_")
            parser.add_argument(s.flag, dest=s.name, **options)


@dataclass(frozen=True)
class Setting:
    """One run setting, as RunConfig declares it: its field, type and ``setting`` metadata."""

    name: str
    kind: type  # str, int or float; the value may also be None where the default is
    default: Any
    help: str
    choices: Collection[Any] | None  # the registry itself, read when used: a registered preset counts
    flag: str
    identity: IdentityRule
    ancestor: bool
    sweep: tuple[SweepTable, ...]
    fallback: Callable[[Mapping[str, Any]], Any] | None


def _value_type(annotation: Any) -> type:
    """``float`` of ``float``, ``str`` of ``str | None``."""
    if isinstance(annotation, types.UnionType):
        [kind] = [arg for arg in get_args(annotation) if arg is not type(None)]
        return kind
    return annotation


@functools.cache
def run_settings() -> tuple[Setting, ...]:
    """RunConfig's settings in field order (the order of the CLI options, parameters and sweep axes)."""
    hints = get_type_hints(RunConfig)
    return tuple(
        Setting(name=f.name, kind=_value_type(hints[f.name]), default=f.default, help=f.metadata["help"],
                choices=f.metadata["choices"], flag=f.metadata["flag"] or "--" + f.name.replace("_", "-"),
                identity=f.metadata["identity"], ancestor=f.metadata["ancestor"], sweep=f.metadata["sweep"],
                fallback=f.metadata["fallback"])
        for f in fields(RunConfig)
    )
