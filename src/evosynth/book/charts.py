"""Altair charts of the study: each takes a DataFrame from a page module (``evosynth.book.pages``) or from the
study (``report``, ``sweep``, ``capacity``) and returns a titled chart whose axes name their units, readable
without the code that made it.

Charts with sliders bind Vega-Lite parameters to range inputs and filter data precomputed in Python, so they
work in the static book (no kernel). Call ``evosynth.book.offline.enable_offline_altair()`` before showing them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import altair as alt
import pandas as pd

from evosynth.study.paper import PAPER_TOLERANCE_POINTS

# A subtitle line longer than this is wrapped: a line is as wide as its text whatever the chart, and the machine line
# (CPU name and flags) differs in length between machines; 100 characters of Vega's subtitle font stay inside the
# book's 740-px text column.
SUBTITLE_CHARACTERS = 100
# one colour per meaning, the same on every page
PARENT_COLOR = "#9e9e9e"
CHILD_COLOR = "#1f77b4"
KEPT_COLOR = "#1f77b4"
REMOVED_COLOR = "#d62728"
TRUTH_COLOR = "#2ca02c"
DETECTION_COLOR = "#ff7f0e"
QUALITY_COLORS = {"precision": "#1f77b4", "recall": "#ff7f0e", "AP50": "#2ca02c"}
ENVIRONMENT_COLORS = {"cost": "#2ca02c", "budget": "#1f77b4", "multiplicative": "#ff7f0e"}
SERIES_COLORS = {"P(.|W) (DNA)": "#616161", "P(S_g), budget": ENVIRONMENT_COLORS["budget"],
                 "P(S_g), multiplicative": ENVIRONMENT_COLORS["multiplicative"],
                 "P(S_g), cost": ENVIRONMENT_COLORS["cost"]}


def titled(text: str, subtitle: str | Sequence[str] | None = None) -> alt.Title:
    """A chart title whose subtitle lines are wrapped at ``SUBTITLE_CHARACTERS``, so that no text a measurement
    writes (a CPU's name, its flags) makes a chart wider than the page."""
    if not subtitle:
        return alt.Title(text)
    lines = [subtitle] if isinstance(subtitle, str) else list(subtitle)
    return alt.Title(text, subtitle=[part for line in lines for part in textwrap.wrap(line, SUBTITLE_CHARACTERS)])


def _layer_order(frame: pd.DataFrame) -> list[str]:
    """Layer labels in data-flow order (by ``layer_index``)."""
    return list(frame.sort_values("layer_index")["layer"].drop_duplicates())


def law_chart(frame: pd.DataFrame) -> alt.Chart:
    """The synapse law P(s=1|w) = exp(|w|/Z - 1) (``pages.dna.law_frame``)."""
    return (
        alt.Chart(frame, title=titled("The synaptic DNA: P(s=1|w) = exp(|w|/Z − 1)",
                                      subtitle="Z: the layer's largest surviving |w|"))
        .mark_line(strokeWidth=3)
        .encode(
            x=alt.X("relative_strength:Q", title="relative strength |w| / Z (unitless)"),
            y=alt.Y("probability:Q", title="probability the synapse is inherited", scale=alt.Scale(domain=[0, 1])),
            tooltip=[alt.Tooltip("relative_strength:Q", format=".2f"), alt.Tooltip("probability:Q", format=".3f")],
        )
        .properties(width=320, height=160)
    )


def histogram_chart(
    frame: pd.DataFrame,
    title: str,
    x_title: str,
    y_title: str = "count",
    columns: int = 3,
    independent_x: bool = False,
    subtitle: str | None = None,
) -> alt.FacetChart:
    """Binned counts per layer (columns layer, layer_index, start, end, count; optional ``series`` coloured)."""
    tooltip = [
        "layer:N",
        alt.Tooltip("start:Q", format=".3g", title="from"),
        alt.Tooltip("end:Q", format=".3g", title="to"),
        "count:Q",
    ]
    if "series" in frame.columns:
        # several distributions per layer: outlines (steps), on a square-root scale so a spike does not hide the rest
        base = alt.Chart(frame).mark_line(interpolate="step-after", strokeWidth=2).encode(
            x=alt.X("start:Q", title=x_title),
            y=alt.Y("count:Q", title=f"{y_title} (sqrt scale)", scale=alt.Scale(type="sqrt")),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top", labelLimit=400),
                            scale=_series_scale(list(frame["series"].drop_duplicates()))),
            tooltip=["series:N", *tooltip],
        )
    else:
        base = alt.Chart(frame).mark_bar(binSpacing=0).encode(
            x=alt.X("start:Q", title=x_title, bin="binned"),
            x2="end:Q",
            y=alt.Y("count:Q", title=y_title),
            tooltip=tooltip,
        )
    chart = (
        base.properties(width=130, height=66)
        .facet(facet=alt.Facet("layer:N", sort=_layer_order(frame), title=None), columns=columns)
        .properties(title=titled(title, subtitle))
    )
    return chart.resolve_scale(x="independent", y="independent") if independent_x else chart.resolve_scale(
        y="independent"
    )


def _series_scale(series: list[str]) -> alt.Scale:
    """Fixed colours for the known probability series (DNA grey, environments as everywhere), else defaults."""
    if all(name in SERIES_COLORS for name in series):
        return alt.Scale(domain=series, range=[SERIES_COLORS[name] for name in series])
    return alt.Scale()


def _fraction_panels(base: alt.Chart, order: list[str]) -> tuple[alt.Chart, alt.Chart]:
    """Bars of the expected fraction of clusters and of synapses kept, per layer and environment model."""

    def panel(field: str, title: str) -> alt.Chart:
        return (
            base.mark_bar()
            .encode(
                # slanted: "head" and "whole network" overlap when level in a 250-pixel panel
                x=alt.X("layer:N", sort=order, title="layer (data flow →)",
                        axis=alt.Axis(labelAngle=-35, labelAlign="right")),
                xOffset=alt.XOffset("environment:N"),
                y=alt.Y(f"{field}:Q", title="expected fraction kept (0–1)", scale=alt.Scale(domain=[0, 1])),
                color=alt.Color("environment:N", title="environment model",
                                scale=alt.Scale(domain=list(ENVIRONMENT_COLORS),
                                                range=list(ENVIRONMENT_COLORS.values()))),
                tooltip=[
                    "environment:N", "layer:N", "alpha_synapse:Q", "alpha_cluster:Q",
                    alt.Tooltip(f"{field}:Q", format=".3f", title="expected fraction kept"),
                ],
            )
            .properties(width=250, height=220, title=title)
        )

    return panel("cluster_fraction", "Clusters (filters)"), panel("synapse_fraction", "Synapses (weights)")


def expected_fraction_chart(grid: pd.DataFrame) -> alt.HConcatChart:
    """Expected fraction kept per layer for one pair of alphas (a one-point ``pages.dna.expected_survivors_grid``)."""
    alpha_s, alpha_c = float(grid["alpha_synapse"].iloc[0]), float(grid["alpha_cluster"].iloc[0])
    clusters, synapses = _fraction_panels(alt.Chart(grid), _layer_order(grid))
    return alt.hconcat(clusters, synapses).properties(title=titled(
        "Expected share of the parent kept by one generation of synthesis",
        subtitle=f"α synapse = {alpha_s:g}, α cluster = {alpha_c:g}"))


SLIDER_STEP = 0.001  # fine enough to stop on any alpha a run uses (0.837)


def alpha_slider_chart(grid: pd.DataFrame, alpha_synapse: float, alpha_cluster: float) -> alt.HConcatChart:
    """Expected fraction of clusters and synapses kept per layer, every environment model, under two sliders.

    ``grid`` comes from ``pages.dna.expected_survivors_grid``; the sliders start at the given alphas (include them
    in the grid to start exactly there) and move in steps of 0.001, and the chart shows the precomputed grid
    point nearest to each slider, in the browser, so it needs no kernel.
    """
    def slider(name: str, label: str, values: list[float], start: float) -> alt.Parameter:
        nearest = min(values, key=lambda v: abs(v - start))
        return alt.param(name=name, value=nearest, bind=alt.binding_range(min=values[0], max=values[-1],
                                                                         step=SLIDER_STEP, name=label))

    synapse_param = slider("alpha_synapse", "α synapse ", sorted(grid["alpha_synapse"].unique()), alpha_synapse)
    cluster_param = slider("alpha_cluster", "α cluster ", sorted(grid["alpha_cluster"].unique()), alpha_cluster)
    base = alt.Chart(grid[["environment", "alpha_synapse", "alpha_cluster", "layer", "cluster_fraction",
                           "synapse_fraction"]].round(3))  # every grid point travels with the page, rounded
    base = (  # the grid point nearest to each slider
        base.transform_calculate(synapse_distance="abs(datum.alpha_synapse - alpha_synapse)")
        .transform_joinaggregate(synapse_nearest="min(synapse_distance)")
        .transform_filter("datum.synapse_distance <= datum.synapse_nearest + 1e-9")
        .transform_calculate(cluster_distance="abs(datum.alpha_cluster - alpha_cluster)")
        .transform_joinaggregate(cluster_nearest="min(cluster_distance)")
        .transform_filter("datum.cluster_distance <= datum.cluster_nearest + 1e-9")
    )
    clusters, synapses = _fraction_panels(base, _layer_order(grid))
    return (
        alt.hconcat(clusters, synapses)
        .add_params(synapse_param, cluster_param)
        .properties(title=titled("Expected share of the ancestor kept by one generation of synthesis",
                                 subtitle="move the sliders: α synapse and α cluster of F(α) (nearest grid "
                                          "point)"))
    )


def lineage_chart(sizes: pd.DataFrame) -> alt.HConcatChart:
    """Clusters and synapses per layer of a generation next to its parent's (``pages.generation.lineage_sizes``)."""
    networks = list(sizes["network"].drop_duplicates())
    colors = [PARENT_COLOR, CHILD_COLOR] if len(networks) == 2 else [CHILD_COLOR]
    order = _layer_order(sizes)

    def panel(field: str, title: str, y_title: str) -> alt.Chart:
        return (
            alt.Chart(sizes)
            .mark_bar()
            .encode(
                x=alt.X("layer:N", sort=order, title="layer (data flow →)", axis=alt.Axis(labelAngle=0)),
                xOffset=alt.XOffset("network:N", sort=networks),
                y=alt.Y(f"{field}:Q", title=y_title),
                color=alt.Color("network:N", sort=networks, title=None,
                                scale=alt.Scale(domain=networks, range=colors), legend=alt.Legend(orient="top")),
                tooltip=["network:N", "layer:N", alt.Tooltip(f"{field}:Q", format=",")],
            )
            .properties(width=250, height=220, title=title)
        )

    title = "What the offspring inherited, per layer" if len(networks) == 2 else "The ancestor's layers"
    return alt.hconcat(
        panel("clusters", "Clusters per layer", "clusters (output filters)"),
        panel("synapses", "Synapses per layer", "synapses (unmasked weights)"),
    ).properties(title=title)


def cluster_fate_chart(frame: pd.DataFrame) -> alt.Chart:
    """Every cluster of the parent, strongest first per layer, coloured by whether the offspring kept it."""
    fate = frame.assign(fate=frame["kept"].map({True: "inherited", False: "removed"}))
    return (
        alt.Chart(fate, title=titled(
            "Which of the parent's clusters survived",
            subtitle="each square is one output filter of the parent; left = highest P(c|W) in its layer"))
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("rank:O", title="cluster rank in its layer by inheritance probability (1 = most probable)",
                    axis=alt.Axis(labelAngle=0, values=[1, *range(10, int(fate["rank"].max()) + 1, 10)])),
            y=alt.Y("layer:N", sort=_layer_order(fate), title="layer"),
            color=alt.Color("fate:N", title=None, scale=alt.Scale(domain=["inherited", "removed"],
                                                                  range=[KEPT_COLOR, REMOVED_COLOR]),
                            legend=alt.Legend(orient="top")),
            tooltip=[
                "layer:N", "cluster:Q", "rank:Q", "fate:N",
                alt.Tooltip("probability:Q", format=".3f", title="P(c|W)"),
                alt.Tooltip("environment_probability:Q", format=".3f", title="P(S_g) after F(α)"),
                alt.Tooltip("strength:Q", format=".3g", title="summed |w|"),
                alt.Tooltip("synapses:Q", title="synapses in parent"),
                alt.Tooltip("synapses_kept:Q", title="synapses inherited"),
            ],
        )
        .properties(width=alt.Step(max(3, min(10, 520 // int(fate["rank"].max())))), height=alt.Step(22))
    )


def training_curve_chart(curve: pd.DataFrame, best_epoch: int | None = None) -> alt.HConcatChart:
    """Training loss and validation AP50 per epoch (``pages.generation.curve_frame``); a rule marks the kept epoch."""
    epoch_axis = alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d"))

    def panel(
        field: str, title: str, y_title: str, domain: list[float] | None = None
    ) -> alt.LayerChart | alt.FacetChart:
        scale = alt.Scale(domain=domain) if domain else alt.Scale(zero=False)
        line = alt.Chart(curve).mark_line(point=True).encode(
            x=epoch_axis, y=alt.Y(f"{field}:Q", title=y_title, scale=scale),
            tooltip=["epoch:Q", alt.Tooltip(f"{field}:Q", format=".4f")],
        )
        layers: list[alt.Chart] = [line]
        if best_epoch:
            marker = pd.DataFrame({"epoch": [best_epoch], "label": [f"kept: epoch {best_epoch}"]})
            layers.append(alt.Chart(marker).mark_rule(strokeDash=[4, 3], strokeWidth=2, color=DETECTION_COLOR)
                          .encode(x=epoch_axis, tooltip=["label:N"]))
        return alt.layer(*layers).properties(width=250, height=200, title=title)

    return alt.hconcat(
        panel("loss", "Training loss", "loss (coverage BCE + box smooth-L1)"),
        panel("val_ap50", "Validation AP50", "AP50 on the validation split (0–1)", [0, 1]),
    ).properties(title=titled("Training at FP32", subtitle="orange dashed line: the epoch that was kept"
                              if best_epoch else ""))


def log_weight_chart(frame: pd.DataFrame, smallest_normal: float, precision: str, columns: int = 3) -> alt.FacetChart:
    """Histogram of log10 |w| per layer with the format's smallest normal number marked."""
    import math

    rule = math.log10(smallest_normal)
    bars = alt.Chart().mark_bar(binSpacing=0).encode(
        x=alt.X("start:Q", bin="binned", title="log10 |w|  (|w| in weight units)"),
        x2="end:Q",
        y=alt.Y("count:Q", title="synapses"),
        tooltip=["layer:N", alt.Tooltip("start:Q", format=".2f"), alt.Tooltip("end:Q", format=".2f"), "count:Q"],
    )
    marker = alt.Chart().mark_rule(color=REMOVED_COLOR, strokeDash=[4, 3]).encode(x=alt.datum(rule))
    return (
        alt.layer(bars, marker, data=frame)
        .properties(width=130, height=80)
        .facet(facet=alt.Facet("layer:N", sort=_layer_order(frame), title=None), columns=columns)
        .resolve_scale(y="independent")
        .properties(title=titled(
            f"Stored {precision.upper()} weights per layer, on a log scale",
            subtitle=[f"red dashed line: smallest normal {precision.upper()} number ({smallest_normal:.3g}),",
                      "left of which the format keeps less relative precision"]))
    )


def detections_chart(frame: pd.DataFrame, columns: int = 4, size: int = 130,
                     title: str | alt.Title = "Detections on test images") -> alt.FacetChart:
    """Test images with ground-truth boxes and detections (``pages.generation.detections_frame``)."""
    width = float(frame.loc[frame["kind"] == "image", "x2"].max())
    height = float(frame.loc[frame["kind"] == "image", "y2"].max())
    x = alt.X("x1:Q", title="x (pixels)", scale=alt.Scale(domain=[0, width], nice=False))
    y = alt.Y("y1:Q", title="y (pixels)", scale=alt.Scale(domain=[0, height], nice=False, reverse=True))
    image = (
        alt.Chart()
        .transform_filter(alt.datum.kind == "image")
        .mark_image(aspect=False)
        .encode(x=x, x2="x2:Q", y=y, y2="y2:Q", url="url:N")
    )
    boxes = (
        alt.Chart()
        .transform_filter(alt.datum.kind != "image")
        .mark_rect(filled=False, strokeWidth=2)
        .encode(
            x=x, x2="x2:Q", y=y, y2="y2:Q",
            stroke=alt.Stroke("kind:N", title=None, scale=alt.Scale(domain=["ground truth", "detection"],
                                                                    range=[TRUTH_COLOR, DETECTION_COLOR]),
                              legend=alt.Legend(orient="top", symbolType="square")),
            tooltip=["image:N", "kind:N", alt.Tooltip("score:Q", format=".2f"),
                     alt.Tooltip("x1:Q", format=".0f"), alt.Tooltip("y1:Q", format=".0f"),
                     alt.Tooltip("x2:Q", format=".0f"), alt.Tooltip("y2:Q", format=".0f")],
        )
    )
    order = list(frame["image"].drop_duplicates())
    return (
        alt.layer(image, boxes, data=frame)
        .properties(width=size, height=size)
        .facet(facet=alt.Facet("image:N", sort=order, title=None), columns=columns)
        .properties(title=title)
    )


def _band(band: pd.DataFrame | None, x: alt.X, low: str, high: str, color: str, factor: float = 1.0) -> list[alt.Chart]:
    """The seed band of one panel (``pages.results.seed_band``: lowest to highest seed), or nothing for one seed."""
    if band is None:
        return []
    frame = band.assign(low=band[low] * factor, high=band[high] * factor)
    return [alt.Chart(frame).mark_area(opacity=0.2, color=color).encode(
        x=x, y="low:Q", y2="high:Q",
        tooltip=["generation:O", alt.Tooltip("low:Q", format=".4~g", title="lowest seed"),
                 alt.Tooltip("high:Q", format=".4~g", title="highest seed"), alt.Tooltip("seeds:Q")])]


def efficiency_chart(table: pd.DataFrame, title: str = "Synapses and compute, per generation",
                     band: pd.DataFrame | None = None) -> alt.HConcatChart:
    """The paper's Figure 2, with MACs in place of fps: synapses and multiply-accumulates per generation, with the
    seed band (``pages.results.seed_band``) behind them where other seeds ran.

    ``table`` is ``report.generations_table`` (or one run's rows of ``sweep.sweep_results``).
    """
    generation_axis = alt.X("generation:O", title="generation", axis=alt.Axis(labelAngle=0))
    synapses = (
        alt.Chart(table)
        .mark_bar(color=CHILD_COLOR)
        .encode(
            x=generation_axis,
            y=alt.Y("synapses:Q", title="synapses (unmasked weights)"),
            tooltip=["generation:O", alt.Tooltip("synapses:Q", format=","),
                     alt.Tooltip("synapse_reduction:Q", format=".2f", title="generation 1 ÷ this")],
        )
    )
    synapse_band = _band(band, generation_axis, "synapses_min", "synapses_max", PARENT_COLOR)
    macs = (
        alt.Chart(table)
        .transform_calculate(mega_macs="datum.macs / 1e6")
        .mark_line(point=True, color=DETECTION_COLOR)
        .encode(
            x=generation_axis,
            y=alt.Y("mega_macs:Q", title="multiply-accumulates per image (millions)", scale=alt.Scale(zero=True)),
            tooltip=["generation:O", alt.Tooltip("mega_macs:Q", format=".3f", title="MMACs"),
                     alt.Tooltip("mac_reduction:Q", format=".2f", title="generation 1 ÷ this")],
        )
    )
    mac_band = _band(band, generation_axis, "macs_min", "macs_max", DETECTION_COLOR, 1e-6)
    subtitle = ("this run; band: lowest to highest of the runs with other seeds "
                f"({int(band['seeds'].iloc[0])} seeds)" if band is not None else "this run")
    return alt.hconcat(
        alt.layer(*synapse_band, synapses).properties(width=250, height=190, title="Synapses"),
        alt.layer(*mac_band, macs).properties(width=250, height=190, title="Compute per inference"),
    ).properties(title=titled(title, subtitle=subtitle))


def own_network_chart(table: pd.DataFrame, title: str) -> alt.HConcatChart:
    """Any network's generations: synapses, compute and test accuracy (``pages.own_network.generations_frame``)."""
    generation_axis = alt.X("generation:O", title="generation", axis=alt.Axis(labelAngle=0))
    base = alt.Chart(table).properties(width=175, height=200)
    synapses = base.mark_bar(color=CHILD_COLOR).encode(
        x=generation_axis, y=alt.Y("synapses:Q", title="synapses"),
        tooltip=["generation:O", alt.Tooltip("synapses:Q", format=","),
                 alt.Tooltip("synapse_reduction:Q", format=".2f", title="generation 1 ÷ this")],
    ).properties(title="Synapses")
    macs = base.transform_calculate(mega_macs="datum.macs / 1e6").mark_line(point=True, color=DETECTION_COLOR).encode(
        x=generation_axis, y=alt.Y("mega_macs:Q", title="MACs per image (millions)", scale=alt.Scale(zero=True)),
        tooltip=["generation:O", alt.Tooltip("mega_macs:Q", format=".2f", title="MMACs"),
                 alt.Tooltip("mac_reduction:Q", format=".2f", title="generation 1 ÷ this")],
    ).properties(title="Compute per image")
    accuracy = base.mark_line(point=True, color=CHILD_COLOR).encode(
        x=generation_axis, y=alt.Y("accuracy:Q", title="test accuracy", scale=alt.Scale(domain=[0, 1])),
        tooltip=["generation:O", alt.Tooltip("accuracy:Q", format=".3f")],
    ).properties(title="Accuracy")
    return alt.hconcat(synapses, macs, accuracy).properties(title=title)


def quality_chart(table: pd.DataFrame, title: str = "Precision and recall per generation",
                  band: pd.DataFrame | None = None) -> alt.HConcatChart:
    """The paper's Figure 3: test precision and recall per generation at each generation's threshold chosen on
    validation data (AP50 dashed), on an axis that spans the scores (not 0 to 1, which flattens a drop of a few
    points), and beside it each one's change from generation 1 in points, with the paper's limit two points below
    (one-sided: a gain is a gain)."""
    quality = {"op_precision": "precision", "op_recall": "recall", "ap50": "AP50"}
    first = table.sort_values("generation").iloc[0]
    long = pd.concat([pd.DataFrame({"generation": table["generation"], "metric": name, "value": table[column],
                                    "change": 100 * (table[column] - first[column])})
                      for column, name in quality.items()], ignore_index=True)
    low, high = float(long["value"].min()), float(long["value"].max())
    margin = max(0.02, 0.1 * (high - low))
    encoding = dict(
        x=alt.X("generation:O", title="generation", axis=alt.Axis(labelAngle=0)),
        color=alt.Color("metric:N", title=None, scale=alt.Scale(domain=list(QUALITY_COLORS),
                                                                range=list(QUALITY_COLORS.values())),
                        legend=alt.Legend(orient="top")),
        strokeDash=alt.condition(alt.datum.metric == "AP50", alt.value([4, 3]), alt.value([1, 0])),
        tooltip=["generation:O", "metric:N", alt.Tooltip("value:Q", format=".3f"),
                 alt.Tooltip("change:Q", format="+.1f", title="change from generation 1 (points)")],
    )
    scores = alt.Chart(long).mark_line(point=True).encode(
        y=alt.Y("value:Q", title="score on the test split",
                scale=alt.Scale(domain=[max(0.0, low - margin), min(1.0, high + margin)], zero=False)),
        **encoding,
    ).properties(width=280, height=200, title="Scores")
    # the paper's rule is one-sided (no more than 2 points below generation 1; a gain is a gain): one limit, below
    limit = alt.Chart(pd.DataFrame({"change": [-PAPER_TOLERANCE_POINTS]})).mark_rule(
        color=PARENT_COLOR, strokeDash=[4, 3]).encode(y=alt.Y("change:Q", title="change from generation 1 (points)"))
    changes = alt.Chart(long).mark_line(point=True).encode(
        y=alt.Y("change:Q", title="change from generation 1 (points)"), **encoding,
    ).properties(width=280, height=200, title=["Change from generation 1", f"(dashed: {PAPER_TOLERANCE_POINTS:g} "
                                                                           "points below, the paper's limit)"])
    bands = [] if band is None else [
        alt.Chart(pd.concat([pd.DataFrame({"generation": band["generation"], "metric": name,
                                           "low": band[f"{column}_change_min"], "high": band[f"{column}_change_max"]})
                             for column, name in quality.items()], ignore_index=True))
        .mark_area(opacity=0.15).encode(x=encoding["x"], y="low:Q", y2="high:Q", color=encoding["color"])]
    subtitle = ["test split; precision and recall at each generation's threshold chosen on the validation "
                "split", "AP50 over all scores"]
    if band is not None:
        subtitle.append(f"bands: lowest to highest of {int(band['seeds'].iloc[0])} seeds, each against its own "
                        "generation 1")
    return alt.hconcat(scores, alt.layer(*bands, limit, changes)).properties(title=titled(title,
                                                                                        subtitle=subtitle))


def capacity_curve_chart(curve: pd.DataFrame, lineage: pd.DataFrame | None = None,
                         tolerance: float = PAPER_TOLERANCE_POINTS) -> alt.LayerChart:
    """How much network does the task need? AP50 of dense networks of the ancestor's shape at several width
    scales, trained from scratch to convergence, against their multiply-accumulates (``capacity.curve_table``: the
    mean over seeds, the band their range), and the ancestor's AP50 less ``tolerance`` points (dashed). ``lineage``
    (``report.generations_table``) adds the run's generations on the same axes."""
    frame = curve.assign(mega_macs=curve["macs"] / 1e6, network="dense, from scratch (mean over seeds)")
    reference = float(curve.loc[curve["scale"] == 1.0, "ap50"].iloc[0])
    x = alt.X("mega_macs:Q", title="multiply-accumulates per frame (millions, log scale)", scale=alt.Scale(type="log"))
    colors = alt.Color("network:N", title=None, legend=alt.Legend(orient="top"),
                       scale=alt.Scale(domain=["dense, from scratch (mean over seeds)", "the run's generations"],
                                       range=[PARENT_COLOR, CHILD_COLOR]))
    y = alt.Y("ap50:Q", title="AP50 on the test split", scale=alt.Scale(zero=False))
    band = alt.Chart(frame).mark_area(opacity=0.25, color=PARENT_COLOR).encode(
        x=x, y=alt.Y("ap50_low:Q", title="AP50 on the test split (band: lowest to highest seed)"), y2="ap50_high:Q")
    dense = alt.Chart(frame).mark_line(point=True).encode(
        x=x, y=y, color=colors,
        tooltip=[alt.Tooltip("scale:Q", title="width scale"), "widths:N",
                 alt.Tooltip("mega_macs:Q", format=".1f", title="MMACs"), alt.Tooltip("ap50:Q", format=".3f"),
                 alt.Tooltip("ap50_change:Q", format="+.1f", title="AP50 change from x1 (points)"),
                 alt.Tooltip("seeds:Q", title="seeds")])
    limit = alt.Chart(pd.DataFrame({"ap50": [reference - tolerance / 100]})).mark_rule(
        color=PARENT_COLOR, strokeDash=[4, 3]).encode(y=y)
    layers: list[alt.Chart] = [band, dense, limit]
    if lineage is not None:
        generations = lineage.assign(mega_macs=lineage["macs"] / 1e6, network="the run's generations")
        layers.append(alt.Chart(generations).mark_line(point=True, strokeDash=[2, 2]).encode(
            x=x, y=y, color=colors,
            tooltip=["generation:O", alt.Tooltip("mega_macs:Q", format=".1f", title="MMACs"),
                     alt.Tooltip("ap50:Q", format=".3f")]))
    return alt.LayerChart(layer=layers, width=520, height=280, title=titled(
        "How much network does this task need?",
        subtitle=["dense networks of the ancestor's shape, every width scaled, trained from scratch to convergence",
                  f"dashed: the ancestor's AP50 less {tolerance:g} points"]))


def capacity_chart(table: pd.DataFrame, *, evolved_label: str,
                   tolerance: float = PAPER_TOLERANCE_POINTS) -> alt.FacetChart:
    """Size or synthesis? Change in precision, recall and AP50 against generation 1 for each generation as evolved,
    trained on to convergence and rebuilt from scratch (``capacity.capacity_table``); the dashed line is ``tolerance``
    points below generation 1, the paper's one-sided limit.
    ``evolved_label`` is the table's ``network`` of each generation as the run bred it (``capacity.AS_EVOLVED``):
    its sizes name the panels."""
    evolved = table[table["network"] == evolved_label].set_index("generation")
    frame = table.assign(panel=[f"gen {g} as evolved: {evolved.at[g, 'synapse_reduction']:.1f}× fewer synapses, "
                                f"{evolved.at[g, 'mac_reduction']:.1f}× fewer MACs" for g in table["generation"]])
    order = list(dict.fromkeys(frame["network"]))
    bars = (
        alt.Chart()
        .transform_fold(["precision_score_change", "recall_change", "ap50_change"], as_=["key", "change"])
        .transform_calculate(metric="{'precision_score_change': 'precision', 'recall_change': 'recall', "
                                    "'ap50_change': 'AP50'}[datum.key]")
        .mark_bar()
        .encode(
            x=alt.X("network:N", title="network of the generation's widths", sort=order,
                    axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("metric:N", sort=list(QUALITY_COLORS)),
            y=alt.Y("change:Q", title="change against generation 1 (points)"),
            color=alt.Color("metric:N", title=None, scale=alt.Scale(domain=list(QUALITY_COLORS),
                                                                    range=list(QUALITY_COLORS.values())),
                            legend=alt.Legend(orient="top")),
            tooltip=["panel:N", "network:N", "widths:N", "metric:N", alt.Tooltip("change:Q", format="+.1f"),
                     alt.Tooltip("epochs:Q", title="epochs trained")],
        )
    )
    limit = alt.Chart().mark_rule(color=PARENT_COLOR, strokeDash=[4, 3]).encode(y=alt.datum(-tolerance))
    return (
        alt.layer(bars, limit)
        .properties(width=260, height=220)
        .facet(column=alt.Column("panel:N", title=None, sort=list(dict.fromkeys(frame["panel"]))), data=frame)
        .properties(title=titled("Size or synthesis? Accuracy against generation 1",
                                 subtitle=["as evolved (fixed budget), trained on to convergence, and the "
                                           "same widths trained from scratch to convergence",
                                           f"dashed: {tolerance:g} points below generation 1, the paper's "
                                           "limit"]))
    )


def sweep_chart(sweep: pd.DataFrame, start: float | None = None) -> alt.HConcatChart:
    """The alpha explorer: a slider over alpha_cluster picks the nearest run of the sweep (``sweep_results``).

    Left: synapses per generation of every run (grey) with the picked one highlighted; right: the picked run's
    precision and recall per generation. Works without a kernel.
    """
    alphas = sorted(sweep["alpha_cluster"].unique())
    low, high = alphas[0], alphas[-1] if len(alphas) > 1 else alphas[0] + 0.01
    pick = alt.param(name="alpha_pick", value=start if start is not None else alphas[len(alphas) // 2],
                     bind=alt.binding_range(min=low, max=high, step=0.01, name="α cluster (nearest run) "))
    labelled = sweep.assign(run=[f"α cluster {c:g}, α synapse {s:g}, {e}"
                                 for c, s, e in zip(sweep["alpha_cluster"], sweep["alpha_synapse"],
                                                    sweep["environment"], strict=True)])
    base = alt.Chart(labelled)
    nearest = (
        base.transform_calculate(distance="abs(datum.alpha_cluster - alpha_pick)")
        .transform_joinaggregate(nearest="min(distance)")
        .transform_filter("datum.distance <= datum.nearest + 1e-9")
    )
    generation_axis = alt.X("generation:O", title="generation", axis=alt.Axis(labelAngle=0))
    synapse_axis = alt.Y("synapses:Q", title="synapses (unmasked weights)")
    every_run = base.mark_line(color=PARENT_COLOR, opacity=0.5).encode(
        x=generation_axis, y=synapse_axis, detail="run:N", tooltip=["run:N", "generation:O", "synapses:Q"])
    picked = nearest.mark_line(point=True, color=CHILD_COLOR, strokeWidth=3).encode(
        x=generation_axis, y=synapse_axis, tooltip=["run:N", "generation:O", alt.Tooltip("synapses:Q", format=","),
                                                   alt.Tooltip("synapse_reduction:Q", format=".2f")])
    label = nearest.transform_filter("datum.generation == 1").mark_text(
        align="left", baseline="top", dx=4, dy=4, fontSize=12, fontWeight="bold", color=CHILD_COLOR
    ).encode(x=alt.value(0), y=alt.value(0), text="run:N")
    left = alt.layer(every_run, picked, label).properties(
        width=260, height=240, title="Synapses per generation (grey: all runs)")
    right = (
        nearest.transform_fold(["precision_score", "recall"], as_=["key", "value"])
        .transform_calculate(metric="datum.key == 'precision_score' ? 'precision' : 'recall'")
        .mark_line(point=True)
        .encode(
            x=generation_axis,
            y=alt.Y("value:Q", title="score on the test split (0–1)", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("metric:N", title=None, scale=alt.Scale(domain=["precision", "recall"],
                                                                    range=[QUALITY_COLORS["precision"],
                                                                           QUALITY_COLORS["recall"]]),
                            legend=alt.Legend(orient="top")),
            tooltip=["run:N", "generation:O", "metric:N", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=260, height=240, title="Precision and recall of the picked run")
    )
    return alt.hconcat(left, right).add_params(pick).properties(
        title=titled("The alpha explorer", subtitle="move the slider: the run whose α cluster is nearest is shown"))


def alpha_summary_chart(final: pd.DataFrame) -> alt.HConcatChart:
    """Final synapse reduction, MAC reduction and AP50 against alpha_cluster (``pages.explorer.final_generations``)."""
    x = alt.X("alpha_cluster:Q", title="α cluster", scale=alt.Scale(zero=False))

    def panel(field: str, title: str, y_title: str, color: str, domain: list[float] | None = None) -> alt.Chart:
        return (
            alt.Chart(final)
            .mark_line(point=alt.OverlayMarkDef(size=60, color=color), color=color)
            .encode(
                x=x,
                y=alt.Y(f"{field}:Q", title=y_title, scale=alt.Scale(domain=domain) if domain else alt.Scale()),
                detail="alpha_synapse:N",
                tooltip=["alpha_cluster:Q", "alpha_synapse:Q", "environment:N", "generation:Q",
                         alt.Tooltip(f"{field}:Q", format=".3f")],
            )
            .properties(width=160, height=180, title=title)
        )

    return alt.hconcat(
        panel("synapse_reduction", "Synapse reduction", "generation 1 ÷ last (times)", CHILD_COLOR),
        panel("mac_reduction", "MAC reduction", "generation 1 ÷ last (times)", DETECTION_COLOR),
        panel("ap50", "Final AP50", "AP50 on the test split (0–1)", TRUTH_COLOR, [0, 1]),
    ).properties(title=titled("Where each run of the sweep ends", subtitle="last generation of every run"))


def _with_quartile_rates(rows: pd.DataFrame, batch: int) -> pd.DataFrame:
    """The spread over rounds of timed rows: the quartiles of the latency as rates, ``fps_slow`` (the third
    quartile of the time) and ``fps_fast`` (the first)."""
    return rows.assign(fps_slow=batch * 1e3 / rows["q3_ms"], fps_fast=batch * 1e3 / rows["q1_ms"])


def speed_chart(bench_rows: pd.DataFrame, hardware: str, workload: str = "frame",
                title: str = "Measured inference speed, per generation (the paper's Figure 2)") -> alt.LayerChart:
    """The paper's Figure 2 speed axis, measured: frames (images) per second per generation and backend on one
    workload (by default whole 640×480 frames, the paper's unit).

    ``bench_rows`` is ``bench_record.bench_table(bench)``; ``hardware`` names the machine in the subtitle.
    """
    rows = bench_rows[bench_rows["workload"] == workload]
    first = rows.iloc[0]
    batch, size = int(first["batch_size"]), f"{int(first['width'])}×{int(first['height'])}"
    unit = "frames per second" if batch == 1 else "images per second"
    rows = _with_quartile_rates(rows, batch)
    base = alt.Chart(rows).encode(
        x=alt.X("generation:O", title="generation", axis=alt.Axis(labelAngle=0)),
        color=alt.Color("backend:N", title="backend", legend=alt.Legend(orient="bottom", columns=3)),
    )
    axis = f"{unit} (median, bars: quartiles)"
    line = base.mark_line(point=True).encode(
        y=alt.Y("throughput_fps:Q", title=axis, scale=alt.Scale(zero=True)),
        tooltip=["generation:O", "backend:N", alt.Tooltip("median_ms:Q", format=".3f", title="median ms"),
                 alt.Tooltip("q1_ms:Q", format=".3f", title="first quartile ms"),
                 alt.Tooltip("q3_ms:Q", format=".3f", title="third quartile ms"),
                 alt.Tooltip("throughput_fps:Q", format=",.0f", title=unit),
                 alt.Tooltip("speedup_vs_gen1:Q", format=".2f", title="speed-up vs gen 1"),
                 alt.Tooltip("mac_reduction:Q", format=".2f", title="MAC reduction vs gen 1")],
    )
    spread = base.mark_rule().encode(y=alt.Y("fps_slow:Q", title=axis), y2="fps_fast:Q")
    return alt.LayerChart(layer=[spread, line], width=520, height=260, title=titled(
        title, subtitle=[f"{size}, batch {batch}, every backend measured", hardware]))


def ceiling_chart(ceiling: pd.DataFrame, generations: pd.DataFrame, backend: str, hardware: str) -> alt.LayerChart:
    """How close does the evolution get to what the architecture allows? Frames per second on a whole frame against
    multiply-accumulates, on one backend: dense networks of the ancestor's structure at narrower widths (the ceiling,
    down to every group at the fewest channels) and the run's generations, all timed in the same rounds.

    ``ceiling`` is ``bench_record.ceiling_table``'s rows, ``generations`` ``bench_table``'s; both are filtered to
    ``backend`` and the frame here."""
    series = ["dense networks of the ancestor's structure", "the run's generations"]
    dense = ceiling[ceiling["backend"] == backend].assign(series=series[0], label=ceiling["network"])
    evolved = generations[(generations["backend"] == backend) & (generations["workload"] == "frame")]
    evolved = evolved.assign(series=series[1], label="generation " + evolved["generation"].astype(str))
    frame = _with_quartile_rates(pd.concat([dense, evolved], ignore_index=True), batch=1)
    frame = frame.assign(mega_macs=frame["macs"] / 1e6)
    x = alt.X("mega_macs:Q", title="multiply-accumulates per 640×480 frame (millions, log scale)",
              scale=alt.Scale(type="log"))
    y = alt.Y("throughput_fps:Q", title="frames per second (median; log scale)", scale=alt.Scale(type="log"))
    colors = alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=400),
                       scale=alt.Scale(domain=series, range=[PARENT_COLOR, CHILD_COLOR]))
    base = alt.Chart(frame).encode(x=x, color=colors)
    lines = base.mark_line(point=True).encode(
        y=y, detail="series:N",
        tooltip=["label:N", alt.Tooltip("mega_macs:Q", format=",.0f", title="MMACs"),
                 alt.Tooltip("throughput_fps:Q", format=",.0f", title="frames per second"),
                 alt.Tooltip("speedup_vs_gen1:Q", format=".2f", title="speed-up vs gen 1"),
                 alt.Tooltip("mac_reduction:Q", format=".1f", title="MAC reduction vs gen 1")])
    spread = base.mark_rule().encode(y=alt.Y("fps_slow:Q", title="frames per second (median; log scale)"),
                                     y2="fps_fast:Q")
    return alt.LayerChart(layer=[spread, lines], width=520, height=280, title=titled(
        "How close does the evolution get to what the architecture allows?",
        subtitle=[f"{backend}, one 640×480 frame, batch 1; bars: quartiles over rounds", hardware]))


def widths_chart(rows: pd.DataFrame) -> alt.LayerChart | alt.FacetChart:
    """The network shrinking: the filters each dependency group keeps per generation (``pages.results.width_rows``),
    shaded by their fraction of generation 1's."""
    order = list(rows["group"].drop_duplicates())
    x = alt.X("generation:O", title="generation", axis=alt.Axis(labelAngle=0))
    y = alt.Y("group:N", title=None, sort=order, axis=alt.Axis(labelLimit=220))
    tooltip = ["group:N", "generation:O", "filters:Q", alt.Tooltip("fraction:Q", format=".0%", title="of generation 1")]
    cells = alt.Chart(rows).mark_rect().encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("fraction:Q", title="of generation 1", scale=alt.Scale(domain=[0, 1], scheme="blues"),
                        legend=alt.Legend(format="%", orient="bottom", gradientLength=200)))
    numbers = alt.Chart(rows).mark_text(fontSize=10).encode(
        x=x, y=y, text="filters:Q", tooltip=tooltip,
        color=alt.condition(alt.datum.fraction > 0.55, alt.value("white"), alt.value("black")))
    return alt.layer(cells, numbers).properties(width=440, height=24 * len(order), title=titled(
        "The network shrinking, layer by layer",
        subtitle=["filters kept per dependency group (coupled channels: a convolution, its BatchNorm, residual",
                  "operands), in data-flow order; shade: the fraction of generation 1's"]))
