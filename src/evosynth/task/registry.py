"""The registry of detection data sets: every loader by name, on top of the sources it dispatches to.

Its own module so that the sources (``digits``, ``pennfudan``, ``coco``) need not know of each other: it is the
only one that imports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evosynth.task.coco import load_coco
from evosynth.task.dataset import DetectionData
from evosynth.task.digits import DigitsSpec, load_digits_detection
from evosynth.task.imageset import ImageSetSpec
from evosynth.task.pennfudan import load_pennfudan


def _digits(cache_dir: Path, **options: Any) -> DetectionData:
    return load_digits_detection(DigitsSpec(**options), cache_dir)


def _pennfudan(cache_dir: Path, root: str | Path, **options: Any) -> DetectionData:
    return load_pennfudan(Path(root), ImageSetSpec(**options), cache_dir)


def _coco(cache_dir: Path, root: str | Path, category: str | None = None, **options: Any) -> DetectionData:
    return load_coco(Path(root), ImageSetSpec(**options), cache_dir, category)


DATASETS: dict[str, Callable[..., DetectionData]] = {"digits": _digits, "pennfudan": _pennfudan, "coco": _coco}
# The data sets read from a folder the user names (``root``); ``digits`` is generated.
FOLDER_DATASETS: tuple[str, ...] = ("pennfudan", "coco")


def load_dataset(name: str, cache_dir: Path, **options: Any) -> DetectionData:
    """Load a registered data set by name; options go to its loader.

    ``digits``: DigitsSpec fields. ``pennfudan``: ``root`` (the data set's folder) and ImageSetSpec fields;
    ``coco``: the same plus ``category`` (a category name; default: the only one).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](cache_dir, **options)
