"""One offspring of any PyTorch network, in one call: trace its graph, decide by the synaptic DNA under an
environment, cut by the dependency graph.

    offspring = evosynth.synthesize(model, example_inputs, Environment("cost", 0.98, 0.84), seed=0, generation=2,
                                    keep_outputs_of=("fc",))
    offspring.model      # the physically smaller network, in eval mode
    offspring.masks      # weight name -> bool tensor: the inherited synapses
    offspring.removed    # module name -> sorted removed output channels (the decision, JSON)
    offspring.history    # the pruning history from the parent (JSON; ``graph.replay`` applies it)

The parent is left as it is. Offspring are a pure function of the parent's weights and masks, the environment and
(seed, generation): the same call gives the same bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from evosynth.core.compaction import Offspring, compact
from evosynth.core.environment import Environment
from evosynth.core.graph import ChannelGraph
from evosynth.core.synthesis import generation_generator
from evosynth.core.synthesis import synthesize as decide


def synthesize(
    model: nn.Module,
    example_inputs: Any,
    environment: Environment,
    *,
    seed: int,
    generation: int,
    keep_outputs_of: Sequence[str] = (),
    masks: Mapping[str, torch.Tensor] | None = None,
    channel_multiple: int = 1,
) -> Offspring:
    """The offspring of ``model`` (its synapses: ``masks``, all where None) in ``environment``.

    ``example_inputs`` are what the network is traced and its multiply-accumulates counted on: give the size it
    will be deployed at. ``keep_outputs_of`` names the modules whose outputs the task needs (a classifier's classes,
    a detector's head). A network that cannot be traced, an unsupported layer, an unknown module name or inputs
    the network does not run on raise ``GraphError`` naming it.
    """
    graph = ChannelGraph.of(model, example_inputs, keep_outputs_of)
    decisions = decide(graph, masks or {}, environment, generation_generator(seed, generation), channel_multiple)
    return compact(graph, decisions)
