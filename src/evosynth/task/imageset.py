"""Detection data sets read from a folder of annotated photographs: what the Penn-Fudan and COCO readers share.

A reader turns its annotation format into ``AnnotatedImage`` records; ``load_image_set`` draws the fixed
splits, decodes every image with Pillow, letterboxes it to one size, scales its boxes with it and caches the
result as safetensors, so that a run decodes its photographs once.

Resizing is a letterbox: the image is scaled by one factor to fit the target size, centred, and the rest is
padded with mid grey. A plain resize would stretch every photograph by its own aspect ratio (Penn-Fudan's run
from 0.7 to 2.3 width/height), so the same pedestrian would have other proportions in every image, and the grid
detector, which regresses box sides, would have to learn shapes that depend on the frame rather than the object.

Boxes are (x1, y1, x2, y2) in pixel-edge coordinates, as for ``digits`` (a box around columns 3..7 has x1 = 3,
x2 = 8); after scaling they stay fractional rather than being rounded to whole pixels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from evosynth.errors import DataSetError
from evosynth.task.cache import load_cached
from evosynth.task.dataset import SPLITS, DetectionData, DetectionSplit

# Bump when decoding, resizing or the split rule changes: it is part of the cache key.
IMAGESET_VERSION = 1
PAD_GREY = 128  # letterbox padding: mid grey, the least conspicuous edge for images scaled to [0, 1]
SOURCE_RECORD = "source.json"


@dataclass(frozen=True)
class ImageSetSpec:
    """How a folder of photographs becomes a detection data set; its fields are part of the cache key.

    Every image is letterboxed to ``height`` x ``width`` RGB. The splits are drawn once from ``seed`` over the
    images sorted by name: val and test get these fractions of them (at least one image each), train the rest.
    """

    datasets: ClassVar[tuple[str, ...]] = ("pennfudan", "coco")  # the readers that take this spec

    height: int = 128
    width: int = 160
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.height, self.width) < 8:
            raise ValueError(f"height and width must be at least 8 pixels, got {self.height} x {self.width}")
        if not (0 < self.val_fraction and 0 < self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ValueError(
                f"val_fraction and test_fraction must be positive with a sum below 1, got "
                f"{self.val_fraction} and {self.test_fraction}"
            )

    def split_sizes(self, count: int) -> dict[str, int]:
        """Images per split for a folder of ``count`` images; every split gets at least one."""
        val, test = (max(1, round(fraction * count)) for fraction in (self.val_fraction, self.test_fraction))
        if count - val - test < 1:
            raise ValueError(f"{count} images are too few for a train, a val and a test split")
        return {"train": count - val - test, "val": val, "test": test}


@dataclass(frozen=True)
class AnnotatedImage:
    """One photograph as its reader found it; boxes are in the photograph's own pixels."""

    name: str  # path relative to the data set's folder: it sorts the images and keys the cache
    boxes: np.ndarray  # float [k, 4], (x1, y1, x2, y2) pixel edges in the original image
    size: tuple[int, int]  # (width, height) the annotation declares; checked against the decoded image
    annotation: str  # where the image is described (a file, or a file and an entry), for error messages


def split_indices(count: int, spec: ImageSetSpec) -> dict[str, np.ndarray]:
    """Disjoint, sorted positions (in the name-sorted image list) of each split, fixed by the spec's seed."""
    sizes = spec.split_sizes(count)
    order = np.random.default_rng(spec.seed).permutation(count)
    bounds = np.cumsum([0, *(sizes[split] for split in SPLITS)])
    return {split: np.sort(order[lo:hi]) for split, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:], strict=True)}


@dataclass(frozen=True)
class Placement:
    """Where a letterboxed image lies on the canvas: its scale per axis (after rounding its size) and offset."""

    scale_x: float
    scale_y: float
    left: int
    top: int

    def boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes of the original image in the canvas's pixel-edge coordinates (float32 [k, 4])."""
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        offset = np.array([self.left, self.top, self.left, self.top])
        return (np.asarray(boxes, np.float64).reshape(-1, 4) * scale + offset).astype(np.float32)


def letterbox(image: Image.Image, height: int, width: int) -> tuple[np.ndarray, Placement]:
    """The image scaled to fit height x width with its aspect ratio kept, centred on grey: uint8 [3, H, W]."""
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    left, top = (width - size[0]) // 2, (height - size[1]) // 2
    canvas = Image.new("RGB", (width, height), (PAD_GREY,) * 3)
    canvas.paste(image.convert("RGB").resize(size, Image.Resampling.BILINEAR), (left, top))
    pixels = np.ascontiguousarray(np.asarray(canvas).transpose(2, 0, 1))
    return pixels, Placement(size[0] / image.width, size[1] / image.height, left, top)


def _decode(root: Path, item: AnnotatedImage) -> Image.Image:
    path = root / item.name
    try:
        with Image.open(path) as image:
            image.load()
            decoded = image.convert("RGB")
    except UnidentifiedImageError as error:
        raise DataSetError(f"{path}: not an image (named by {item.annotation})") from error
    except OSError as error:  # truncated or damaged image data
        raise DataSetError(f"{path}: cannot be decoded ({error})") from error
    if decoded.size != item.size:
        raise DataSetError(
            f"{item.annotation}: declares {item.size[0]} x {item.size[1]} pixels, but {path} has "
            f"{decoded.width} x {decoded.height}"
        )
    return decoded


def _file_size(root: Path, item: AnnotatedImage) -> int:
    try:
        return (root / item.name).stat().st_size
    except FileNotFoundError:
        raise DataSetError(f"{item.annotation}: names the image {root / item.name}, which does not exist") from None


def _source_record(name: str, label: str, root: Path, items: Sequence[AnnotatedImage], spec: ImageSetSpec) -> dict:
    """What the cache is made of: spec, class, and every image's name, byte size and boxes (not its folder)."""
    return {
        "version": IMAGESET_VERSION, "data_set": name, "label": label, "spec": asdict(spec),
        "images": [[item.name, _file_size(root, item), np.asarray(item.boxes).tolist()] for item in items],
    }


def load_image_set(
    name: str, label: str, root: Path, items: Sequence[AnnotatedImage], spec: ImageSetSpec, cache_dir: Path
) -> DetectionData:
    """The detection data set of these annotated images, from cache_dir/<name>-<hash> or decoded and cached there.

    ``label`` names the class the boxes stand for (part of the cache key). The hash covers the spec, the label
    and every image's name, byte size and boxes: an edited folder gets a new cache, a copy elsewhere reuses it.
    """
    ordered = sorted(items, key=lambda item: item.name)
    try:
        sizes = spec.split_sizes(len(ordered))
    except ValueError as error:
        raise DataSetError(f"{root}: {error}") from None
    record = _source_record(name, label, root, ordered, spec)
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    shapes = {split: (sizes[split], 3, spec.height, spec.width) for split in SPLITS}

    def decode_all() -> DetectionData:
        splits = {}
        progress = tqdm(total=len(ordered), desc=f"decoding {name}", unit="image", leave=False)
        for split, positions in split_indices(len(ordered), spec).items():
            images = torch.empty(shapes[split], dtype=torch.uint8)
            boxes = []
            for slot, position in enumerate(positions):
                item = ordered[position]
                pixels, placement = letterbox(_decode(root, item), spec.height, spec.width)
                images[slot] = torch.from_numpy(pixels)
                boxes.append(torch.from_numpy(placement.boxes(item.boxes)))
                progress.update()
            splits[split] = DetectionSplit(images, boxes)
        progress.close()
        return DetectionData(name, **splits)

    return load_cached(Path(cache_dir) / f"{name}-{key}", name, SOURCE_RECORD, record, shapes, decode_all)

