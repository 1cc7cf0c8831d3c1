"""Altair charts of the comparison: each takes rows of ``compare.comparison_table`` (or ``compare.seed_summary``)
and returns a titled chart whose axes name their units, readable without the code that made it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

from evosynth.book.charts import titled
from evosynth.study.compare import METHOD_LABELS, QUALITY_COLUMNS, pareto_front

# one colour per method, the same in every chart of the comparison (none is used for another meaning)
METHOD_COLORS = {"evolution": "#1f77b4", "l1-filter": "#9467bd", "matched": "#e377c2", "imp": "#8c564b"}
FRONT_COLOR = "#000000"
LEGEND_BELOW = alt.Legend(orient="bottom", direction="vertical", labelLimit=500)  # long labels fit the column
COSTS = {  # column -> (short name, axis title, what it is, factor applied before plotting)
    "macs": ("MACs", "MACs per image (millions, log)", "MACs: multiply-accumulates one image costs", 1e-6),
    "synapses": ("synapses", "synapses (log scale)", "synapses: unmasked weights", 1.0),
    "latency_ms_frame": ("latency", "ms per 640×480 frame (log scale)",
                         "latency: measured median on one 640×480 frame, PyTorch eager FP32", 1.0),
}
QUANTITIES = {  # column -> (panel title, axis title); scores on a linear axis, synapses on a log axis
    **{key: (f"{label} on the test split", f"{label} (0–1)") for key, label in QUALITY_COLUMNS.items()},
    "synapses": ("synapses", "synapses (unmasked weights, log scale)"),
}


def _quantity_axis(quantity: str, field: str = "value") -> alt.Y:
    scale = alt.Scale(type="log") if quantity == "synapses" else alt.Scale(zero=False)
    return alt.Y(f"{field}:Q", title=QUANTITIES[quantity][1], scale=scale)


def _method_color(rows: pd.DataFrame) -> alt.Color:
    """Colour by lineage label; evolution runs of the reference take the method colours."""
    labels = list(rows["label"].drop_duplicates())
    colors = {METHOD_LABELS[method]: color for method, color in METHOD_COLORS.items()}
    if all(label in colors for label in labels):
        return alt.Color("label:N", title=None, scale=alt.Scale(domain=labels, range=[colors[x] for x in labels]),
                         legend=LEGEND_BELOW)
    return alt.Color("label:N", title=None, legend=LEGEND_BELOW)


def accuracy_cost_chart(rows: pd.DataFrame, cost: str = "macs") -> alt.FacetChart:
    """Precision, recall and AP50 against a cost (MACs, synapses or measured latency), one line per lineage
    through its generations; black rings and the dashed black steps mark the Pareto front of all points drawn
    (nothing else is both cheaper and better)."""
    short, axis_title, meaning, factor = COSTS[cost]
    measured = rows[rows[cost].notna()]
    frames = []
    for quality, metric in QUALITY_COLUMNS.items():
        frame = measured.assign(metric=metric, value=measured[quality], cost=measured[cost] * factor,
                                pareto=pareto_front(measured, cost, quality))
        frames.append(frame[["label", "method", "generation", "metric", "value", "cost", "pareto"]])
    long = pd.concat(frames, ignore_index=True)
    x = alt.X("cost:Q", title=axis_title, scale=alt.Scale(type="log", nice=False))
    y = alt.Y("value:Q", title="score on the test split (0–1)", scale=alt.Scale(zero=False))
    tooltip = ["label:N", "generation:O", alt.Tooltip("cost:Q", format=".3~g", title=short),
               alt.Tooltip("value:Q", format=".3f", title="score")]
    lines = alt.Chart().mark_line(point=True, opacity=0.85).encode(
        x=x, y=y, color=_method_color(long), detail="label:N", order="generation:Q", tooltip=tooltip)
    front = alt.Chart().transform_filter(alt.datum.pareto)
    front_line = front.mark_line(interpolate="step-after", color=FRONT_COLOR, strokeDash=[4, 3]).encode(
        x=x, y=y, order="cost:Q")
    front_rings = front.mark_point(size=160, color=FRONT_COLOR, filled=False, strokeWidth=1.5).encode(
        x=x, y=y, tooltip=tooltip)
    return (
        alt.layer(lines, front_line, front_rings, data=long)
        .properties(width=160, height=200)
        .facet(column=alt.Column("metric:N", sort=list(QUALITY_COLUMNS.values()), title=None))
        .resolve_scale(y="independent")
        .properties(title=titled(
            f"Accuracy against {short}, generation by generation",
            subtitle=["each line: one lineage from its ancestor (right) to its last generation; " + meaning,
                      "black rings and dashed steps: the Pareto front (no other point is both cheaper and better)"]))
    )


def _grid(panels: Sequence[alt.Chart | alt.LayerChart | alt.FacetChart]) -> alt.VConcatChart:
    """Panels two by two, so that four fit the page's width."""
    return alt.vconcat(*(alt.hconcat(*panels[i : i + 2]) for i in range(0, len(panels), 2)))


def ablation_chart(rows: pd.DataFrame, varied: str, title: str, subtitle: str) -> alt.VConcatChart:
    """AP50, precision, recall and synapses per generation, one line per value of the ``varied`` column."""
    quantities = ["ap50", "precision_score", "recall", "synapses"]
    long = rows.melt(id_vars=["generation", varied, "label"], value_vars=quantities, var_name="quantity")
    long[varied] = long[varied].astype(str)
    draw = alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("generation:O", title="generation", axis=alt.Axis(labelAngle=0)),
        color=alt.Color(f"{varied}:N", title=varied, legend=alt.Legend(orient="top")),
        tooltip=["label:N", "generation:O", "quantity:N", alt.Tooltip("value:Q", format=".4~g")],
    )
    panels = [
        draw.transform_filter(alt.datum.quantity == quantity).encode(y=_quantity_axis(quantity))
        .properties(width=240, height=130, title=QUANTITIES[quantity][0])
        for quantity in quantities
    ]
    return _grid(panels).properties(title=titled(title, subtitle=subtitle))


def seed_band_chart(summary: pd.DataFrame, by: str | None = None, title: str | None = None) -> alt.VConcatChart:
    """Mean over seeds per generation (line) with the min–max range (band), from ``compare.seed_summary``; one
    coloured line and band per value of its ``by`` column if given."""
    seeds = int(summary["seeds"].max())
    generation = alt.X("generation:O", title="generation", axis=alt.Axis(labelAngle=0))
    tooltip = [*([f"{by}:N"] if by else []), "generation:O", alt.Tooltip("mean:Q", format=".4~g"),
               alt.Tooltip("min:Q", format=".4~g"), alt.Tooltip("max:Q", format=".4~g"), "seeds:Q"]
    colour: dict[str, alt.Color] = {}
    band_mark: dict[str, Any] = {"opacity": 0.25, "color": METHOD_COLORS["evolution"]}
    line_mark: dict[str, Any] = {"point": True, "color": METHOD_COLORS["evolution"]}
    if by:
        colour = {"color": alt.Color(f"{by}:N", title=by.replace("_", " "), legend=alt.Legend(orient="top"))}
        band_mark, line_mark = {"opacity": 0.2}, {"point": True}
    panels: list[alt.LayerChart | alt.FacetChart] = []
    for quantity in summary["quantity"].drop_duplicates():
        frame = summary[summary["quantity"] == quantity]
        band = alt.Chart(frame).mark_area(**band_mark).encode(
            x=generation, y=_quantity_axis(quantity, "min"), y2="max:Q", tooltip=tooltip, **colour)
        mean = alt.Chart(frame).mark_line(**line_mark).encode(
            x=generation, y=_quantity_axis(quantity, "mean"), tooltip=tooltip, **colour)
        panels.append(alt.layer(band, mean).properties(width=240, height=170, title=QUANTITIES[quantity][0]))
    return _grid(panels).properties(title=titled(
        title or f"The default run with {seeds} seeds", subtitle="line: mean over seeds; band: lowest to highest seed"))


def method_band_chart(band: pd.DataFrame, seeds: Sequence[int]) -> alt.LayerChart | alt.FacetChart:
    """AP50 against each lineage's generation 1 (points) per generation, one colour per method: the mean over seeds
    (line) and the lowest-to-highest seed (band), from ``pages.compare.band``."""
    methods = list(band["method"].drop_duplicates())
    labels = [METHOD_LABELS[method] for method in methods]
    colour = alt.Color("label:N", title=None, sort=labels,
                       scale=alt.Scale(domain=labels, range=[METHOD_COLORS[method] for method in methods]),
                       legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=500))
    x = alt.X("generation:Q", title="generation", axis=alt.Axis(tickMinStep=1, format="d"),
              scale=alt.Scale(domain=[1, int(band["generation"].max())], nice=False))
    tooltip = ["label:N", "generation:Q", alt.Tooltip("mean:Q", format="+.1f", title="mean (points)"),
               alt.Tooltip("min:Q", format="+.1f", title="lowest seed"),
               alt.Tooltip("max:Q", format="+.1f", title="highest seed")]
    area = alt.Chart(band).mark_area(opacity=0.18).encode(x=x, y="min:Q", y2="max:Q", color=colour, tooltip=tooltip)
    line = alt.Chart(band).mark_line(point=True).encode(
        x=x, y=alt.Y("mean:Q", title="AP50 − its generation 1 (points)"), color=colour, tooltip=tooltip)
    return alt.layer(area, line).properties(width=520, height=260, title=titled(
        "AP50 over the generations, evolution against pruning at the same widths",
        subtitle=[f"line: mean of seeds {', '.join(map(str, seeds))}; band: lowest to highest seed",
                  "each lineage against its own generation 1"]))
