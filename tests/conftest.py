"""Shared fixtures and factories: the session's smoke run, networks and generations made by hand, independent
recomputations of recorded figures, the tables pages receive, and image folders in Penn-Fudan's and COCO's formats.
Tests import the plain factories from here (``from conftest import ...``); fixtures arrive by name."""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import evosynth.study.evolution as evolution
from evosynth.cli import main
from evosynth.core.compaction import compact
from evosynth.paths import REPO_ROOT
from evosynth.storage.runs import Generation, RunFolder
from evosynth.study import capacity
from evosynth.study.capacity import capacity_table
from evosynth.study.config import RunConfig
from evosynth.study.evolution import evolve, load_task_data, offspring_of
from evosynth.task.dataset import SPLITS, DetectionData
from evosynth.task.imageset import ImageSetSpec
from evosynth.task.metrics import OperatingPoint, Quality, assess
from evosynth.task.model import Architecture, GridDetector, channel_graph, detector_input, trace_size
from evosynth.task.recipe import Recipe


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n 2`` (make test) each worker, and every program it starts (CLI runs, notebook kernels),
    computes on one thread: two workers of two OpenMP threads each on two cores stall each other's barriers."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = "1"
        torch.set_num_threads(1)


# Fixtures that train networks or run the study: a test that needs one (directly or through another fixture) is
# marked slow, and so is every test of the modules that start other programs (they carry their own mark).
TRAINING_FIXTURES = {"smoke_run", "run_dir", "comparison", "smoke_study", "finished_run", "tiny_full"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)

# -------------------------------------------------------------------------------------- the session's runs and the CLI


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated smoke data set shared by the whole session."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[RunConfig, Path]:
    """A finished 2-generation smoke run that tests may read but must not modify."""
    config = RunConfig(preset="smoke", generations=2, channel_multiple=1)  # see CONFIG
    out = tmp_path_factory.mktemp("runs") / "smoke"
    evolve(config, out, data_dir)
    return config, out


@pytest.fixture(scope="module")
def data(smoke_run, data_dir):
    config, _ = smoke_run
    return load_task_data(config, data_dir)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    """A 2-generation smoke run of this module's own: exporting and benchmarking write into it."""
    out = tmp_path_factory.mktemp("bench") / "run"
    evolve(RunConfig(preset="smoke", generations=2, channel_multiple=1), out, data_dir)  # see CONFIG
    return out


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str]) -> Callable[[Sequence[str]], tuple[int, str]]:
    """``evosynth <arguments>`` run in this process through the CLI's ``main``: its exit code (argparse's usage
    errors included) and what it wrote to stderr. Saves the 2-3 s a subprocess spends importing torch."""
    def run(arguments: Sequence[str]) -> tuple[int, str]:
        capsys.readouterr()
        try:
            code = main(list(arguments))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        return code, capsys.readouterr().err
    return run


# ------------------------------------------------------------------------------- networks and generations made by hand


def tiny_model(seed: int = 0, widths: tuple[int, ...] = (4, 6)) -> GridDetector:
    torch.manual_seed(seed)
    return GridDetector(Architecture(in_channels=1, widths=widths, strides=(2, 2)))


def full_masks(model: GridDetector) -> dict[str, torch.Tensor]:
    return {name: torch.ones_like(conv.weight, dtype=torch.bool) for name, conv in model.prunable_layers()}


def generation(number: int, model: GridDetector, masks: dict[str, torch.Tensor], **metrics) -> Generation:
    """A generation in memory, its recipe that of a network of its widths (no pruning history)."""
    shape = tuple(detector_input(model, trace_size(model)).shape)
    recipe = Recipe("grid_detector", model.architecture.to_json(), shape)
    return Generation(number, model, masks, metrics, curve={}, recipe=recipe)


# unrounded: the tiny test networks are narrower than two channel blocks
CONFIG = RunConfig(preset="smoke", alpha_synapse=0.8, alpha_cluster=0.7, seed=3, generations=2, channel_multiple=1)


@pytest.fixture(scope="module")
def lineage() -> tuple[Generation, Generation]:
    """A parent and the offspring the library synthesizes from it (no training: the synthesis is what matters)."""
    parent_model = tiny_model()
    parent = generation(1, parent_model, full_masks(parent_model))
    child_model, child_masks, _ = offspring_of(parent, CONFIG, 2)
    return parent, generation(2, child_model, child_masks)


def compacted(model: GridDetector, decisions: dict, size: tuple[int, int] = (32, 32)
              ) -> tuple[GridDetector, dict[str, torch.Tensor]]:
    """The detector cut by per-layer decisions, as the evolution cuts it (its graph traced at ``size``)."""
    offspring = compact(channel_graph(model, size), decisions)
    assert isinstance(offspring.model, GridDetector)
    return offspring.model, offspring.masks


def detector(seed: int = 0) -> GridDetector:
    torch.manual_seed(seed)
    return GridDetector(Architecture(in_channels=3, widths=(6, 8, 10), strides=(2, 2, 1)))


def trained_looking_model() -> GridDetector:
    torch.manual_seed(0)
    model = GridDetector(Architecture(3, (8, 16, 16), (2, 2, 1)))
    with torch.no_grad():  # non-trivial BatchNorm statistics, so removed channels would show if mishandled
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


# --------------------------------------------------------------------- figures recomputed independently of the records


IMAGE_SIZE = (48, 48)  # the smoke preset's canvas


QUALITY_KEYS = ("precision_score", "recall", "ap50")


def fingerprint(model: GridDetector, split) -> Quality:
    """A stand-in for ``evaluate``: three numbers that change with any weight of the model and with the split. On
    the smoke task the real detection quality is 0 everywhere, which pins nothing; a record's quality figure is
    told apart by measuring the generations with this instead."""
    values = torch.cat([t.detach().double().flatten() for t in model.state_dict().values() if t.is_floating_point()])
    return Quality(precision=float(values.sum()), recall=float(values.abs().sum()),
                   ap50=float(values.square().sum() + split.images.double().mean()))


def fingerprint_assessment(model: GridDetector, validation, test) -> tuple[Quality, OperatingPoint]:
    """A stand-in for ``assess``: the test split's ``fingerprint`` and the real operating point."""
    return fingerprint(model, test), assess(model, validation, test)[1]


def fingerprinted(patch: pytest.MonkeyPatch) -> None:
    """Measure generations with ``fingerprint`` (the FP32 figure and the restricted one)."""
    patch.setattr(evolution, "evaluate", fingerprint)
    patch.setattr(evolution, "assess", fingerprint_assessment)


def quality_of(metrics: dict) -> tuple[float, float, float]:
    return tuple(metrics[key] for key in QUALITY_KEYS)


def as_tuple(quality: Quality) -> tuple[float, float, float]:
    return quality.precision, quality.recall, quality.ap50


def clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def model_with(state: dict[str, torch.Tensor], architecture) -> GridDetector:
    model = GridDetector(architecture)
    model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()})
    return model


def counted_macs(model: GridDetector, image_size: tuple[int, int]) -> int:
    """Multiply-accumulates counted on a real forward pass (hooks on every conv), not by ``count_macs``."""
    macs = 0

    def hook(layer, _inputs, output):
        nonlocal macs
        kh, kw = layer.kernel_size
        macs += output[0].numel() * (layer.in_channels // layer.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            copy.deepcopy(model).eval()(torch.zeros(1, model.architecture.in_channels, *image_size))
    finally:
        for handle in handles:
            handle.remove()
    return macs


def read(path: Path):
    return json.loads(path.read_text())


def fp32_ancestor_folder(smoke_out: Path, config: RunConfig) -> RunFolder:
    return RunFolder(smoke_out.parent / "ancestors" / replace(config, precision="fp32").ancestor_name)


# ------------------------------------------------------------------------------------ tables as the pages receive them


def results_table() -> pd.DataFrame:
    return pd.DataFrame({
        "generation": [1, 2, 3], "synapses": [1000, 400, 100], "macs": [5e6, 2e6, 1e6],
        "precision_score": [0.80, 0.81, 0.83], "recall": [0.70, 0.69, 0.67], "ap50": [0.7, 0.7, 0.71],
        "op_precision": [0.78, 0.79, 0.80], "op_recall": [0.72, 0.71, 0.70], "op_threshold": [0.4, 0.45, 0.5],
        "synapse_reduction": [1.0, 2.5, 10.0], "mac_reduction": [1.0, 2.5, 5.0],
    })


def capacity_rows() -> pd.DataFrame:
    """Two generations as evolved, trained on and from scratch, against a 1,000-synapse ancestor."""
    def entry(ap50: float, synapses: int, macs: float) -> dict:
        return {"precision_score": ap50 + 0.01, "recall": ap50 - 0.01, "ap50": ap50, "synapses": synapses,
                "macs": macs, "widths": [4, 8], "epochs": 5, "train_seconds": 1.0,
                "operating_point": {"threshold": 0.5, "precision": ap50 + 0.02, "recall": ap50 - 0.02}}

    return capacity_table({
        "ancestor": entry(0.80, 1000, 100.0),
        "evolved": {"5": entry(0.78, 250, 40.0), "9": entry(0.70, 100, 16.0)},
        "generations": {"5": {"trained_on": entry(0.79, 250, 40.0), "from_scratch": entry(0.77, 320, 40.0)},
                        "9": {"trained_on": entry(0.74, 100, 16.0), "from_scratch": entry(0.72, 130, 16.0)}},
    })


def curve_rows() -> pd.DataFrame:
    """Three width scales, two seeds each: the ancestor's size (x1) is the reference."""
    networks = {f"x{scale:g}-seed{seed}": {"scale": scale, "seed": seed, "widths": widths, "macs": macs,
                                          "ap50": ap50 + 0.01 * seed, "precision_score": 0.8, "recall": 0.7,
                                          "epochs": 10}
                for scale, widths, macs, ap50 in ((0.5, [2, 4], 1e6, 0.66), (1.0, [4, 8], 4e6, 0.70),
                                                  (2.0, [8, 16], 16e6, 0.71))
                for seed in (0, 1)}
    return capacity.curve_table({"task": {}, "networks": networks})



def bench_rows() -> pd.DataFrame:
    """Two backends on two workloads: "slow-start" gains more from generation 1 to 2, "fast" runs generation 2
    faster (a deployer picks "fast")."""
    milliseconds = {("fast", 1): 10.0, ("fast", 2): 4.0, ("slow-start", 1): 40.0, ("slow-start", 2): 5.0}
    rows = []
    for workload, (batch, height, width) in {"frame": (1, 480, 640), "thumbnail": (1, 96, 96)}.items():
        scale = 1.0 if workload == "frame" else 0.05
        for (backend, generation), ms in milliseconds.items():
            first = milliseconds[backend, 1] * scale
            rows.append({"generation": generation, "backend": backend, "workload": workload, "batch_size": batch,
                         "height": height, "width": width, "macs": 100 // generation, "median_ms": ms * scale,
                         "q1_ms": ms * scale, "q3_ms": ms * scale, "throughput_fps": batch * 1e3 / (ms * scale),
                         "speedup_vs_gen1": first / (ms * scale), "mac_reduction": float(generation),
                         "speedup_per_mac_reduction": first / (ms * scale) / generation})
    return pd.DataFrame(rows)


def ceiling_rows() -> pd.DataFrame:
    """``bench_rows``'s ceiling: a dense network at half the widths and the floor, on each backend (the floor runs
    5x generation 1's speed on "fast")."""
    rows = []
    for backend, first in (("fast", 10.0), ("slow-start", 40.0)):
        for network, macs, ms in (("dense x0.5", 25, first / 3), ("dense, every group at 4", 10, first / 5)):
            rows.append({"network": network, "widths": [4], "backend": backend, "macs": macs, "median_ms": ms,
                         "q1_ms": ms, "q3_ms": ms, "throughput_fps": 1e3 / ms, "speedup_vs_gen1": first / ms,
                         "mac_reduction": 100 / macs})
    return pd.DataFrame(rows)


def sweep_frame() -> pd.DataFrame:
    frames = []
    for alpha, final_synapses in ((0.6, 100), (0.9, 500)):
        run = results_table().assign(alpha_synapse=0.95, alpha_cluster=alpha, environment="budget")
        run.loc[2, "synapses"] = final_synapses
        frames.append(run)
    return pd.concat(frames, ignore_index=True)


# -------------------------------------------------------------------- image folders in Penn-Fudan's and COCO's formats


WHITE = (255, 255, 255)


# The workplace's local copy of Penn-Fudan beside the checkout (../shared/data), wherever the checkout is;
# EVOSYNTH_PENNFUDAN overrides.
_SHARED_COPIES = [REPO_ROOT.parent / "shared", Path("/work/shared")]
REAL_PENNFUDAN = Path(os.environ.get("EVOSYNTH_PENNFUDAN") or next(
    (c / "data" / "PennFudanPed" for c in _SHARED_COPIES if (c / "data" / "PennFudanPed").is_dir()),
    _SHARED_COPIES[0] / "data" / "PennFudanPed"))


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


def instance_mask(width: int, height: int, boxes: list[tuple[int, int, int, int]]) -> Image.Image:
    """Penn-Fudan's kind of mask: each box filled with its 1-based number, the rest 0."""
    ids = np.zeros((height, width), np.uint8)
    for number, (x1, y1, x2, y2) in enumerate(boxes, 1):
        ids[y1:y2, x1:x2] = number
    return Image.fromarray(ids, mode="L")


def make_pennfudan(root: Path, photos: list = PHOTOS) -> Path:
    """A folder in Penn-Fudan's layout and annotation format (1-based inclusive box corners), with its masks."""
    for folder in ("PNGImages", "Annotation", "PedMasks"):
        (root / folder).mkdir(parents=True)
    for index, (width, height, boxes) in enumerate(photos):
        name = f"FakePed{index:05d}"
        draw(width, height, background(index), boxes).save(root / "PNGImages" / f"{name}.png")
        instance_mask(width, height, boxes).save(root / "PedMasks" / f"{name}_mask.png")
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


@pytest.fixture(scope="module")
def pennfudan_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pennfudan(tmp_path_factory.mktemp("fake") / "PennFudanPed")


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
