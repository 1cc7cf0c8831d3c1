"""Detection data sets read from a folder of annotated photographs: what the Penn-Fudan and COCO readers share.

A reader turns its annotation format into ``AnnotatedImage`` records; ``load_image_set`` decodes every image with
Pillow, letterboxes it to one size, scales its boxes (and its instance masks, where the data set has them) with it
and caches the result as safetensors, so that the runs of every fold and seed decode a folder's photographs once;
then it cuts the fixed splits from them.

The splits are cross-validation folds: the images, shuffled once by the spec's seed, fall into ``folds`` folds;
fold ``fold`` is the test split and a fixed share of the rest the validation split. A data set of a few hundred
photographs tests on a few dozen, so one split's figures move by points from which images it drew; evaluating
every fold tests on every image once and shows that spread.

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
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from evosynth.errors import DataSetError
from evosynth.task.cache import load_cached
from evosynth.task.dataset import DetectionData, DetectionSplit

# Bump when decoding, resizing or what the cache holds changes: it is part of the cache key.
IMAGESET_VERSION = 3
PAD_GREY = 128  # letterbox padding: mid grey, the least conspicuous edge for images scaled to [0, 1]
SOURCE_RECORD = "source.json"
DECODED = "decoded"  # the cache's one part: every image letterboxed, in name order; the splits are cut from it


@dataclass(frozen=True)
class ImageSetSpec:
    """How a folder of photographs becomes a detection data set. Its size keys the cache of decoded images; the
    split's fields choose from them, so every fold of one folder reads one cache.

    Every image is letterboxed to ``height`` x ``width`` RGB. The images sorted by name are shuffled once by
    ``seed`` and dealt into ``folds`` folds; fold ``fold`` is the test split, the first ``val_fraction`` of all
    images among the rest (at least one) the validation split, the others train.
    """

    datasets: ClassVar[tuple[str, ...]] = ("pennfudan", "coco")  # the readers that take this spec

    height: int = 128
    width: int = 160
    val_fraction: float = 0.15
    folds: int = 5
    fold: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.height, self.width) < 8:
            raise ValueError(f"height and width must be at least 8 pixels, got {self.height} x {self.width}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.folds < 2 or not 0 <= self.fold < self.folds:
            raise ValueError(f"fold must be one of 0..folds-1 with at least 2 folds, got fold {self.fold} of "
                             f"{self.folds}")


@dataclass(frozen=True)
class AnnotatedImage:
    """One photograph as its reader found it; boxes are in the photograph's own pixels."""

    name: str  # path relative to the data set's folder: it sorts the images and keys the cache
    boxes: np.ndarray  # float [k, 4], (x1, y1, x2, y2) pixel edges in the original image
    size: tuple[int, int]  # (width, height) the annotation declares; checked against the decoded image
    annotation: str  # where the image is described (a file, or a file and an entry), for error messages
    mask: str | None = None  # the instance mask's path relative to the folder: pixel value k marks box k (1-based)


def split_indices(count: int, spec: ImageSetSpec) -> dict[str, np.ndarray]:
    """Disjoint, sorted positions (in the name-sorted image list) of each split: the spec's fold tests, fixed by
    its seed; the test folds of all ``folds`` specs cover every image once."""
    if count < spec.folds:
        raise ValueError(f"{count} images are too few for {spec.folds} test folds")
    folds = np.array_split(np.random.default_rng(spec.seed).permutation(count), spec.folds)
    rest = np.concatenate([positions for number, positions in enumerate(folds) if number != spec.fold])
    val = max(1, round(spec.val_fraction * count))
    if len(rest) - val < 1:
        raise ValueError(f"{count} images leave no training image beside {val} validation images")
    return {"train": np.sort(rest[val:]), "val": np.sort(rest[:val]), "test": np.sort(folds[spec.fold])}


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


def _fit(image: Image.Image, height: int, width: int) -> tuple[tuple[int, int], int, int]:
    """Where an image letterboxed to height x width lies: its scaled (width, height), left and top."""
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return size, (width - size[0]) // 2, (height - size[1]) // 2


def letterbox(image: Image.Image, height: int, width: int) -> tuple[np.ndarray, Placement]:
    """The image scaled to fit height x width with its aspect ratio kept, centred on grey: uint8 [3, H, W]."""
    size, left, top = _fit(image, height, width)
    canvas = Image.new("RGB", (width, height), (PAD_GREY,) * 3)
    canvas.paste(image.convert("RGB").resize(size, Image.Resampling.BILINEAR), (left, top))
    pixels = np.ascontiguousarray(np.asarray(canvas).transpose(2, 0, 1))
    return pixels, Placement(size[0] / image.width, size[1] / image.height, left, top)


def letterbox_mask(mask: Image.Image, height: int, width: int) -> np.ndarray:
    """An instance mask placed as ``letterbox`` places its photograph, nearest neighbour (ids stay ids), on 0
    (no instance): uint8 [H, W]."""
    size, left, top = _fit(mask, height, width)
    canvas = Image.new("L", (width, height), 0)
    canvas.paste(mask.resize(size, Image.Resampling.NEAREST), (left, top))
    return np.asarray(canvas).copy()


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


def _decode_mask(root: Path, item: AnnotatedImage) -> Image.Image:
    """The item's instance mask as 8-bit ids, checked against its photograph's size and box count."""
    assert item.mask is not None
    path = root / item.mask
    try:
        with Image.open(path) as image:
            image.load()
            mask = image if image.mode in ("L", "P") else image.convert("L")
            ids = np.asarray(mask)
    except FileNotFoundError:
        raise DataSetError(f"{item.annotation}: names the mask {path}, which does not exist") from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataSetError(f"{path}: cannot be decoded as an instance mask ({error})") from error
    if mask.size != item.size:
        raise DataSetError(f"{path}: the mask has {mask.width} x {mask.height} pixels, its photograph "
                           f"{item.size[0]} x {item.size[1]}")
    if int(ids.max(initial=0)) > len(item.boxes):
        raise DataSetError(f"{path}: marks instance {int(ids.max())}, but {item.annotation} has "
                           f"{len(item.boxes)} boxes")
    return Image.fromarray(ids.astype(np.uint8), mode="L")


def _file_size(root: Path, item: AnnotatedImage) -> int:
    try:
        return (root / item.name).stat().st_size
    except FileNotFoundError:
        raise DataSetError(f"{item.annotation}: names the image {root / item.name}, which does not exist") from None


def _source_record(name: str, label: str, root: Path, items: Sequence[AnnotatedImage], spec: ImageSetSpec) -> dict:
    """What the cache is made of: the size, class, and every image's name, byte size and boxes (not its folder)."""
    return {
        "version": IMAGESET_VERSION, "data_set": name, "label": label,
        "size": {"height": spec.height, "width": spec.width},
        "images": [[item.name, _file_size(root, item), np.asarray(item.boxes).tolist(), item.mask] for item in items],
    }


def load_image_set(
    name: str, label: str, root: Path, items: Sequence[AnnotatedImage], spec: ImageSetSpec, cache_dir: Path
) -> DetectionData:
    """The detection data set of these annotated images, its splits cut from the decoded images in
    cache_dir/<name>-<hash> (decoded and cached there first).

    ``label`` names the class the boxes stand for (part of the cache key). The hash covers the size, the label
    and every image's name, byte size and boxes: an edited folder gets a new cache, a copy elsewhere reuses it.
    The splits carry instance masks when every image names one.
    """
    ordered = sorted(items, key=lambda item: item.name)
    try:
        positions = split_indices(len(ordered), spec)
    except ValueError as error:
        raise DataSetError(f"{root}: {error}") from None
    record = _source_record(name, label, root, ordered, spec)
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    shape = (len(ordered), 3, spec.height, spec.width)
    with_masks = all(item.mask is not None for item in ordered)

    def decode_all() -> dict[str, DetectionSplit]:
        images = torch.empty(shape, dtype=torch.uint8)
        masks = torch.zeros((len(ordered), spec.height, spec.width), dtype=torch.uint8) if with_masks else None
        boxes = []
        for slot, item in enumerate(tqdm(ordered, desc=f"decoding {name}", unit="image", leave=False)):
            pixels, placement = letterbox(_decode(root, item), spec.height, spec.width)
            images[slot] = torch.from_numpy(pixels)
            boxes.append(torch.from_numpy(placement.boxes(item.boxes)))
            if masks is not None:
                masks[slot] = torch.from_numpy(letterbox_mask(_decode_mask(root, item), spec.height, spec.width))
        return {DECODED: DetectionSplit(images, boxes, masks)}

    decoded = load_cached(Path(cache_dir) / f"{name}-{key}", name, SOURCE_RECORD, record, {DECODED: shape},
                          decode_all, with_masks)[DECODED]
    return DetectionData(name, **{split: decoded.subset(at.tolist()) for split, at in positions.items()})
