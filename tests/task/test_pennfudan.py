"""Penn-Fudan read from its folder: letterboxed images, exact boxes, fixed splits, a cache that follows the folder."""

from __future__ import annotations

import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import PHOTOS, REAL_PENNFUDAN, SPEC, assert_same, by_source, make_pennfudan
from evosynth.errors import DataSetError
from evosynth.task import imageset
from evosynth.task.dataset import SPLITS
from evosynth.task.imageset import split_indices
from evosynth.task.pennfudan import load_pennfudan, read_pennfudan
from evosynth.task.registry import load_dataset

# --------------------------------------------------------------------------------------------------- Penn-Fudan


def test_pennfudan_images_are_letterboxed_and_boxes_scaled_exactly(pennfudan_root: Path, tmp_path: Path) -> None:
    data = load_pennfudan(pennfudan_root, SPEC, tmp_path)
    assert data.name == "pennfudan" and data.image_size == (128, 160) and data.channels == 3
    assert data.train.images.dtype == torch.uint8
    found = by_source(data)
    assert sorted(found) == list(range(len(PHOTOS)))
    _, plain, plain_boxes = found[0]  # 80 x 64, scaled by 2 with no padding
    assert torch.equal(plain_boxes, torch.tensor([[20.0, 16.0, 60.0, 80.0]]))
    assert (plain[:, 18:78, 22:58] == 255).all() and (plain[:, 82:, 62:] != 255).all()
    _, padded, padded_boxes = found[1]  # 64 x 64, scaled by 2 to 128 x 128, centred: 16 grey columns each side
    assert torch.equal(padded_boxes, torch.tensor([[24.0, 8.0, 56.0, 72.0], [104.0, 60.0, 136.0, 124.0]]))
    assert (padded[:, :, :16] == imageset.PAD_GREY).all() and (padded[:, :, 144:] == imageset.PAD_GREY).all()
    assert (padded[:, 10:70, 26:54] == 255).all()
    assert [len(found[i][2]) for i in range(2, 12)] == [i % 3 for i in range(2, 12)]  # images without boxes stay


def test_splits_are_disjoint_fixed_and_cover_every_image(pennfudan_root: Path, tmp_path: Path) -> None:
    positions = split_indices(len(PHOTOS), SPEC)
    assert {split: len(p) for split, p in positions.items()} == {"train": 7, "val": 2, "test": 3}
    assert sorted(np.concatenate(list(positions.values())).tolist()) == list(range(len(PHOTOS)))
    # the folds' test splits test every image exactly once
    tested = [split_indices(len(PHOTOS), replace(SPEC, fold=fold))["test"] for fold in range(SPEC.folds)]
    assert sorted(np.concatenate(tested).tolist()) == list(range(len(PHOTOS)))
    again = split_indices(len(PHOTOS), SPEC)
    assert all(np.array_equal(positions[s], again[s]) for s in SPLITS)
    other = split_indices(len(PHOTOS), replace(SPEC, seed=1))
    assert any(not np.array_equal(positions[s], other[s]) for s in SPLITS)
    # the photographs sort by name in the order they were made, so positions are photograph indices
    data = load_pennfudan(pennfudan_root, SPEC, tmp_path / "a")
    assert {i: split for i, (split, _, _) in by_source(data).items()} == {
        int(i): split for split, p in positions.items() for i in p
    }
    assert_same(data, load_pennfudan(pennfudan_root, SPEC, tmp_path / "b"))
    assert {split: len(at) for split, at in split_indices(170, SPEC).items()} == {"train": 110, "val": 26, "test": 34}
    with pytest.raises(ValueError, match="fold must be one of 0..folds-1"):
        replace(SPEC, fold=5)


def test_instance_masks_are_letterboxed_with_their_photographs(pennfudan_root: Path, tmp_path: Path) -> None:
    data = load_pennfudan(pennfudan_root, SPEC, tmp_path)
    for split in SPLITS:
        part = getattr(data, split)
        assert part.masks is not None and part.masks.shape == (len(part), 128, 160)
        for mask, boxes in zip(part.masks, part.boxes, strict=True):
            assert int(mask.max()) == len(boxes)
            for number, (x1, y1, x2, y2) in enumerate(boxes.round().int().tolist(), 1):
                if number < len(boxes) and boxes[number - 1].equal(boxes[number]):
                    continue  # the fake photographs' twin boxes: the second instance covers the first
                ys, xs = torch.nonzero(mask == number, as_tuple=True)  # each box's pixels are its instance's
                assert (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) == (x1, y1, x2, y2)
    again = load_pennfudan(pennfudan_root, SPEC, tmp_path)  # from the cache: the masks come back
    assert torch.equal(again.train.masks, data.train.masks)


def test_a_missing_or_wrong_mask_is_named(tmp_path: Path) -> None:
    root = make_pennfudan(tmp_path / "PennFudanPed")
    (root / "PedMasks" / "FakePed00003_mask.png").unlink()
    with pytest.raises(DataSetError, match="FakePed00003_mask.png, which does not exist"):
        load_pennfudan(root, SPEC, tmp_path / "cache")
    Image.new("L", (80, 64), 3).save(root / "PedMasks" / "FakePed00003_mask.png")
    with pytest.raises(DataSetError, match="marks instance 3, but .* has 0 boxes"):
        load_pennfudan(root, SPEC, tmp_path / "cache")


def test_cache_is_reused_and_a_corrupt_one_rebuilt(
    pennfudan_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = load_pennfudan(pennfudan_root, SPEC, tmp_path)
    (folder,) = tmp_path.glob("pennfudan-*")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["data.safetensors",
                                                                                       "source.json"]
    assert not list(folder.glob("*.tmp"))
    with monkeypatch.context() as patch:
        patch.setattr(imageset, "_decode", lambda *_: pytest.fail("a cached data set must not be decoded again"))
        assert_same(fresh, load_pennfudan(pennfudan_root, SPEC, tmp_path))
        other_fold = load_pennfudan(pennfudan_root, replace(SPEC, fold=1), tmp_path)  # every fold reads one cache
    assert len(list(tmp_path.glob("pennfudan-*"))) == 1
    assert not torch.equal(other_fold.test.images, fresh.test.images)
    other = load_pennfudan(pennfudan_root, replace(SPEC, height=64, width=80), tmp_path)
    assert other.image_size == (64, 80) and len(list(tmp_path.glob("pennfudan-*"))) == 2  # another spec, another key
    data_file = folder / "data.safetensors"
    data_file.write_bytes(data_file.read_bytes()[:500])
    with pytest.warns(RuntimeWarning, match=r"regenerating.*data\.safetensors"):
        assert_same(fresh, load_pennfudan(pennfudan_root, SPEC, tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(fresh, load_pennfudan(pennfudan_root, SPEC, tmp_path))  # the rewritten cache is sound


def test_an_edited_folder_gets_a_new_cache(tmp_path: Path) -> None:
    root = make_pennfudan(tmp_path / "PennFudanPed", PHOTOS[:6])
    first = load_pennfudan(root, SPEC, tmp_path / "cache")
    note = root / "Annotation" / "FakePed00000.txt"
    note.write_text(note.read_text().replace("(11, 9) - (30, 40)", "(11, 9) - (30, 44)"))
    second = load_pennfudan(root, SPEC, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("pennfudan-*"))) == 2
    assert [b.tolist() for b in first.train.boxes + first.val.boxes + first.test.boxes] != [
        b.tolist() for b in second.train.boxes + second.val.boxes + second.test.boxes
    ]


def _break(root: Path, damage: str) -> None:
    note = root / "Annotation" / "FakePed00001.txt"
    if damage == "no image":
        (root / "PNGImages" / "FakePed00001.png").unlink()
    elif damage == "not an image":
        (root / "PNGImages" / "FakePed00001.png").write_text("these are not pixels")
    elif damage == "bad box line":
        note.write_text(note.read_text().replace("(Xmin, Ymin) - (Xmax, Ymax) : (5, 5)", "(Xmin, Ymin) : (5, 5)"))
    elif damage == "box count":
        note.write_text(note.read_text().replace("Objects with ground truth : 2", "Objects with ground truth : 3"))
    elif damage == "box outside":
        note.write_text(note.read_text().replace("(45, 31) - (60, 62)", "(45, 31) - (65, 62)"))
    elif damage == "no filename":
        note.write_text(note.read_text().replace("Image filename", "Picture"))
    elif damage == "wrong size":
        note.write_text(note.read_text().replace("64 x 64 x 3", "60 x 64 x 3"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no image", r"FakePed00001\.txt: names the image .*FakePed00001\.png, which does not exist"),
        ("not an image", r"FakePed00001\.png: not an image \(named by .*FakePed00001\.txt\)"),
        ("bad box line", r"FakePed00001\.txt: not a Penn-Fudan .*line \d+ is not"),
        ("box count", r"FakePed00001\.txt: .*declares 3 objects but has 2"),
        ("box outside", r"FakePed00001\.txt: .*lies outside the 64 x 64 image"),
        ("no filename", r"FakePed00001\.txt: .*no Image filename line"),
        ("wrong size", r"FakePed00001\.txt: declares 60 x 64 pixels, but .*FakePed00001\.png has 64 x 64"),
    ],
)
def test_a_broken_pennfudan_folder_is_named(tmp_path: Path, damage: str, message: str) -> None:
    root = make_pennfudan(tmp_path / "PennFudanPed", PHOTOS[:6])
    _break(root, damage)
    with pytest.raises(DataSetError, match=message):
        load_pennfudan(root, SPEC, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*/source.json"))


def test_a_missing_or_empty_pennfudan_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataSetError, match=r"nowhere: no such folder.*evosynth data download pennfudan"):
        load_pennfudan(tmp_path / "nowhere", SPEC, tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSetError, match=r"empty/Annotation: no annotation files"):
        load_pennfudan(tmp_path / "empty", SPEC, tmp_path / "cache")
    too_few = make_pennfudan(tmp_path / "two", PHOTOS[:2])
    with pytest.raises(DataSetError, match=r"two: 2 images are too few"):
        load_pennfudan(too_few, SPEC, tmp_path / "cache")


@pytest.mark.skipif(not REAL_PENNFUDAN.is_dir(), reason=f"no local copy of Penn-Fudan at {REAL_PENNFUDAN}")
def test_the_real_pennfudan_has_170_images_and_423_boxes(tmp_path: Path) -> None:
    items = read_pennfudan(REAL_PENNFUDAN)
    assert len(items) == 170 and sum(len(item.boxes) for item in items) == 423
    data = load_dataset("pennfudan", tmp_path, root=REAL_PENNFUDAN, **asdict(SPEC))
    sizes = {split: len(getattr(data, split)) for split in SPLITS}
    assert sizes == {"train": 110, "val": 26, "test": 34}
    boxes = torch.cat([b for split in SPLITS for b in getattr(data, split).boxes])
    assert boxes.shape == (423, 4)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 160).all() and (boxes[:, 3] <= 128).all()
    assert ((boxes[:, 2:] - boxes[:, :2]) > 0).all()
