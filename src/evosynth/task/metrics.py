"""Detection quality (precision, recall, AP50) and efficiency (synapses, clusters, MACs, bytes) of a network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from evosynth.task.dataset import DetectionSplit
from evosynth.task.model import Detector, frame_macs, group_widths
from evosynth.task.targets import box_iou, decode

SCORE_THRESHOLD = 0.5  # fixed operating point for precision and recall (coverage probability)
IOU_THRESHOLD = 0.5
# How a deployed detector's threshold is chosen: on held-out data, never on the data it is reported on.
OPERATING_RULE = "the score threshold of highest F1 on the validation split"


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32) / 255.0


@torch.no_grad()
def predict(
    model: Detector, split: DetectionSplit, batch_size: int = 256
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model.eval()
    detections = []
    for start in range(0, len(split), batch_size):
        maps = model(as_float_images(split.images[start : start + batch_size]))
        detections.extend(decode(maps, model.stride))
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


@dataclass(frozen=True)
class OperatingPoint:
    """The score threshold chosen on validation data (``OPERATING_RULE``) and the test precision and recall at it."""

    threshold: float
    precision: float
    recall: float


@dataclass(frozen=True)
class ScoredHits:
    """Every detection's score and whether it matched a true box, over a split."""

    scores: torch.Tensor
    hits: torch.Tensor
    n_truth: int

    def at(self, threshold: float) -> tuple[float, float]:
        """(precision, recall) of the detections scoring at least ``threshold``."""
        confident = self.scores >= threshold
        true_positives, n_confident = int(self.hits[confident].sum()), int(confident.sum())
        return (true_positives / n_confident if n_confident else 0.0,
                true_positives / self.n_truth if self.n_truth else 0.0)


def scored_hits(detections: list[tuple[torch.Tensor, torch.Tensor]], truths: list[torch.Tensor]) -> ScoredHits:
    all_scores, all_hits = [], []
    for (boxes, scores), truth in zip(detections, truths, strict=True):
        all_scores.append(scores)
        all_hits.append(_match(boxes, scores, truth))
    return ScoredHits(torch.cat(all_scores), torch.cat(all_hits), sum(len(t) for t in truths))


def quality_from(scored: ScoredHits) -> Quality:
    """Precision and recall at the fixed score threshold, AP50 over all scores."""
    precision, recall = scored.at(SCORE_THRESHOLD)
    return Quality(precision=precision, recall=recall,
                   ap50=average_precision(scored.scores, scored.hits, scored.n_truth))


def best_f1_threshold(scored: ScoredHits) -> float:
    """The score threshold with the highest F1 (the highest such threshold on a tie): one of the scores, so that
    the detections kept are exactly those scoring at least it. With no detection, the fixed threshold."""
    if len(scored.scores) == 0 or scored.n_truth == 0:
        return SCORE_THRESHOLD
    order = torch.argsort(scored.scores, descending=True, stable=True)
    ranked = scored.scores[order]
    true_positives = torch.cumsum(scored.hits[order].to(torch.float64), 0)
    kept = torch.arange(1, len(order) + 1, dtype=torch.float64)
    f1 = 2 * true_positives / (kept + scored.n_truth)
    # a threshold keeps every detection of its score: only the last of a run of equal scores is a real choice
    last_of_score = torch.ones(len(ranked), dtype=torch.bool)
    last_of_score[:-1] = ranked[:-1] != ranked[1:]
    f1 = torch.where(last_of_score, f1, torch.tensor(-1.0, dtype=torch.float64))
    return float(ranked[int(torch.argmax(f1))])  # argmax takes the first maximum: the highest threshold


def evaluate(model: Detector, split: DetectionSplit) -> Quality:
    return quality_from(scored_hits(predict(model, split), split.boxes))


def assess(model: Detector, validation: DetectionSplit, test: DetectionSplit) -> tuple[Quality, OperatingPoint]:
    """A generation's test quality and the threshold a deployer would set (``OPERATING_RULE``) with the test
    precision and recall it gives, from one prediction of each split."""
    threshold = best_f1_threshold(scored_hits(predict(model, validation), validation.boxes))
    scored = scored_hits(predict(model, test), test.boxes)
    return quality_from(scored), OperatingPoint(threshold, *scored.at(threshold))


def efficiency(model: Detector, masks: dict[str, torch.Tensor], image_size: tuple[int, int]) -> dict[str, Any]:
    """Size of a (compacted, masked) network: what the offspring costs to store and to run; its widths are the
    channels of its groups of coupled channels (the chain detector's: its layers')."""
    parameters = sum(p.numel() for p in model.parameters())
    widths = group_widths(model)
    return {
        "synapses": int(sum(int(mask.sum()) for mask in masks.values())),
        "widths": widths,
        "clusters": int(sum(widths)),
        "parameters": int(parameters),
        "macs": frame_macs(model, image_size),
        "bytes_fp32": int(parameters * 4),
        "bytes_fp16": int(parameters * 2),
    }
