"""Compaction cuts what the decisions removed and nothing else: the compacted offspring computes what the parent
computes with its removed channels silenced and its masks applied (a check written without Torch-Pruning)."""

from __future__ import annotations

import pytest
import torch

from conftest import compacted, trained_looking_model
from evosynth.core.compaction import silenced_copy
from evosynth.core.environment import Environment
from evosynth.core.synthesis import generation_generator, synthesize
from evosynth.task.model import channel_graph


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compacted_offspring_computes_what_the_silenced_parent_computes(seed):
    model = trained_looking_model()
    decisions = synthesize(channel_graph(model, (32, 32)), {}, Environment("budget", 0.8, 0.6),
                           generation_generator(seed, 2))
    offspring, masks = compacted(model, decisions)
    layers = [name for name, _ in model.prunable_layers()]
    assert offspring.architecture.widths == tuple(int(decisions[n].cluster_keep.sum()) for n in layers[:-1])
    assert offspring.architecture.widths != model.architecture.widths
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = silenced_copy(model, images, decisions)(images)
        actual = offspring.eval()(images)
    assert torch.allclose(actual, expected, atol=1e-5)
    for name, layer in offspring.prunable_layers():
        assert torch.all(layer.weight[~masks[name]] == 0)
