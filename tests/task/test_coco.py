"""A COCO folder read for one category, with exact boxes; broken folders named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import SPEC, assert_same, by_source, make_coco
from evosynth.errors import DataSetError
from evosynth.task.coco import load_coco

# --------------------------------------------------------------------------------------------------- COCO




def test_coco_reads_the_named_category_with_exact_boxes(tmp_path: Path) -> None:
    root = make_coco(tmp_path / "coco")
    data = load_coco(root, SPEC, tmp_path / "cache", "person")
    assert data.name == "coco" and data.image_size == (128, 160)
    found = by_source(data)
    assert sorted(found) == [1, 2, 3, 4, 5]  # every listed image, those without a person too
    assert torch.equal(found[1][2], torch.tensor([[20.0, 16.0, 60.0, 80.0]]))
    assert torch.equal(found[2][2], torch.tensor([[120.0, 80.0, 160.0, 128.0]]))  # clipped to the image
    assert found[3][2].shape == (0, 4) and found[4][2].shape == (0, 4)  # the crowd region is no object
    assert torch.equal(found[5][2], torch.tensor([[3.0, 4.5, 24.0, 44.5]]))
    cars = load_coco(root, SPEC, tmp_path / "cache", "car")
    assert torch.equal(by_source(cars)[1][2], torch.tensor([[80.0, 60.0, 140.0, 100.0]]))
    assert len(list((tmp_path / "cache").glob("coco-*"))) == 2  # one cache per category
    single = make_coco(tmp_path / "persons", ("person",))
    assert_same(load_coco(single, SPEC, tmp_path / "cache"), load_coco(single, SPEC, tmp_path / "cache", "person"))


def _edit_coco(root: Path, damage: str) -> None:
    path = root / "annotations.json"
    document = json.loads(path.read_text())
    if damage == "no annotations.json":
        path.unlink()
    elif damage == "invalid JSON":
        path.write_text("{ not json")
    elif damage == "unknown image":
        document["annotations"][0]["image_id"] = 99
    elif damage == "no bbox":
        del document["annotations"][1]["bbox"]
    elif damage == "missing image":
        (root / "images" / "002.png").unlink()
    elif damage == "not an image":
        (root / "images" / "002.png").write_bytes(b"no pixels in here")
    if damage in ("unknown image", "no bbox"):
        path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("category", "damage", "message"),
    [
        (None, "", r"annotations\.json has 2 categories; choose one with --category: car, person"),
        ("bicycle", "", r"annotations\.json has no category 'bicycle'; its categories: car, person"),
        ("person", "no annotations.json", r"annotations\.json: missing"),
        ("person", "invalid JSON", r"annotations\.json: not valid JSON"),
        ("person", "unknown image", r"annotations\.json: an annotation names image id 99"),
        ("person", "no bbox", r"annotations\.json: annotations\[1\] is malformed \(KeyError: 'bbox'\)"),
        ("person", "missing image", r"annotations\.json \(image id 2\): names the image .*002\.png, which does not"),
        ("person", "not an image", r"002\.png: not an image \(named by .*annotations\.json \(image id 2\)\)"),
    ],
)
def test_a_broken_coco_folder_or_category_is_named(
    tmp_path: Path, category: str | None, damage: str, message: str
) -> None:
    root = make_coco(tmp_path / "coco")
    _edit_coco(root, damage)
    with pytest.raises(DataSetError, match=message):
        load_coco(root, SPEC, tmp_path / "cache", category)
