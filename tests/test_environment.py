import math

import pytest
import torch

from evosynth.core.environment import Environment


@pytest.mark.parametrize("alpha", [0.1, 0.37, 0.8, 0.95, 1.0])
def test_budget_expected_survivors_equal_alpha_times_alive(alpha):
    probabilities = torch.rand(500, generator=torch.Generator().manual_seed(1)) * 0.9 + 0.1
    probabilities[:50] = 0.0  # absent in the parent: not part of N
    out = Environment("budget", alpha_synapse=alpha).apply(probabilities)
    assert out.sum().item() == pytest.approx(alpha * 450, rel=1e-6)
    assert torch.all(out[:50] == 0) and torch.all(out <= 1)


def test_budget_keeps_ranking_and_saturates_the_strongest():
    probabilities = torch.tensor([1.0, 0.9, 0.5, 0.4])
    out = Environment("budget", alpha_cluster=0.75).apply(probabilities, "cluster")
    assert out.sum().item() == pytest.approx(3.0)
    assert torch.all(torch.diff(out) <= 0)
    assert out[0] == 1.0


def test_multiplicative_scales_by_alpha():
    probabilities = torch.tensor([1.0, 0.5, 0.0])
    out = Environment("multiplicative", alpha_synapse=0.6, alpha_cluster=0.3).apply(probabilities, "synapse")
    assert torch.allclose(out, torch.tensor([0.6, 0.3, 0.0]))
    assert Environment("multiplicative", alpha_cluster=0.3).apply(probabilities, "cluster")[0] == pytest.approx(0.3)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.01, math.nan])
def test_alpha_outside_unit_interval_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha_synapse must be in"):
        Environment("budget", alpha_synapse=alpha)


def test_unknown_environment_model_is_named():
    with pytest.raises(ValueError, match="unknown environment model 'famine'"):
        Environment("famine")
