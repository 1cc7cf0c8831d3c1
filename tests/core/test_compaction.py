"""Compaction removes what the masks removed and nothing else: the compacted offspring computes what the masked parent
computes."""

from __future__ import annotations

import pytest
import torch

from conftest import trained_looking_model
from evosynth.core.compaction import compact, masked_copy
from evosynth.core.environment import Environment
from evosynth.core.synthesis import generation_generator, synthesize


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compacted_offspring_computes_what_the_masked_parent_computes(seed):
    model = trained_looking_model()
    layers = [(name, layer.weight.detach()) for name, layer in model.prunable_layers()]
    decisions = synthesize(layers, {}, Environment("budget", 0.8, 0.6), generation_generator(seed, 2))
    offspring, masks = compact(model, decisions)
    assert offspring.architecture.widths == tuple(int(decisions[n].cluster_keep.sum()) for n, _ in layers[:-1])
    assert offspring.architecture.widths != model.architecture.widths
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = masked_copy(model, decisions).eval()(images)
        actual = offspring.eval()(images)
    assert torch.allclose(actual, expected, atol=1e-5)
    for name, layer in offspring.prunable_layers():
        assert torch.all(layer.weight[~masks[name]] == 0)
