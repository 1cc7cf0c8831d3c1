"""The evolution driver: generation 1 is the converged ancestor, every later generation is synthesized from its
parent's restricted weights, trained at FP32 for a fixed budget, then restricted.

Each generation is a resumable step: a finished generation (its ``metrics.json`` exists) is loaded, not redone;
an unfinished one is discarded and redone from its parent. All randomness of generation g comes from streams
seeded by (run seed, g), so a resumed run ends bit for bit where an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from tqdm.auto import tqdm

from evosynth.core.compaction import compact
from evosynth.core.graph import ChannelGraph
from evosynth.core.precision import restrict, rounded, rounding_error, storage_note
from evosynth.core.synthesis import LayerDecision, generation_generator, synthesize
from evosynth.paths import CACHE_DIR, RUNS_DIR
from evosynth.storage.runs import Generation, RunFolder
from evosynth.study.config import RunConfig
from evosynth.task.dataset import DetectionData
from evosynth.task.metrics import assess, efficiency, evaluate
from evosynth.task.model import Detector, channel_graph, detector_input, trace_size
from evosynth.task.recipe import Recipe, resolve_builder
from evosynth.task.registry import load_dataset
from evosynth.task.training import train

TRAINING_STREAM = 7_919  # offsets the training random stream from the synthesis stream of the same generation


def load_task_data(config: RunConfig, cache_dir: Path) -> DetectionData:
    """The run's data set as its preset shapes it: digits generated, or the run's folder read; cached in cache_dir."""
    return load_dataset(config.data, cache_dir, **asdict(config.data_spec()), **config.data_source())


def new_ancestor(config: RunConfig, data: DetectionData) -> tuple[Detector, dict[str, torch.Tensor], Recipe]:
    """The preset's full-size detector, randomly initialised from the run seed, with no synapse removed, and its
    recipe (traced for replay on a two-by-two grid: the cut does not depend on the input's size)."""
    network = config.resolved_preset.network
    arguments = network.arguments_for(data.channels)
    torch.manual_seed(config.seed)
    model = resolve_builder(network.builder)(**arguments)
    if not isinstance(model, Detector):
        raise ValueError(f"the preset's network {network.builder!r} is not a detector (task.model.Detector)")
    masks = {layer.parameter: torch.ones_like(layer.weight, dtype=torch.bool)
             for layer in channel_graph(model, trace_size(model)).layers}
    recipe = Recipe(network.builder, arguments, tuple(detector_input(model, trace_size(model)).shape))
    return model, masks, recipe


Decide = Callable[[ChannelGraph, Generation, int], dict[str, LayerDecision]]
"""How an offspring is decided: from its parent's channel graph, the parent and its generation number, the
keep-decisions ``compact`` cuts by. The evolution decides by stochastic synthesis; the baselines
(``evosynth.core.pruning``) by pruning rules."""


def synthesis_decider(config: RunConfig) -> Decide:
    """The evolution's decider: stochastic synthesis from the parent's DNA under the run's environment."""
    environment = config.make_environment()

    def decide(graph: ChannelGraph, parent: Generation, number: int) -> dict[str, LayerDecision]:
        return synthesize(graph, parent.masks, environment, generation_generator(config.seed, number),
                          config.channel_multiple)

    return decide


def offspring_of(
    parent: Generation, config: RunConfig, number: int, decide: Decide | None = None
) -> tuple[Detector, dict[str, torch.Tensor], Recipe]:
    """Decide generation ``number`` from its parent (by default the run's stochastic synthesis), then compact it:
    the parent's graph is traced on a whole frame, the size the cost environment prices. Returns the offspring,
    its masks and its recipe (the parent's, its pruning history extended by this cut)."""
    graph = channel_graph(parent.model)
    offspring = compact(graph, (decide or synthesis_decider(config))(graph, parent, number))
    assert isinstance(offspring.model, Detector)
    return offspring.model, offspring.masks, parent.recipe.descendant(offspring.history)


@dataclass
class GenerationResult:
    model: Detector
    masks: dict[str, torch.Tensor]
    restricted_state: dict[str, torch.Tensor]
    curve: dict[str, Any]
    metrics: dict[str, Any]


def run_generation(
    config: RunConfig, data: DetectionData, number: int, parent: Generation | None, decide: Decide | None = None
) -> tuple[GenerationResult, Recipe]:
    """Decide (or create), train at FP32, restrict and measure one generation; with the recipe that rebuilds it.

    ``decide`` is how the offspring is decided (the run's stochastic synthesis by default): whatever decides, the
    training budget, the restriction and the measurement are the config's, so lineages compare like for like.
    """
    preset = config.resolved_preset
    if parent is None:
        model, masks, recipe = new_ancestor(config, data)
        budget = preset.ancestor
    else:
        model, masks, recipe = offspring_of(parent, config, number, decide)
        budget = preset.offspring
    curve = train(
        model, masks, data.train, data.val, budget,
        generation_generator(config.seed + TRAINING_STREAM, number), description=f"gen {number:02d}",
    )
    return restrict_and_measure(config, data, number, parent, model, masks,
                                {**curve.to_json(), "budget": budget.to_json()}), recipe


def restrict_and_measure(
    config: RunConfig, data: DetectionData, number: int, parent: Generation | None, model: Detector,
    masks: dict[str, torch.Tensor], curve: dict[str, Any],
) -> GenerationResult:
    """Restrict a network trained at FP32 to the run's precision (in place) and measure it before and after."""
    fp32_quality = evaluate(model, data.test)
    # a copy: state_dict() returns the live tensors, which the restricted values are loaded into below
    fp32_state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    restricted = restrict(fp32_state, config.precision)
    assert isinstance(restricted, dict)
    model.load_state_dict(rounded(restricted, config.precision))
    quality, point = assess(model, data.val, data.test)
    best_epoch = curve["best_epoch"]
    metrics: dict[str, Any] = {
        "generation": number,
        "parent": parent.number if parent else None,
        "seed": config.seed,
        "alpha_synapse": config.alpha_synapse,
        "alpha_cluster": config.alpha_cluster,
        "environment": config.environment,
        "precision": config.precision,
        "precision_note": storage_note(config.precision),
        "precision_score": quality.precision,
        "recall": quality.recall,
        "ap50": quality.ap50,
        "operating_point": asdict(point),
        "fp32": {"precision_score": fp32_quality.precision, "recall": fp32_quality.recall, "ap50": fp32_quality.ap50},
        "rounding_error": rounding_error(fp32_state, config.precision),
        "val_ap50": curve["val_ap50"][best_epoch - 1] if best_epoch else None,
        "epochs": len(curve["epochs"]),
        "train_seconds": curve["seconds"],
        **efficiency(model, masks, data.image_size),
    }
    return GenerationResult(model, masks, restricted, curve, metrics)


def _ancestor_folder(config: RunConfig, run: RunFolder) -> RunFolder:
    """Generation 1 does not depend on the environment, so runs that differ only in it share one ancestor."""
    return RunFolder(run.root.parent / "ancestors" / config.ancestor_name)


def _run_fields(config: RunConfig) -> dict[str, Any]:
    return {"environment": config.environment, "alpha_synapse": config.alpha_synapse,
            "alpha_cluster": config.alpha_cluster}


Loaded = TypeVar("Loaded")


def breed(
    folder: RunFolder,
    identity: dict[str, Any],
    length: int,
    make_generation: Callable[[int, Loaded | None], None],
    description: str,
    load: Callable[[int], Loaded] | None = None,
) -> list[Loaded]:
    """The resumable loop every lineage shares (evolution, baselines, any network's evolution): hold the folder's
    lock, check that it holds this lineage, let ``make_generation(number, parent)`` write each unfinished
    generation, and return every generation as ``load`` reads it from disk (default: the detector's), 1 first.

    A finished generation is loaded, not redone; an unfinished one is discarded and redone. Parents are always
    the bytes on disk, so a resumed lineage breeds exactly what an uninterrupted one does.
    """
    read: Callable[[int], Any] = load or partial(folder.load, kind=Detector)
    with folder.locked():
        folder.bind(identity, length)
        folder.check_lineage()
        generations: list[Loaded] = []
        for number in tqdm(range(1, length + 1), desc=description, unit="gen"):
            if not folder.is_finished(number):
                folder.discard_unfinished(number)
                make_generation(number, generations[-1] if generations else None)
            generations.append(read(number))
        folder.extend_to(length)
    return generations


def save_result(folder: RunFolder, number: int, result: GenerationResult, recipe: Recipe,
                fields: dict[str, Any]) -> None:
    """Write a computed generation, its metrics completed by what the lineage says about itself."""
    folder.save(number, result.restricted_state, result.masks, recipe, result.curve,
                result.metrics | fields)


def evolve(config: RunConfig, out: Path | None = None, cache_dir: Path = CACHE_DIR) -> list[Generation]:
    """Run (or resume) the evolution described by ``config``; returns every generation, 1 first."""
    folder = RunFolder(out or config.default_out())
    data = load_task_data(config, cache_dir)  # first: a data set that cannot be read leaves no run folder behind

    def make_generation(number: int, parent: Generation | None) -> None:
        if parent is None:
            folder.adopt(1, _shared_ancestor(config, data, folder), 1, _run_fields(config))
        else:
            save_result(folder, number, *run_generation(config, data, number, parent), _run_fields(config))

    return breed(folder, config.identity(), config.generations, make_generation, "generations")


def _shared_ancestor(config: RunConfig, data: DetectionData, run: RunFolder) -> RunFolder:
    """The ancestor folder of the run's task, seed and precision, made unless another run made it (a concurrent run
    of a sweep that is making it is waited for).

    Training does not depend on the restriction that follows it, so the ancestor is trained once, with no
    restriction (the FP32 ancestor), and the ancestor of every other precision is that network restricted: bit for
    bit what training it again would give, for the cost of one evaluation. Precision ablations share the training.
    """
    ancestor = _ancestor_folder(config, run)
    with ancestor.locked(wait=True):
        ancestor.bind(config.ancestor_identity())
        if not ancestor.is_finished(1):
            ancestor.discard_unfinished(1)
            if config.precision == "fp32":
                result, recipe = run_generation(config, data, 1, None)
            else:
                trained = _shared_ancestor(replace(config, precision="fp32"), data, run).load(1, Detector)
                result = restrict_and_measure(config, data, 1, None, trained.model, trained.masks, trained.curve)
                recipe = trained.recipe
            save_result(ancestor, 1, result, recipe, _run_fields(config))
    return ancestor


def ancestor_generation(config: RunConfig, data: DetectionData, runs_dir: Path = RUNS_DIR) -> Generation:
    """Generation 1 of the run ``config`` describes, from the ancestors' folder under ``runs_dir`` (trained there
    if no run made it yet): every network trained from scratch elsewhere is compared with it."""
    return _shared_ancestor(config, data, RunFolder(runs_dir / config.name)).load(1, Detector)


def stored_run_config(out: Path) -> RunConfig:
    """The configuration a run folder was computed with (its config.json)."""
    return RunConfig.from_json(RunFolder(out).stored_config()["config"])


def load_run(out: Path) -> tuple[RunConfig, list[Generation]]:
    """A run folder's configuration and its finished generations, in order."""
    return stored_run_config(out), RunFolder(out).load_finished(Detector)


def ensure_generation(config: RunConfig, out: Path, number: int, cache_dir: Path = CACHE_DIR) -> Generation:
    """Generation ``number`` of the run, computed (with any missing ancestors) or loaded when it exists.

    A finished generation of this run is read without the folder's write lock, so that pages reading one run
    execute side by side."""
    config.check_generation(number)
    folder = RunFolder(out)
    if folder.is_finished(number) and not folder.identity_differences(config.identity()):
        return folder.load(number, Detector)
    return evolve(config.with_generations(number), out, cache_dir)[-1]
