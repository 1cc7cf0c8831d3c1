"""The pruning baselines' decisions and surgery: L1 filter pruning, iterative magnitude pruning, the matched rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import compacted, detector, trained_looking_model
from evosynth.core.compaction import silenced_copy
from evosynth.core.graph import ChannelGraph
from evosynth.core.pruning import IMP_FRACTION, l1_filter_decisions, magnitude_decisions
from evosynth.task.model import GridDetector, channel_graph


def layers_of(model: GridDetector) -> list[tuple[str, torch.Tensor]]:
    return [(name, layer.weight.detach()) for name, layer in model.prunable_layers()]


def graph_of(model: GridDetector) -> ChannelGraph:
    return channel_graph(model, (32, 32))


# ------------------------------------------------------------------------------------------- L1 filter pruning


def test_l1_keeps_exactly_the_requested_filters_with_the_largest_norms():
    model = detector()
    layers = layers_of(model)
    masks = {name: torch.rand_like(weight) > 0.3 for name, weight in layers}
    widths = (4, 3, 7)
    decisions = l1_filter_decisions(graph_of(model), masks, widths)
    input_keep = torch.ones(3, dtype=torch.bool)
    for index, (name, weight) in enumerate(layers):
        keep = decisions[name].cluster_keep
        alive = masks[name] & input_keep.reshape(1, -1, 1, 1)
        if index < len(widths):
            assert int(keep.sum()) == widths[index]
            norms = (weight.abs() * alive).reshape(weight.shape[0], -1).sum(dim=1)
            assert norms[keep].min() >= norms[~keep].max()  # every kept filter outweighs every removed one
        else:
            assert keep.all()  # the head's outputs are never removed
        assert torch.equal(decisions[name].synapse_mask, alive & keep.reshape(-1, 1, 1, 1))
        input_keep = keep
    offspring, _ = compacted(model, decisions)
    assert offspring.architecture.widths == widths


def test_l1_refuses_to_grow_a_layer():
    model = detector()
    with pytest.raises(ValueError, match="cannot keep 7 of 6"):
        l1_filter_decisions(graph_of(model), {}, (7, 3, 3))


# ------------------------------------------------------------------------------------- iterative magnitude pruning


def test_imp_removes_a_fifth_of_the_remaining_synapses_per_level_and_never_regrows():
    model = detector()
    layers = layers_of(model)
    masks = {name: torch.ones_like(weight, dtype=torch.bool) for name, weight in layers}
    for _ in range(4):
        decisions = magnitude_decisions(graph_of(model), masks, IMP_FRACTION)
        for name, weight in layers:
            before, after = masks[name], decisions[name].synapse_mask
            remaining = int(before.sum())
            assert remaining - int(after.sum()) == round(IMP_FRACTION * remaining)
            assert not (after & ~before).any()  # nothing grows back
            removed = before & ~after
            assert weight.abs()[removed].max() <= weight.abs()[after].min()  # the weakest went
            assert decisions[name].cluster_keep.all()  # masks only: no filter is removed
        masks = {name: decisions[name].synapse_mask for name, _ in layers}
    offspring, offspring_masks = compacted(model, decisions)
    assert offspring.architecture.widths == model.architecture.widths
    for name, _ in layers:
        assert int(offspring_masks[name].sum()) == int(masks[name].sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_the_l1_baselines_cut_computes_what_the_silenced_parent_computes(seed):
    """The baselines' decisions go through the same surgery as the evolution's, checked without Torch-Pruning."""
    model = trained_looking_model()
    torch.manual_seed(seed)
    with torch.no_grad():
        for _, layer in model.prunable_layers():
            layer.weight.normal_()
    decisions = l1_filter_decisions(graph_of(model), {}, widths=(5, 9, 7))
    offspring, _ = compacted(model, decisions)
    assert offspring.architecture.widths == (5, 9, 7)
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(offspring.eval()(images), silenced_copy(model, images, decisions)(images), atol=1e-5)


def test_matched_rule_keeps_the_given_structure_by_strength():
    """The strongest-first twin of a generation: the same widths and per-layer synapse counts, the kept filters those
    of largest L1 norm, each with its strongest synapse, and every other kept synapse at least as strong as any
    dropped one of its layer."""
    from evosynth.core.pruning import l1_filter_decisions, matched_decisions

    generator = torch.Generator().manual_seed(4)
    network = nn.Sequential()
    network.add_module("a", nn.Conv2d(3, 8, 3, padding=1, bias=False))
    network.add_module("b", nn.Conv2d(8, 6, 3, padding=1, bias=False))
    network.add_module("head", nn.Conv2d(6, 5, 1, bias=False))
    for layer in network:
        layer.weight.data = torch.randn(layer.weight.shape, generator=generator)
    layers = [(f"{name}.weight", layer.weight.detach()) for name, layer in network.named_children()]
    graph = ChannelGraph(network, torch.zeros(1, 3, 8, 8), keep_outputs_of=("head",))
    parent_masks = {"b.weight": torch.rand(6, 8, 3, 3, generator=generator) > 0.3}
    counts = {"a.weight": 40, "b.weight": 60, "head.weight": 7}
    decisions = matched_decisions(graph, parent_masks, widths=(5, 4), synapses=counts)
    filters = l1_filter_decisions(graph, parent_masks, widths=(5, 4))
    for name, _ in layers:
        decision = decisions[name]
        assert torch.equal(decision.cluster_keep, filters[name].cluster_keep)
        assert int(decision.synapse_mask.sum()) == counts[name]
        assert not torch.any(decision.synapse_mask & ~filters[name].synapse_mask)  # nothing grows back
        kept = decision.synapse_mask[decision.cluster_keep].reshape(int(decision.cluster_keep.sum()), -1)
        assert kept.any(dim=1).all()  # no kept filter is an empty shell
    head = decisions["head.weight"]
    assert head.cluster_keep.all() and torch.equal(head.synapse_mask.reshape(5, 6).any(dim=1), torch.ones(5).bool())
    a = decisions["a.weight"]  # beyond each filter's reserved strongest, the rest go by |w|
    strength = layers[0][1].abs()
    reserved = torch.zeros_like(a.synapse_mask)
    for index in a.cluster_keep.nonzero().flatten().tolist():
        reserved[index].reshape(-1)[strength[index].reshape(-1).argmax()] = True
    chosen, dropped = a.synapse_mask & ~reserved, filters["a.weight"].synapse_mask & ~a.synapse_mask
    assert strength[chosen].min() >= strength[dropped].max()
    many = matched_decisions(graph, parent_masks, widths=(5, 4), synapses=dict.fromkeys(counts, 10_000))
    assert all(torch.equal(many[name].synapse_mask, filters[name].synapse_mask) for name, _ in layers)
