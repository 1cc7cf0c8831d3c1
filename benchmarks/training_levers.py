"""Which training-throughput levers pay on this CPU? Training steps of the study's networks, timed per variant.

For the chain ancestor and a deep candidate (``deep_ancestor.CANDIDATES``), one training step is what the study's
training does per batch: forward on 64 images of 64 pixels, a loss on every output, backward, an Adam step. Each
variant changes one lever: channels-last memory format, BF16 autocast (the CPU computes BF16 natively only where it
has AVX512-BF16 or AMX: elsewhere it is emulated), both. Steps alternate between variants in rounds; the JSON has
the median images per second of each, with the machine.

    .venv/bin/python benchmarks/training_levers.py --out benchmarks/training_levers_<machine>.json
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from deep_ancestor import CANDIDATES, TRAINING_BATCH, TRAINING_SIDE
from structure_ceiling import timing_parser
from torch import nn
from tqdm.auto import tqdm

from evosynth.deploy.machine import write_measurement
from evosynth.task.recipe import Recipe

NETWORKS = ("chain (the shallow ancestor)", "residual 64-128, patch stem")
VARIANTS: dict[str, tuple[bool, bool]] = {  # name -> (channels last, BF16 autocast)
    "fp32": (False, False), "channels-last": (True, False), "bf16 autocast": (False, True),
    "channels-last + bf16": (True, True),
}


def _step(model: nn.Module, channels_last: bool, bf16: bool) -> Callable[[], None]:
    """One training step of ``model`` under the variant's levers."""
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory).train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    images = torch.rand(TRAINING_BATCH, 3, TRAINING_SIDE, TRAINING_SIDE).contiguous(memory_format=memory)

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        optimiser.zero_grad()
        with autocast():
            loss = model(images).float().square().mean()
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
    for network in NETWORKS:
        builder, options = CANDIDATES[network]
        for variant, (channels_last, bf16) in VARIANTS.items():
            torch.manual_seed(0)
            steps[network, variant] = _step(Recipe(builder, options, (1, 3, TRAINING_SIDE, TRAINING_SIDE)).build(),
                                            channels_last, bf16)
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    with _threads(arguments.threads):
        for step in steps.values():
            step()  # warm-up: first-call allocations and kernel choices
        for round_number in tqdm(range(arguments.rounds), desc="rounds", unit="round"):
            order = list(steps.items())
            for key, step in order if round_number % 2 == 0 else reversed(order):
                started = time.perf_counter()
                step()
                seconds[key].append(time.perf_counter() - started)
    rows = [{"network": network, "variant": variant, "images_per_second": TRAINING_BATCH / float(np.median(times))}
            for (network, variant), times in seconds.items()]
    for row in rows:
        baseline = next(r for r in rows if r["network"] == row["network"] and r["variant"] == "fp32")
        row["against_fp32"] = row["images_per_second"] / baseline["images_per_second"]
    print(write_measurement(arguments.out, {"threads": arguments.threads, "rounds": arguments.rounds,
                                            "batch": TRAINING_BATCH, "side": TRAINING_SIDE, "results": rows}))
    for row in rows:
        print(f"{row['network']:30s} {row['variant']:22s} {row['images_per_second']:7.0f} images/s "
              f"({row['against_fp32']:.2f}x)")


if __name__ == "__main__":
    main()
