"""Evolve any PyTorch network: the caller builds the ancestor, trains and evaluates; the library synthesizes each
offspring from its parent's DNA (``evosynth.synthesize``), restricts it, and keeps the run's folder with the
study's guarantees: resumable generation by generation, one writer at a time, every file written whole.

    generations = evosynth.evolve("resnet", train, evaluate, example_inputs=torch.zeros(1, 1, 28, 28),
                                  environment=Environment("cost", 0.98, 0.7), precision="fp16", generations=5,
                                  seed=0, out=Path("runs/my-resnet"), keep_outputs_of=("fc",))

``build_ancestor`` is how the run folder rebuilds its networks, so it must be findable again: a name in
``task.recipe.BUILDERS`` or ``"package.module:function"`` (an importable function, or the function itself), called
with ``arguments`` (JSON). A generation's ``architecture.json`` holds that recipe, the example input's shape and the
pruning history from the ancestor; loading builds the ancestor, replays the history and loads the weights.
``train(model, generation)`` may move any weight: the synapses the offspring did not inherit are zeroed after it.
``evaluate(model) -> dict[str, float]`` measures the restricted network; its figures go to ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evosynth.core.environment import Environment
from evosynth.core.graph import ChannelGraph, GraphError, count_macs
from evosynth.core.offspring import synthesize
from evosynth.core.precision import precision_dtype, restrict
from evosynth.storage.runs import Generation, RunFolder
from evosynth.study.evolution import TRAINING_STREAM, breed
from evosynth.task.recipe import Recipe, builder_name

Train = Callable[[nn.Module, int], object]
Evaluate = Callable[[nn.Module], Mapping[str, float]]


def efficiency(model: nn.Module, masks: Mapping[str, torch.Tensor], example_inputs: torch.Tensor) -> dict[str, int]:
    """What a network costs: synapses (inherited weights of its Conv and Linear layers), output channels of those
    layers, parameters and multiply-accumulates on the example input."""
    parameters = dict(model.named_parameters())
    return {"synapses": int(sum(int(mask.sum()) for mask in masks.values())),
            "clusters": int(sum(parameters[name].shape[0] for name in masks)),
            "parameters": int(sum(p.numel() for p in parameters.values())),
            "macs": count_macs(model, example_inputs)}


def _masked_after_training(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            parameters[name].mul_(mask.to(parameters[name].dtype))


def evolve(
    build_ancestor: str | Callable[..., nn.Module],
    train: Train,
    evaluate: Evaluate,
    *,
    example_inputs: torch.Tensor,
    environment: Environment,
    out: Path,
    precision: str = "fp16",
    generations: int = 13,
    seed: int = 0,
    keep_outputs_of: Sequence[str] = (),
    arguments: Mapping[str, Any] | None = None,
    channel_multiple: int = 1,
) -> list[Generation[nn.Module]]:
    """Run (or resume) an evolution of any network in the run folder ``out``; returns every generation, 1 first.

    Everything the run depends on is checked before the folder is touched: the builder can be found, the ancestor
    traced on ``example_inputs`` (one tensor), ``keep_outputs_of`` names its modules, the precision is known.
    """
    precision_dtype(precision)
    if generations < 1:
        raise ValueError(f"generations must be at least 1, got {generations}")
    if not isinstance(example_inputs, torch.Tensor):
        raise GraphError("example_inputs must be one tensor (the network's input, at the size it is deployed at)")
    recipe = Recipe(builder_name(build_ancestor), dict(arguments or {}), tuple(example_inputs.shape))
    ChannelGraph(recipe.build(), recipe.example_inputs(), keep_outputs_of)  # a network that cannot evolve fails here
    identity = {"recipe": recipe.to_json(), "environment": environment.model,
                "alpha_synapse": environment.alpha_synapse, "alpha_cluster": environment.alpha_cluster,
                "precision": precision, "seed": seed, "keep_outputs_of": list(keep_outputs_of),
                "channel_multiple": channel_multiple}
    folder = RunFolder(out)

    def make_generation(number: int, parent: Generation[nn.Module] | None) -> None:
        if parent is None:
            torch.manual_seed(seed)
            model, lineage = recipe.ancestor(), recipe
            masks = {f"{layer.name}.weight": torch.ones_like(layer.weight, dtype=torch.bool)
                     for layer in ChannelGraph(model, recipe.example_inputs(), keep_outputs_of).layers}
        else:
            offspring = synthesize(parent.model, recipe.example_inputs(), environment, seed=seed, generation=number,
                                   keep_outputs_of=keep_outputs_of, masks=parent.masks,
                                   channel_multiple=channel_multiple)
            model, masks, lineage = offspring.model, offspring.masks, parent.recipe.descendant(offspring.history)
        torch.manual_seed(int(seed) * 1_000_003 + number + TRAINING_STREAM)
        model.train()
        train(model, number)
        _masked_after_training(model, masks)
        restricted = restrict(model.state_dict(), precision)
        assert isinstance(restricted, dict)
        model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in restricted.items()})
        model.eval()
        metrics = {**{key: float(value) for key, value in evaluate(model).items()},
                   **efficiency(model, masks, recipe.example_inputs()), "generation": number}
        folder.save(number, restricted, masks, lineage, {}, metrics)

    return breed(folder, identity, generations, make_generation, "generations", load=folder.load)
