"""The on-disk cache of a detection data set: safetensors plus a JSON record of what it was made from.

Its own module because every source caches the same way (``digits`` its splits, the photograph folders every
decoded image once, cut into splits at load), and it is the one module of ``evosynth.task`` that writes files.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from evosynth.files import atomic_write, exclusive
from evosynth.task.dataset import DetectionSplit

CACHE_DATA = "data.safetensors"


def write_cache(folder: Path, parts: Mapping[str, DetectionSplit], record_file: str, record: dict[str, Any]) -> None:
    """Store named parts of a data set as safetensors (per part: images, concatenated boxes, box counts, instance
    masks where it has them) plus a JSON record.

    Data first, record last: the record file is what marks the cache as complete. No pickle anywhere.
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, part in parts.items():
        tensors[f"{name}/images"] = part.images.contiguous()
        tensors[f"{name}/boxes"] = torch.cat([torch.zeros(0, 4), *part.boxes]).to(torch.float32)
        tensors[f"{name}/counts"] = torch.tensor([len(b) for b in part.boxes], dtype=torch.int64)
        if part.masks is not None:
            tensors[f"{name}/masks"] = part.masks.contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / CACHE_DATA, lambda path: save_file(tensors, path))
    atomic_write(folder / record_file, lambda path: path.write_text(json.dumps(record, indent=2)))


def read_cache(
    folder: Path, record_file: str, record: dict[str, Any], shapes: Mapping[str, tuple[int, ...]],
    with_masks: bool = False,
) -> dict[str, DetectionSplit]:
    """Load what ``write_cache`` stored; raise ValueError naming the bad file if anything does not add up.

    ``record`` is what the record file must hold (what the cache was made from); ``shapes`` the images tensor's
    shape per part; ``with_masks`` whether every part has instance masks.
    """
    record_path, data_path = folder / record_file, folder / CACHE_DATA
    try:
        stored = json.loads(record_path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{record_path}: unreadable ({error})") from error
    if stored != json.loads(json.dumps(record)):
        raise ValueError(f"{record_path}: records another source than its hash promises")
    try:
        tensors = load_file(data_path)
    except (OSError, SafetensorError) as error:
        raise ValueError(f"{data_path}: unreadable ({error})") from error
    parts = {}
    for name, shape in shapes.items():
        try:
            images, boxes, counts = (tensors[f"{name}/{part}"] for part in ("images", "boxes", "counts"))
        except KeyError as error:
            raise ValueError(f"{data_path}: missing tensor {error}") from error
        if (
            (images.dtype, boxes.dtype, counts.dtype) != (torch.uint8, torch.float32, torch.int64)
            or tuple(images.shape) != shape
            or counts.shape != (shape[0],)
            or int(counts.sum()) != boxes.shape[0]
            or boxes.shape[1:] != (4,)
        ):
            raise ValueError(f"{data_path}: tensors of {name!r} have inconsistent shapes")
        masks = tensors.get(f"{name}/masks")
        if with_masks and (masks is None or masks.dtype != torch.uint8
                           or masks.shape != (images.shape[0], *images.shape[2:])):
            raise ValueError(f"{data_path}: the instance masks of {name!r} are missing or mis-shaped")
        parts[name] = DetectionSplit(images, list(torch.split(boxes, counts.tolist())), masks if with_masks else None)
    return parts


def load_cached(
    folder: Path,
    name: str,
    record_file: str,
    record: dict[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    build: Callable[[], Mapping[str, DetectionSplit]],
    with_masks: bool = False,
) -> dict[str, DetectionSplit]:
    """The parts of data set ``name`` cached in ``folder`` (one per key of ``shapes``), built and written there first
    when absent or unreadable.

    A cache that cannot be read (truncated, edited, stale) is rebuilt with a warning naming the file. The
    folder's lock makes a second process wait for the first one's cache instead of building it twice.
    """
    with exclusive(folder, wait=True):
        if (folder / record_file).exists():
            try:
                return read_cache(folder, record_file, record, shapes, with_masks)
            except ValueError as error:
                warnings.warn(f"corrupt {name} cache, regenerating it: {error}", RuntimeWarning, stacklevel=3)
        parts = dict(build())
        write_cache(folder, parts, record_file, record)
        return parts
