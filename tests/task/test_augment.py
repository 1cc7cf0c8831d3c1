"""Augmented batches: boxes follow the pixels they outline through flips, zooms and pastes; targets match the boxes."""

from __future__ import annotations

import pytest
import torch

from evosynth.task.augment import AUGMENTATIONS, GridShift, PhotoAugment, PhotoRecipe, batch_source
from evosynth.task.dataset import DetectionSplit
from evosynth.task.targets import encode

STRIDE = 8


def white_boxes(count: int = 6, height: int = 64, width: int = 96) -> DetectionSplit:
    """Dark images, each with one or two white rectangles, their boxes and instance masks."""
    generator = torch.Generator().manual_seed(0)
    images = torch.full((count, 3, height, width), 30, dtype=torch.uint8)
    masks = torch.zeros((count, height, width), dtype=torch.uint8)
    boxes = []
    for index in range(count):
        placed = []
        for number in range(1, 1 + index % 2 + 1):
            w = int(torch.randint(8, 20, (), generator=generator))
            h = int(torch.randint(16, 40, (), generator=generator))
            x = 4 + (number - 1) * 48 + int(torch.randint(0, 20, (), generator=generator))
            y = int(torch.randint(0, height - h, (), generator=generator))
            images[index, :, y : y + h, x : x + w] = 255
            masks[index, y : y + h, x : x + w] = number
            placed.append([x, y, x + w, y + h])
        boxes.append(torch.tensor(placed, dtype=torch.float32))
    return DetectionSplit(images, boxes, masks)


def _boxes_of(coverage: torch.Tensor, distances: torch.Tensor) -> list[torch.Tensor]:
    """The boxes the target maps encode, one per covered cell (in pixels)."""
    found = []
    for image in range(coverage.shape[0]):
        rows, cols = torch.nonzero(coverage[image, 0], as_tuple=True)
        cx, cy = (cols + 0.5) * STRIDE, (rows + 0.5) * STRIDE
        d = distances[image, :, rows, cols] * STRIDE
        found.append(torch.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], 1))
    return found


@pytest.mark.parametrize("recipe", [PhotoRecipe(zoom=None), PhotoRecipe(flip=False), PhotoRecipe(),
                                    PhotoRecipe(copy_paste=True, paste_probability=1.0)])
def test_every_target_box_outlines_white_pixels(recipe: PhotoRecipe) -> None:
    split = white_boxes()
    source = PhotoAugment(split, STRIDE, recipe)
    for seed in range(5):
        images, coverage, distances = source.batch(torch.arange(len(split)), torch.Generator().manual_seed(seed))
        assert images.shape == (len(split), 3, 64, 96) and images.dtype == torch.float32
        for image, boxes in zip(images, _boxes_of(coverage, distances), strict=True):
            assert len(boxes), "an image lost every target"
            for x1, y1, x2, y2 in boxes.round().int().tolist():
                inside = image[:, y1 + 2 : y2 - 2, x1 + 2 : x2 - 2]
                if inside.numel():
                    assert inside.mean() > 0.75, (recipe, seed, (x1, y1, x2, y2))


def test_copy_paste_adds_pedestrians_from_other_images_and_needs_masks() -> None:
    split = white_boxes()
    source = PhotoAugment(split, STRIDE, PhotoRecipe(flip=False, zoom=None, copy_paste=True, paste_probability=1.0))
    assert len(source.cutouts) == sum(len(b) for b in split.boxes)
    _, coverage, _ = source.batch(torch.arange(len(split)), torch.Generator().manual_seed(1))
    plain, _ = encode(split.boxes, (8, 12), STRIDE)
    assert coverage.sum() > plain.sum(), "nothing was pasted"
    with pytest.raises(ValueError, match="needs instance masks"):
        PhotoAugment(DetectionSplit(split.images, split.boxes), STRIDE, PhotoRecipe(copy_paste=True))


def test_the_same_generator_gives_the_same_batch() -> None:
    split = white_boxes()
    source = batch_source("copy-paste", split, STRIDE, 2)
    first = source.batch(torch.arange(4), torch.Generator().manual_seed(3))
    again = source.batch(torch.arange(4), torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_grid_shift_moves_targets_with_the_pixels_by_whole_cells() -> None:
    split = white_boxes()
    images, coverage, _ = GridShift(split, STRIDE, 2).batch(torch.arange(len(split)), torch.Generator().manual_seed(0))
    for image, cells in zip(images, coverage[:, 0], strict=True):
        rows, cols = torch.nonzero(cells, as_tuple=True)
        centres = image[:, (rows * STRIDE + STRIDE // 2), (cols * STRIDE + STRIDE // 2)]
        assert (centres > 0.9).all(), "a covered cell's centre is not on its box after the shift"


def test_an_unknown_augmentation_is_named() -> None:
    with pytest.raises(ValueError, match="unknown augmentation 'mixup'; choose one of grid-shift"):
        batch_source("mixup", white_boxes(), STRIDE, 2)
    assert list(AUGMENTATIONS) == ["grid-shift", "flip-scale", "photometric", "copy-paste"]
