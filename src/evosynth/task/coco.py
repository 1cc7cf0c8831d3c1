"""Any detection data set in COCO's instances format, as a one-class data set of the category one names.

The folder holds ``annotations.json`` (``images`` [{id, file_name, width, height}], ``annotations`` [{image_id,
category_id, bbox: [x, y, w, h], iscrowd}], ``categories`` [{id, name}]) and the image files it names, relative
to the folder. Every listed image is used, those without an object of the category as negatives.

COCO boxes are continuous pixel-edge coordinates, so (x, y, x + w, y + h) is already this package's convention.
Crowd annotations (iscrowd = 1) mark a region of many objects rather than one, so they are left out; boxes are
clipped to their image, and a box with no area left is dropped (nothing can be matched to it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import numpy as np

from evosynth.errors import DataSetError
from evosynth.task.dataset import DetectionData
from evosynth.task.imageset import AnnotatedImage, ImageSetSpec, load_image_set

ANNOTATIONS = "annotations.json"
Entry = TypeVar("Entry")


def _read_document(root: Path) -> dict[str, Any]:
    path = root / ANNOTATIONS
    if not root.is_dir():
        raise DataSetError(f"{root}: no such folder; it should hold {ANNOTATIONS} and the images it names")
    if not path.is_file():
        raise DataSetError(f"{path}: missing; a COCO folder holds {ANNOTATIONS} (COCO instances format) and the "
                           "images it names")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataSetError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise DataSetError(f"{path}: not a COCO instances file (the top level must be an object)")
    return document


def _entries(path: Path, document: dict[str, Any], key: str, parse: Callable[[dict[str, Any]], Entry]) -> list[Entry]:
    """Every entry of the list ``key``, parsed; a missing or malformed one raises naming its index."""
    values = document.get(key)
    if not isinstance(values, list):
        raise DataSetError(f"{path}: not a COCO instances file (no list {key!r})")
    parsed = []
    for index, value in enumerate(values):
        try:
            parsed.append(parse(value))
        except (KeyError, TypeError, ValueError) as error:
            raise DataSetError(f"{path}: {key}[{index}] is malformed ({type(error).__name__}: {error})") from error
    return parsed


def _image(entry: dict[str, Any]) -> tuple[int, str, int, int]:
    name = PurePosixPath(str(entry["file_name"]))
    if name.is_absolute() or ".." in name.parts:
        raise ValueError(f"file_name {str(name)!r} must be relative to the folder and stay inside it")
    return int(entry["id"]), name.as_posix(), int(entry["width"]), int(entry["height"])


def _annotation(entry: dict[str, Any]) -> tuple[int, int, list[float], bool]:
    x, y, width, height = (float(value) for value in entry["bbox"])
    if width < 0 or height < 0:
        raise ValueError(f"bbox {entry['bbox']} has a negative size")
    return int(entry["image_id"]), int(entry["category_id"]), [x, y, x + width, y + height], bool(entry.get("iscrowd"))


def _category(entry: dict[str, Any]) -> tuple[int, str]:
    return int(entry["id"]), str(entry["name"])


def choose_category(path: Path, categories: dict[int, str], category: str | None) -> int:
    """The id of the named category, or of the only one when none is named."""
    names = ", ".join(sorted(categories.values()))
    if category is None:
        if len(categories) == 1:
            return next(iter(categories))
        raise DataSetError(f"{path} has {len(categories)} categories; choose one with --category: {names or 'none'}")
    for identifier, name in categories.items():
        if name == category:
            return identifier
    raise DataSetError(f"{path} has no category {category!r}; its categories: {names or 'none'}")


def read_coco(root: Path, category: str | None = None) -> tuple[str, list[AnnotatedImage]]:
    """The chosen category's name and every listed image with that category's (non-crowd) boxes."""
    path = root / ANNOTATIONS
    document = _read_document(root)
    categories = dict(_entries(path, document, "categories", _category))
    chosen = choose_category(path, categories, category)
    images: dict[int, tuple[str, int, int, list[list[float]]]] = {}
    for identifier, name, width, height in _entries(path, document, "images", _image):
        if identifier in images:
            raise DataSetError(f"{path}: image id {identifier} is listed twice")
        images[identifier] = (name, width, height, [])
    for image_id, category_id, box, crowd in _entries(path, document, "annotations", _annotation):
        if image_id not in images:
            raise DataSetError(f"{path}: an annotation names image id {image_id}, which 'images' does not list")
        if category_id not in categories:
            raise DataSetError(f"{path}: an annotation names category id {category_id}, which 'categories' "
                               "does not list")
        if category_id == chosen and not crowd:
            images[image_id][3].append(box)
    items = []
    for identifier, (name, width, height, boxes) in images.items():
        clipped = np.clip(np.array(boxes, np.float64).reshape(-1, 4), 0, [width, height, width, height])
        kept = clipped[(clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])]
        items.append(AnnotatedImage(name, kept, (width, height), f"{path} (image id {identifier})"))
    return categories[chosen], items


def load_coco(root: Path, spec: ImageSetSpec, cache_dir: Path, category: str | None = None) -> DetectionData:
    """A COCO-format folder as a one-class data set of ``category``, letterboxed, split and cached like Penn-Fudan."""
    label, items = read_coco(root, category)
    if not items:
        raise DataSetError(f"{root / ANNOTATIONS}: lists no images")
    return load_image_set("coco", label, root, items, spec, cache_dir)
