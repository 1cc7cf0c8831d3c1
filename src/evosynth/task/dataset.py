"""The types every detection data set shares, and its fixed splits.

Its own module so that every source (``digits``, ``imageset``, ``pennfudan``, ``coco``), the cache and the
registry can import these types from below without importing each other.

Boxes are (x1, y1, x2, y2) in pixel-edge coordinates: a box around ink in columns 3..7 has x1 = 3, x2 = 8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class DetectionSplit:
    """Images and their ground-truth boxes; k may be 0 for an image. Photographs whose data set outlines each
    object also carry instance masks (what copy-paste augmentation cuts objects out by)."""

    images: torch.Tensor  # uint8 [N, C, H, W]
    boxes: list[torch.Tensor]  # per image float32 [k, 4], (x1, y1, x2, y2) in pixels
    masks: torch.Tensor | None = None  # uint8 [N, H, W]: pixel value k marks the image's box k (1-based), 0 none

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, positions: Sequence[int]) -> DetectionSplit:
        """The images at ``positions``, in that order, with their boxes and masks."""
        index = torch.as_tensor(positions, dtype=torch.int64)
        return DetectionSplit(self.images[index], [self.boxes[int(i)] for i in index],
                              None if self.masks is None else self.masks[index])


@dataclass(frozen=True)
class DetectionData:
    """A named single-class detection data set with fixed train/val/test splits."""

    name: str
    train: DetectionSplit
    val: DetectionSplit
    test: DetectionSplit

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of every image."""
        return int(self.train.images.shape[2]), int(self.train.images.shape[3])

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])
