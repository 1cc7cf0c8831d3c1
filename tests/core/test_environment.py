import math

import pytest
import torch
from torch import nn

from evosynth.core.environment import CostModel, Environment, budget, cost_alphas
from evosynth.core.graph import ChannelGraph
from evosynth.task.model import Architecture, GridDetector, channel_graph, frame_macs


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


def _chain_cost(widths: tuple[int, ...], strides: tuple[int, ...], size: int) -> CostModel:
    """The traced cost of a chain of 3x3 convolutions of these widths and strides and a 1x1 head of 5 outputs."""
    layers, channels = [], 3
    for width, stride in zip(widths, strides, strict=True):
        layers.append(nn.Conv2d(channels, width, 3, stride, padding=1))
        channels = width
    model = nn.Sequential(*layers, nn.Conv2d(channels, 5, 1))
    return ChannelGraph(model, torch.zeros(1, 3, size, size), keep_outputs_of=(str(len(widths)),)).cost


def _three_layer_cost() -> CostModel:
    # Layer 0 sees 4x the positions of layer 1 (stride 2), so its filters are dearer: 9 * 64 vs 9 * 16 per pair.
    return _chain_cost((32, 48), (1, 2), 8)


def test_the_cost_environment_keeps_alpha_of_the_parents_cost_in_expectation():
    laws = [torch.linspace(0.05, 1.0, 32), torch.linspace(0.05, 1.0, 48)]
    cost = _three_layer_cost()
    for alpha in (0.3, 0.7, 0.9):
        fractions = cost_alphas(laws, cost, alpha)
        expected = [fraction * len(law) for fraction, law in zip(fractions, laws, strict=True)]
        assert cost.cost(expected) == pytest.approx(alpha * cost.cost([32, 48]), rel=1e-6)
    assert cost_alphas(laws, cost, 1.0) == pytest.approx([1.0, 1.0])


def test_the_cost_environment_cuts_the_dearer_layer_more_and_keeps_the_strongest_first():
    law = torch.linspace(0.05, 1.0, 32)
    cost = _three_layer_cost()
    dear, cheap = cost.shares([32, 32])
    assert dear > cheap and dear + cheap == pytest.approx(1.0)
    fractions = cost_alphas([law, law.clone()], cost, 0.6)
    assert fractions[0] < fractions[1]  # the same DNA, but layer 0's filters carry more of the cost
    assert (1 - fractions[0]) / (1 - fractions[1]) == pytest.approx(dear / cheap)  # cut in proportion to share
    environments, head = Environment("cost", 0.9, 0.6).group_environments([law, law.clone()], cost)
    kept = environments[0].apply(law, "cluster")
    assert environments[0].model == "budget" and torch.all(kept[1:] >= kept[:-1])  # ranking by strength kept
    assert head.model == "budget" and head.alpha_cluster == 1.0  # the head is never cut


def test_the_cost_environment_does_not_drain_a_layer_over_generations():
    """Cut in proportion to its share, a layer that shrinks carries less of the cost and is cut less: the
    widths of repeated expected cuts stay balanced (pricing filters by marginal MACs drained layers to 2)."""
    cost = _chain_cost((32, 48, 64, 96, 128), (2, 2, 2, 2, 1), 128)
    widths = [32.0, 48.0, 64.0, 96.0, 128.0]
    for _ in range(12):
        fractions = cost_alphas([torch.linspace(0.3, 1.0, max(1, round(w))) for w in widths], cost, 0.837)
        widths = [w * f for w, f in zip(widths, fractions, strict=True)]
    assert min(widths) > 4 and max(widths) / min(widths) < 40


def test_the_cost_environment_needs_the_network_and_acts_on_synapses_as_the_budget():
    environment = Environment("cost", 0.8, 0.5)
    law = torch.linspace(0.1, 1.0, 10)
    with pytest.raises(ValueError, match="cost model"):
        environment.group_environments([law, law], None)
    with pytest.raises(ValueError, match="whole network"):
        environment.apply(law, "cluster")
    assert torch.equal(environment.apply(law, "synapse"), budget(law, 0.8))


def test_the_traced_cost_counts_the_detectors_macs():
    architecture = Architecture(3, (32, 48, 64), (2, 2, 2))
    for size in ((96, 96), (480, 640)):
        model = GridDetector(architecture)
        macs = 0

        def count(module, inputs, output):
            nonlocal macs
            macs += output.numel() // output.shape[0] * module.in_channels * module.kernel_size[0] ** 2

        for layer in [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]:
            layer.register_forward_hook(count)
        model(torch.zeros(1, 3, *size))
        counted = macs  # before the counters below run the network again under the same hooks
        assert frame_macs(model, size) == counted == channel_graph(model, size).cost.cost(architecture.widths)
