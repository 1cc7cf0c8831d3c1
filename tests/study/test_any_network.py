"""Any PyTorch network evolves: a ResNet (residual additions), an inception network (concatenations), a
depthwise-separable network and an MLP, five generations each through ``evosynth.evolve`` with tiny training.
At every generation the offspring computes what its parent computes with the removed channels silenced (a check
without Torch-Pruning), the same seed gives the same bits, the pruning history rebuilds it, and the cost model's
MACs are the counted ones."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import evosynth
from evosynth.core.compaction import group_decisions, silenced_copy
from evosynth.core.environment import Environment
from evosynth.core.graph import ChannelGraph, GraphError, count_macs, replay
from evosynth.core.synthesis import generation_generator
from evosynth.core.synthesis import synthesize as decide
from evosynth.storage.runs import ARCHITECTURE, CONFIG
from evosynth.task.networks import KEPT_OUTPUTS, NETWORKS

pytestmark = pytest.mark.slow  # trains four networks for five generations

INPUTS = torch.zeros(1, 1, 28, 28)
ENVIRONMENT = Environment("cost", alpha_synapse=0.95, alpha_cluster=0.7)
IMAGES = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
LABELS = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1))


def tiny_training(model: nn.Module, _generation: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(IMAGES), LABELS).backward()
        optimizer.step()


def accuracy(model: nn.Module) -> dict[str, float]:
    with torch.no_grad():
        return {"accuracy": float((model(IMAGES).argmax(dim=1) == LABELS).float().mean())}


@pytest.fixture(scope="module", params=list(NETWORKS))
def evolved(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("any") / request.param
    generations = evosynth.evolve(request.param, tiny_training, accuracy, example_inputs=INPUTS,
                                  environment=ENVIRONMENT, out=out, generations=5, seed=0, keep_outputs_of=KEPT_OUTPUTS)
    return request.param, out, generations


def test_five_generations_under_the_cost_environment_need_three_times_fewer_macs(evolved):
    name, _, generations = evolved
    macs = [generation.metrics["macs"] for generation in generations]
    assert [g.number for g in generations] == [1, 2, 3, 4, 5]
    assert all(later < earlier for earlier, later in zip(macs, macs[1:], strict=False)), macs
    assert macs[0] / macs[-1] >= 3, f"{name}: {macs}"
    assert generations[-1].metrics["synapses"] < generations[0].metrics["synapses"]
    assert 0.0 <= generations[-1].metrics["accuracy"] <= 1.0


def test_every_offspring_computes_what_its_silenced_parent_computes(evolved):
    _, _, generations = evolved
    for parent in generations[:-1]:
        graph = ChannelGraph.of(parent.model, INPUTS, KEPT_OUTPUTS)
        decisions = decide(graph, parent.masks, ENVIRONMENT, generation_generator(0, parent.number + 1))
        offspring = evosynth.synthesize(parent.model, INPUTS, ENVIRONMENT, seed=0, generation=parent.number + 1,
                                        keep_outputs_of=KEPT_OUTPUTS, masks=parent.masks)
        with torch.no_grad():
            error = (offspring.model(IMAGES) - silenced_copy(parent.model, IMAGES, decisions)(IMAGES)).abs().max()
        assert error < 1e-4, f"generation {parent.number + 1}: {float(error):.2e}"
        widths = [int(keep.sum()) for keep in group_decisions(graph, decisions)]
        assert graph.cost.cost(widths) == count_macs(offspring.model, INPUTS)  # expected MACs are the counted ones


def test_the_same_seed_gives_the_same_bits_and_the_history_rebuilds_the_offspring(evolved):
    name, _, generations = evolved
    parent = generations[1]
    first, again = (evosynth.synthesize(parent.model, INPUTS, ENVIRONMENT, seed=0, generation=3,
                                        keep_outputs_of=KEPT_OUTPUTS, masks=parent.masks) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                   again.model.state_dict().values(), strict=True))
    assert first.removed == again.removed and json.loads(json.dumps(first.removed)) == first.removed
    other = evosynth.synthesize(parent.model, INPUTS, ENVIRONMENT, seed=1, generation=3, keep_outputs_of=KEPT_OUTPUTS,
                                masks=parent.masks)
    assert other.removed != first.removed
    rebuilt = replay(NETWORKS[name](), INPUTS, [*parent.recipe.history, *first.history])
    rebuilt.load_state_dict(first.model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(IMAGES), first.model(IMAGES))


def test_the_run_folder_replays_its_generations_and_resumes(evolved):
    name, out, generations = evolved
    description = json.loads((out / "gen_03" / ARCHITECTURE).read_text())
    assert description["builder"] == name and description["history"]
    assert json.loads((out / CONFIG).read_text())["identity"]["recipe"]["builder"] == name
    before = {path: path.read_bytes() for path in sorted(out.rglob("*.json")) if path.name != CONFIG}
    again = evosynth.evolve(name, tiny_training, accuracy, example_inputs=INPUTS, environment=ENVIRONMENT, out=out,
                            generations=5, seed=0, keep_outputs_of=KEPT_OUTPUTS)
    assert {path: path.read_bytes() for path in sorted(out.rglob("*.json")) if path.name != CONFIG} == before
    with torch.no_grad():
        assert torch.equal(again[-1].model(IMAGES), generations[-1].model(IMAGES))


class Grouped(nn.Module):
    """A grouped convolution whose two groups read two branches of a concatenation (not supported)."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.grouped(torch.cat([self.left(x), self.right(x)], dim=1)).mean(dim=(2, 3)))


def build_grouped() -> nn.Module:
    return Grouped()


@pytest.mark.parametrize(("arguments", "message"), [
    ({"build_ancestor": "no.such.module:net"}, "neither one of"),
    ({"build_ancestor": lambda: NETWORKS["mlp"]()}, "cannot be found again"),
    ({"keep_outputs_of": ("classifier",)}, "keep_outputs_of names no module of the network: classifier"),
    ({"example_inputs": torch.zeros(1, 3, 28, 28)}, "does not run on the example inputs"),
    ({"build_ancestor": build_grouped}, "grouped: a grouped convolution"),
])
def test_bad_input_is_named_and_nothing_is_written(tmp_path, arguments, message):
    options = {"build_ancestor": "resnet", "example_inputs": INPUTS, "keep_outputs_of": KEPT_OUTPUTS, **arguments}
    with pytest.raises(GraphError, match=message):
        evosynth.evolve(options.pop("build_ancestor"), tiny_training, accuracy, environment=ENVIRONMENT,
                        out=tmp_path / "run", generations=2, **options)
    assert not (tmp_path / "run").exists()
