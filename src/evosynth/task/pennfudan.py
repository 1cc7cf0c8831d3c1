"""The Penn-Fudan pedestrian database (Wang, Shi, Song, Shen, 2007) as a one-class detection data set.

The folder is what the official archive unpacks to: ``PNGImages/*.png`` (170 street photographs),
``Annotation/*.txt`` (PASCAL v1.00 text, one file per image; 423 pedestrian boxes) and ``PedMasks/*_mask.png``
(each pedestrian's outline: pixel value k marks the image's k-th box). The annotations give each box
as 1-based, inclusive pixel coordinates (Xmin, Ymin) - (Xmax, Ymax); in this package's pixel-edge convention that
is (Xmin - 1, Ymin - 1, Xmax, Ymax). ``evosynth data download pennfudan`` fetches the folder, only on request.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np

from evosynth.errors import DataSetError
from evosynth.task.dataset import DetectionData
from evosynth.task.imageset import AnnotatedImage, ImageSetSpec, load_image_set

_FILENAME = re.compile(r'^Image filename\s*:\s*"([^"]+)"\s*$', re.MULTILINE)
_SIZE = re.compile(r"^Image size \(X x Y x C\)\s*:\s*(\d+)\s*x\s*(\d+)\s*x\s*\d+\s*$", re.MULTILINE)
_COUNT = re.compile(r"^Objects with ground truth\s*:\s*(\d+)", re.MULTILINE)
_BOX = re.compile(
    r'Bounding box for object \d+ "[^"]*" \(Xmin, Ymin\) - \(Xmax, Ymax\)\s*:'
    r"\s*\((\d+),\s*(\d+)\)\s*-\s*\((\d+),\s*(\d+)\)\s*"
)
_FETCH = "`evosynth data download pennfudan` fetches it"


def _unparsable(path: Path, problem: str) -> DataSetError:
    return DataSetError(f"{path}: not a Penn-Fudan (PASCAL v1.00) annotation: {problem}")


def parse_annotation(path: Path) -> AnnotatedImage:
    """One annotation file: the image it describes, its declared size and its boxes in pixel edges."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _unparsable(path, f"unreadable ({error})") from error
    filename, size, count = _FILENAME.search(text), _SIZE.search(text), _COUNT.search(text)
    if filename is None or size is None or count is None:
        missing = [line for line, found in (("Image filename", filename), ("Image size (X x Y x C)", size),
                                            ("Objects with ground truth", count)) if found is None]
        raise _unparsable(path, f"no {' / '.join(missing)} line")
    width, height = int(size[1]), int(size[2])
    boxes = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("Bounding box"):
            continue
        match = _BOX.fullmatch(line)
        if match is None:
            raise _unparsable(path, f"line {number} is not '(Xmin, Ymin) - (Xmax, Ymax) : (x, y) - (x, y)'")
        x_min, y_min, x_max, y_max = (int(value) for value in match.groups())
        if not (1 <= x_min <= x_max <= width and 1 <= y_min <= y_max <= height):
            raise _unparsable(path, f"line {number}: box {match.groups()} lies outside the {width} x {height} image")
        boxes.append((x_min - 1, y_min - 1, x_max, y_max))
    if len(boxes) != int(count[1]):
        raise _unparsable(path, f"declares {count[1]} objects but has {len(boxes)} bounding boxes")
    return AnnotatedImage(
        name=f"PNGImages/{PurePosixPath(filename[1]).name}",
        boxes=np.array(boxes, np.float64).reshape(-1, 4),
        size=(width, height),
        annotation=str(path),
    )


def read_pennfudan(root: Path) -> list[AnnotatedImage]:
    """Every annotated image of a Penn-Fudan folder, in file-name order, with its instance mask where the folder
    has ``PedMasks/``."""
    if not root.is_dir():
        raise DataSetError(f"{root}: no such folder; it should hold Penn-Fudan's PNGImages/ and Annotation/ ({_FETCH})")
    annotations = sorted((root / "Annotation").glob("*.txt"))
    if not annotations:
        raise DataSetError(f"{root / 'Annotation'}: no annotation files (*.txt); is {root} a Penn-Fudan folder? "
                           f"({_FETCH})")
    items = [parse_annotation(path) for path in annotations]
    if not (root / "PedMasks").is_dir():
        return items
    return [replace(item, mask=f"PedMasks/{PurePosixPath(item.name).stem}_mask.png") for item in items]


def load_pennfudan(root: Path, spec: ImageSetSpec, cache_dir: Path) -> DetectionData:
    """Penn-Fudan pedestrians letterboxed to the spec's size, in fixed splits, cached under cache_dir."""
    return load_image_set("pennfudan", "pedestrian", root, read_pennfudan(root), spec, cache_dir)
