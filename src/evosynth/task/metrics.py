"""Detection quality (precision, recall, AP50) and efficiency (synapses, clusters, MACs, bytes) of a network."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evosynth.task.dataset import DetectionSplit
from evosynth.task.model import GridDetector, count_macs
from evosynth.task.targets import box_iou, decode

SCORE_THRESHOLD = 0.5  # fixed operating point for precision and recall (coverage probability)
IOU_THRESHOLD = 0.5


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32) / 255.0


@torch.no_grad()
def predict(
    model: GridDetector, split: DetectionSplit, batch_size: int = 256
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model.eval()
    detections = []
    for start in range(0, len(split), batch_size):
        maps = model(as_float_images(split.images[start : start + batch_size]))
        detections.extend(decode(maps, model.architecture.stride))
    return detections


def _match(boxes: torch.Tensor, scores: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """True positives of one image's detections (greedy in score order, each truth matched once)."""
    hits = torch.zeros(len(boxes), dtype=torch.bool)
    if len(boxes) == 0 or len(truth) == 0:
        return hits
    ious = box_iou(boxes, truth)
    taken = torch.zeros(len(truth), dtype=torch.bool)
    for i in torch.argsort(scores, descending=True).tolist():
        candidates = torch.where(taken, -1.0, ious[i])
        best = int(candidates.argmax())
        if candidates[best] >= IOU_THRESHOLD:
            taken[best] = True
            hits[i] = True
    return hits


def average_precision(scores: torch.Tensor, hits: torch.Tensor, n_truth: int) -> float:
    """All-point interpolated AP (PASCAL VOC 2010+): area under the monotone precision envelope."""
    if n_truth == 0 or len(scores) == 0:
        return 0.0
    order = torch.argsort(scores, descending=True, stable=True)
    true_positives = torch.cumsum(hits[order].to(torch.float64), 0)
    precision = true_positives / torch.arange(1, len(order) + 1, dtype=torch.float64)
    recall = true_positives / n_truth
    envelope = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
    recall_steps = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    return float((recall_steps * envelope).sum())


@dataclass(frozen=True)
class Quality:
    precision: float
    recall: float
    ap50: float


def detection_quality(
    detections: list[tuple[torch.Tensor, torch.Tensor]], truths: list[torch.Tensor]
) -> Quality:
    """Precision and recall at the fixed score threshold, AP50 over all scores."""
    all_scores, all_hits = [], []
    for (boxes, scores), truth in zip(detections, truths, strict=True):
        all_scores.append(scores)
        all_hits.append(_match(boxes, scores, truth))
    scores, hits = torch.cat(all_scores), torch.cat(all_hits)
    n_truth = sum(len(t) for t in truths)
    confident = scores >= SCORE_THRESHOLD
    true_positives = int(hits[confident].sum())
    n_confident = int(confident.sum())
    return Quality(
        precision=true_positives / n_confident if n_confident else 0.0,
        recall=true_positives / n_truth if n_truth else 0.0,
        ap50=average_precision(scores, hits, n_truth),
    )


def evaluate(model: GridDetector, split: DetectionSplit) -> Quality:
    return detection_quality(predict(model, split), split.boxes)


def efficiency(model: GridDetector, masks: dict[str, torch.Tensor], image_size: tuple[int, int]) -> dict[str, int]:
    """Size of a (compacted, masked) network: what the offspring costs to store and to run."""
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "synapses": int(sum(int(masks[name].sum()) for name, _ in model.prunable_layers())),
        "clusters": int(sum(model.architecture.widths)),
        "parameters": int(parameters),
        "macs": count_macs(model.architecture, image_size),
        "bytes_fp32": int(parameters * 4),
        "bytes_fp16": int(parameters * 2),
    }
