import pytest
import torch

from evosynth.core.compaction import compact, masked_copy
from evosynth.core.environment import Environment
from evosynth.core.precision import is_representable, restrict, rounded, rounding_error
from evosynth.core.synthesis import generation_generator, synthesize
from evosynth.task.model import Architecture, GridDetector


def _trained_looking_model() -> GridDetector:
    torch.manual_seed(0)
    model = GridDetector(Architecture(3, (8, 16, 16), (2, 2, 1)))
    with torch.no_grad():  # non-trivial BatchNorm statistics, so removed channels would show if mishandled
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compacted_offspring_computes_what_the_masked_parent_computes(seed):
    model = _trained_looking_model()
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


def test_restrict_casts_every_float_and_keeps_integers():
    state = _trained_looking_model().state_dict()
    restricted = restrict(state, "fp16")
    for name, tensor in restricted.items():
        if state[name].is_floating_point():
            assert tensor.dtype == torch.float16, name
        else:
            assert torch.equal(tensor, state[name])
    for tensor in rounded(state, "fp16").values():
        if tensor.is_floating_point():
            assert tensor.dtype == torch.float32 and is_representable(tensor, "fp16")
    assert not is_representable(torch.tensor([1.0 + 2**-12]), "fp16")


def test_restrict_refuses_nan_overflow_and_unknown_precision():
    with pytest.raises(ValueError, match="w contains NaN"):
        restrict({"w": torch.tensor([float("nan")])})
    with pytest.raises(ValueError, match="overflows"):
        restrict(torch.tensor([1e6]), "fp16")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        restrict(torch.ones(1), "fp8")


def test_rounding_error_is_measured_on_floating_tensors_only():
    state = {"w": torch.tensor([1.0 + 2**-12, 2.0]), "steps": torch.tensor(3)}
    errors = rounding_error(state, "fp16")
    assert set(errors) == {"w"}
    assert errors["w"] == pytest.approx(2**-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_l1_surgery_equals_torch_pruning_depgraph_on_the_same_channels(seed):
    """The L1 baseline's cut, checked against an independent implementation: Torch-Pruning's DependencyGraph
    removes the same output channels (and with them BatchNorm entries and the next layer's inputs)."""
    import copy

    import torch_pruning as tp

    from evosynth.core.pruning import l1_filter_decisions

    model = _trained_looking_model()
    torch.manual_seed(seed)
    with torch.no_grad():
        for _, layer in model.prunable_layers():
            layer.weight.normal_()
    layers = [(name, layer.weight.detach()) for name, layer in model.prunable_layers()]
    decisions = l1_filter_decisions(layers, {}, widths=(5, 9, 7))
    ours, _ = compact(model, decisions)

    reference = copy.deepcopy(model)
    graph = tp.DependencyGraph().build_dependency(reference, example_inputs=torch.rand(1, 3, 32, 32))
    for name, conv in reference.prunable_layers()[:-1]:
        removed = torch.nonzero(~decisions[name].cluster_keep).flatten().tolist()
        graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=removed).prune()
    assert [conv.out_channels for _, conv in reference.prunable_layers()[:-1]] == [5, 9, 7]
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(images), reference.eval()(images), atol=1e-5)


def test_matched_rule_keeps_the_given_structure_by_strength():
    """The strongest-first twin of a generation: the same widths and per-layer synapse counts, the kept filters those
    of largest L1 norm, each with its strongest synapse, and every other kept synapse at least as strong as any
    dropped one of its layer."""
    from evosynth.core.pruning import l1_filter_decisions, matched_decisions

    generator = torch.Generator().manual_seed(4)
    layers = [("a", torch.randn(8, 3, 3, 3, generator=generator)), ("b", torch.randn(6, 8, 3, 3, generator=generator)),
              ("head", torch.randn(5, 6, 1, 1, generator=generator))]
    parent_masks = {"b": torch.rand(6, 8, 3, 3, generator=generator) > 0.3}
    counts = {"a": 40, "b": 60, "head": 7}
    decisions = matched_decisions(layers, parent_masks, widths=(5, 4), synapses=counts)
    filters = l1_filter_decisions(layers, parent_masks, widths=(5, 4))
    for name, _ in layers:
        decision = decisions[name]
        assert torch.equal(decision.cluster_keep, filters[name].cluster_keep)
        assert int(decision.synapse_mask.sum()) == counts[name]
        assert not torch.any(decision.synapse_mask & ~filters[name].synapse_mask)  # nothing grows back
        kept = decision.synapse_mask[decision.cluster_keep].reshape(int(decision.cluster_keep.sum()), -1)
        assert kept.any(dim=1).all()  # no kept filter is an empty shell
    head = decisions["head"]
    assert head.cluster_keep.all() and torch.equal(head.synapse_mask.reshape(5, 6).any(dim=1), torch.ones(5).bool())
    a = decisions["a"]  # beyond each filter's reserved strongest, the rest go by |w|
    strength = layers[0][1].abs()
    reserved = torch.zeros_like(a.synapse_mask)
    for index in a.cluster_keep.nonzero().flatten().tolist():
        reserved[index].reshape(-1)[strength[index].reshape(-1).argmax()] = True
    chosen, dropped = a.synapse_mask & ~reserved, filters["a"].synapse_mask & ~a.synapse_mask
    assert strength[chosen].min() >= strength[dropped].max()
    many = matched_decisions(layers, parent_masks, widths=(5, 4), synapses={"a": 10_000, "b": 10_000, "head": 10_000})
    assert all(torch.equal(many[name].synapse_mask, filters[name].synapse_mask) for name, _ in layers)
