"""Where does an epoch of the study's training go, and does a larger batch train more images per second?

The study's own ``train`` on the study's task and ancestor (``RunConfig()``: the deep residual detector, the
ancestor's budget), profiled with cProfile over ``--epochs`` epochs after one warm-up epoch: the seconds spent in the
network's forward and backward passes, the optimizer step, validation, augmentation, the masks and the targets'
encoding, each as a share of the epoch. Then the training step alone (forward, loss, backward, AdamW; channels-last,
as ``train`` runs it) at several batch sizes, interleaved in rounds: images per second of each.

    .venv/bin/python benchmarks/epoch_profile.py --out benchmarks/epoch_profile_<machine>.json
"""

from __future__ import annotations

import cProfile
import pstats
import time
from dataclasses import replace

import numpy as np
import torch
from structure_ceiling import timing_parser
from tqdm.auto import tqdm

from evosynth.deploy.machine import write_measurement
from evosynth.paths import CACHE_DIR
from evosynth.study.config import RunConfig
from evosynth.study.evolution import load_task_data, new_ancestor
from evosynth.task.metrics import as_float_images
from evosynth.task.targets import encode
from evosynth.task.training import detection_loss, train

# profile entries (``file:function`` suffixes) -> what they are; a function's cumulative time counts once
PARTS = {
    "torch/autograd/__init__.py(backward)": "backward pass",
    "task/detectors.py(forward)": "forward passes (training and validation)",
    "task/metrics.py(evaluate)": "validation (its forward passes included)",
    "optim/adam.py(step)": "optimizer step",
    "task/training.py(augment)": "augmentation",
    "task/training.py(apply)": "masks re-applied",
    "task/targets.py(encode)": "targets encoded (once per training)",
}
BATCHES = (32, 64, 128)


def _cumulative(stats: pstats.Stats, suffix: str) -> float:
    file, function = suffix.removesuffix(")").split("(")
    return sum(entry[3] for (path, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
               if path.endswith(file) and name == function)


def profile_epochs(epochs: int) -> dict:
    config = RunConfig()
    data = load_task_data(config, CACHE_DIR)
    model, masks, _ = new_ancestor(config, data)
    budget = replace(config.resolved_preset.ancestor, max_epochs=1, patience=None)
    train(model, masks, data.train, data.val, budget, torch.Generator().manual_seed(0))  # warm-up, first imports
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    train(model, masks, data.train, data.val, replace(budget, max_epochs=epochs), torch.Generator().manual_seed(1))
    profiler.disable()
    seconds = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    parts = {name: _cumulative(stats, suffix) / epochs for suffix, name in PARTS.items()}
    return {"epochs": epochs, "training_images": len(data.train), "validation_images": len(data.val),
            "batch_size": budget.batch_size, "seconds_per_epoch": seconds / epochs, "seconds_per_epoch_by_part": parts,
            "share_of_epoch": {name: value * epochs / seconds for name, value in parts.items()}}


def batch_throughput(rounds: int) -> list[dict]:
    config = RunConfig()
    data = load_task_data(config, CACHE_DIR)
    stride = new_ancestor(config, data)[0].stride
    steps = {}
    for batch in BATCHES:
        torch.manual_seed(0)
        model = new_ancestor(config, data)[0].to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        images = as_float_images(data.train.images[:batch]).contiguous(memory_format=torch.channels_last)
        grid = (images.shape[2] // stride, images.shape[3] // stride)
        coverage, distances = encode(data.train.boxes[:batch], grid, stride)

        def step(model=model, optimizer=optimizer, images=images, coverage=coverage, distances=distances) -> None:
            loss = detection_loss(model(images), coverage, distances)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()  # warm-up
        steps[batch] = step
    seconds: dict[int, list[float]] = {batch: [] for batch in BATCHES}
    for round_number in tqdm(range(rounds), desc="batch rounds", unit="round"):
        for batch in BATCHES if round_number % 2 == 0 else reversed(BATCHES):
            for _ in range(max(1, 256 // batch)):  # about 256 images per sample, whatever the batch
                started = time.perf_counter()
                steps[batch]()
                seconds[batch].append(time.perf_counter() - started)
    return [{"batch_size": batch, "images_per_second": batch / float(np.median(times))}
            for batch, times in seconds.items()]


def main() -> None:
    parser = timing_parser(__doc__, rounds=5)
    parser.add_argument("--epochs", type=int, default=2)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    epoch = profile_epochs(arguments.epochs)
    batches = batch_throughput(arguments.rounds)
    print(write_measurement(arguments.out, {"threads": arguments.threads, "rounds": arguments.rounds,
                                            "epoch": epoch, "batches": batches}))
    print(f"{epoch['seconds_per_epoch']:.1f} s per epoch of {epoch['training_images']} images")
    for name, share in epoch["share_of_epoch"].items():
        print(f"  {name:45s} {100 * share:5.1f}%")
    for row in batches:
        print(f"batch {row['batch_size']:4d}: {row['images_per_second']:6.0f} images/s")


if __name__ == "__main__":
    main()
