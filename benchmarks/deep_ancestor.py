"""Which deep detector can the evolution make five times faster? Room to speed up, and the cost of training.

For each candidate ancestor (the chain detector of the shallow preset for reference, DetectNet-style inception
detectors, residual detectors; ``CANDIDATES``), this script builds it with random weights and its *floor*: the
same architecture with every group of coupled channels cut to 4 channels (the smallest network the evolution can
reach without removing a layer). Both are timed on one 640x480 frame at batch 1 on every CPU backend
(``structure_ceiling.time_frames``: ONNX, interleaved rounds, medians). A candidate has room for the paper's 5.3x
when its floor runs >= 15x its frames per second. It also times training steps on the study's task (batch 64 of
64-pixel images, forward, backward, Adam) against the chain's: the ancestor's training cost scales with it.

    .venv/bin/python benchmarks/deep_ancestor.py --out benchmarks/deep_ancestor_<machine>.json
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from structure_ceiling import time_frames, timing_parser
from torch import nn
from tqdm.auto import tqdm

from evosynth.core.graph import ChannelGraph, count_macs
from evosynth.deploy.machine import write_measurement
from evosynth.study.presets import get_preset
from evosynth.task.model import FRAME_SIZE, HEAD
from evosynth.task.recipe import Recipe

FLOOR_WIDTH = 4
TRAINING_BATCH, TRAINING_SIDE = 64, 64  # the paper preset's batch and canvas
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "chain (the shallow ancestor)": (get_preset("shallow").network.builder,
                                     get_preset("shallow").network.arguments_for(3)),
    "inception 2+2": ("inception_detector", {"stem_widths": [32, 64], "stages": [[128, 128], [192, 192]]}),
    "inception 2+3 wide": ("inception_detector", {"stem_widths": [32, 64], "stages": [[128, 192], [256, 256, 256]]}),
    "inception 3+4 DetectNet-like": ("inception_detector", {"stem_widths": [64, 96],
                                                            "stages": [[256, 256, 256], [384, 384, 384, 384]]}),
    "residual 32+64-128": ("residual_detector", {"stem_widths": [32, 32], "widths": [64, 128], "blocks": 2}),
    "inception 2+2, patch stem": ("inception_detector", {"stem_widths": [64], "stages": [[128, 128], [192, 192]],
                                                         "patch_stem": True}),
    "inception 2+3 wide, patch stem": ("inception_detector", {"stem_widths": [64], "patch_stem": True,
                                                              "stages": [[128, 192], [256, 256, 256]]}),
    "residual 64-128, patch stem": ("residual_detector", {"stem_widths": [32], "widths": [64, 128], "blocks": 2,
                                                          "patch_stem": True}),
    "residual 96-192, patch stem": ("residual_detector", {"stem_widths": [48], "widths": [96, 192], "blocks": 2,
                                                          "patch_stem": True}),
}


def floor_of(model: nn.Module) -> nn.Module:
    """The network with every group of coupled channels cut to its first ``FLOOR_WIDTH`` channels (head kept)."""
    graph = ChannelGraph.of(model, torch.zeros(1, 3, TRAINING_SIDE, TRAINING_SIDE), keep_outputs_of=(HEAD,))
    keeps = [torch.arange(group.channels) < FLOOR_WIDTH for group in graph.groups]
    masks = {layer.parameter: torch.ones_like(layer.weight, dtype=torch.bool) for layer in graph.layers}
    return graph.cut(keeps, masks)[0]


def training_images_per_second(model: nn.Module, steps: int = 6) -> float:
    """Training throughput on the study's images: forward, a loss on every output, backward, an Adam step."""
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    images = torch.rand(TRAINING_BATCH, 3, TRAINING_SIDE, TRAINING_SIDE)
    timings = []
    for _ in range(steps):
        started = time.perf_counter()
        optimiser.zero_grad()
        model(images).square().mean().backward()
        optimiser.step()
        timings.append(time.perf_counter() - started)
    return TRAINING_BATCH / float(np.median(timings[2:]))


def main() -> None:
    arguments = timing_parser(__doc__, rounds=7, sample_ms=100.0).parse_args()
    torch.set_num_threads(arguments.threads)
    frame = torch.zeros(1, 3, *FRAME_SIZE)
    networks: dict[str, nn.Module] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name, (builder, options) in tqdm(CANDIDATES.items(), desc="build", unit="network"):
        torch.manual_seed(0)
        ancestor = Recipe(builder, options, (1, 3, TRAINING_SIDE, TRAINING_SIDE)).build().eval()
        floor = floor_of(ancestor).eval()
        networks[f"{name} | ancestor"], networks[f"{name} | floor"] = ancestor, floor
        rows[name] = {"builder": builder, "arguments": options, "stride": ancestor.stride,
                      "macs": count_macs(ancestor, frame), "floor_macs": count_macs(floor, frame),
                      "parameters": sum(p.numel() for p in ancestor.parameters()),
                      "training_images_per_second": training_images_per_second(ancestor)}
    samples = time_frames(networks, arguments.rounds, arguments.threads, arguments.sample_ms)
    chain_training = next(iter(rows.values()))["training_images_per_second"]
    for (network, backend), times in samples.items():
        name, kind = network.split(" | ")
        rows[name].setdefault("backends", {}).setdefault(backend, {})[f"{kind}_ms"] = float(np.median(times))
    for row in rows.values():
        for timing in row["backends"].values():
            timing["room"] = timing["ancestor_ms"] / timing["floor_ms"]
        row["training_cost_vs_chain"] = chain_training / row["training_images_per_second"]
    print(write_measurement(arguments.out, {"frame": list(FRAME_SIZE), "threads": arguments.threads,
                                            "rounds": arguments.rounds, "floor_width": FLOOR_WIDTH,
                                            "candidates": rows}))
    for name, row in rows.items():
        rooms = ", ".join(f"{backend} {1e3 / t['ancestor_ms']:.0f}->{1e3 / t['floor_ms']:.0f} fps ({t['room']:.1f}x)"
                          for backend, t in row["backends"].items())
        print(f"{name:30s} {row['macs'] / 1e9:5.2f} GMAC (floor {row['floor_macs'] / 1e9:.3f}); training "
              f"{row['training_cost_vs_chain']:.1f}x the chain's; {rooms}")


if __name__ == "__main__":
    main()
