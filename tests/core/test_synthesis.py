"""Stochastic synthesis on a traced graph: frequencies follow the laws, the same seed gives the same offspring,
nothing grows back, removed clusters take their synapses along, kept outputs stay, rounding keeps multiples."""

import torch
from torch import nn

from evosynth.core.environment import Environment
from evosynth.core.genetics import cluster_probabilities, synapse_probabilities
from evosynth.core.graph import ChannelGraph
from evosynth.core.synthesis import generation_generator, round_cluster_count, synthesize


def _chain(*weights: torch.Tensor, keep: tuple[str, ...] = ()) -> ChannelGraph:
    """A chain of linear layers (or 3x3 convolutions) with the given weights; the last one's outputs are kept."""
    layers = []
    for weight in weights:
        if weight.dim() == 2:
            layer: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        else:
            layer = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], padding=weight.shape[2] // 2,
                              bias=False)
        with torch.no_grad():
            layer.weight.copy_(weight)
        layers.append(layer)
    model = nn.Sequential(*layers)
    inputs = torch.zeros(1, weights[0].shape[1]) if weights[0].dim() == 2 else torch.zeros(1, weights[0].shape[1], 8, 8)
    return ChannelGraph(model, inputs, keep_outputs_of=(str(len(weights) - 1), *keep))


def _weight(seed: int = 0) -> torch.Tensor:
    return torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(seed))


def test_sampled_frequencies_agree_with_probabilities():
    weight = torch.randn(6, 10, generator=torch.Generator().manual_seed(3))
    head = torch.randn(3, 6, generator=torch.Generator().manual_seed(4))
    environment = Environment("multiplicative", alpha_synapse=0.9, alpha_cluster=1.0)
    expected = environment.apply(synapse_probabilities(weight), "synapse")
    expected_clusters = cluster_probabilities(weight)
    kept, pruned = _chain(weight, head, keep=("0",)), _chain(weight, head)
    trials = 3000
    counts = torch.zeros_like(weight)
    cluster_counts = torch.zeros(6)
    generator = torch.Generator().manual_seed(0)
    for _ in range(trials):
        counts += synthesize(kept, {}, environment, generator)["0.weight"].synapse_mask
        cluster_counts += synthesize(pruned, {}, environment, generator)["0.weight"].cluster_keep
    frequency = counts / trials
    # binomial standard error is at most 0.5 / sqrt(3000) = 0.009; allow ~5 sigma. Kept clusters may rescue
    # their strongest synapse, which only raises frequencies of already-likely synapses.
    assert torch.all((frequency - expected).abs() < 0.045)
    assert torch.all((cluster_counts / trials - expected_clusters).abs() < 0.045)


def test_same_seed_same_offspring_other_seed_different():
    graph = _chain(_weight(), torch.randn(5, 16, 1, 1))
    environment = Environment("budget", 0.7, 0.7)
    first = synthesize(graph, {}, environment, generation_generator(5, 2))["0.weight"]
    again = synthesize(graph, {}, environment, generation_generator(5, 2))["0.weight"]
    other = synthesize(graph, {}, environment, generation_generator(6, 2))["0.weight"]
    assert torch.equal(first.cluster_keep, again.cluster_keep) and torch.equal(first.synapse_mask, again.synapse_mask)
    assert not torch.equal(first.synapse_mask, other.synapse_mask)


def test_no_synapse_reappears_and_removed_clusters_take_their_synapses():
    graph = _chain(torch.randn(8, 3, 3, 3), _weight(1), torch.randn(5, 16, 1, 1))
    parent_masks = {layer.parameter: torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(2)) > 0.5
                    for layer in graph.layers}
    for seed in range(20):
        decisions = synthesize(graph, parent_masks, Environment("budget", 0.9, 0.8), generation_generator(seed, 3))
        first, second = decisions["0.weight"], decisions["1.weight"]
        mask, keep = second.synapse_mask, second.cluster_keep
        assert not torch.any(mask & ~parent_masks["1.weight"])
        assert not mask[~keep].any()
        assert not mask[:, ~first.cluster_keep].any()  # a removed input channel takes its synapses along
        assert mask[keep].reshape(int(keep.sum()), -1).any(dim=1).all()  # kept clusters are never empty


def test_guards_kept_outputs_stay_and_no_group_collapses():
    graph = _chain(_weight(2), torch.randn(5, 16, 1, 1))
    harsh = Environment("multiplicative", alpha_synapse=0.01, alpha_cluster=0.01)
    for seed in range(10):
        decisions = synthesize(graph, {}, harsh, generation_generator(seed, 1))
        assert decisions["0.weight"].cluster_keep.sum() >= 1
        assert decisions["1.weight"].cluster_keep.all()


def test_channel_rounding_moves_the_count_to_a_neighbouring_multiple_by_strength_keeping_its_expectation():
    strength = torch.arange(20, dtype=torch.float32)  # cluster c has strength c
    eligible = torch.ones(20, dtype=torch.bool)
    drawn = torch.zeros(20, dtype=torch.bool)
    drawn[[2, 5, 7, 9, 11, 13, 15, 17, 19, 1, 3]] = True  # 11 kept: 8 or 16, 16 with probability 3/8
    generator = torch.Generator().manual_seed(0)
    counts = []
    for _ in range(4000):
        rounded = round_cluster_count(drawn, strength, eligible, 8, generator)
        counts.append(int(rounded.sum()))
        if counts[-1] == 16:
            assert rounded[drawn].all() and rounded[[18, 16, 14, 12, 10]].all()  # the strongest removed come back
        else:
            assert counts[-1] == 8 and not rounded[[1, 2, 3]].any()  # the weakest kept go
    assert abs(sum(counts) / len(counts) - 11) < 0.2  # the environment's expected shrink is kept
    on_a_multiple = torch.zeros(20, dtype=torch.bool)
    on_a_multiple[4:12] = True
    assert torch.equal(round_cluster_count(on_a_multiple, strength, eligible, 8, generator), on_a_multiple)
    few = torch.zeros(20, dtype=torch.bool)
    few[:3] = True
    assert all(int(round_cluster_count(few, strength, eligible, 8, generator).sum()) == 8
               for _ in range(50))  # never below one multiple
    only_six = torch.zeros(20, dtype=torch.bool)
    only_six[:6] = True
    assert torch.equal(round_cluster_count(few, strength, only_six, 8, generator), only_six)  # cannot exceed


def test_synthesis_with_channel_rounding_keeps_multiples_of_eight():
    graph = _chain(torch.randn(40, 3, 3, 3, generator=torch.Generator().manual_seed(1)),
                   torch.randn(48, 40, 3, 3, generator=torch.Generator().manual_seed(2)),
                   torch.randn(5, 48, 1, 1, generator=torch.Generator().manual_seed(3)))
    environment = Environment("budget", alpha_synapse=0.9, alpha_cluster=0.7)
    for seed in range(5):
        plain = synthesize(graph, {}, environment, generation_generator(seed, 2))
        decisions = synthesize(graph, {}, environment, generation_generator(seed, 2), channel_multiple=8)
        assert [int(decisions[n].cluster_keep.sum()) % 8 for n in ("0.weight", "1.weight")] == [0, 0]
        assert int(decisions["2.weight"].cluster_keep.sum()) == 5
        assert any(int(plain[n].cluster_keep.sum()) % 8 for n in ("0.weight", "1.weight"))  # rounding did something


def test_offspring_of_the_cost_environment_keep_alpha_of_the_parents_macs_on_average():
    from evosynth.task.model import Architecture, GridDetector, channel_graph, frame_macs

    torch.manual_seed(0)
    architecture = Architecture(3, (32, 48, 64, 96), (2, 2, 2, 2))
    graph = channel_graph(GridDetector(architecture), (96, 96))
    environment = Environment("cost", alpha_synapse=0.9, alpha_cluster=0.6)
    ratios, first_layer_kept, last_layer_kept = [], [], []
    for seed in range(40):
        decisions = list(synthesize(graph, {}, environment, generation_generator(seed, 2)).values())
        widths = tuple(int(d.cluster_keep.sum()) for d in decisions[:-1])
        ratios.append(frame_macs(GridDetector(architecture.with_widths(widths)), (96, 96))
                      / frame_macs(GridDetector(architecture), (96, 96)))
        first_layer_kept.append(widths[0] / 32)
        last_layer_kept.append(widths[-1] / 96)
    assert abs(sum(ratios) / len(ratios) - 0.6) < 0.03
    # The last backbone layer's filters feed only the 5-channel head: the cheapest to keep.
    assert sum(last_layer_kept) > sum(first_layer_kept)
