import math

import pytest
import torch

from evosynth.core.genetics import cluster_probabilities, synapse_probabilities


def test_synapse_law_exact_values():
    weight = torch.tensor([[0.5, -1.0], [0.0, 0.25]])
    expected = torch.tensor([[math.exp(-0.5), 1.0], [math.exp(-1.0), math.exp(-0.75)]])
    assert torch.allclose(synapse_probabilities(weight), expected)


def test_masked_synapses_have_probability_zero_and_z_uses_survivors_only():
    weight = torch.tensor([[2.0, 1.0], [0.5, -1.0]])
    mask = torch.tensor([[False, True], [True, True]])
    p = synapse_probabilities(weight, mask)
    assert p[0, 0] == 0.0
    # the strongest *surviving* synapse (|w| = 1) defines Z and is always inherited
    assert p[0, 1] == pytest.approx(1.0) and p[1, 1] == pytest.approx(1.0)
    assert p[1, 0] == pytest.approx(math.exp(-0.5))


def test_synapse_law_is_monotone_in_strength():
    weight = torch.linspace(-3, 3, 101)
    p = synapse_probabilities(weight.reshape(1, -1)).flatten()
    order = torch.argsort(weight.abs())
    assert torch.all(torch.diff(p[order]) >= 0)
    assert p.max() == pytest.approx(1.0) and p.min() >= math.exp(-1) - 1e-6


def test_cluster_law_sums_surviving_strength():
    weight = torch.tensor([[1.0, 1.0], [0.5, -0.5], [4.0, 0.0]])
    # cluster 2 lost its strong synapse; its surviving one has zero strength: alive, but S_c = 0
    mask = torch.tensor([[True, True], [True, True], [False, True]])
    p = cluster_probabilities(weight, mask)
    assert p.shape == (3,)
    assert torch.allclose(p, torch.tensor([1.0, math.exp(0.5 - 1), math.exp(-1)]))


def test_cluster_with_no_surviving_synapse_is_extinct():
    weight = torch.ones(3, 2, 3, 3)
    mask = torch.ones_like(weight, dtype=torch.bool)
    mask[1] = False
    assert cluster_probabilities(weight, mask)[1] == 0.0


def test_nan_weights_and_wrong_mask_shape_are_named():
    with pytest.raises(ValueError, match="NaN"):
        synapse_probabilities(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="mask shape"):
        cluster_probabilities(torch.ones(2, 2), torch.ones(2, 3, dtype=torch.bool))
