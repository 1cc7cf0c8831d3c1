"""The data set registry reads every kind of data set by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import make_coco
from evosynth.task.dataset import SPLITS
from evosynth.task.registry import DATASETS, load_dataset


def test_registry_reads_both_folders(pennfudan_root: Path, tmp_path: Path) -> None:
    assert {"digits", "pennfudan", "coco"} <= set(DATASETS)
    small = {"height": 32, "width": 40, "seed": 2}
    pedestrians = load_dataset("pennfudan", tmp_path, root=pennfudan_root, **small)
    assert pedestrians.image_size == (32, 40) and sum(len(getattr(pedestrians, s)) for s in SPLITS) == 12
    cars = load_dataset("coco", tmp_path, root=make_coco(tmp_path / "coco"), category="car", **small)
    assert cars.image_size == (32, 40) and sum(len(b) for s in SPLITS for b in getattr(cars, s).boxes) == 2


def test_registry_loads_digits_with_options(tmp_path: Path) -> None:
    assert "digits" in DATASETS
    grey = load_dataset("digits", tmp_path, n_train=6, n_val=2, n_test=2, channels=1, canvas=64)
    assert grey.channels == 1 and grey.image_size == (64, 64) and grey.train.images.dtype == torch.uint8
    assert len(grey.train) == 6 and len(grey.train.boxes) == 6


def test_unknown_dataset_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'nope'.*digits"):
        load_dataset("nope", tmp_path)
