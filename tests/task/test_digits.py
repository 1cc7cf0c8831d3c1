"""The generated ``digits`` detection data: reproducible, leak-free, correctly boxed, safely cached."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from evosynth.task import digits
from evosynth.task.dataset import SPLITS, DetectionData
from evosynth.task.digits import (
    DigitsSpec,
    load_digits_detection,
    mnist_digits,
    mnist_split_indices,
    render_split,
)

SMALL = DigitsSpec(n_train=40, n_val=10, n_test=10, seed=3)


@pytest.fixture(scope="module")
def rendered() -> dict[str, digits.RenderedSplit]:
    return {split: render_split(SMALL, split, with_masks=True) for split in SPLITS}


def assert_same(a: DetectionData, b: DetectionData) -> None:
    for split in SPLITS:
        sa, sb = getattr(a, split), getattr(b, split)
        assert torch.equal(sa.images, sb.images)
        assert len(sa.boxes) == len(sb.boxes)
        assert all(torch.equal(x, y) for x, y in zip(sa.boxes, sb.boxes, strict=True))


def test_mnist_source_is_read_as_digits() -> None:
    pixels, labels = mnist_digits()
    assert pixels.shape == (5000, 28, 28) and pixels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert pixels.max() == 255 and (pixels.reshape(5000, -1) > 0).sum(1).min() > 20


def test_same_spec_gives_identical_data(rendered: dict[str, digits.RenderedSplit]) -> None:
    again = render_split(SMALL, "train", with_masks=True)
    assert np.array_equal(again.images, rendered["train"].images)
    assert all(np.array_equal(a, b) for a, b in zip(again.boxes, rendered["train"].boxes, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(again.sources, rendered["train"].sources, strict=True))


def test_other_seed_or_split_gives_other_data(rendered: dict[str, digits.RenderedSplit]) -> None:
    other = render_split(replace(SMALL, seed=4), "val")
    assert not np.array_equal(other.images, rendered["val"].images)
    assert not np.array_equal(rendered["val"].images, rendered["test"].images)


def test_splits_use_disjoint_mnist_digits(rendered: dict[str, digits.RenderedSplit]) -> None:
    indices = mnist_split_indices()
    pixels, labels = mnist_digits()
    assert [len(indices[s]) for s in SPLITS] == [3500, 500, 1000]
    assert len(np.unique(np.concatenate(list(indices.values())))) == 5000
    for split, per_class in zip(SPLITS, (350, 50, 100), strict=True):
        assert np.bincount(labels[indices[split]]).tolist() == [per_class] * 10
        used = np.concatenate(rendered[split].sources)
        assert len(used) > 0 and np.isin(used, indices[split]).all()
    # no test digit's pixels occur among the training digits, not even as a duplicate under another index
    train_rows = {pixels[i].tobytes() for i in indices["train"]}
    held_out = np.concatenate([indices["val"], indices["test"]])
    assert not any(pixels[i].tobytes() in train_rows for i in held_out)


def test_boxes_are_inside_and_tight_around_visible_ink(rendered: dict[str, digits.RenderedSplit]) -> None:
    size = SMALL.canvas
    for split in SPLITS:
        r = rendered[split]
        assert r.masks is not None
        for image, boxes, masks, colours in zip(r.images, r.boxes, r.masks, r.colours, strict=True):
            assert boxes.dtype == np.float32 and boxes.shape == (len(masks), 4)
            for (x1, y1, x2, y2), mask, colour in zip(boxes.astype(int), masks, colours, strict=True):
                assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
                rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
                # tight: every edge of the box touches ink, no ink outside it
                assert (x1, y1, x2, y2) == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
                assert mask[y1:y2, x1:x2].sum() == mask.sum()
                assert min(mask[y1].any(), mask[y2 - 1].any(), mask[:, x1].any(), mask[:, x2 - 1].any())
                # the ink is really drawn: its pixels carry the digit's colour (up to noise and blending)
                deviation = np.median(np.abs(image[:, mask].astype(float) - 255 * colour[:, None]), axis=1)
                assert deviation.max() < 40


def test_box_counts_and_sizes_in_range(rendered: dict[str, digits.RenderedSplit]) -> None:
    counts = np.array([len(b) for r in rendered.values() for b in r.boxes])
    assert counts.max() <= SMALL.digits[1]
    assert (counts >= SMALL.digits[0]).mean() > 0.9  # a few digits may lose their box to occlusion
    assert len(set(counts.tolist())) >= 3  # the number of digits really varies
    heights = np.concatenate([b[:, 3] - b[:, 1] for r in rendered.values() for b in r.boxes])
    assert heights.max() <= SMALL.digit_height[1]
    assert np.median(heights) >= SMALL.digit_height[0]
    fixed = render_split(replace(SMALL, digits=(3, 3), digit_height=(14.0, 20.0)), "val")
    assert all(len(b) <= 3 for b in fixed.boxes) and sum(len(b) for b in fixed.boxes) >= 0.9 * 3 * 10


def test_occluded_digits_lose_their_box() -> None:
    # a digit covered by several later, larger digits is often hidden beyond max_occlusion
    crowded = replace(SMALL, digits=(8, 8), digit_height=(30.0, 40.0), max_occlusion=0.1)
    counts = np.array([len(b) for b in render_split(crowded, "val").boxes])
    assert counts.max() <= 8 and counts.mean() < 8


def test_cache_round_trip_equals_fresh_generation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = load_digits_detection(SMALL, tmp_path)
    folder = tmp_path / f"digits-{SMALL.key()}"
    assert (folder / "data.safetensors").is_file() and (folder / "spec.json").is_file()
    assert json.loads((folder / "spec.json").read_text())["seed"] == SMALL.seed
    assert not list(folder.glob("*.tmp"))

    def no_generation(*_: object, **__: object) -> None:
        raise AssertionError("a cached data set must not be generated again")

    monkeypatch.setattr(digits, "render_split", no_generation)
    cached = load_digits_detection(SMALL, tmp_path)
    assert_same(fresh, cached)
    for split in SPLITS:
        expected = render_split(SMALL, split)  # the module's own name still points at the real generator
        got = getattr(cached, split)
        assert np.array_equal(got.images.numpy(), expected.images)
        assert all(np.array_equal(g.numpy(), e) for g, e in zip(got.boxes, expected.boxes, strict=True))
        assert all(g.dtype == torch.float32 and g.shape[1] == 4 for g in got.boxes)
    assert cached.name == "digits" and cached.image_size == (96, 96) and cached.channels == 3
    assert (len(cached.train), len(cached.val), len(cached.test)) == (40, 10, 10)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "spec"])
def test_corrupt_cache_is_named_and_regenerated(tmp_path: Path, damage: str) -> None:
    fresh = load_digits_detection(SMALL, tmp_path)
    folder = tmp_path / f"digits-{SMALL.key()}"
    target = folder / ("spec.json" if damage == "spec" else "data.safetensors")
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:1000])
    elif damage == "garbage":
        target.write_bytes(b"\x00not a safetensors file" * 10)
    else:
        target.write_text("{ broken")
    with pytest.warns(RuntimeWarning, match=rf"regenerating.*{target.name}"):
        again = load_digits_detection(SMALL, tmp_path)
    assert_same(fresh, again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(fresh, load_digits_detection(SMALL, tmp_path))  # the rewritten cache is sound


def test_spec_is_validated_and_hashed_by_content() -> None:
    with pytest.raises(ValueError, match="channels"):
        DigitsSpec(channels=2)
    with pytest.raises(ValueError, match="digit_height"):
        DigitsSpec(canvas=32)
    assert DigitsSpec(digits=[1, 5]) == DigitsSpec()  # type: ignore[arg-type]
    assert DigitsSpec(digits=[1, 5]).key() == DigitsSpec().key()  # type: ignore[arg-type]
    assert DigitsSpec(seed=1).key() != DigitsSpec().key()
