"""Does a deep detector ancestor evolve to the paper's speed-up? Its 13 generations through the public
``evosynth.evolve``, on the study's task and training rules, then every generation timed on 640x480 frames.

The ancestor is a candidate of ``deep_ancestor.py`` (``--candidate``); the environment, precision, seed, task and
training budgets are the study's defaults (``RunConfig()``: the paper preset). Training is the study's
(``task.training.train``: the ancestor until validation AP50 stops improving, each offspring a fixed budget, the
removed synapses held at zero); evaluation is the study's (precision and recall at the operating point chosen
on the validation split, AP50, on the test split). The cost environment prices MACs on a whole frame. Writes the
per-generation table (widths per group, synapses, MACs, quality, training seconds) and the frame timings
(``structure_ceiling.time_frames``) with the machine.

    .venv/bin/python benchmarks/deep_evolution.py --out benchmarks/deep_evolution_<machine>.json
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deep_ancestor import CANDIDATES
from structure_ceiling import time_frames, timing_parser
from torch import nn

import evosynth
from evosynth.core.graph import ChannelGraph
from evosynth.core.synthesis import generation_generator
from evosynth.deploy.machine import write_measurement
from evosynth.paths import CACHE_DIR
from evosynth.study.config import RunConfig
from evosynth.study.evolution import TRAINING_STREAM, load_task_data
from evosynth.task.metrics import assess
from evosynth.task.model import FRAME_SIZE, HEAD
from evosynth.task.training import train


def main() -> None:
    parser = timing_parser(__doc__, rounds=7, sample_ms=100.0)
    parser.add_argument("--runs", type=Path, default=Path("runs/deep"), help="the run folder (resumed)")
    parser.add_argument("--candidate", default="residual 64-128, patch stem", choices=list(CANDIDATES))
    parser.add_argument("--generations", type=int, default=13)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channel-multiple", type=int, default=1,
                        help="round each group's kept channels to a multiple of this (the kernels' channel block)")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    config = RunConfig(seed=arguments.seed)
    preset, data = config.resolved_preset, load_task_data(config, CACHE_DIR)
    seconds: dict[int, float] = {}

    def train_generation(model: nn.Module, number: int) -> None:
        masks = {f"{layer.name}.weight": layer.weight.detach() != 0
                 for layer in ChannelGraph(model, torch.zeros(1, 3, 64, 64), (HEAD,)).layers}
        started = time.perf_counter()
        train(model, masks, data.train, data.val, preset.ancestor if number == 1 else preset.offspring,  # type: ignore[arg-type]
              generation_generator(config.seed + TRAINING_STREAM, number), description=f"gen {number:02d}")
        seconds[number] = time.perf_counter() - started

    def evaluate(model: nn.Module) -> dict[str, float]:
        quality, point = assess(model, data.val, data.test)  # type: ignore[arg-type]
        return {"precision": quality.precision, "recall": quality.recall, "ap50": quality.ap50,
                "threshold": point.threshold}

    builder, options = CANDIDATES[arguments.candidate]
    started = time.perf_counter()
    generations = evosynth.evolve(builder, train_generation, evaluate, example_inputs=torch.zeros(1, 3, *FRAME_SIZE),
                                  environment=config.make_environment(), out=arguments.runs,
                                  precision=config.precision, generations=arguments.generations, seed=config.seed,
                                  keep_outputs_of=(HEAD,), arguments=options,
                                  channel_multiple=arguments.channel_multiple)
    evolution_seconds = time.perf_counter() - started
    rows: list[dict[str, Any]] = []
    for generation in generations:
        graph = ChannelGraph(generation.model, torch.zeros(1, 3, 64, 64), (HEAD,))
        rows.append({**generation.metrics, "group_widths": [group.channels for group in graph.groups],
                     "train_seconds": seconds.get(generation.number)})
    samples = time_frames({f"gen {g.number:02d}": g.model for g in generations}, arguments.rounds,
                          arguments.threads, arguments.sample_ms)
    timings: dict[str, dict[str, float]] = {}
    for (network, backend), times in samples.items():
        timings.setdefault(backend, {})[network] = float(np.median(times))
    first, last = rows[0], rows[-1]
    summary = {backend: {"fps_first": 1e3 / by[f"gen {first['generation']:02d}"],
                         "fps_last": 1e3 / by[f"gen {last['generation']:02d}"],
                         "speedup": by[f"gen {first['generation']:02d}"] / by[f"gen {last['generation']:02d}"]}
               for backend, by in timings.items()}
    summary_line = write_measurement(arguments.out, {
        "candidate": arguments.candidate, "builder": builder, "arguments": options,
        "channel_multiple": arguments.channel_multiple,
        "config": config.identity(), "evolution_seconds": evolution_seconds, "generations": rows,
        "frame_ms": timings, "summary": summary,
        "mac_reduction": first["macs"] / last["macs"], "synapse_reduction": first["synapses"] / last["synapses"]})
    print(summary_line)
    print(f"{arguments.candidate}: {len(rows)} generations in {evolution_seconds / 60:.1f} min; "
          f"{first['synapses'] / last['synapses']:.1f}x fewer synapses, {first['macs'] / last['macs']:.1f}x fewer "
          f"MACs; "
          f"AP50 {first['ap50']:.3f} -> {last['ap50']:.3f}, precision {first['precision']:.3f} -> "
          f"{last['precision']:.3f}, recall {first['recall']:.3f} -> {last['recall']:.3f}")
    for backend, entry in summary.items():
        print(f"  {backend:16s} {entry['fps_first']:6.1f} -> {entry['fps_last']:6.1f} fps ({entry['speedup']:.2f}x)")


if __name__ == "__main__":
    main()
