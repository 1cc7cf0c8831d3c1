"""FP32 training of a (masked) detector: the ancestor until its validation AP50 stops improving, an offspring
for a fixed budget. Masked synapses stay exactly zero: their gradients are zeroed and the mask is re-applied
after every optimizer step."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from evosynth.task.augment import batch_source, check_augmentation
from evosynth.task.dataset import DetectionSplit
from evosynth.task.metrics import evaluate
from evosynth.task.model import Detector


@dataclass(frozen=True)
class TrainingBudget:
    """How long and how a network is trained; the epoch with the best validation AP50 is kept.

    ``patience`` set (the ancestor): train until validation AP50 has not improved for ``patience`` epochs,
    halving the learning rate every ``patience // 2`` epochs without improvement, at most ``max_epochs``.
    ``patience`` unset (an offspring): exactly ``max_epochs`` epochs with a cosine learning-rate decay.
    ``augmentation``: how training batches are varied so that a small data set is not memorised (a name of
    ``task.augment.AUGMENTATIONS``); ``max_shift_cells`` is how far ``grid-shift`` moves them.
    """

    max_epochs: int
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    patience: int | None = None
    min_improvement: float = 0.002
    max_shift_cells: int = 2
    augmentation: str = "grid-shift"

    def __post_init__(self) -> None:
        check_augmentation(self.augmentation)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class TrainingCurve:
    epochs: list[int]
    loss: list[float]
    val_ap50: list[float]
    learning_rate: list[float]
    best_epoch: int
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> TrainingCurve:
        """The curve as a generation's curve.json holds it (beside the budget it was trained under)."""
        return cls(**{field.name: record[field.name] for field in fields(cls)})


def detection_loss(maps: torch.Tensor, coverage: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """Coverage BCE over all cells plus smooth-L1 box distances on covered cells."""
    coverage_loss = F.binary_cross_entropy_with_logits(maps[:, :1], coverage)
    positive = coverage.expand_as(distances) > 0
    if positive.any():
        box_loss = F.smooth_l1_loss(maps[:, 1:5][positive], distances[positive], beta=0.1)
    else:
        box_loss = maps.sum() * 0.0
    return coverage_loss + 0.5 * box_loss


class MaskKeeper:
    """Keeps removed synapses at exactly zero through training (weights and gradients)."""

    def __init__(self, model: Detector, masks: dict[str, torch.Tensor]) -> None:
        parameters = dict(model.named_parameters())
        self.pairs = [(parameters[name], mask.to(parameters[name].dtype)) for name, mask in masks.items()]
        self.handles = [weight.register_hook(lambda grad, m=mask: grad * m) for weight, mask in self.pairs]
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for weight, mask in self.pairs:
            weight.mul_(mask)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _lay_out(model: torch.nn.Module, memory_format: torch.memory_format) -> None:
    """Put the weights in ``memory_format`` in place (the parameters stay the same objects, hooks and all)."""
    model.to(memory_format=memory_format)  # type: ignore[call-overload]  # torch's stubs omit the keyword


def train(
    model: Detector,
    masks: dict[str, torch.Tensor],
    train_split: DetectionSplit,
    val_split: DetectionSplit,
    budget: TrainingBudget,
    generator: torch.Generator,
    description: str = "training",
) -> TrainingCurve:
    """Train ``model`` in place at FP32 and return its curve.

    The network trains in channels-last memory format: the same FP32 arithmetic, more images per second on the CPUs
    measured (benchmarks/README.md, "A deep ancestor"). It is handed back contiguous, as checkpoint files store it."""
    started = time.perf_counter()
    batches_of = batch_source(budget.augmentation, train_split, model.stride, budget.max_shift_cells)
    optimizer = torch.optim.AdamW(model.parameters(), lr=budget.learning_rate, weight_decay=budget.weight_decay)
    keeper = MaskKeeper(model, masks)
    curve = TrainingCurve([], [], [], [], best_epoch=0, seconds=0.0)
    best_ap, best_state, stale = -1.0, copy.deepcopy(model.state_dict()), 0
    learning_rate = budget.learning_rate
    progress = tqdm(range(1, budget.max_epochs + 1), desc=description, unit="epoch", leave=False)
    _lay_out(model, torch.channels_last)
    try:
        for epoch in progress:
            if budget.patience is None:
                progress_fraction = (epoch - 1) / budget.max_epochs
                learning_rate = budget.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress_fraction)))
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
            model.train()
            order = torch.randperm(len(train_split), generator=generator)
            total, batches = 0.0, 0
            for start in range(0, len(order), budget.batch_size):
                index = order[start : start + budget.batch_size]
                images, batch_coverage, batch_distances = batches_of.batch(index, generator)
                images = images.contiguous(memory_format=torch.channels_last)
                loss = detection_loss(model(images), batch_coverage, batch_distances)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                keeper.apply()
                total += float(loss.detach())
                batches += 1
            if not math.isfinite(total):
                raise FloatingPointError(f"{description}: training diverged at epoch {epoch} (loss is NaN/Inf)")
            ap50 = evaluate(model, val_split).ap50
            curve.epochs.append(epoch)
            curve.loss.append(total / batches)
            curve.val_ap50.append(ap50)
            curve.learning_rate.append(learning_rate)
            progress.set_postfix(loss=f"{total / batches:.4f}", val_ap50=f"{ap50:.3f}")
            if ap50 > best_ap + budget.min_improvement:
                best_ap, best_state, stale, curve.best_epoch = ap50, copy.deepcopy(model.state_dict()), 0, epoch
            elif budget.patience is not None:
                stale += 1
                if stale % max(1, budget.patience // 2) == 0:
                    learning_rate /= 2
                if stale >= budget.patience:
                    break
        model.load_state_dict(best_state)
    finally:
        keeper.close()
        _lay_out(model, torch.contiguous_format)
    curve.seconds = time.perf_counter() - started
    return curve
