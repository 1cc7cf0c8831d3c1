"""The channel graph of any network: coupled channels form one group (a residual addition's operands, a
concatenation's branches with the layer they feed, a depthwise layer with its input), the traced cost is the
counted one, the cut equals the silenced parent, and the pruning history rebuilds the cut network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evosynth.core.compaction import compact, silenced_copy
from evosynth.core.environment import Environment
from evosynth.core.graph import ChannelGraph, GraphError, count_macs, replay
from evosynth.core.synthesis import generation_generator, synthesize

INPUTS = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))


class Mixed(nn.Module):
    """A residual addition, a concatenation of two branches, a depthwise layer on it, flatten and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.a, self.b = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.left, self.right = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 6, 1)
        self.depthwise = nn.Conv2d(10, 10, 3, padding=1, groups=10)
        self.fc = nn.Linear(10 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = x + self.b(torch.relu(self.a(x)))
        y = self.depthwise(torch.cat([self.left(x), self.right(x)], dim=1))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 4), 1))


def _mixed() -> nn.Module:
    torch.manual_seed(0)
    return Mixed().eval()


def test_coupled_channels_are_one_group_and_kept_outputs_none():
    graph = ChannelGraph(_mixed(), INPUTS[:1], keep_outputs_of=("fc",))
    producers = [group.producers for group in graph.groups]
    assert producers == [["stem", "b"], ["a"], ["left", "right", "depthwise"]]  # first producers in data-flow order
    assert [group.channels for group in graph.groups] == [8, 8, 10]
    assert [layer.name for layer in graph.layers] == ["stem", "a", "b", "left", "right", "depthwise", "fc"]
    assert graph.layer("fc").outputs == [] and graph.layer("depthwise").depthwise


def test_the_traced_cost_is_the_counted_macs():
    model = _mixed()
    graph = ChannelGraph(model, INPUTS[:1], keep_outputs_of=("fc",))
    macs = 0

    def count(module, _inputs, output):
        nonlocal macs
        per_output = module.weight[0].numel()
        macs += (output[0].numel() if isinstance(module, nn.Conv2d) else output.shape[-1]) * per_output

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model(INPUTS[:1])
    for handle in handles:
        handle.remove()
    assert count_macs(model, INPUTS[:1]) == macs
    assert graph.cost.cost([8, 8, 10]) == pytest.approx(macs, rel=1e-12)
    assert sum(graph.cost.shares([8, 8, 10])) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_cut_computes_what_the_silenced_parent_computes_and_its_history_rebuilds_it(seed):
    model = _mixed()
    graph = ChannelGraph.of(model, INPUTS[:1], keep_outputs_of=("fc",))
    decisions = synthesize(graph, {}, Environment("budget", 0.8, 0.6), generation_generator(seed, 2))
    offspring = compact(graph, decisions)
    roots = {name for name, module in graph.model.named_modules() if any(module is g.root for g in graph.groups)}
    assert offspring.removed and set(offspring.removed) <= roots
    with torch.no_grad():
        assert torch.allclose(offspring.model(INPUTS), silenced_copy(model, INPUTS, decisions)(INPUTS), atol=1e-5)
        rebuilt = replay(_mixed(), INPUTS[:1], offspring.history)
        rebuilt.load_state_dict(offspring.model.state_dict())
        assert torch.equal(rebuilt.eval()(INPUTS), offspring.model(INPUTS))
    assert count_macs(offspring.model, INPUTS[:1]) < count_macs(model, INPUTS[:1])
    for name, parameter in offspring.model.named_parameters():
        if name in offspring.masks:
            assert torch.all(parameter[~offspring.masks[name]] == 0)


class ResNeXtBlock(nn.Module):
    """A stem, then a bottleneck whose 3x3 convolution has 4 groups (ResNeXt's), a residual addition, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.reduce, self.bn1 = nn.Conv2d(16, 12, 1), nn.BatchNorm2d(12)
        self.grouped, self.bn2 = nn.Conv2d(12, 12, 3, padding=1, groups=4), nn.BatchNorm2d(12)
        self.expand = nn.Conv2d(12, 16, 1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        y = torch.relu(self.bn2(self.grouped(torch.relu(self.bn1(self.reduce(x))))))
        return self.fc(torch.relu(x + self.expand(y)).mean(dim=(2, 3)))


def _resnext() -> nn.Module:
    torch.manual_seed(0)
    return ResNeXtBlock().eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_grouped_convolution_keeps_the_same_channels_in_every_group(seed):
    model = _resnext()
    graph = ChannelGraph.of(model, INPUTS[:1], keep_outputs_of=("fc",))
    tied = {group.producers[0]: group.ties.tolist() for group in graph.groups if group.ties is not None}
    assert tied == {"reduce": [0, 1, 2] * 4, "grouped": [0, 1, 2] * 4}  # channel c with c + 3, c + 6, c + 9
    decisions = synthesize(graph, {}, Environment("budget", 0.8, 0.5), generation_generator(seed, 2))
    for name in ("reduce.weight", "grouped.weight"):
        per_group = decisions[name].cluster_keep.reshape(4, 3)
        assert (per_group == per_group[0]).all()
    offspring = compact(graph, decisions)
    assert offspring.removed
    assert offspring.model.grouped.groups == 4 and offspring.model.grouped.out_channels % 4 == 0
    with torch.no_grad():
        assert torch.allclose(offspring.model(INPUTS), silenced_copy(model, INPUTS, decisions)(INPUTS), atol=1e-5)
        rebuilt = replay(_resnext(), INPUTS[:1], offspring.history)
        rebuilt.load_state_dict(offspring.model.state_dict())
        assert torch.equal(rebuilt.eval()(INPUTS), offspring.model(INPUTS))
    widths = [int(keep.sum()) for keep in decisions_by_group(graph, decisions)]
    assert graph.cost.cost(widths) == pytest.approx(count_macs(offspring.model, INPUTS[:1]), rel=1e-9)


def decisions_by_group(graph: ChannelGraph, decisions: dict) -> list[torch.Tensor]:
    """Each group's kept channels, read at its first producer."""
    return [decisions[graph.layer(group.producers[0]).parameter].cluster_keep[
        graph.layer(group.producers[0]).outputs[0].positions] for group in graph.groups]


class GroupedOnBranches(nn.Module):
    """A grouped convolution whose two groups read two branches of a concatenation: its ties would join them."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grouped(torch.cat([self.left(x), self.right(x)], dim=1))


def test_a_network_the_synthesis_cannot_work_on_is_refused_by_name():
    with pytest.raises(GraphError, match="keep_outputs_of names no module of the network: head"):
        ChannelGraph(_mixed(), INPUTS[:1], keep_outputs_of=("head",))
    with pytest.raises(GraphError, match="does not run on the example inputs"):
        ChannelGraph(_mixed(), torch.zeros(1, 4, 8, 8), keep_outputs_of=("fc",))
    with pytest.raises(GraphError, match="grouped: a grouped convolution that ties channels of different groups"):
        ChannelGraph(GroupedOnBranches(), INPUTS[:1])
    shared = nn.Conv2d(3, 3, 1)
    twice = nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(GraphError, match="called more than once"):
        ChannelGraph(twice, INPUTS[:1])
