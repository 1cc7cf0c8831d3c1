"""The synaptic DNA page (``notebooks/dna.md``): the ancestor's layers, the inheritance laws and what each
environment model expects to survive, computed from the library's genetic encoding and environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from evosynth.book.display import histogram, layer_label
from evosynth.core.environment import COST_MODEL, ENVIRONMENT_MODELS, LAYER_MODELS, Environment, Level
from evosynth.core.genetics import cluster_probabilities, synapse_probabilities
from evosynth.core.graph import ChannelGraph
from evosynth.core.synthesis import group_laws
from evosynth.storage.runs import Generation
from evosynth.task.model import Detector, channel_graph, trace_size


def layer_weights(model: Detector) -> list[tuple[int, str, torch.Tensor]]:
    """Index (data-flow order), weight name and detached weight of every synapse-carrying layer."""
    return [(index, layer.parameter, layer.weight.detach())
            for index, layer in enumerate(channel_graph(model, trace_size(model)).layers)]


def layer_sizes(generation: Generation) -> pd.DataFrame:
    """Clusters (output filters) and synapses (unmasked weights) of every layer of one generation."""
    rows = [
        {
            "layer": layer_label(name),
            "layer_index": index,
            "clusters": int(weight.shape[0]),
            "synapses": int(generation.masks[name].sum()),
        }
        for index, name, weight in layer_weights(generation.model)
    ]
    return pd.DataFrame(rows)


def weight_histograms(model: Detector, masks: Mapping[str, torch.Tensor], bins: int = 40) -> pd.DataFrame:
    """Histogram of the surviving synapses' strengths |w| per layer (columns layer, start, end, count)."""
    frames = []
    for index, name, weight in layer_weights(model):
        strength = weight.abs()[masks[name].to(torch.bool)].numpy()
        top = float(strength.max()) if strength.size and strength.max() > 0 else 1.0
        frame = histogram(strength, bins, 0.0, top)
        frame.insert(0, "layer", layer_label(name))
        frame.insert(1, "layer_index", index)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def probability_histograms(
    model: Detector,
    masks: Mapping[str, torch.Tensor],
    alpha_synapse: float,
    alpha_cluster: float,
    level: Level = "synapse",
    bins: int = 40,
) -> pd.DataFrame:
    """Histogram per layer of P(s=1|w) (or the cluster law), and of P(S_g) under each environment model.

    Column ``series`` is ``P(.|W) (DNA)`` or ``P(S_g), <model>``; bins span [0, 1]. Only surviving entries count.
    The cost environment decides clusters for the whole network: a layer's clusters are drawn with their group's
    P(S_g) (``_group_keeps``, the network's cost traced on a frame), its synapses under the budget model.
    """
    cost = Environment(COST_MODEL, alpha_synapse, alpha_cluster)
    graph = channel_graph(model)
    keeps = _group_keeps(graph, group_laws(graph, masks), cost) if level == "cluster" else []
    frames = []
    for (index, name, weight), layer in zip(layer_weights(model), graph.layers, strict=True):
        mask = masks[name].to(torch.bool)
        if level == "synapse":
            dna, alive = synapse_probabilities(weight, mask), mask
            costed = cost.apply(dna, "synapse")
        else:
            dna = cluster_probabilities(weight, mask)
            alive = mask.reshape(weight.shape[0], -1).any(dim=1)
            costed = layer.spread(keeps, False, alive.to(torch.float64))
        series = {"P(.|W) (DNA)": dna}
        for model_name in LAYER_MODELS:
            series[f"P(S_g), {model_name}"] = Environment(model_name, alpha_synapse, alpha_cluster).apply(dna, level)
        series[f"P(S_g), {COST_MODEL}"] = costed
        for label, values in series.items():
            frame = histogram(values[alive].numpy(), bins, 0.0, 1.0)
            frame.insert(0, "layer", layer_label(name))
            frame.insert(1, "layer_index", index)
            frame.insert(2, "series", label)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def strength_summary(model: Detector, masks: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Per layer (and for the whole network): largest |w| (Z), and the median relative strength |w|/Z of the
    surviving synapses with its inheritance probability P(s=1|w)."""
    rows, relative_all, probability_all = [], [], []
    for index, name, weight in layer_weights(model):
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


# --------------------------------------------------------------------------------------------------- expected survivors


def _layer_laws(
    graph: ChannelGraph, masks: Mapping[str, torch.Tensor]
) -> list[tuple[int, str, torch.Tensor, torch.Tensor]]:
    """Per layer: index, name, synapse probabilities, alive clusters."""
    laws = []
    for index, layer in enumerate(graph.layers):
        weight, mask = layer.weight.detach(), masks[layer.parameter].to(torch.bool)
        laws.append((index, layer.parameter, synapse_probabilities(weight, mask),
                     mask.reshape(weight.shape[0], -1).any(dim=1)))
    return laws


def _synapse_pairs(laws: list, environment: Environment) -> list[torch.Tensor]:
    """Per layer, P(S_g) of the synapses summed over the kernel: a float64 [out, in] matrix."""
    pairs = []
    for _, _, synapse_p, _ in laws:
        kept = environment.apply(synapse_p, "synapse").to(torch.float64)
        pairs.append(kept.reshape(kept.shape[0], kept.shape[1], -1).sum(dim=2))
    return pairs


def _group_keeps(graph: ChannelGraph, laws: list[torch.Tensor], environment: Environment) -> list[torch.Tensor]:
    """Per group of coupled channels, P(S_g) of each cluster: F(alpha) applied to the group's cluster law
    (``laws``: ``group_laws``; the cost environment decides each group's cut by the network's cost, traced on a
    frame)."""
    environments, _ = environment.group_environments(laws, graph.cost)
    return [group_environment.apply(law, "cluster").to(torch.float64)
            for group_environment, law in zip(environments, laws, strict=True)]


def _expected_rows(graph: ChannelGraph, laws: list, pairs: list[torch.Tensor], keeps: list[torch.Tensor]
                   ) -> list[dict]:
    """Expected survivors per layer: a cluster survives with its group's P(S_g) (the outputs the graph keeps
    always do), a synapse when its own draw, its cluster and the cluster feeding its input all survive."""
    rows = []
    for layer, (index, name, synapse_p, alive_clusters), per_pair in zip(graph.layers, laws, pairs, strict=True):
        kept_cluster = layer.spread(keeps, False, alive_clusters.to(torch.float64))
        inputs = torch.ones(per_pair.shape[1], dtype=torch.float64)
        if not layer.depthwise:
            inputs = layer.spread(keeps, True, torch.ones(layer.in_channels, dtype=torch.float64))
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
    return rows


def expected_survivors(
    model: Detector, masks: Mapping[str, torch.Tensor], environment: Environment, total: bool = False
) -> pd.DataFrame:
    """Expected clusters and synapses of the offspring per layer, before the synthesis guards.

    A cluster survives with P(S_g) = F(alpha_cluster) applied to its group's cluster law (the head's clusters
    always do); a synapse survives when its own draw, its cluster and the cluster feeding its input all survive, so
    its expectation is P_s * P_c(own cluster) * P_c(input channel). ``total`` appends a ``whole network`` row.
    """
    graph = channel_graph(model)
    laws = _layer_laws(graph, masks)
    frame = pd.DataFrame(_expected_rows(graph, laws, _synapse_pairs(laws, environment),
                                        _group_keeps(graph, group_laws(graph, masks), environment)))
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


def alpha_grid(start: float = 0.05, stop: float = 1.0, step: float = 0.05,
               including: Sequence[float] = ()) -> list[float]:
    """Alpha values from ``start`` to ``stop`` inclusive, and the values ``including`` (a run's own alphas, so that
    the slider chart can show exactly what the page's table shows), sorted and rounded."""
    count = int(round((stop - start) / step)) + 1
    return sorted({round(start + i * step, 6) for i in range(count)} | {round(value, 6) for value in including})


def expected_survivors_grid(
    model: Detector,
    masks: Mapping[str, torch.Tensor],
    alphas_synapse: Sequence[float],
    alphas_cluster: Sequence[float],
    models: Sequence[str] = ENVIRONMENT_MODELS,
) -> pd.DataFrame:
    """``expected_survivors`` (with the whole-network row) for every environment model and pair of alphas."""
    graph = channel_graph(model)
    laws, cluster_laws = _layer_laws(graph, masks), group_laws(graph, masks)
    frames = []
    for model_name in models:
        pairs = {a: _synapse_pairs(laws, Environment(model_name, a, 1.0)) for a in alphas_synapse}
        keeps = {a: _group_keeps(graph, cluster_laws, Environment(model_name, 1.0, a)) for a in alphas_cluster}
        for alpha_synapse in alphas_synapse:
            for alpha_cluster in alphas_cluster:
                frame = _with_total(pd.DataFrame(_expected_rows(graph, laws, pairs[alpha_synapse],
                                                                keeps[alpha_cluster])))
                frame.insert(0, "environment", model_name)
                frame.insert(1, "alpha_synapse", float(alpha_synapse))
                frame.insert(2, "alpha_cluster", float(alpha_cluster))
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)
