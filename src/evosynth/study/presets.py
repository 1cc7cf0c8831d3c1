"""Presets: a task and the ancestor and training budgets made for it. ``paper`` is the study (a deep residual
detector, the paper's kind of network, on the study's digits task), ``shallow`` the same task with the 5-layer chain
the study began with (the comparison's shallow-ancestor ablation), ``smoke`` and ``smoke-deep`` tiny copies for
tests, ``pedestrians`` the same experiment on photographs (Penn-Fudan, or a COCO folder).

Why each is what it is was measured, and the measurements are in ``benchmarks/`` (``benchmarks/README.md`` says
which file holds what): a preset says what it is, not what was tried.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Any

from evosynth.task.digits import DigitsSpec
from evosynth.task.imageset import ImageSetSpec
from evosynth.task.registry import DATASETS
from evosynth.task.training import TrainingBudget


@dataclass(frozen=True)
class Network:
    """The ancestor's architecture: a builder of ``task.recipe.BUILDERS`` and its JSON arguments (the input
    channels are the data's)."""

    builder: str
    arguments: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def arguments_for(self, in_channels: int) -> dict[str, Any]:
        return {"in_channels": in_channels, **json.loads(json.dumps(self.arguments))}


def chain(widths: tuple[int, ...], strides: tuple[int, ...]) -> Network:
    """The chain detector (``task.model.GridDetector``): conv blocks of these widths and strides."""
    return Network("grid_detector", {"widths": list(widths), "strides": list(strides)})


@dataclass(frozen=True)
class Preset:
    """A task, its ancestor, its training budgets and the environment made for it. ``data`` is the spec of the data
    sets the preset is made for (``data.datasets``): its network and budgets suit that kind of image. ``alphas``
    (alpha_synapse, alpha_cluster) are a run's unless it names others: how hard the environment pushes depends on
    how much slack the ancestor has on its task. ``channel_multiple`` rounds every layer's kept filters, unless a
    run names another: a multiple of the vector units' channel block runs faster per MAC, and a network of few
    channels per layer needs a finer step."""

    name: str
    data: DigitsSpec | ImageSetSpec
    network: Network
    ancestor: TrainingBudget
    offspring: TrainingBudget
    alphas: tuple[float, float] = (0.98, 0.84)
    channel_multiple: int = 8

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# The paper's kind of ancestor: residual stages behind a 4x4 stride-4 stem that reads each pixel once (the deep
# candidate with the most room to speed up at its training cost: benchmarks/README.md, "A deep ancestor").
DEEP_NETWORK = Network("residual_detector", {"stem_widths": [32], "widths": [64, 128], "blocks": 2, "patch_stem": True})
# The study's first ancestor, a 5-layer chain: its frame time has a floor that no evolution of it passes.
SHALLOW_NETWORK = chain((32, 48, 64, 96, 128), (2, 2, 2, 1, 1))


def digits_preset(name: str, data: DigitsSpec, network: Network = DEEP_NETWORK) -> Preset:
    """An ancestor and the study's training budgets on one ``digits`` task; its alphas remove what the study's
    targets ask for in 13 generations (benchmarks/README.md, "The default environment"). Kept filters are
    multiples of 16, AVX-512's FP32 vector width: over seeds 0-2 the last generation turned more of its MAC
    reduction into frame speed than in multiples of 8, and kept precision (benchmarks/README.md, "Channels in
    sixteens")."""
    return Preset(name=name, data=data, network=network, ancestor=TrainingBudget(max_epochs=40, patience=6),
                  offspring=TrainingBudget(max_epochs=5, learning_rate=1.5e-3), alphas=(0.98, 0.84),
                  channel_multiple=16)


# The study's task, chosen for the paper's regime, an ancestor with slack: one to three clear digits 16-29 px tall
# on a 64-pixel canvas, little clutter (the scan of tasks: benchmarks/README.md, "The study's task").
SLACK_TASK = DigitsSpec(canvas=64, digits=(1, 3), digit_height=(16.0, 29.3), fragments=(0, 0), scribbles=(0, 0),
                        lines=(0, 2), blobs=(0, 2), texture=(0.02, 0.08), max_occlusion=0.3, min_contrast=0.45)

SMOKE_TASK = DigitsSpec(canvas=48, n_train=96, n_val=32, n_test=32, digits=(1, 2), digit_height=(14.0, 24.0))
SMOKE = Preset(
    name="smoke",
    data=SMOKE_TASK,
    network=chain((8, 16, 16), (2, 2, 2)),
    ancestor=TrainingBudget(max_epochs=3, batch_size=32, patience=2),
    offspring=TrainingBudget(max_epochs=1, batch_size=32),
)

BUILT_IN_PRESETS: Mapping[str, Preset] = MappingProxyType({
    "paper": digits_preset("paper", SLACK_TASK),
    "shallow": digits_preset("shallow", SLACK_TASK, SHALLOW_NETWORK),
    "smoke": SMOKE,
    "pedestrians": Preset(
        name="pedestrians",
        # 128 x 160 is Penn-Fudan's median aspect ratio (1.26); pedestrians come out about 28 x 80 pixels. The
        # study's residual family at half its widths: stride 8 gives a 16 x 20 grid, the receptive field spans
        # about 90 pixels; 110 training images call for small batches (more steps per epoch) and a gentler
        # learning rate than digits. Mirrored, zoomed and recoloured batches took the ancestor from AP50 0.50 to
        # 0.82 (mean of three folds); pasting masked pedestrians gave no more. Offspring trained 24 epochs ended
        # generation 4 at -2.5 AP50 points, 12 epochs at -6.0 (benchmarks/README.md, "Penn-Fudan").
        data=ImageSetSpec(height=128, width=160),
        network=Network("residual_detector", {"stem_widths": [16], "widths": [32, 64], "blocks": 2,
                                              "patch_stem": True}),
        ancestor=TrainingBudget(max_epochs=300, batch_size=16, learning_rate=2e-3, patience=30,
                                augmentation="photometric"),
        offspring=TrainingBudget(max_epochs=24, batch_size=16, learning_rate=1e-3, augmentation="photometric"),
        # The study's slack criterion on this task: dense copies at 0.169 of the ancestor's MACs, from scratch, end
        # +0.5 AP50 points from it, at 0.065 -7.1 (three folds); 0.86 (0.862 rounded) reaches 0.169 in 12 offspring.
        alphas=(0.98, 0.86),
    ),
    # the smoke preset on a more cluttered task: the smoke comparison's task ablation
    "smoke-cluttered": replace(SMOKE, name="smoke-cluttered",
                               data=replace(SMOKE_TASK, fragments=(2, 4), scribbles=(1, 3))),
    # the study's task before it was chosen for slack: cluttered digits at 96 pixels, which left the first (shallow)
    # ancestor no slack (the comparison's task ablation)
    "cluttered": digits_preset("cluttered", DigitsSpec()),
    # the smoke preset with a tiny residual ancestor of the study's family
    "smoke-deep": replace(SMOKE, name="smoke-deep", network=Network(
        "residual_detector", {"stem_widths": [8], "widths": [8, 16], "blocks": 1, "patch_stem": True})),
})

# Presets a caller adds for one experiment (a benchmark's task variants), in this context only: the built-in
# registry is never changed, so nothing else in the process sees them.
_EXTRA_PRESETS: ContextVar[Mapping[str, Preset]] = ContextVar("extra_presets", default=MappingProxyType({}))


class _KnownPresets(Mapping[str, Preset]):
    """Every preset known here, read when used: the built-in ones and those of ``extra_presets`` in force."""

    def _current(self) -> Mapping[str, Preset]:
        return {**BUILT_IN_PRESETS, **_EXTRA_PRESETS.get()}

    def __getitem__(self, name: str) -> Preset:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


PRESETS: Mapping[str, Preset] = _KnownPresets()


@contextlib.contextmanager
def extra_presets(*added: Preset) -> Iterator[None]:
    """Make ``added`` known by name inside the block (a built-in name cannot be taken)."""
    taken = [preset.name for preset in added if preset.name in BUILT_IN_PRESETS]
    if taken:
        raise ValueError(f"preset name(s) {', '.join(taken)} belong to built-in presets; choose another name")
    token = _EXTRA_PRESETS.set(MappingProxyType({**_EXTRA_PRESETS.get(), **{p.name: p for p in added}}))
    try:
        yield
    finally:
        _EXTRA_PRESETS.reset(token)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def presets_for(data: str) -> list[str]:
    """The presets made for a data set, the default (the first) first."""
    return [name for name, preset in PRESETS.items() if data in preset.data.datasets]


def check_known_data(data: str) -> None:
    if data not in DATASETS:
        raise ValueError(f"unknown data set {data!r}; known: {', '.join(sorted(DATASETS))}")


def default_preset(data: str) -> str:
    """The preset a data set gets when none is named (the first made for it): paper for digits, pedestrians for
    photographs."""
    check_known_data(data)
    return presets_for(data)[0]
