"""Training-time augmentation: how a batch of a small training split is varied so that it is not memorised.

A registry of recipes (``AUGMENTATIONS``), named by a training budget. Each is made once per training from the
training split and the detector's stride, and then gives augmented batches with their target maps:

- ``grid-shift`` (the digits task): whole batches shifted by whole grid cells, so that the precomputed targets
  shift with them exactly, and their colour channels permuted;
- ``flip-scale``, ``photometric``, ``copy-paste`` (photographs, each adding to the one before): mirror images,
  zoom and move them, vary their brightness, contrast and saturation, and paste pedestrians cut out by the data
  set's instance masks onto other training images (Ghiasi et al. 2021, "Simple Copy-Paste", a strong recipe for
  small detection sets). Boxes move with the pixels, so targets are encoded per batch.

Which recipe earns its time on which data is measured (``benchmarks/pedestrian_levers.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import torch
import torch.nn.functional as F

from evosynth.task.dataset import DetectionSplit
from evosynth.task.metrics import as_float_images
from evosynth.task.targets import encode

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # float images [B, C, H, W], coverage, distances


class BatchSource(Protocol):
    def batch(self, index: torch.Tensor, generator: torch.Generator) -> Batch:
        """The training images at ``index``, augmented, with their coverage and distance maps."""
        ...


def _shift(tensor: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate the last two dimensions, filling with zeros (no wrap-around)."""
    out = torch.zeros_like(tensor)
    height, width = tensor.shape[-2:]
    out[..., max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = tensor[
        ..., max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return out


def _grid(split: DetectionSplit, stride: int) -> tuple[int, int]:
    return split.images.shape[2] // stride, split.images.shape[3] // stride


class GridShift:
    """Shift a batch by up to ``max_shift_cells`` whole grid cells (its targets, encoded once, shift with it exactly)
    and permute its colour channels."""

    def __init__(self, split: DetectionSplit, stride: int, max_shift_cells: int) -> None:
        self.split, self.stride, self.max_shift_cells = split, stride, max_shift_cells
        self.coverage, self.distances = encode(split.boxes, _grid(split, stride), stride)

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> Batch:
        images = as_float_images(self.split.images[index])
        coverage, distances = self.coverage[index], self.distances[index]
        if self.max_shift_cells:
            dy, dx = torch.randint(-self.max_shift_cells, self.max_shift_cells + 1, (2,), generator=generator).tolist()
            images = _shift(images, dy * self.stride, dx * self.stride)
            coverage, distances = _shift(coverage, dy, dx), _shift(distances, dy, dx)
        images = images[:, torch.randperm(images.shape[1], generator=generator)]
        return images, coverage, distances


@dataclass(frozen=True)
class Cutout:
    """One object cut out of a training image by its instance mask: its pixels, its mask and its box in them."""

    pixels: torch.Tensor  # float [3, h, w]
    alpha: torch.Tensor  # float [1, h, w], 1 on the object
    source: int  # the training image it came from (never pasted back onto it)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


@dataclass(frozen=True)
class PhotoRecipe:
    """Which variations a photograph batch gets (``None``/``False``: not that one)."""

    flip: bool = True
    zoom: tuple[float, float] | None = (0.75, 1.33)  # log-uniform zoom about a random centre
    photometric: bool = False
    copy_paste: bool = False
    min_visible: float = 0.5  # a box cut by the frame stays a target while this share of it is still in view
    paste_probability: float = 0.5
    paste_scale: tuple[float, float] = (0.6, 1.2)


class PhotoAugment:
    """Photograph batches varied per image by a ``PhotoRecipe``; their boxes follow and targets are encoded."""

    def __init__(self, split: DetectionSplit, stride: int, recipe: PhotoRecipe) -> None:
        self.split, self.stride, self.recipe = split, stride, recipe
        self.grid = _grid(split, stride)
        self.cutouts = self._cutouts() if recipe.copy_paste else []

    def _cutouts(self) -> list[Cutout]:
        if self.split.masks is None:
            raise ValueError("copy-paste augmentation needs instance masks, and this data set has none "
                             "(Penn-Fudan's PedMasks/ folder provides them)")
        cutouts = []
        for source, (image, mask, boxes) in enumerate(zip(self.split.images, self.split.masks, self.split.boxes,
                                                         strict=True)):
            for number, box in enumerate(boxes, 1):
                x1, y1 = (math.floor(v) for v in box[:2].tolist())
                x2, y2 = (math.ceil(v) for v in box[2:].tolist())
                alpha = (mask[y1:y2, x1:x2] == number).to(torch.float32)[None]
                if alpha.shape[1] >= 8 and alpha.shape[2] >= 4 and alpha.mean() > 0.2:  # outlined, not hidden
                    cutouts.append(Cutout(as_float_images(image[:, y1:y2, x1:x2]), alpha, source))
        return cutouts

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> Batch:
        images = as_float_images(self.split.images[index])
        boxes = [self.split.boxes[i].clone() for i in index.tolist()]
        for slot, source in enumerate(index.tolist()):
            if self.cutouts and float(torch.rand((), generator=generator)) < self.recipe.paste_probability:
                boxes[slot] = self._paste(images[slot], boxes[slot], source, generator)
            if self.recipe.flip and float(torch.rand((), generator=generator)) < 0.5:
                images[slot] = images[slot].flip(-1)
                width = images.shape[-1]
                boxes[slot] = torch.stack([width - boxes[slot][:, 2], boxes[slot][:, 1], width - boxes[slot][:, 0],
                                           boxes[slot][:, 3]], 1)
        if self.recipe.zoom is not None:
            images, boxes = self._zoom(images, boxes, generator)
        if self.recipe.photometric:
            images = self._photometric(images, generator)
        coverage, distances = encode(boxes, self.grid, self.stride)
        return images, coverage, distances

    def _paste(self, image: torch.Tensor, boxes: torch.Tensor, source: int, generator: torch.Generator) -> torch.Tensor:
        """Paste one or two other images' pedestrians where they hide none of this image's; their boxes added."""
        height, width = image.shape[1:]
        for _ in range(int(torch.randint(1, 3, (), generator=generator))):
            cutout = self.cutouts[int(torch.randint(len(self.cutouts), (), generator=generator))]
            if cutout.source == source:
                continue
            scale = _uniform(generator, *self.recipe.paste_scale)
            h, w = (max(4, round(side * scale)) for side in cutout.alpha.shape[1:])
            if h >= height or w >= width:
                continue
            for _attempt in range(5):
                top = int(torch.randint(0, height - h + 1, (), generator=generator))
                left = int(torch.randint(0, width - w + 1, (), generator=generator))
                placed = torch.tensor([[left, top, left + w, top + h]], dtype=torch.float32)
                if len(boxes) == 0 or _overlap(placed, boxes).max() < 0.2:
                    pixels = F.interpolate(cutout.pixels[None], size=(h, w), mode="bilinear", align_corners=False)[0]
                    alpha = F.interpolate(cutout.alpha[None], size=(h, w), mode="bilinear", align_corners=False)[0]
                    region = image[:, top : top + h, left : left + w]
                    region.mul_(1 - alpha).add_(pixels * alpha)
                    boxes = torch.cat([boxes, placed])
                    break
        return boxes

    def _zoom(self, images: torch.Tensor, boxes: list[torch.Tensor], generator: torch.Generator
              ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Zoom each image by a log-uniform factor and move it by up to a fifth of its size, on grey."""
        assert self.recipe.zoom is not None
        count, _, height, width = images.shape
        low, high = (math.log(z) for z in self.recipe.zoom)
        zoom = torch.exp(low + (high - low) * torch.rand(count, generator=generator))
        shift = (torch.rand(count, 2, generator=generator) * 2 - 1) * 0.2  # in half-sizes (normalised coordinates)
        theta = torch.zeros(count, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
        theta[:, :, 2] = -shift / zoom[:, None]
        sampling = F.affine_grid(theta, list(images.shape), align_corners=False)
        moved = F.grid_sample(images - 0.5, sampling, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5
        size = torch.tensor([width, height, width, height], dtype=torch.float32)
        centre = size / 2
        kept = []
        for slot, image_boxes in enumerate(boxes):
            placed = (image_boxes - centre) * zoom[slot] + centre + shift[slot].repeat(2) * centre
            clipped = torch.minimum(torch.maximum(placed, torch.zeros(4)), size)
            visible = _area(clipped) >= self.recipe.min_visible * _area(placed).clamp(min=1e-6)
            big_enough = ((clipped[:, 2] - clipped[:, 0]) >= 2) & ((clipped[:, 3] - clipped[:, 1]) >= 2)
            kept.append(clipped[visible & big_enough])
        return moved, kept

    @staticmethod
    def _photometric(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Brightness x0.7-1.3, contrast x0.7-1.3 about the image's mean, saturation x0.5-1.5 about its grey."""
        count = images.shape[0]

        def factors(low: float, high: float) -> torch.Tensor:
            return (low + (high - low) * torch.rand(count, 1, 1, 1, generator=generator))

        images = images * factors(0.7, 1.3)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = (images - mean) * factors(0.7, 1.3) + mean
        grey = images.mean(dim=1, keepdim=True)
        images = (images - grey) * factors(0.5, 1.5) + grey
        return images.clamp(0, 1)


def _area(boxes: torch.Tensor) -> torch.Tensor:
    """Each box's area, 0 for an empty one."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def _overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise share of each box of ``b`` that a box of ``a`` covers: [A, B]."""
    width = (torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    height = (torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])).clamp(min=0)
    areas = _area(b).clamp(min=1e-6)
    return width * height / areas[None, :]


MakeSource = Callable[[DetectionSplit, int, int], BatchSource]  # (training split, stride, max shift cells)

AUGMENTATIONS: Mapping[str, MakeSource] = MappingProxyType({
    "grid-shift": GridShift,
    "flip-scale": lambda split, stride, _: PhotoAugment(split, stride, PhotoRecipe()),
    "photometric": lambda split, stride, _: PhotoAugment(split, stride, PhotoRecipe(photometric=True)),
    "copy-paste": lambda split, stride, _: PhotoAugment(split, stride, PhotoRecipe(photometric=True, copy_paste=True)),
})


def check_augmentation(name: str) -> None:
    """Refuse a name that is not an augmentation, listing those that are."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(AUGMENTATIONS)}")


def batch_source(name: str, split: DetectionSplit, stride: int, max_shift_cells: int) -> BatchSource:
    """The augmentation ``name`` made for this training split."""
    check_augmentation(name)
    return AUGMENTATIONS[name](split, stride, max_shift_cells)
