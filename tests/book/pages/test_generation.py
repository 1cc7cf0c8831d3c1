"""A generation page's computations on tiny hand-made inputs: what it shows is what the synthesis did."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch

from conftest import CONFIG, full_masks, generation, tiny_model
from evosynth.book import display
from evosynth.book.pages import generation as generation_page
from evosynth.study.config import RunConfig
from evosynth.task.dataset import DetectionSplit
from evosynth.task.model import Architecture, GridDetector

# ----------------------------------------------------------------------------------------------- pages: a generation


def test_inheritance_replays_the_offspring(lineage):
    parent, child = lineage
    fate = generation_page.inheritance(parent, child, CONFIG)
    for name, conv in child.model.prunable_layers():
        layer = fate[fate["layer"] == display.layer_label(name)]
        assert int(layer["kept"].sum()) == conv.weight.shape[0]
        assert int(layer["synapses_kept"].sum()) == int(child.masks[name].sum())
        assert sorted(layer["rank"]) == list(range(1, len(layer) + 1))
    assert fate[fate["layer"] == "head"]["kept"].all()


def test_the_fate_of_clusters_is_said_in_words_with_no_nan(lineage):
    parent, child = lineage
    fate = generation_page.inheritance(parent, child, CONFIG)
    removed, kept = int((~fate["kept"]).sum()), int(fate["kept"].sum())
    sentence = generation_page.fate_summary(fate)
    assert sentence.startswith(f"The {removed} removed clusters had a mean inheritance probability P(c|W) of ")
    assert f"the {kept} inherited clusters" in sentence and "nan" not in sentence
    assert generation_page.fate_summary(fate.assign(kept=True)).startswith("No cluster was removed; the ")


def test_inheritance_refuses_another_configuration(lineage):
    parent, child = lineage
    other = RunConfig(preset="smoke", alpha_synapse=0.3, alpha_cluster=0.3, seed=11)
    with pytest.raises(RuntimeError, match="does not reproduce"):
        generation_page.inheritance(parent, child, other)


def test_lineage_sizes(lineage):
    parent, child = lineage
    sizes = generation_page.lineage_sizes(child, parent)
    assert list(sizes["network"].unique()) == ["generation 1 (parent)", "generation 2"]
    ancestor_only = generation_page.lineage_sizes(parent, None)
    assert list(ancestor_only["network"].unique()) == ["generation 1"]
    assert ancestor_only["synapses"].sum() == sum(conv.weight.numel() for _, conv in parent.model.prunable_layers())


def test_precision_summary_bounds_the_fp16_rounding():
    model = tiny_model()
    with torch.no_grad():
        model.head.weight.fill_(1.0)
        model.head.weight[0, 0] = 2.0 ** -20  # subnormal in FP16
    summary = generation_page.precision_summary(model, full_masks(model), "fp16").set_index("layer")
    assert summary.loc["head", "max_rounding_error"] == pytest.approx(2.0 ** -11)  # half of FP16's spacing at 1
    assert summary.loc["head", "subnormal"] == 1
    assert summary.loc["head", "distinct_values"] == 2
    assert (generation_page.precision_summary(model, full_masks(model), "fp32")["max_rounding_error"] == 0).all()


def test_quality_comparison_and_side_by_side():
    model = tiny_model()
    metrics = {"precision_score": 0.8, "recall": 0.6, "ap50": 0.7, "precision": "fp16",
               "fp32": {"precision_score": 0.81, "recall": 0.6, "ap50": 0.69},
               "clusters": 15, "synapses": 100, "parameters": 120, "macs": 1000, "bytes_fp16": 240,
               "epochs": 5, "train_seconds": 1.23456}
    current = generation(2, model, full_masks(model), **metrics)
    quality = generation_page.quality_comparison(current).set_index("metric")
    assert quality.loc["precision", "change (points)"] == pytest.approx(-1.0)
    assert "FP16 (restricted)" in quality.columns
    table = generation_page.metrics_side_by_side(current, generation(1, model, full_masks(model), **metrics))
    assert list(table.columns) == ["generation 1 (parent)", "generation 2"]
    assert table.loc["synapses", "generation 2"] == 100 and isinstance(table.loc["synapses", "generation 2"], int)


def test_curve_frame():
    curve = {"epochs": [1, 2], "loss": [1.0, 0.5], "val_ap50": [0.1, 0.2], "learning_rate": [1e-3, 5e-4]}
    assert list(generation_page.curve_frame(curve).columns) == ["epoch", "loss", "val_ap50", "learning_rate"]


def test_png_bytes_round_trip():
    image = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)  # [C, H, W]
    png = display.png_bytes(image)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", png[16:26])
    assert (width, height, depth, color) == (5, 4, 8, 2)
    length = struct.unpack(">I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + length])
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(4, 1 + 5 * 3)
    assert (rows[:, 0] == 0).all()
    assert np.array_equal(rows[:, 1:].reshape(4, 5, 3), np.transpose(image, (1, 2, 0)))
    assert display.png_data_url(image[:1]).startswith("data:image/png;base64,")
    with pytest.raises(ValueError):
        display.png_bytes(np.zeros((2, 4, 4), dtype=np.uint8))


def test_detections_frame():
    model = GridDetector(Architecture(in_channels=3, widths=(4,), strides=(4,)))
    images = torch.randint(0, 255, (3, 3, 16, 16), dtype=torch.uint8)
    boxes = [torch.tensor([[1.0, 2.0, 9.0, 10.0]]), torch.zeros(0, 4), torch.tensor([[0.0, 0.0, 4.0, 4.0]])]
    frame = generation_page.detections_frame(model, DetectionSplit(images, boxes), [0, 2], threshold=0.0)
    assert list(frame["image"].unique()) == ["test image 0", "test image 2"]
    pictures = frame[frame["kind"] == "image"]
    assert len(pictures) == 2 and pictures["url"].str.startswith("data:image/png").all()
    assert (pictures["x2"] == 16).all()
    truths = frame[frame["kind"] == "ground truth"]
    assert truths[["x1", "y1", "x2", "y2"]].values.tolist() == [[1, 2, 9, 10], [0, 0, 4, 4]]
    assert (frame[frame["kind"] == "detection"]["score"] >= 0).all()
