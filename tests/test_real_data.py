"""Real-photograph data sets: the Penn-Fudan and COCO readers, their shared letterbox/split/cache, the downloader,
and a run on them, all on small folders the tests draw themselves (one test reads the real Penn-Fudan copy)."""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evosynth import cli
from evosynth.errors import DataSetError
from evosynth.study.config import PRESETS, Preset, RunConfig
from evosynth.study.evolution import evolve
from evosynth.task import download, imageset
from evosynth.task.coco import load_coco
from evosynth.task.dataset import SPLITS, DetectionData
from evosynth.task.download import PENNFUDAN, Archive
from evosynth.task.imageset import ImageSetSpec, split_indices
from evosynth.task.pennfudan import load_pennfudan, read_pennfudan
from evosynth.task.registry import DATASETS, load_dataset
from evosynth.task.training import TrainingBudget

# The workplace's copy beside the checkout (../shared/data), wherever the checkout is; EVOSYNTH_PENNFUDAN overrides.
_SHARED_COPIES = [Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")]
REAL_PENNFUDAN = Path(os.environ.get("EVOSYNTH_PENNFUDAN") or next(
    (c / "data" / "PennFudanPed" for c in _SHARED_COPIES if (c / "data" / "PennFudanPed").is_dir()),
    _SHARED_COPIES[0] / "data" / "PennFudanPed"))
WHITE = (255, 255, 255)
SPEC = ImageSetSpec()  # 128 x 160: an 80 x 64 photograph is scaled by exactly 2, a 64 x 64 one also padded

# (width, height, boxes in pixel edges) of the fake photographs; boxes keep clear of the centre, whose colour
# tells which photograph an image came from.
PHOTOS: list[tuple[int, int, list[tuple[int, int, int, int]]]] = [
    (80, 64, [(10, 8, 30, 40)]),
    (64, 64, [(4, 4, 20, 36), (44, 30, 60, 62)]),
    *[(80, 64, [(2 + i, 4, 12 + i, 30)] * (i % 3)) for i in range(2, 12)],
]


def background(index: int) -> tuple[int, int, int]:
    return (20 * index % 250, 240 - 15 * index, 60 + 12 * index)


def draw(width: int, height: int, colour: tuple[int, int, int], boxes: list[tuple[int, int, int, int]]) -> Image.Image:
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = colour
    for x1, y1, x2, y2 in boxes:
        pixels[y1:y2, x1:x2] = WHITE
    return Image.fromarray(pixels)


def make_pennfudan(root: Path, photos: list = PHOTOS) -> Path:
    """A folder in Penn-Fudan's layout and annotation format (1-based inclusive box corners)."""
    (root / "PNGImages").mkdir(parents=True)
    (root / "Annotation").mkdir()
    for index, (width, height, boxes) in enumerate(photos):
        name = f"FakePed{index:05d}"
        draw(width, height, background(index), boxes).save(root / "PNGImages" / f"{name}.png")
        objects = "".join(
            f'\n# Details for pedestrian {n} ("PASpersonWalking")\n'
            f'Original label for object {n} "PASpersonWalking" : "PennFudanPed"\n'
            f'Bounding box for object {n} "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : '
            f"({x1 + 1}, {y1 + 1}) - ({x2}, {y2})\n"
            f'Pixel mask for object {n} "PASpersonWalking" : "PennFudanPed/PedMasks/{name}_mask.png"\n'
            for n, (x1, y1, x2, y2) in enumerate(boxes, 1)
        )
        labels = " ".join(['"PASpersonWalking"'] * len(boxes))
        (root / "Annotation" / f"{name}.txt").write_text(
            "# Compatible with PASCAL Annotation Version 1.00\n"
            f'Image filename : "PennFudanPed/PNGImages/{name}.png"\n'
            f"Image size (X x Y x C) : {width} x {height} x 3\n"
            'Database : "The Penn-Fudan-Pedestrian Database"\n'
            f"Objects with ground truth : {len(boxes)} {{ {labels} }}\n"
            "# Top left pixel co-ordinates : (1, 1)\n" + objects
        )
    return root


def source_of(image: torch.Tensor) -> int:
    """Which fake photograph an image shows, by its centre pixel's colour."""
    centre = tuple(image[:, image.shape[1] // 2, image.shape[2] // 2].tolist())
    return [background(i) for i in range(len(PHOTOS))].index(centre)


def by_source(data: DetectionData) -> dict[int, tuple[str, torch.Tensor, torch.Tensor]]:
    found = {}
    for split in SPLITS:
        part = getattr(data, split)
        for image, boxes in zip(part.images, part.boxes, strict=True):
            found[source_of(image)] = (split, image, boxes)
    return found


def assert_same(a: DetectionData, b: DetectionData) -> None:
    for split in SPLITS:
        sa, sb = getattr(a, split), getattr(b, split)
        assert torch.equal(sa.images, sb.images)
        assert all(torch.equal(x, y) for x, y in zip(sa.boxes, sb.boxes, strict=True))


@pytest.fixture(scope="module")
def pennfudan_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pennfudan(tmp_path_factory.mktemp("fake") / "PennFudanPed")


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
    assert {split: len(p) for split, p in positions.items()} == {"train": 8, "val": 2, "test": 2}
    assert sorted(np.concatenate(list(positions.values())).tolist()) == list(range(len(PHOTOS)))
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
    assert SPEC.split_sizes(170) == {"train": 110, "val": 26, "test": 34}


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
    root = make_pennfudan(tmp_path / "PennFudanPed", PHOTOS[:4])
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


# --------------------------------------------------------------------------------------------------- COCO


def make_coco(root: Path, categories: tuple[str, ...] = ("person", "car")) -> Path:
    """Five photographs in COCO's instances format: persons, cars, a crowd region and a box past the edge."""
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    boxes = {
        1: [("person", [10.0, 8.0, 20.0, 32.0]), ("car", [40.0, 30.0, 30.0, 20.0])],
        2: [("person", [60.0, 40.0, 30.0, 30.0])],  # runs past the right and bottom edges of an 80 x 64 image
        3: [("person", [5.0, 5.0, 50.0, 50.0], 1), ("car", [2.0, 2.0, 10.0, 10.0])],  # a crowd region
        4: [],
        5: [("person", [1.5, 2.25, 10.5, 20.0])],
    }
    for image_id, objects in boxes.items():
        name = f"images/{image_id:03d}.png"
        draw(80, 64, background(image_id), []).save(root / name)
        images.append({"id": image_id, "file_name": name, "width": 80, "height": 64})
        for label, box, *crowd in objects:
            if label in categories:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "bbox": box,
                                    "category_id": categories.index(label) + 1, "iscrowd": crowd[0] if crowd else 0})
    document = {"images": images, "annotations": annotations,
                "categories": [{"id": i + 1, "name": name} for i, name in enumerate(categories)]}
    (root / "annotations.json").write_text(json.dumps(document))
    return root


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


def test_registry_reads_both_folders(pennfudan_root: Path, tmp_path: Path) -> None:
    assert {"digits", "pennfudan", "coco"} <= set(DATASETS)
    small = {"height": 32, "width": 40, "seed": 2}
    pedestrians = load_dataset("pennfudan", tmp_path, root=pennfudan_root, **small)
    assert pedestrians.image_size == (32, 40) and sum(len(getattr(pedestrians, s)) for s in SPLITS) == 12
    cars = load_dataset("coco", tmp_path, root=make_coco(tmp_path / "coco"), category="car", **small)
    assert cars.image_size == (32, 40) and sum(len(b) for s in SPLITS for b in getattr(cars, s).boxes) == 2


# --------------------------------------------------------------------------------------------------- download


def zipped(folder: Path, archive: Path) -> str:
    """The folder as a zip archive, as the official one is laid out (the folder at the top); its file:// URL."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, path.relative_to(folder.parent).as_posix())
    return archive.as_uri()


@pytest.fixture
def fake_archive(pennfudan_root: Path, tmp_path: Path) -> Archive:
    """PENNFUDAN's archive, but the fake folder served from a file:// URL and its own reference digest."""
    first = pennfudan_root / "PNGImages" / "FakePed00000.png"
    return replace(PENNFUDAN, url=zipped(pennfudan_root, tmp_path / "PennFudanPed.zip"),
                   digests={"PNGImages/FakePed00000.png": download._sha256(first)},
                   counts={"PNGImages/*.png": len(PHOTOS), "Annotation/*.txt": len(PHOTOS)})


def test_download_unpacks_checks_and_moves_into_place(fake_archive: Archive, pennfudan_root: Path,
                                                      tmp_path: Path) -> None:
    destination = tmp_path / "data" / "pennfudan" / "PennFudanPed"
    assert download.download(fake_archive, destination) == destination
    for original in pennfudan_root.rglob("*.*"):
        assert (destination / original.relative_to(pennfudan_root)).read_bytes() == original.read_bytes()
    assert [p.name for p in destination.parent.iterdir()] == ["PennFudanPed"]  # no temporary folder left
    assert len(read_pennfudan(destination)) == len(PHOTOS)
    with pytest.raises(DataSetError, match="already exists"):
        download.download(fake_archive, destination)


@pytest.mark.parametrize("check", ["digest", "count"])
def test_download_refuses_a_wrong_archive_and_leaves_nothing(fake_archive: Archive, tmp_path: Path,
                                                             check: str) -> None:
    wrong = (replace(fake_archive, digests={"PNGImages/FakePed00000.png": "0" * 64}) if check == "digest"
             else replace(fake_archive, counts={"PNGImages/*.png": 170}))
    destination = tmp_path / "data" / "PennFudanPed"
    message = "SHA-256 [0-9a-f]{64} instead of 0{64}; refused" if check == "digest" else "12 files instead of 170"
    with pytest.raises(DataSetError, match=message):
        download.download(wrong, destination)
    assert list(destination.parent.iterdir()) == []
    with pytest.raises(DataSetError, match="download failed"):
        download.download(replace(fake_archive, url=(tmp_path / "absent.zip").as_uri()), destination)
    assert list(destination.parent.iterdir()) == []


def test_cli_downloads_only_on_the_explicit_command(fake_archive: Archive, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    destination = tmp_path / "PennFudanPed"
    monkeypatch.setitem(download.ARCHIVES, "pennfudan", replace(fake_archive, counts={"PNGImages/*.png": 170}))
    assert cli.main(["data", "download", "pennfudan", "--to", str(destination)]) == 2
    assert "12 files instead of 170" in capsys.readouterr().err and not destination.exists()
    monkeypatch.setitem(download.ARCHIVES, "pennfudan", fake_archive)
    assert cli.main(["data", "download", "pennfudan", "--to", str(destination)]) == 0
    assert f"--data pennfudan --data-dir {destination}" in capsys.readouterr().out
    assert len(list((destination / "Annotation").glob("*.txt"))) == len(PHOTOS)


# --------------------------------------------------------------------------------------------------- runs


def test_run_identity_names_the_data_set(tmp_path: Path) -> None:
    digits = RunConfig()
    assert "data_root" not in digits.identity() and "category" not in digits.identity()
    assert digits.data_source() == {} and digits.name.startswith("paper-digits-")
    one = RunConfig(preset="pedestrians", data="pennfudan", data_root=str(tmp_path / "a"))
    other = replace(one, data_root=str(tmp_path / "b"))
    assert one.data_root == str((tmp_path / "a").resolve()) and one.data_source() == {"root": one.data_root}
    assert one.identity()["data"] == "pennfudan" and one.identity()["data_root"] == one.data_root
    assert one.name.startswith("pedestrians-pennfudan-") and one.name != other.name
    assert one.ancestor_name != other.ancestor_name and one.ancestor_identity() != other.ancestor_identity()
    person = RunConfig(preset="pedestrians", data="coco", data_root=str(tmp_path / "a"), category="person")
    assert person.name.startswith("pedestrians-coco-person-") and person.data_source()["category"] == "person"
    assert RunConfig.from_json(json.loads(json.dumps(person.identity()))) == person


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"data": "imagenet"}, "unknown data set 'imagenet'; known: coco, digits, pennfudan"),
        ({"preset": "pedestrians", "data": "pennfudan"}, r"'pennfudan' is read from its folder.*--data-dir"),
        ({"data_root": "somewhere"}, r"'digits' is generated and reads no folder: drop --data-dir"),
        ({"preset": "pedestrians", "data": "pennfudan", "data_root": ".", "category": "person"}, "coco"),
        ({"data": "pennfudan", "data_root": "."}, "preset 'paper' is made for digits.*choose one of: pedestrians"),
    ],
)
def test_a_wrong_data_configuration_is_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig(**fields)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "pennfudan"], "'pennfudan' is read from its folder: name it (--data-dir PATH)"),
        (["--data-dir", "somewhere"], "'digits' is generated and reads no folder"),
        (["--data", "coco", "--data-dir", "nowhere"], "nowhere: no such folder"),
    ],
)
def test_cli_refuses_a_wrong_data_set(args: list[str], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["evolve", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "gen_01").exists()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["evolve", "--data", "imagenet"])
    assert exit_.value.code == 2 and "invalid choice: 'imagenet'" in capsys.readouterr().err


def test_a_pennfudan_run_evolves_from_the_cli(pennfudan_root: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    tiny = Preset(name="tiny-pedestrians", data=ImageSetSpec(height=32, width=40), widths=(4, 8), strides=(2, 2),
                  ancestor=TrainingBudget(max_epochs=2, batch_size=8, patience=1),
                  offspring=TrainingBudget(max_epochs=1, batch_size=8))
    monkeypatch.setitem(PRESETS, tiny.name, tiny)
    out = tmp_path / "run"
    args = ["evolve", "--data", "pennfudan", "--data-dir", str(pennfudan_root), "--preset", tiny.name,
            "--generations", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert cli.main(args) == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].split()[0] == "1" and lines[-1].split()[0] == "2"
    identity = json.loads((out / "config.json").read_text())["identity"]
    assert identity["data"] == "pennfudan" and identity["data_root"] == str(pennfudan_root.resolve())
    metrics = json.loads((out / "gen_02" / "metrics.json").read_text())
    assert metrics["macs"] > 0 and 0.0 <= metrics["recall"] <= 1.0
    ancestors = list((tmp_path / "ancestors").iterdir())
    assert len(ancestors) == 2 and all(a.name.startswith("tiny-pedestrians-pennfudan-") for a in ancestors)
    assert {"-fp16-", "-fp32-"} == {next(p for p in ("-fp16-", "-fp32-") if p in a.name) for a in ancestors}
    config = RunConfig(preset=tiny.name, data="pennfudan", data_root=str(pennfudan_root), generations=2)
    assert [g.number for g in evolve(config, out, tmp_path / "cache")] == [1, 2]  # the same run: resumed, not refused
