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


def test_channel_rounding_moves_the_count_to_the_nearest_multiple_by_strength():
    strength = torch.arange(20, dtype=torch.float32)  # cluster c has strength c
    eligible = torch.ones(20, dtype=torch.bool)
    drawn = torch.zeros(20, dtype=torch.bool)
    drawn[[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]] = True  # 12 kept: rounds up to 16
    rounded = round_cluster_count(drawn, strength, eligible, 8)
    assert int(rounded.sum()) == 16
    assert rounded[drawn].all() and rounded[[19, 18, 17, 16]].all()  # the strongest removed come back
    drawn = torch.zeros(20, dtype=torch.bool)
    drawn[[2, 5, 7, 9, 11, 13, 15, 17, 19, 1, 3]] = True  # 11 kept: rounds down to 8
    rounded = round_cluster_count(drawn, strength, eligible, 8)
    assert int(rounded.sum()) == 8 and not rounded[[1, 2, 3]].any()  # the weakest kept go
    few = torch.zeros(20, dtype=torch.bool)
    few[:3] = True
    assert int(round_cluster_count(few, strength, eligible, 8).sum()) == 8  # never below one multiple
    only_six = torch.zeros(20, dtype=torch.bool)
    only_six[:6] = True
    assert torch.equal(round_cluster_count(few, strength, only_six, 8), only_six)  # cannot exceed the eligible


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
