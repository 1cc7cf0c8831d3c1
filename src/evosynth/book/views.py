"""DataFrames for the study's notebooks: what the charts in ``evosynth.book.charts`` draw.

Everything here is computed from the library (the genetic encoding, the environment, the synthesis, the
metrics) so the notebooks only call functions and never repeat the model's logic.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from evosynth.core.environment import ENVIRONMENT_MODELS, Environment, Level
from evosynth.core.genetics import cluster_probabilities, cluster_strengths, synapse_probabilities
from evosynth.core.precision import precision_dtype
from evosynth.core.synthesis import LayerDecision
from evosynth.storage.runs import Generation
from evosynth.study.config import RunConfig
from evosynth.study.evolution import synthesis_decider
from evosynth.task.data import DetectionSplit
from evosynth.task.metrics import SCORE_THRESHOLD, predict
from evosynth.task.model import GridDetector

# The paper's own reported numbers (Parse-27k, Jetson TX1): quoted, never computed here.
PAPER_GENERATIONS = 13
PAPER_SYNAPSE_REDUCTION = 10.0  # "a ten-fold decrease in synapses"
PAPER_FPS = (7.0, 37.0)  # inference speed of generation 1 and generation 13, frames per second
PAPER_PRECISION_CHANGE_POINTS = 2.0  # "increase of ~2% in precision"
PAPER_RECALL_CHANGE_POINTS = -2.0  # "decrease ~2% in recall"


# --------------------------------------------------------------------------------------------------- layers


def layer_label(name: str) -> str:
    """A readable name for a prunable layer's state-dict key: ``backbone.0.conv.weight`` -> ``conv 1``."""
    parts = name.split(".")
    if parts[0] == "backbone" and len(parts) > 1 and parts[1].isdigit():
        return f"conv {int(parts[1]) + 1}"
    if parts[0] == "head":
        return "head"
    return name.removesuffix(".weight")


def _layers(model: GridDetector) -> list[tuple[int, str, torch.Tensor]]:
    return [(index, name, conv.weight.detach()) for index, (name, conv) in enumerate(model.prunable_layers())]


def layer_sizes(generation: Generation) -> pd.DataFrame:
    """Clusters (output filters) and synapses (unmasked weights) of every layer of one generation."""
    rows = [
        {
            "layer": layer_label(name),
            "layer_index": index,
            "clusters": int(weight.shape[0]),
            "synapses": int(generation.masks[name].sum()),
        }
        for index, name, weight in _layers(generation.model)
    ]
    return pd.DataFrame(rows)


def lineage_sizes(child: Generation, parent: Generation | None) -> pd.DataFrame:
    """``layer_sizes`` of a generation and (when it has one) its parent, labelled for a side-by-side chart."""
    frames = [] if parent is None else [layer_sizes(parent).assign(network=f"generation {parent.number} (parent)")]
    frames.append(layer_sizes(child).assign(network=f"generation {child.number}"))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------- the DNA


def _histogram(values: np.ndarray, bins: int, lo: float, hi: float) -> pd.DataFrame:
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return pd.DataFrame({"start": edges[:-1], "end": edges[1:], "count": counts})


def weight_histograms(model: GridDetector, masks: Mapping[str, torch.Tensor], bins: int = 40) -> pd.DataFrame:
    """Histogram of the surviving synapses' strengths |w| per layer (columns layer, start, end, count)."""
    frames = []
    for index, name, weight in _layers(model):
        strength = weight.abs()[masks[name].to(torch.bool)].numpy()
        top = float(strength.max()) if strength.size and strength.max() > 0 else 1.0
        frame = _histogram(strength, bins, 0.0, top)
        frame.insert(0, "layer", layer_label(name))
        frame.insert(1, "layer_index", index)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def probability_histograms(
    model: GridDetector,
    masks: Mapping[str, torch.Tensor],
    alpha_synapse: float,
    alpha_cluster: float,
    level: Level = "synapse",
    bins: int = 40,
) -> pd.DataFrame:
    """Histogram per layer of P(s=1|w) (or the cluster law), and of P(S_g) under each environment model.

    Column ``series`` is ``P(.|W) (DNA)`` or ``P(S_g), <model>``; bins span [0, 1]. Only surviving entries count.
    """
    frames = []
    for index, name, weight in _layers(model):
        mask = masks[name].to(torch.bool)
        if level == "synapse":
            dna, alive = synapse_probabilities(weight, mask), mask
        else:
            dna = cluster_probabilities(weight, mask)
            alive = mask.reshape(weight.shape[0], -1).any(dim=1)
        series = {"P(.|W) (DNA)": dna}
        for model_name in ENVIRONMENT_MODELS:
            series[f"P(S_g), {model_name}"] = Environment(model_name, alpha_synapse, alpha_cluster).apply(dna, level)
        for label, values in series.items():
            frame = _histogram(values[alive].numpy(), bins, 0.0, 1.0)
            frame.insert(0, "layer", layer_label(name))
            frame.insert(1, "layer_index", index)
            frame.insert(2, "series", label)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def strength_summary(model: GridDetector, masks: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Per layer (and for the whole network): largest |w| (Z), and the median relative strength |w|/Z of the
    surviving synapses with its inheritance probability P(s=1|w)."""
    rows, relative_all, probability_all = [], [], []
    for index, name, weight in _layers(model):
        mask = masks[name].to(torch.bool)
        strength = weight.abs()[mask]
        top = float(strength.max()) if strength.numel() else 0.0
        relative = strength / top if top > 0 else torch.zeros_like(strength)
        probability = synapse_probabilities(weight, mask)[mask]
        relative_all.append(relative)
        probability_all.append(probability)
        rows.append({"layer": layer_label(name), "layer_index": index, "synapses": int(mask.sum()),
                     "largest_weight": top, "median_relative_strength": float(relative.median()),
                     "median_probability": float(probability.median())})
    total_synapses = sum(int(mask.sum()) for mask in masks.values())
    largest = max(float(row["largest_weight"]) for row in rows)  # type: ignore[arg-type]
    rows.append({"layer": "whole network", "layer_index": len(rows), "synapses": total_synapses,
                 "largest_weight": largest,
                 "median_relative_strength": float(torch.cat(relative_all).median()),
                 "median_probability": float(torch.cat(probability_all).median())})
    return pd.DataFrame(rows)


def law_frame(points: int = 101) -> pd.DataFrame:
    """The synapse law P(s=1|w) = exp(|w|/Z - 1) against |w|/Z in [0, 1], computed by ``synapse_probabilities``."""
    relative = torch.linspace(0.0, 1.0, points)
    return pd.DataFrame({"relative_strength": relative.numpy(), "probability": synapse_probabilities(relative).numpy()})


def _layer_laws(
    model: GridDetector, masks: Mapping[str, torch.Tensor]
) -> list[tuple[int, str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per layer: index, name, synapse probabilities, cluster probabilities, alive clusters."""
    laws = []
    for index, name, weight in _layers(model):
        mask = masks[name].to(torch.bool)
        alive_clusters = mask.reshape(weight.shape[0], -1).any(dim=1)
        laws.append(
            (index, name, synapse_probabilities(weight, mask), cluster_probabilities(weight, mask), alive_clusters)
        )
    return laws


def _synapse_pairs(laws: list, environment: Environment) -> list[torch.Tensor]:
    """Per layer, P(S_g) of the synapses summed over the kernel: a float64 [out, in] matrix."""
    pairs = []
    for _, _, synapse_p, _, _ in laws:
        kept = environment.apply(synapse_p, "synapse").to(torch.float64)
        pairs.append(kept.reshape(kept.shape[0], kept.shape[1], -1).sum(dim=2))
    return pairs


def _cluster_keeps(laws: list, environment: Environment) -> list[torch.Tensor]:
    """Per layer, P(S_g) of each cluster (the head's alive clusters: 1, they are never removed)."""
    keeps = []
    for position, (_, _, _, cluster_p, alive_clusters) in enumerate(laws):
        if position == len(laws) - 1:
            keeps.append(alive_clusters.to(torch.float64))
        else:
            keeps.append(environment.apply(cluster_p, "cluster").to(torch.float64))
    return keeps


def _expected_rows(laws: list, pairs: list[torch.Tensor], keeps: list[torch.Tensor]) -> list[dict]:
    """Expected survivors per layer from ``_synapse_pairs`` and ``_cluster_keeps`` of one environment."""
    rows = []
    input_keep: torch.Tensor | None = None
    for (index, name, synapse_p, _, alive_clusters), per_pair, kept_cluster in zip(laws, pairs, keeps, strict=True):
        inputs = torch.ones(per_pair.shape[1], dtype=torch.float64) if input_keep is None else input_keep
        clusters, synapses = int(alive_clusters.sum()), int((synapse_p > 0).sum())
        expected_clusters, expected_synapses = float(kept_cluster.sum()), float(kept_cluster @ per_pair @ inputs)
        rows.append(
            {
                "layer": layer_label(name),
                "layer_index": index,
                "clusters": clusters,
                "synapses": synapses,
                "expected_clusters": expected_clusters,
                "expected_synapses": expected_synapses,
                "cluster_fraction": expected_clusters / clusters if clusters else 0.0,
                "synapse_fraction": expected_synapses / synapses if synapses else 0.0,
            }
        )
        input_keep = kept_cluster
    return rows


def expected_survivors(
    model: GridDetector, masks: Mapping[str, torch.Tensor], environment: Environment, total: bool = False
) -> pd.DataFrame:
    """Expected clusters and synapses of the offspring per layer, before the synthesis guards.

    A cluster survives with P(S_g) = F(alpha_cluster) applied to the cluster law (the head's clusters always do);
    a synapse survives when its own draw, its cluster and the cluster feeding its input all survive, so its
    expectation is P_s * P_c(own cluster) * P_c(input channel). ``total`` appends a ``whole network`` row.
    """
    laws = _layer_laws(model, masks)
    frame = pd.DataFrame(_expected_rows(laws, _synapse_pairs(laws, environment), _cluster_keeps(laws, environment)))
    if total:
        frame = _with_total(frame)
    return frame


def _with_total(frame: pd.DataFrame) -> pd.DataFrame:
    sums = frame[["clusters", "synapses", "expected_clusters", "expected_synapses"]].sum()
    total = {
        "layer": "whole network",
        "layer_index": int(frame["layer_index"].max()) + 1,
        "clusters": int(sums["clusters"]),
        "synapses": int(sums["synapses"]),
        "expected_clusters": float(sums["expected_clusters"]),
        "expected_synapses": float(sums["expected_synapses"]),
        "cluster_fraction": sums["expected_clusters"] / sums["clusters"],
        "synapse_fraction": sums["expected_synapses"] / sums["synapses"],
    }
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


def alpha_grid(start: float = 0.05, stop: float = 1.0, step: float = 0.05) -> list[float]:
    """Alpha values from ``start`` to ``stop`` inclusive, rounded so that sliders and filters agree."""
    count = int(round((stop - start) / step)) + 1
    return [round(start + i * step, 6) for i in range(count)]


def expected_survivors_grid(
    model: GridDetector,
    masks: Mapping[str, torch.Tensor],
    alphas_synapse: Sequence[float],
    alphas_cluster: Sequence[float],
    models: Sequence[str] = ENVIRONMENT_MODELS,
) -> pd.DataFrame:
    """``expected_survivors`` (with the whole-network row) for every environment model and pair of alphas."""
    laws = _layer_laws(model, masks)
    frames = []
    for model_name in models:
        pairs = {a: _synapse_pairs(laws, Environment(model_name, a, 1.0)) for a in alphas_synapse}
        keeps = {a: _cluster_keeps(laws, Environment(model_name, 1.0, a)) for a in alphas_cluster}
        for alpha_synapse in alphas_synapse:
            for alpha_cluster in alphas_cluster:
                frame = _with_total(pd.DataFrame(_expected_rows(laws, pairs[alpha_synapse], keeps[alpha_cluster])))
                frame.insert(0, "environment", model_name)
                frame.insert(1, "alpha_synapse", float(alpha_synapse))
                frame.insert(2, "alpha_cluster", float(alpha_cluster))
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------- one generation


def replay_synthesis(parent: Generation, config: RunConfig, number: int) -> dict[str, LayerDecision]:
    """The keep-decisions that produced generation ``number`` from ``parent``, replayed from the run's seed.

    The synthesis is a pure function of the parent's stored weights and (run seed, generation), so the replay is
    exact; ``inheritance`` checks it against the stored offspring.
    """
    return synthesis_decider(config)(parent, number)


def inheritance(parent: Generation, child: Generation, config: RunConfig) -> pd.DataFrame:
    """One row per cluster of the parent: its strength, P(c|W), P(S_g) and whether the child inherited it.

    Columns: layer, layer_index, cluster, rank (1 = most probable in its layer), strength, probability,
    environment_probability, kept, synapses (the parent's), synapses_kept. Raises ``RuntimeError`` when the
    replayed decisions do not reproduce the stored child (a run folder edited by hand, or another config).
    """
    decisions = replay_synthesis(parent, config, child.number)
    environment = config.make_environment()
    frames = []
    for index, name, weight in _layers(parent.model):
        mask = parent.masks[name].to(torch.bool)
        decision = decisions[name]
        kept_synapses = int(decision.synapse_mask.sum())
        if int(decision.cluster_keep.sum()) != child.masks[name].shape[0] or kept_synapses != int(
            child.masks[name].sum()
        ):
            raise RuntimeError(
                f"replaying generation {child.number}'s synthesis does not reproduce its layer {name}: "
                "the run folder does not match this configuration"
            )
        probability = cluster_probabilities(weight, mask)
        environment_probability = environment.apply(probability, "cluster")
        order = torch.argsort(probability, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(1, len(order) + 1)
        frames.append(
            pd.DataFrame(
                {
                    "layer": layer_label(name),
                    "layer_index": index,
                    "cluster": np.arange(weight.shape[0]),
                    "rank": rank.numpy(),
                    "strength": cluster_strengths(weight, mask).numpy(),
                    "probability": probability.numpy(),
                    "environment_probability": environment_probability.numpy(),
                    "kept": decision.cluster_keep.numpy(),
                    "synapses": mask.reshape(weight.shape[0], -1).sum(dim=1).numpy(),
                    "synapses_kept": decision.synapse_mask.reshape(weight.shape[0], -1).sum(dim=1).numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def curve_frame(curve: Mapping) -> pd.DataFrame:
    """A generation's training curve (``Generation.curve``) as one row per epoch."""
    return pd.DataFrame(
        {
            "epoch": curve["epochs"],
            "loss": curve["loss"],
            "val_ap50": curve["val_ap50"],
            "learning_rate": curve["learning_rate"],
        }
    )


def _half_spacing(values: torch.Tensor, precision: str) -> torch.Tensor:
    """Half the gap to the next representable value of ``precision`` at each |value|: the rounding error bound."""
    if precision == "fp32":
        return torch.zeros_like(values)
    dtype = precision_dtype(precision)
    magnitude = values.abs().to(dtype)
    step = torch.nextafter(magnitude, torch.full_like(magnitude, float("inf"))).to(torch.float32) - magnitude.to(
        torch.float32
    )
    return step / 2


def precision_summary(
    model: GridDetector, masks: Mapping[str, torch.Tensor], precision: str, measured: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Per layer: surviving synapses, distinct stored values, largest |w|, and the rounding-error bounds.

    ``max_rounding_error`` is the largest half-spacing of ``precision`` over the layer's stored weights: the most
    any weight can have moved when its FP32 value was rounded. ``measured_rounding_error`` is the largest change
    the restriction really made (from the generation's metrics, recorded before the FP32 values were dropped).
    ``subnormal`` counts weights below the format's smallest normal number, where relative precision is lost.
    """
    rows = []
    tiny = torch.finfo(precision_dtype(precision)).smallest_normal
    for index, name, weight in _layers(model):
        values = weight[masks[name].to(torch.bool)]
        bound = _half_spacing(values, precision)
        nonzero = values[values != 0].abs()
        rows.append(
            {
                "layer": layer_label(name),
                "layer_index": index,
                "synapses": int(values.numel()),
                "distinct_values": int(torch.unique(values).numel()),
                "largest_weight": float(values.abs().max()) if values.numel() else 0.0,
                "max_rounding_error": float(bound.max()) if values.numel() else 0.0,
                **({"measured_rounding_error": measured[name]} if measured and name in measured else {}),
                "max_relative_error": float((bound[values != 0] / nonzero).max()) if nonzero.numel() else 0.0,
                "subnormal": int((nonzero < tiny).sum()),
                "zero": int((values == 0).sum()),
            }
        )
    return pd.DataFrame(rows)


def log_weight_histograms(
    model: GridDetector, masks: Mapping[str, torch.Tensor], bins: int = 40, lo: float = -9.0, hi: float = 1.0
) -> pd.DataFrame:
    """Histogram of log10 |w| of the surviving nonzero synapses per layer (clipped to [lo, hi])."""
    frames = []
    for index, name, weight in _layers(model):
        values = weight[masks[name].to(torch.bool)].abs()
        values = values[values > 0]
        frame = _histogram(np.clip(np.log10(values.numpy()), lo, hi), bins, lo, hi)
        frame.insert(0, "layer", layer_label(name))
        frame.insert(1, "layer_index", index)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def quality_comparison(generation: Generation) -> pd.DataFrame:
    """Test precision, recall and AP50 after FP32 training and after the precision restriction."""
    metrics = generation.metrics
    restricted = metrics.get("precision", "restricted")
    rows = []
    for key, label in (("precision_score", "precision"), ("recall", "recall"), ("ap50", "AP50")):
        rows.append(
            {
                "metric": label,
                "FP32 (trained)": metrics["fp32"][key],
                f"{restricted.upper()} (restricted)": metrics[key],
                "change (points)": 100 * (metrics[key] - metrics["fp32"][key]),
            }
        )
    return pd.DataFrame(rows)


def metrics_side_by_side(child: Generation, parent: Generation | None) -> pd.DataFrame:
    """The generation's size, cost and test quality next to its parent's (one column per network)."""
    keys = {
        "clusters": "clusters",
        "synapses": "synapses",
        "parameters": "parameters",
        "macs": "MACs per image",
        "bytes_fp16": "FP16 weight bytes",
        "precision_score": "precision",
        "recall": "recall",
        "ap50": "AP50",
        "epochs": "training epochs",
        "train_seconds": "training time (s)",
    }
    columns = {} if parent is None else {f"generation {parent.number} (parent)": parent.metrics}
    columns[f"generation {child.number}"] = child.metrics
    def shown(value: object) -> object:
        return round(value, 4) if isinstance(value, float) else value

    values = {label: [shown(m[key]) for key in keys] for label, m in columns.items()}
    return pd.DataFrame(values, index=list(keys.values()), dtype=object)


# --------------------------------------------------------------------------------------------------- detections


def png_bytes(image: np.ndarray | torch.Tensor) -> bytes:
    """Encode a uint8 image ([C,H,W] or [H,W], C = 1 or 3) as PNG, with no imaging library."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
    if array.ndim == 2:
        color_type, rows = 0, array
    elif array.ndim == 3 and array.shape[2] == 3:
        color_type, rows = 2, array.reshape(array.shape[0], -1)
    else:
        raise ValueError(f"expected a [C,H,W] or [H,W] image with 1 or 3 channels, got shape {array.shape}")
    height, width = array.shape[:2]
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def png_data_url(image: np.ndarray | torch.Tensor) -> str:
    """``png_bytes`` as a ``data:`` URL, which a chart can show without any file or network."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def detections_frame(
    model: GridDetector, split: DetectionSplit, indices: Sequence[int], threshold: float = SCORE_THRESHOLD
) -> pd.DataFrame:
    """Test images with their ground truth and the model's detections at ``threshold``, ready to draw.

    One row per drawn thing: ``kind`` is ``image`` (url = PNG data URL, box = the whole canvas),
    ``ground truth`` or ``detection`` (score set); coordinates x1, y1, x2, y2 in pixels.
    """
    indices = [int(i) for i in indices]
    subset = DetectionSplit(split.images[indices], [split.boxes[i] for i in indices])
    detections = predict(model, subset)
    height, width = int(split.images.shape[2]), int(split.images.shape[3])
    rows: list[dict] = []
    for position, index in enumerate(indices):
        name = f"test image {index}"
        rows.append({"image": name, "kind": "image", "url": png_data_url(split.images[index]),
                     "x1": 0.0, "y1": 0.0, "x2": float(width), "y2": float(height), "score": None})
        for box in subset.boxes[position].tolist():
            rows.append({"image": name, "kind": "ground truth", "url": None,
                         "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3], "score": None})
        boxes, scores = detections[position]
        for box, score in zip(boxes.tolist(), scores.tolist(), strict=True):
            if score >= threshold:
                rows.append({"image": name, "kind": "detection", "url": None,
                             "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3], "score": score})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------- results


def run_summary(table: pd.DataFrame, run_name: str) -> str:
    """One Markdown paragraph of what a run achieved from its first to its last generation (from
    ``report.generations_table``): the numbers a page's prose would otherwise have to hard-code."""
    first, last = table.iloc[0], table.iloc[-1]

    def change(column: str) -> str:
        return f"{first[column]:.3f} → {last[column]:.3f} ({100 * (last[column] - first[column]):+.1f} points)"

    return (
        f"Run `{run_name}`, {len(table)} generations. Generation {int(last['generation'])} has "
        f"{int(last['synapses']):,} synapses ({last['synapse_reduction']:.1f}× fewer than generation 1) and costs "
        f"{last['macs'] / 1e6:.2f}M multiply-accumulates per image ({last['mac_reduction']:.1f}× fewer). "
        f"Precision {change('precision_score')}, recall {change('recall')}, AP50 {change('ap50')}."
    )


def best_speedup(bench_rows: pd.DataFrame, batch_size: int) -> pd.Series:
    """The last generation's row of the backend with the largest measured speed-up over generation 1."""
    rows = bench_rows[bench_rows["batch_size"] == batch_size]
    last = rows[rows["generation"] == rows["generation"].max()]
    return last.loc[last["speedup_vs_gen1"].idxmax()]


def paper_comparison(table: pd.DataFrame, measured_speedup: float | None = None) -> pd.DataFrame:
    """The paper's reported changes from generation 1 to its last, next to this run's (from ``generations_table``).

    The paper measured inference speed (fps on a Jetson TX1, TensorRT FP16); ``measured_speedup`` is this run's
    best batch-1 speed-up from ``bench.json`` (None when the run was not benchmarked). Rows hold None on the side
    that did not measure a quantity.
    """
    first, last = table.iloc[0], table.iloc[-1]
    rows = [
        ("generations", "count", PAPER_GENERATIONS, int(last["generation"])),
        ("synapse reduction, generation 1 ÷ last", "times", PAPER_SYNAPSE_REDUCTION, float(last["synapse_reduction"])),
        ("inference speed-up (measured, batch 1), last ÷ generation 1", "times", PAPER_FPS[1] / PAPER_FPS[0],
         measured_speedup),
        ("MAC reduction (multiply-accumulates per image), generation 1 ÷ last", "times", None,
         float(last["mac_reduction"])),
        ("precision change, last − generation 1", "points", PAPER_PRECISION_CHANGE_POINTS,
         100 * float(last["precision_score"] - first["precision_score"])),
        ("recall change, last − generation 1", "points", PAPER_RECALL_CHANGE_POINTS,
         100 * float(last["recall"] - first["recall"])),
    ]
    return pd.DataFrame(rows, columns=["quantity", "unit", "paper (reported)", "this run"], dtype=object)


def final_generations(sweep: pd.DataFrame) -> pd.DataFrame:
    """The last generation of every run of a sweep (``sweep_results``), sorted by alpha_cluster."""
    keys = ["environment", "alpha_synapse", "alpha_cluster"]
    last = sweep.loc[sweep.groupby(keys)["generation"].idxmax()]
    return last.sort_values(["alpha_cluster", "alpha_synapse"]).reset_index(drop=True)


def for_display(frame: pd.DataFrame, index: str = "layer", decimals: int | None = 3) -> pd.DataFrame:
    """A table as a reader sees it: indexed by ``index`` (unnamed), without the ordering column, floats rounded
    to ``decimals`` (None: as they are).

    Columns of mixed types (``object``) keep their ints; their floats are rounded too; None reads "not measured".
    """
    shown = frame.drop(columns=[c for c in ("layer_index",) if c in frame.columns and c != index])
    if index in shown.columns:
        shown = shown.set_index(index).rename_axis(None)
    if decimals is None:
        return shown
    numeric = shown.select_dtypes(include="number").columns
    shown[numeric] = shown[numeric].round(decimals)
    for column in shown.select_dtypes(include="object").columns:
        values = [
            "not measured" if value is None else round(value, decimals) if isinstance(value, float) else value
            for value in shown[column]
        ]
        shown[column] = pd.Series(values, index=shown.index, dtype=object)
    return shown


def live_controls(render: Callable[..., None], **controls: Any) -> Any:
    """Sliders (ipywidgets) above an output that ``render(**values)`` redraws whenever a slider moves.

    Nothing is written into the output until a slider moves, which only a connected frontend (JupyterLab) does:
    the hint is a separate label. Capturing printed output into an ``Output`` widget while a cell executes is the
    path on which headless execution (Papermill, nbval: nbclient's output-widget hooks) can wait for ever (nbclient
    issue 312), so a headless run only creates the widgets and stores their state. In the static book the sliders
    are inert; the page's Altair sliders are the ones that work without a kernel.
    """
    import ipywidgets as widgets

    hint = widgets.Label("Move a slider to redraw (needs a running kernel).")
    output = widgets.Output()

    def redraw(_: object = None) -> None:
        hint.layout.display = "none"
        with output:
            output.clear_output(wait=True)
            render(**{name: control.value for name, control in controls.items()})

    for control in controls.values():
        control.observe(redraw, names="value")
    return widgets.VBox([*controls.values(), hint, output])


def glue_values(**values: Any) -> None:
    """Store numbers for the page's prose (MyST-NB ``{glue:text}`key:format```), without displaying them."""
    from myst_nb import glue

    for key, value in values.items():
        glue(key, value, display=False)
