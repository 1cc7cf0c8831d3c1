"""The study's chart builders: every chart carries its title, axis titles and slider parameters."""

from __future__ import annotations

import altair as alt
import torch

from conftest import (
    CONFIG,
    bench_rows,
    capacity_rows,
    ceiling_rows,
    curve_rows,
    full_masks,
    results_table,
    sweep_frame,
    tiny_model,
)
from evosynth.book import charts
from evosynth.book.pages import dna as dna_page
from evosynth.book.pages import explorer as explorer_page
from evosynth.book.pages import generation as generation_page
from evosynth.study.capacity import AS_EVOLVED
from evosynth.task.dataset import DetectionSplit

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
        "speed": charts.speed_chart(bench_rows(), LONG_MACHINE_LINE),
        "ceiling": charts.ceiling_chart(ceiling_rows(), bench_rows(), "fast", LONG_MACHINE_LINE),
    }


# Longer than any machine seen so far (Emerald Rapids' line, 146 characters, drew an 808-px chart)
LONG_MACHINE_LINE = ("Intel(R) Xeon(R) Platinum 8592+ Processor, 2 cores; avx2, avx512f, avx512_bf16, avx512_fp16, "
                     "amx_bf16, amx_int8; no amx_fp16, 2 threads, load average 1.8 before, 1.8 after")


def test_no_subtitle_line_is_wider_than_the_page_whatever_machine_measured_it(lineage):
    for name, chart in chart_gallery(lineage).items():
        subtitle = chart.to_dict()["title"]
        lines = [] if isinstance(subtitle, str) else subtitle.get("subtitle", [])
        lines = [lines] if isinstance(lines, str) else lines
        assert all(len(line) <= charts.SUBTITLE_CHARACTERS for line in lines), (name, lines)
        if name in ("speed", "ceiling"):
            assert " ".join(lines).endswith(LONG_MACHINE_LINE.split(", ")[-1])  # wrapped, nothing cut


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
