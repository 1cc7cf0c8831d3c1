"""Detectors as the study handles any of them: the deep ones (inception and residual backbones under the grid
head) built from their recipes map an image to the head's grid at their stride; the synthesis and L1 filter
pruning cut them per group (an offspring computes what its silenced parent computes, and its pruning history
rebuilds it); a fresh network of a structure is, for the chain, its constructor's."""

from __future__ import annotations

import pytest
import torch

import evosynth
from evosynth.core.compaction import compact, silenced_copy
from evosynth.core.graph import ChannelGraph
from evosynth.core.pruning import l1_filter_decisions
from evosynth.core.synthesis import generation_generator, synthesize
from evosynth.task.model import (
    HEAD,
    HEAD_OUTPUTS,
    Architecture,
    GridDetector,
    channel_graph,
    fresh_network,
    group_widths,
)
from evosynth.task.recipe import Recipe

IMAGES = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
SMALL = {
    "inception_detector": {"stem_widths": [8, 16], "stages": [[32], [48]]},
    "residual_detector": {"stem_widths": [8], "widths": [16, 32], "blocks": 1, "patch_stem": True},
}


@pytest.fixture(params=list(SMALL))
def recipe(request: pytest.FixtureRequest) -> Recipe:
    return Recipe(request.param, SMALL[request.param], (1, 3, 64, 48))


def test_a_deep_detector_maps_an_image_to_its_grid(recipe):
    torch.manual_seed(0)
    model = recipe.build().eval()
    assert model.stride == 8 and model.in_channels == 3
    assert tuple(model(IMAGES).shape) == (2, HEAD_OUTPUTS, 64 // 8, 48 // 8)


def test_a_deep_detectors_offspring_computes_its_silenced_parent_and_replays(recipe):
    torch.manual_seed(0)
    parent = recipe.build().eval()
    graph = ChannelGraph.of(parent, IMAGES[:1], keep_outputs_of=(HEAD,))
    decisions = synthesize(graph, {}, evosynth.Environment("cost", 0.9, 0.6), generation_generator(0, 2))
    offspring = evosynth.synthesize(parent, IMAGES[:1], evosynth.Environment("cost", 0.9, 0.6), seed=0, generation=2,
                                    keep_outputs_of=(HEAD,))
    assert offspring.removed and HEAD not in offspring.removed
    rebuilt = recipe.descendant(offspring.history).build()
    rebuilt.load_state_dict(offspring.model.state_dict())
    with torch.no_grad():
        expected = silenced_copy(parent, IMAGES[:1], decisions)(IMAGES)
        assert torch.allclose(offspring.model(IMAGES), expected, atol=1e-5)
        assert torch.equal(rebuilt.eval()(IMAGES), offspring.model(IMAGES))


def test_a_fresh_network_of_the_chain_is_its_constructors_at_those_widths():
    architecture = Architecture(3, (8, 12, 16), (2, 2, 2))
    torch.manual_seed(1)
    parent = GridDetector(architecture)
    torch.manual_seed(7)
    fresh = fresh_network(parent, (5, 12, 3))
    torch.manual_seed(7)
    constructed = GridDetector(architecture.with_widths((5, 12, 3)))
    assert fresh.architecture == constructed.architecture
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), constructed.state_dict().values(),
                                                   strict=True))


def test_l1_filter_pruning_cuts_a_residual_detector_to_its_group_widths(recipe):
    torch.manual_seed(0)
    parent = recipe.build().eval()
    graph = channel_graph(parent, (64, 48))
    widths = [max(1, group.channels // 2) for group in graph.groups]
    decisions = l1_filter_decisions(graph, {}, widths)
    offspring = compact(graph, decisions)
    assert group_widths(offspring.model) == widths
    with torch.no_grad():
        expected = silenced_copy(parent, IMAGES[:1], decisions)(IMAGES)
        assert torch.allclose(offspring.model(IMAGES), expected, atol=1e-5)
