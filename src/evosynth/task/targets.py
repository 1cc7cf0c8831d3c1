"""Encoding ground-truth boxes into the detector's grid maps and decoding the maps back into boxes."""

from __future__ import annotations

import torch

CENTRE_FRACTION = 0.5  # a cell is positive when its centre lies in the central half of a box (DetectNet coverage)


def cell_centres(grid: tuple[int, int], stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = grid
    ys = (torch.arange(rows, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(cols, dtype=torch.float32) + 0.5) * stride
    return ys[:, None].expand(rows, cols), xs[None, :].expand(rows, cols)


def encode(boxes: list[torch.Tensor], grid: tuple[int, int], stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coverage [N,1,H,W] in {0,1} and box distances [N,4,H,W] (left, top, right, bottom in strides).

    Larger boxes are drawn first so that a smaller object keeps the cells it shares with a larger one; the cell
    holding a box centre is always positive so that tiny objects are never unassigned.
    """
    cy, cx = cell_centres(grid, stride)
    coverage = torch.zeros(len(boxes), 1, *grid)
    distances = torch.zeros(len(boxes), 4, *grid)
    for index, image_boxes in enumerate(boxes):
        areas = (image_boxes[:, 2] - image_boxes[:, 0]) * (image_boxes[:, 3] - image_boxes[:, 1])
        for box in image_boxes[torch.argsort(areas, descending=True)]:
            x1, y1, x2, y2 = box.tolist()
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            hw, hh = (x2 - x1) * CENTRE_FRACTION / 2, (y2 - y1) * CENTRE_FRACTION / 2
            inside = (cx >= mx - hw) & (cx <= mx + hw) & (cy >= my - hh) & (cy <= my + hh)
            row = min(int(my // stride), grid[0] - 1)
            col = min(int(mx // stride), grid[1] - 1)
            inside[row, col] = True
            coverage[index, 0][inside] = 1.0
            distances[index, 0][inside] = (cx[inside] - x1) / stride
            distances[index, 1][inside] = (cy[inside] - y1) / stride
            distances[index, 2][inside] = (x2 - cx[inside]) / stride
            distances[index, 3][inside] = (y2 - cy[inside]) / stride
    return coverage, distances


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of [A,4] and [B,4] boxes in (x1, y1, x2, y2)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return intersection / (area_a[:, None] + area_b[None, :] - intersection).clamp(min=1e-9)


def non_maximum_suppression(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the kept boxes, highest score first (greedy NMS)."""
    order = torch.argsort(scores, descending=True)
    ious = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    kept = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= ious[i] > iou_threshold
    return order[torch.tensor(kept, dtype=torch.long)]


def decode(
    maps: torch.Tensor,
    stride: int,
    *,
    min_score: float = 0.05,
    nms_iou: float = 0.45,
    max_detections: int = 50,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Raw head maps [N,5,H,W] -> per image (boxes [k,4], scores [k]) after NMS."""
    scores = torch.sigmoid(maps[:, 0])
    cy, cx = cell_centres((maps.shape[2], maps.shape[3]), stride)
    distances = maps[:, 1:5].clamp(min=0) * stride
    x1, y1 = cx - distances[:, 0], cy - distances[:, 1]
    x2, y2 = cx + distances[:, 2], cy + distances[:, 3]
    all_boxes = torch.stack([x1, y1, x2, y2], dim=-1)
    results = []
    for index in range(maps.shape[0]):
        candidates = scores[index] >= min_score
        boxes, box_scores = all_boxes[index][candidates], scores[index][candidates]
        if len(boxes):
            keep = non_maximum_suppression(boxes, box_scores, nms_iou)[:max_detections]
            boxes, box_scores = boxes[keep], box_scores[keep]
        results.append((boxes, box_scores))
    return results
