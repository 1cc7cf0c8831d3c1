"""The generation page (``notebooks/generation.md``): what one generation inherited from its parent (the
synthesis, replayed exactly), how it trained, what the precision restriction changed, and what it detects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from evosynth.book.display import COLUMN_LABELS, histogram, layer_label, png_data_url
from evosynth.book.pages.dna import layer_sizes, layer_weights
from evosynth.core.genetics import cluster_probabilities, cluster_strengths
from evosynth.core.precision import precision_dtype
from evosynth.core.synthesis import group_laws
from evosynth.storage.runs import Generation
from evosynth.study.config import RunConfig
from evosynth.study.evolution import synthesis_decider
from evosynth.task.dataset import DetectionSplit
from evosynth.task.metrics import SCORE_THRESHOLD, predict
from evosynth.task.model import Detector, channel_graph


def lineage_sizes(child: Generation, parent: Generation | None) -> pd.DataFrame:
    """``layer_sizes`` of a generation and (when it has one) its parent, labelled for a side-by-side chart."""
    frames = [] if parent is None else [layer_sizes(parent).assign(network=f"generation {parent.number} (parent)")]
    frames.append(layer_sizes(child).assign(network=f"generation {child.number}"))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------- inheritance


def inheritance(parent: Generation, child: Generation, config: RunConfig) -> pd.DataFrame:
    """One row per cluster of the parent: its strength, P(c|W), P(S_g) and whether the child inherited it. The
    synthesis is replayed: a pure function of the parent's stored weights and (run seed, generation).

    Columns: layer, layer_index, cluster, rank (1 = most probable in its layer), strength, probability,
    environment_probability, kept, synapses (the parent's), synapses_kept. Raises ``RuntimeError`` when the
    replayed decisions do not reproduce the stored child (a run folder edited by hand, or another config).
    """
    graph = channel_graph(parent.model)
    decisions = synthesis_decider(config)(graph, parent, child.number)
    laws = group_laws(graph, parent.masks)
    groups, kept = config.make_environment().group_environments(laws, graph.cost)
    group_probabilities = [environment.apply(law, "cluster") for environment, law in zip(groups, laws, strict=True)]
    frames = []
    for index, layer in enumerate(graph.layers):
        name, weight = layer.parameter, layer.weight.detach()
        mask = parent.masks[name].to(torch.bool)
        decision = decisions[name]
        own = cluster_probabilities(weight, mask)  # the law of outputs the graph keeps (the head's)
        probability = layer.spread(laws, False, own)
        environment_probability = layer.spread(group_probabilities, False, kept.apply(own, "cluster"))
        kept_synapses = int(decision.synapse_mask.sum())
        if int(decision.cluster_keep.sum()) != child.masks[name].shape[0] or kept_synapses != int(
            child.masks[name].sum()
        ):
            raise RuntimeError(
                f"replaying generation {child.number}'s synthesis does not reproduce its layer {name}: "
                "the run folder does not match this configuration"
            )
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


def fate_summary(fate: pd.DataFrame) -> str:
    """In words, for the clusters the child lost and those it inherited (``inheritance``): how many, their mean
    P(c|W) and their median rank in their layer; a kind with no cluster is said to have none."""
    parts = []
    for group, kept in (("removed", False), ("inherited", True)):
        clusters = fate[fate["kept"] == kept]
        if len(clusters):
            parts.append(f"the {len(clusters)} {group} clusters had a mean inheritance probability P(c|W) of "
                         f"{clusters['probability'].mean():.3f} and a median rank of {clusters['rank'].median():g} "
                         "in their layer")
        else:
            parts.append(f"no cluster was {group}")
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:]


# --------------------------------------------------------------------------------------------------- training


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


# --------------------------------------------------------------------------------------------------- precision


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
    model: Detector, masks: Mapping[str, torch.Tensor], precision: str, measured: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Per layer: surviving synapses, distinct stored values, largest |w|, and the rounding-error bounds.

    ``max_rounding_error`` is the largest half-spacing of ``precision`` over the layer's stored weights: the most
    any weight can have moved when its FP32 value was rounded. ``measured_rounding_error`` is the largest change
    the restriction really made (from the generation's metrics, recorded before the FP32 values were dropped).
    ``subnormal`` counts weights below the format's smallest normal number, where relative precision is lost.
    """
    rows = []
    tiny = torch.finfo(precision_dtype(precision)).smallest_normal
    for index, name, weight in layer_weights(model):
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
    model: Detector, masks: Mapping[str, torch.Tensor], bins: int = 40, lo: float = -9.0, hi: float = 1.0
) -> pd.DataFrame:
    """Histogram of log10 |w| of the surviving nonzero synapses per layer (clipped to [lo, hi])."""
    frames = []
    for index, name, weight in layer_weights(model):
        values = weight[masks[name].to(torch.bool)].abs()
        values = values[values > 0]
        frame = histogram(np.clip(np.log10(values.numpy()), lo, hi), bins, lo, hi)
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


# --------------------------------------------------------------------------------------------------- detections


def detections_frame(
    model: Detector, split: DetectionSplit, indices: Sequence[int], threshold: float = SCORE_THRESHOLD
) -> pd.DataFrame:
    """Test images with their ground truth and the model's detections at ``threshold``, ready to draw.

    One row per drawn thing: ``kind`` is ``image`` (url = PNG data URL, box = the whole canvas),
    ``ground truth`` or ``detection`` (score set); coordinates x1, y1, x2, y2 in pixels.
    """
    indices = [int(i) for i in indices]
    subset = split.subset(indices)
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


# --------------------------------------------------------------------------------------------------- next to its parent


def metrics_side_by_side(child: Generation, parent: Generation | None) -> pd.DataFrame:
    """The generation's size, cost and test quality next to its parent's (one column per network)."""
    keys = ("clusters", "synapses", "parameters", "macs", "bytes_fp16", "precision_score", "recall", "ap50",
            "epochs", "train_seconds")
    columns = {} if parent is None else {f"generation {parent.number} (parent)": parent.metrics}
    columns[f"generation {child.number}"] = child.metrics
    def shown(value: object) -> object:
        return round(value, 4) if isinstance(value, float) else value

    values = {label: [shown(m[key]) for key in keys] for label, m in columns.items()}
    return pd.DataFrame(values, index=[COLUMN_LABELS[key] for key in keys], dtype=object)
