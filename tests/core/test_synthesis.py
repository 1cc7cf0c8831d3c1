import torch

from evosynth.core.environment import Environment
from evosynth.core.genetics import cluster_probabilities, synapse_probabilities
from evosynth.core.synthesis import generation_generator, round_cluster_count, sample_layer, synthesize


def _weight(seed: int = 0) -> torch.Tensor:
    return torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(seed))


def test_sampled_frequencies_agree_with_probabilities():
    weight = torch.randn(6, 10, generator=torch.Generator().manual_seed(3))
    environment = Environment("multiplicative", alpha_synapse=0.9, alpha_cluster=1.0)
    expected = environment.apply(synapse_probabilities(weight), "synapse")
    expected_clusters = cluster_probabilities(weight)
    trials = 4000
    counts = torch.zeros_like(weight)
    cluster_counts = torch.zeros(6)
    generator = torch.Generator().manual_seed(0)
    for _ in range(trials):
        keep, mask = sample_layer(weight, None, environment, generator, keep_all_clusters=True)
        counts += mask
        keep, _ = sample_layer(weight, None, environment, generator)
        cluster_counts += keep
    frequency = counts / trials
    # binomial standard error is at most 0.5 / sqrt(4000) = 0.008; allow ~5 sigma. Kept clusters may rescue
    # their strongest synapse, which only raises frequencies of already-likely synapses.
    assert torch.all((frequency - expected).abs() < 0.04)
    cluster_frequency = cluster_counts / trials
    assert torch.all((cluster_frequency - expected_clusters).abs() < 0.04)


def test_same_seed_same_offspring_other_seed_different():
    weight = _weight()
    environment = Environment("budget", 0.7, 0.7)
    first = sample_layer(weight, None, environment, generation_generator(5, 2))
    again = sample_layer(weight, None, environment, generation_generator(5, 2))
    other = sample_layer(weight, None, environment, generation_generator(6, 2))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])


def test_no_synapse_reappears_and_removed_clusters_take_their_synapses():
    weight = _weight(1)
    parent_mask = torch.rand(weight.shape, generator=torch.Generator().manual_seed(2)) > 0.5
    input_keep = torch.ones(8, dtype=torch.bool)
    input_keep[[1, 4]] = False
    for seed in range(20):
        keep, mask = sample_layer(weight, parent_mask, Environment("budget", 0.9, 0.8),
                                  generation_generator(seed, 3), input_keep=input_keep)
        assert not torch.any(mask & ~parent_mask)
        assert not mask[~keep].any()
        assert not mask[:, ~input_keep].any()
        assert mask[keep].reshape(int(keep.sum()), -1).any(dim=1).all()  # kept clusters are never empty


def test_guards_head_is_kept_and_no_layer_collapses():
    weight = _weight(2)
    harsh = Environment("multiplicative", alpha_synapse=0.01, alpha_cluster=0.01)
    for seed in range(10):
        keep, _ = sample_layer(weight, None, harsh, generation_generator(seed, 1))
        assert keep.sum() >= 1
        head_keep, head_mask = sample_layer(weight, None, harsh, generation_generator(seed, 1), keep_all_clusters=True)
        assert head_keep.all()


def test_synthesize_chains_input_channels():
    layers = [("a", torch.randn(8, 3, 3, 3)), ("b", torch.randn(6, 8, 3, 3)), ("head", torch.randn(5, 6, 1, 1))]
    decisions = synthesize(layers, {}, Environment("budget", 0.9, 0.6), generation_generator(0, 2))
    assert not decisions["b"].synapse_mask[:, ~decisions["a"].cluster_keep].any()
    assert decisions["head"].cluster_keep.all()
    assert not decisions["head"].synapse_mask[:, ~decisions["b"].cluster_keep].any()


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
    layers = [("a", torch.randn(40, 3, 3, 3, generator=torch.Generator().manual_seed(1))),
              ("b", torch.randn(48, 40, 3, 3, generator=torch.Generator().manual_seed(2))),
              ("head", torch.randn(5, 48, 1, 1, generator=torch.Generator().manual_seed(3)))]
    environment = Environment("budget", alpha_synapse=0.9, alpha_cluster=0.7)
    for seed in range(5):
        plain = synthesize(layers, {}, environment, generation_generator(seed, 2))
        decisions = synthesize(layers, {}, environment, generation_generator(seed, 2), channel_multiple=8)
        assert [int(d.cluster_keep.sum()) % 8 for d in list(decisions.values())[:-1]] == [0, 0]
        assert int(decisions["head"].cluster_keep.sum()) == 5
        assert any(int(plain[n].cluster_keep.sum()) % 8 for n in ("a", "b"))  # rounding did something


def test_offspring_of_the_cost_environment_keep_alpha_of_the_parents_macs_on_average():
    from evosynth.task.model import Architecture, GridDetector, cost_model, count_macs

    torch.manual_seed(0)
    architecture = Architecture(3, (32, 48, 64, 96), (2, 2, 2, 2))
    model = GridDetector(architecture)
    layers = [(name, layer.weight.detach()) for name, layer in model.prunable_layers()]
    environment = Environment("cost", alpha_synapse=0.9, alpha_cluster=0.6)
    ratios, first_layer_kept, last_layer_kept = [], [], []
    for seed in range(40):
        decisions = list(synthesize(layers, {}, environment, generation_generator(seed, 2),
                                    cost=cost_model(architecture)).values())
        widths = tuple(int(d.cluster_keep.sum()) for d in decisions[:-1])
        ratios.append(count_macs(architecture.with_widths(widths), (96, 96)) / count_macs(architecture, (96, 96)))
        first_layer_kept.append(widths[0] / 32)
        last_layer_kept.append(widths[-1] / 96)
    assert abs(sum(ratios) / len(ratios) - 0.6) < 0.03
    # The last backbone layer's filters feed only the 5-channel head: the cheapest to keep.
    assert sum(last_layer_kept) > sum(first_layer_kept)
