"""The study's chart builders and the pages' computations on tiny hand-made inputs: the numbers match the
library's math, the charts carry their titles, axis titles and slider parameters."""

import base64
import io
import re
import struct
import zlib

import altair as alt
import ipywidgets as widgets
import numpy as np
import pandas as pd
import pytest
import torch

from evosynth.book import charts, display
from evosynth.book.pages import dna as dna_page
from evosynth.book.pages import explorer as explorer_page
from evosynth.book.pages import generation as generation_page
from evosynth.book.pages import results as results_page
from evosynth.core.environment import Environment
from evosynth.core.genetics import cluster_probabilities, synapse_probabilities
from evosynth.storage.runs import Generation
from evosynth.study import capacity
from evosynth.study.capacity import AS_EVOLVED, capacity_table
from evosynth.study.config import RunConfig
from evosynth.study.evolution import offspring_of
from evosynth.task.dataset import DetectionSplit
from evosynth.task.model import Architecture, GridDetector, cost_model

CONFIG = RunConfig(preset="smoke", alpha_synapse=0.8, alpha_cluster=0.7, seed=3, generations=2)


def tiny_model(seed: int = 0, widths: tuple[int, ...] = (4, 6)) -> GridDetector:
    torch.manual_seed(seed)
    return GridDetector(Architecture(in_channels=1, widths=widths, strides=(2, 2)))


def full_masks(model: GridDetector) -> dict[str, torch.Tensor]:
    return {name: torch.ones_like(conv.weight, dtype=torch.bool) for name, conv in model.prunable_layers()}


def generation(number: int, model: GridDetector, masks: dict[str, torch.Tensor], **metrics) -> Generation:
    return Generation(number, model, masks, metrics, curve={})


@pytest.fixture(scope="module")
def lineage() -> tuple[Generation, Generation]:
    """A parent and the offspring the library synthesizes from it (no training: the synthesis is what matters)."""
    parent_model = tiny_model()
    parent = generation(1, parent_model, full_masks(parent_model))
    child_model, child_masks = offspring_of(parent, CONFIG, 2)
    return parent, generation(2, child_model, child_masks)


# ----------------------------------------------------------------------------------------------- pages: the DNA


def test_layer_labels():
    assert display.layer_label("backbone.0.conv.weight") == "conv 1"
    assert display.layer_label("backbone.3.conv.weight") == "conv 4"
    assert display.layer_label("head.weight") == "head"


@pytest.mark.parametrize("model_name", ["budget", "multiplicative"])
def test_expected_survivors_match_the_environment(model_name):
    model = tiny_model()
    masks = full_masks(model)
    environment = Environment(model_name, 0.8, 0.6)
    frame = dna_page.expected_survivors(model, masks, environment)
    layers = model.prunable_layers()
    assert list(frame["layer"]) == ["conv 1", "conv 2", "head"]

    input_keep = torch.ones(1, dtype=torch.float64)
    for (name, conv), row in zip(layers, frame.itertuples(), strict=True):
        weight = conv.weight.detach()
        synapse = environment.apply(synapse_probabilities(weight), "synapse").to(torch.float64)
        if name == "head.weight":
            cluster = torch.ones(weight.shape[0], dtype=torch.float64)  # the head's clusters are always kept
        else:
            cluster = environment.apply(cluster_probabilities(weight), "cluster").to(torch.float64)
        # a synapse survives with its own draw, its cluster and its input channel
        expected = (synapse * cluster[:, None, None, None] * input_keep[None, :, None, None]).sum()
        assert row.expected_clusters == pytest.approx(float(cluster.sum()))
        assert row.expected_synapses == pytest.approx(float(expected))
        assert row.synapses == weight.numel()
        input_keep = cluster


def test_budget_keeps_the_alpha_share_of_clusters():
    model = tiny_model(widths=(8, 8))
    frame = dna_page.expected_survivors(model, full_masks(model), Environment("budget", 0.9, 0.75), total=True)
    backbone = frame[frame["layer"].str.startswith("conv")]
    assert np.allclose(backbone["cluster_fraction"], 0.75)
    assert frame.iloc[-1]["layer"] == "whole network"
    assert frame.iloc[-1]["synapses"] == frame.iloc[:-1]["synapses"].sum()


def test_the_cost_environment_keeps_the_alpha_share_of_the_macs_on_the_dna_page():
    model = tiny_model(widths=(8, 12))
    frame = dna_page.expected_survivors(model, full_masks(model), Environment("cost", 0.9, 0.6))
    backbone = frame[frame["layer"].str.startswith("conv")]
    cost = cost_model(model.architecture)
    assert cost.cost(backbone["expected_clusters"].tolist()) == pytest.approx(0.6 * cost.cost([8, 12]), rel=1e-6)
    assert backbone["cluster_fraction"].nunique() == 2  # each layer cut by its share of the MACs


def test_expected_survivors_agree_with_sampled_offspring():
    """The expectation (before guards) is close to the mean of many real syntheses of the same parent."""
    model = tiny_model(widths=(6, 8))
    parent = generation(1, model, full_masks(model))
    expected = dna_page.expected_survivors(model, parent.masks, CONFIG.make_environment())
    counts = np.array([
        [int(m.sum()) for m in offspring_of(parent, CONFIG, number)[1].values()] for number in range(2, 202)
    ])
    assert counts.mean(axis=0) == pytest.approx(expected["expected_synapses"].to_numpy(), rel=0.1)


def test_expected_survivors_grid_covers_every_alpha_pair():
    model = tiny_model()
    grid = dna_page.expected_survivors_grid(model, full_masks(model), [0.5, 1.0], [0.25, 0.5, 1.0])
    assert len(grid) == 3 * 2 * 3 * (3 + 1)  # models x alpha_synapse x alpha_cluster x (layers + whole network)
    for environment in ("budget", "cost"):  # alpha = 1 keeps everything: all of the count, all of the cost
        full = grid[(grid["alpha_synapse"] == 1.0) & (grid["alpha_cluster"] == 1.0)
                    & (grid["environment"] == environment)]
        assert np.allclose(full["synapse_fraction"], 1.0) and np.allclose(full["cluster_fraction"], 1.0)


def test_alpha_grid_is_rounded_and_inclusive():
    grid = dna_page.alpha_grid(0.05, 1.0, 0.05)
    assert len(grid) == 20 and grid[0] == 0.05 and grid[-1] == 1.0 and 0.15 in grid
    assert dna_page.alpha_grid(including=(0.837, 0.15)) == sorted([*grid, 0.837])


def test_histograms_count_every_surviving_synapse():
    model = tiny_model()
    masks = full_masks(model)
    masks["head.weight"][0] = False
    weights = dna_page.weight_histograms(model, masks, bins=10)
    head = weights[weights["layer"] == "head"]
    assert head["count"].sum() == int(masks["head.weight"].sum())
    probabilities = dna_page.probability_histograms(model, masks, 0.9, 0.9)
    assert set(probabilities["series"]) == {"P(.|W) (DNA)", "P(S_g), budget", "P(S_g), multiplicative"}
    dna = probabilities[(probabilities["layer"] == "conv 2") & (probabilities["series"] == "P(.|W) (DNA)")]
    assert dna["count"].sum() == model.backbone[1].conv.weight.numel()


def test_strength_summary_and_law():
    model = tiny_model()
    summary = dna_page.strength_summary(model, full_masks(model))
    assert summary.iloc[-1]["layer"] == "whole network"
    # P(s=1|w) = exp(|w|/Z - 1) is increasing, so the median probability is the law at the median strength
    assert np.allclose(summary["median_probability"], np.exp(summary["median_relative_strength"] - 1), atol=1e-6)
    law = dna_page.law_frame(11)
    assert law["probability"].iloc[0] == pytest.approx(np.exp(-1)) and law["probability"].iloc[-1] == 1.0


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


# ----------------------------------------------------------------------------------------------- pages: results


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


def test_the_curve_table_averages_seeds_and_measures_change_against_the_ancestors_size():
    table = curve_rows().set_index("scale")
    assert list(table.index) == [0.5, 1.0, 2.0] and (table["seeds"] == 2).all()
    assert table.at[0.5, "ap50"] == pytest.approx(0.665) and table.at[0.5, "ap50_high"] == pytest.approx(0.67)
    assert table.at[0.5, "ap50_change"] == pytest.approx(-4.0)  # each seed against the same seed's x1
    assert table.at[2.0, "mac_fraction"] == 4.0
    spec = charts.capacity_curve_chart(curve_rows(), results_table()).to_dict()
    assert spec["layer"][1]["encoding"]["x"]["scale"]["type"] == "log"
    assert len(spec["layer"]) == 4  # band, dense networks, the ancestor's AP50 less the tolerance, the lineage


def test_capacity_table_and_chart_compare_each_network_with_generation_1():
    rows = capacity_rows()
    assert list(rows["network"]) == ["as evolved", "trained on", "from scratch"] * 2
    assert rows["ap50_change"].tolist() == pytest.approx([-2.0, -1.0, -3.0, -10.0, -6.0, -8.0])
    assert rows["op_recall_change"].tolist() == pytest.approx([-2.0, -1.0, -3.0, -10.0, -6.0, -8.0])
    assert rows["synapse_reduction"].tolist() == pytest.approx([4.0, 4.0, 1000 / 320, 10.0, 10.0, 1000 / 130])
    panels = charts.capacity_chart(rows, evolved_label=AS_EVOLVED).to_dict()["datasets"]
    labels = {row["panel"] for data in panels.values() for row in data}
    # a panel is named by its generation as evolved, not by each network's own size
    assert labels == {"gen 5 as evolved: 4.0× fewer synapses, 2.5× fewer MACs",
                      "gen 9 as evolved: 10.0× fewer synapses, 6.2× fewer MACs"}


def test_paper_comparison():
    comparison = results_page.paper_comparison(results_table()).set_index("quantity")["this run"]
    assert comparison["generations"] == 3
    assert comparison["synapse reduction, generation 1 ÷ last"] == 10.0
    validated = "change, last − generation 1 (threshold chosen on validation)"
    assert comparison[f"precision {validated}"] == pytest.approx(2.0)  # at each generation's own threshold
    assert comparison[f"recall {validated}"] == pytest.approx(-2.0)
    assert comparison["precision change at the fixed 0.5 threshold"] == pytest.approx(3.0)
    assert comparison["recall change at the fixed 0.5 threshold"] == pytest.approx(-3.0)
    speed = "inference speed-up (measured, whole frames, batch 1), last ÷ generation 1"
    assert comparison[speed] is None and comparison["frames per second, generation 1"] is None  # not benchmarked
    measured = results_page.paper_comparison(results_table(), (10.0, 25.0)).set_index("quantity")
    assert measured.loc[speed, "this run"] == 2.5 and measured.loc[speed, "paper (reported)"] == pytest.approx(37 / 7)
    assert measured.loc["frames per second, last generation", ["paper (reported)", "this run"]].tolist() == [37, 25]
    shown = display.for_display(results_page.paper_comparison(results_table()), index="quantity")
    assert shown.loc[speed, "this run"] == "not measured"
    assert shown.loc["generations", "paper (reported)"] == 13


def sweep_frame() -> pd.DataFrame:
    frames = []
    for alpha, final_synapses in ((0.6, 100), (0.9, 500)):
        run = results_table().assign(alpha_synapse=0.95, alpha_cluster=alpha, environment="budget")
        run.loc[2, "synapses"] = final_synapses
        frames.append(run)
    return pd.concat(frames, ignore_index=True)


def test_final_generations():
    final = explorer_page.final_generations(sweep_frame())
    assert list(final["alpha_cluster"]) == [0.6, 0.9]
    assert list(final["generation"]) == [3, 3]
    assert list(final["synapses"]) == [100, 500]


def test_for_display():
    frame = pd.DataFrame({"layer": ["conv 1"], "layer_index": [0], "value": [0.123456]})
    shown = display.for_display(frame)
    assert list(shown.columns) == ["value"] and shown.index.name is None
    assert shown.loc["conv 1", "value"] == 0.123
    assert display.for_display(frame, decimals=None).loc["conv 1", "value"] == 0.123456
    readable = display.for_display(results_table(), index="generation").columns
    assert "precision" in readable and "AP50" in readable and "precision_score" not in readable


def test_a_table_downloads_as_the_csv_it_came_from():
    table = results_table()
    link = display.csv_download(table, "generations.csv")._repr_html_()
    encoded = re.search(r'href="data:text/csv;base64,([^"]+)"', link).group(1)
    assert pd.read_csv(io.BytesIO(base64.b64decode(encoded))).equals(table.reset_index(drop=True))
    assert 'download="generations.csv"' in link


def test_live_controls_redraw_on_change():
    calls = []
    slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0)
    box = display.live_controls(lambda alpha: calls.append(alpha), alpha=slider)
    assert calls == []  # nothing is drawn before a slider moves
    slider_, hint, output = box.children
    assert slider_ is slider
    # nothing is captured into the Output widget while the cell runs (the headless hang, nbclient issue 312)
    assert output.outputs == () and output.msg_id == ""
    slider.value = 0.5 + 1e-16 * 2  # the frontend snapping the start onto its step grid: not a move
    assert calls == [] and hint.layout.display != "none"
    slider.value = 0.7
    assert calls == [0.7]
    assert hint.layout.display == "none"


# ----------------------------------------------------------------------------------------------- charts


def walk(spec):
    """Every dict in a Vega-Lite spec."""
    if isinstance(spec, dict):
        yield spec
        for value in spec.values():
            yield from walk(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from walk(value)


def positional_titles(spec: dict) -> list[tuple[str, object]]:
    """(field, title) of every x/y encoding that encodes a data field."""
    found = []
    for node in walk(spec):
        encoding = node.get("encoding")
        if isinstance(encoding, dict):
            for channel in ("x", "y"):
                channel_spec = encoding.get(channel)
                if isinstance(channel_spec, dict) and "field" in channel_spec:
                    found.append((channel_spec["field"], channel_spec.get("title")))
    return found


def chart_gallery(lineage) -> dict[str, alt.TopLevelMixin]:
    parent, child = lineage
    model, masks = parent.model, parent.masks
    grid = dna_page.expected_survivors_grid(model, masks, [0.5, 0.75, 1.0], [0.5, 0.75, 1.0])
    split = DetectionSplit(torch.zeros(1, 1, 16, 16, dtype=torch.uint8), [torch.tensor([[1.0, 1.0, 5.0, 5.0]])])
    curve = generation_page.curve_frame({"epochs": [1, 2], "loss": [1.0, 0.5], "val_ap50": [0.1, 0.2],
                               "learning_rate": [1e-3, 5e-4]})
    return {
        "law": charts.law_chart(dna_page.law_frame()),
        "weights": charts.histogram_chart(dna_page.weight_histograms(model, masks), "Strengths", "|w| (weight units)",
                                          independent_x=True),
        "probabilities": charts.histogram_chart(dna_page.probability_histograms(model, masks, 0.9, 0.8),
                                                "Probabilities", "probability (0–1)"),
        "slider": charts.alpha_slider_chart(grid, 0.74, 0.8),
        "one point": charts.expected_fraction_chart(grid[(grid["alpha_synapse"] == 1.0)
                                                         & (grid["alpha_cluster"] == 0.5)]),
        "lineage": charts.lineage_chart(generation_page.lineage_sizes(child, parent)),
        "fate": charts.cluster_fate_chart(generation_page.inheritance(parent, child, CONFIG)),
        "curve": charts.training_curve_chart(curve, 2),
        "log weights": charts.log_weight_chart(generation_page.log_weight_histograms(model, masks), 6.1e-5, "fp16"),
        "detections": charts.detections_chart(generation_page.detections_frame(child.model, split, [0], threshold=0.0)),
        "efficiency": charts.efficiency_chart(results_table()),
        "quality": charts.quality_chart(results_table()),
        "sweep": charts.sweep_chart(sweep_frame()),
        "summary": charts.alpha_summary_chart(explorer_page.final_generations(sweep_frame())),
        "capacity": charts.capacity_chart(capacity_rows(), evolved_label=AS_EVOLVED),
        "capacity curve": charts.capacity_curve_chart(curve_rows(), results_table()),
        "speed": charts.speed_chart(bench_rows(), "a CPU, 2 cores"),
    }


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


def test_the_speed_reported_is_the_deployers_choice_the_backend_fastest_on_the_last_generation():
    chosen = results_page.deployed_speedup(bench_rows(), "frame")
    assert chosen["backend"] == "fast" and chosen["speedup_vs_gen1"] == pytest.approx(2.5)
    first = results_page.first_generation_row(bench_rows(), "fast", "frame")
    assert first["throughput_fps"] == pytest.approx(100.0)
    spec = charts.speed_chart(bench_rows(), "a CPU").to_dict()
    assert [panel["title"] for panel in spec["hconcat"]] == ["640×480, batch 1", "96×96, batch 1"]
    line = spec["hconcat"][0]["layer"][1]
    assert line["encoding"]["y"]["title"] == "frames per second (median, bars: quartiles)"
    assert spec["hconcat"][0]["layer"][0]["encoding"]["y2"]["field"] == "fps_fast"  # the spread is drawn


def test_every_chart_is_titled_with_titled_axes(lineage):
    for name, chart in chart_gallery(lineage).items():
        spec = chart.to_dict()
        assert spec.get("title"), f"{name}: no title"
        titles = positional_titles(spec)
        assert titles, f"{name}: no positional encodings found"
        for field, title in titles:
            assert title, f"{name}: axis of {field!r} has no title"


def test_alpha_slider_chart_binds_two_range_sliders(lineage):
    parent, _ = lineage
    grid = dna_page.expected_survivors_grid(parent.model, parent.masks, dna_page.alpha_grid(including=[0.96]),
                                            dna_page.alpha_grid(including=[0.837]))
    with alt.data_transformers.disable_max_rows():  # as enable_offline_altair does for the page
        spec = charts.alpha_slider_chart(grid, 0.96, 0.837).to_dict()
    params = {p["name"]: p for p in spec["params"]}
    assert set(params) == {"alpha_synapse", "alpha_cluster"}
    assert params["alpha_synapse"]["bind"]["input"] == "range"
    assert params["alpha_synapse"]["value"] == 0.96 and params["alpha_cluster"]["value"] == 0.837  # the run's own
    assert params["alpha_cluster"]["bind"]["step"] <= 0.001
    assert params["alpha_cluster"]["bind"]["min"] == 0.05 and params["alpha_cluster"]["bind"]["max"] == 1.0
    transforms = [t for node in walk(spec) for t in node.get("transform", [])]
    distances = [t["calculate"] for t in transforms if "calculate" in t]
    assert any("alpha_synapse" in d for d in distances) and any("alpha_cluster" in d for d in distances)
    nearest = {a["as"] for t in transforms for a in t.get("joinaggregate", [])}
    assert {"synapse_nearest", "cluster_nearest"} <= nearest, "each slider shows its nearest grid point"


def test_sweep_chart_picks_the_nearest_run():
    spec = charts.sweep_chart(sweep_frame(), start=0.7).to_dict()
    (param,) = spec["params"]
    assert param["name"] == "alpha_pick" and param["value"] == 0.7
    assert param["bind"]["min"] == 0.6 and param["bind"]["max"] == 0.9
    transforms = [t for node in walk(spec) for t in node.get("transform", [])]
    assert any("joinaggregate" in t for t in transforms)
    assert any("alpha_pick" in t.get("calculate", "") for t in transforms)


def test_histogram_of_several_series_uses_fixed_colours_and_sqrt_scale():
    model = tiny_model()
    spec = charts.histogram_chart(dna_page.probability_histograms(model, full_masks(model), 0.9, 0.9),
                                  "Probabilities", "probability").to_dict()
    assert spec["facet"]["field"] == "layer"
    encoding = spec["spec"]["encoding"]
    assert encoding["y"]["scale"]["type"] == "sqrt"
    assert encoding["color"]["scale"]["range"][0] == charts.SERIES_COLORS["P(.|W) (DNA)"]


def test_slack_is_judged_at_the_curve_point_nearest_a_sixth_of_the_macs():
    rows = curve_rows()  # x0.5 holds a quarter of the MACs and loses 4 points
    assert "changes AP50 by -4.0 points" in results_page.slack_explanation(rows)
    assert "little slack" in results_page.slack_explanation(rows)
    flat = rows.assign(ap50_change=[-0.5, 0.0, 0.3])
    assert "the ancestor has slack" in results_page.slack_explanation(flat)
    assert "not measured" in results_page.slack_explanation(None)
