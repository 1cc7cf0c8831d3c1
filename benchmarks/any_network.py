"""How does any network evolve? The four networks of ``evosynth.task.networks`` (residual additions,
concatenations, depthwise-separable convolutions, an MLP), five generations each under the cost environment, trained
on the shipped MNIST digits; per generation: each group's width, the MACs (counted, and expected by the cost model),
the test accuracy and the outputs check (the offspring against its parent with the removed channels silenced).

    .venv/bin/python benchmarks/any_network.py --out benchmarks/any_network_<machine>.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch

import evosynth
from evosynth.core.compaction import group_decisions, silenced_copy
from evosynth.core.environment import Environment
from evosynth.core.graph import ChannelGraph, count_macs
from evosynth.core.synthesis import generation_generator
from evosynth.core.synthesis import synthesize as decide
from evosynth.deploy.machine import write_measurement
from evosynth.task.classify import accuracy, mnist, train_epochs
from evosynth.task.networks import KEPT_OUTPUTS, NETWORKS

INPUTS = torch.zeros(1, 1, 28, 28)


def record(name: str, environment: Environment, generations: int, out: Path) -> list[dict[str, Any]]:
    train_set, test_set = mnist("train"), mnist("test")
    lineage = evosynth.evolve(
        name, lambda model, generation: train_epochs(model, train_set, epochs=3 if generation == 1 else 1),
        lambda model: {"accuracy": accuracy(model, test_set)}, example_inputs=INPUTS, environment=environment,
        out=out, generations=generations, seed=0, keep_outputs_of=KEPT_OUTPUTS)
    rows = []
    for generation in lineage:
        graph = ChannelGraph.of(generation.model, INPUTS, KEPT_OUTPUTS)
        row = {"generation": generation.number, "group_widths": [group.channels for group in graph.groups],
               "macs": generation.metrics["macs"], "synapses": generation.metrics["synapses"],
               "accuracy": generation.metrics["accuracy"]}
        if generation.number < generations:  # the check of the offspring this generation is the parent of
            decisions = decide(graph, generation.masks, environment, generation_generator(0, generation.number + 1))
            offspring = evosynth.synthesize(generation.model, INPUTS, environment, seed=0,
                                            generation=generation.number + 1, keep_outputs_of=KEPT_OUTPUTS,
                                            masks=generation.masks)
            images = mnist("test").images[:64]
            with torch.no_grad():
                error = (offspring.model(images) - silenced_copy(generation.model, images, decisions)(images)).abs()
            widths = [int(keep.sum()) for keep in group_decisions(graph, decisions)]
            row["offspring_check_max_abs_error"] = float(error.max())
            row["offspring_macs_counted"] = count_macs(offspring.model, INPUTS)
            row["offspring_macs_expected"] = graph.cost.cost(widths)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the JSON goes")
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--alpha-cluster", type=float, default=0.7)
    arguments = parser.parse_args()
    environment = Environment("cost", alpha_synapse=0.95, alpha_cluster=arguments.alpha_cluster)

    with tempfile.TemporaryDirectory() as scratch:
        results = {name: record(name, environment, arguments.generations, Path(scratch) / name) for name in NETWORKS}
    print(write_measurement(arguments.out, {"environment": environment.__dict__, "networks": results}))
    for name, rows in results.items():
        print(f"{name}: MACs " + " -> ".join(f"{row['macs']:,}" for row in rows)
              + f" ({rows[0]['macs'] / rows[-1]['macs']:.1f}x fewer), accuracy "
              + " -> ".join(f"{row['accuracy']:.3f}" for row in rows))


if __name__ == "__main__":
    main()
