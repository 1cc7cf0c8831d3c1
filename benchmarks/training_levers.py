"""Which training-throughput levers pay on this CPU? Training steps of the study's networks, timed per variant.

For the chain ancestor, the study's deep ancestor and a network of its family at a last generation's size, one
training step is what the study's training does per batch: forward on 64 images of 64 pixels, a loss on every
output, backward, an Adam step. Each variant changes one lever: channels-last memory format, BF16 autocast (the CPU
computes BF16 natively only where it has AVX512-BF16 or AMX: elsewhere it is emulated), both, and a training step
compiled by ``torch.compile`` (Inductor's C++ kernels) on channels-last. Steps alternate between variants in rounds;
the JSON has the median images per second of each and its first step's seconds (a compiled step's compilation, paid
again for every new set of layer shapes: every generation of an evolution), with the machine.

    .venv/bin/python benchmarks/training_levers.py --out benchmarks/training_levers_<machine>.json
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")  # a compilation's cost as a fresh machine pays it
import torch  # noqa: E402
from deep_ancestor import CANDIDATES, TRAINING_BATCH, TRAINING_SIDE
from structure_ceiling import timing_parser
from torch import nn
from tqdm.auto import tqdm

from evosynth.deploy.machine import write_measurement
from evosynth.task.recipe import Recipe

NETWORKS: dict[str, tuple[str, dict[str, Any]]] = {
    **{name: CANDIDATES[name] for name in ("chain (the shallow ancestor)", "residual 64-128, patch stem")},
    # the study's family at about a last generation's MACs (seed 0's generation 13 has 10.5x fewer than its ancestor)
    "residual 24-48, patch stem": ("residual_detector", {"stem_widths": [16], "widths": [24, 48], "blocks": 2,
                                                         "patch_stem": True}),
}
VARIANTS: dict[str, tuple[bool, bool, bool]] = {  # name -> (channels last, BF16 autocast, torch.compile)
    "fp32": (False, False, False), "channels-last": (True, False, False), "bf16 autocast": (False, True, False),
    "channels-last + bf16": (True, True, False), "channels-last + compiled": (True, False, True),
}


def _step(model: nn.Module, channels_last: bool, bf16: bool, compiled: bool) -> Callable[[], None]:
    """One training step of ``model`` under the variant's levers."""
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory).train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    forward = torch.compile(model) if compiled else model
    images = torch.rand(TRAINING_BATCH, 3, TRAINING_SIDE, TRAINING_SIDE).contiguous(memory_format=memory)

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        optimiser.zero_grad()
        with autocast():
            loss = forward(images).float().square().mean()
        loss.backward()
        optimiser.step()

    return step


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def main() -> None:
    arguments = timing_parser(__doc__, rounds=5).parse_args()
    steps: dict[tuple[str, str], Callable[[], None]] = {}
    for network, (builder, options) in NETWORKS.items():
        for variant, levers in VARIANTS.items():
            torch.manual_seed(0)
            steps[network, variant] = _step(Recipe(builder, options, (1, 3, TRAINING_SIDE, TRAINING_SIDE)).build(),
                                            *levers)
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    first_step: dict[tuple[str, str], float] = {}
    with _threads(arguments.threads):
        for key, step in tqdm(steps.items(), desc="first steps", unit="variant"):
            started = time.perf_counter()
            step()  # warm-up: first-call allocations, kernel choices and (compiled) the compilation
            first_step[key] = time.perf_counter() - started
        for round_number in tqdm(range(arguments.rounds), desc="rounds", unit="round"):
            order = list(steps.items())
            for key, step in order if round_number % 2 == 0 else reversed(order):
                started = time.perf_counter()
                step()
                seconds[key].append(time.perf_counter() - started)
    rows = [{"network": network, "variant": variant, "images_per_second": TRAINING_BATCH / float(np.median(times)),
             "first_step_seconds": first_step[network, variant]} for (network, variant), times in seconds.items()]
    for row in rows:
        baseline = next(r for r in rows if r["network"] == row["network"] and r["variant"] == "fp32")
        row["against_fp32"] = row["images_per_second"] / baseline["images_per_second"]
    print(write_measurement(arguments.out, {"threads": arguments.threads, "rounds": arguments.rounds,
                                            "batch": TRAINING_BATCH, "side": TRAINING_SIDE, "results": rows}))
    for row in rows:
        print(f"{row['network']:30s} {row['variant']:22s} {row['images_per_second']:7.0f} images/s "
              f"({row['against_fp32']:.2f}x), first step {row['first_step_seconds']:.1f} s")


if __name__ == "__main__":
    main()
