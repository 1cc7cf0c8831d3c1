"""The DNA page's computations on tiny hand-made inputs: the numbers match the library's math."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CONFIG, full_masks, generation, tiny_model
from evosynth.book import display
from evosynth.book.pages import dna as dna_page
from evosynth.core.environment import Environment
from evosynth.core.genetics import cluster_probabilities, synapse_probabilities
from evosynth.study.evolution import synthesis_decider
from evosynth.task.model import channel_graph

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
    cost = channel_graph(model).cost
    assert cost.cost(backbone["expected_clusters"].tolist()) == pytest.approx(0.6 * cost.cost([8, 12]), rel=1e-6)
    assert backbone["cluster_fraction"].nunique() == 2  # each layer cut by its share of the MACs


def test_expected_survivors_agree_with_sampled_offspring():
    """The expectation (before guards) is close to the mean of many real syntheses of the same parent."""
    model = tiny_model(widths=(6, 8))
    parent = generation(1, model, full_masks(model))
    expected = dna_page.expected_survivors(model, parent.masks, CONFIG.make_environment())
    graph, decide = channel_graph(model), synthesis_decider(CONFIG)  # the offspring's masks: their decisions
    counts = np.array([
        [int(d.synapse_mask.sum()) for d in decide(graph, parent, number).values()] for number in range(2, 202)
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
    assert set(probabilities["series"]) == {"P(.|W) (DNA)", "P(S_g), budget", "P(S_g), multiplicative",
                                            "P(S_g), cost"}  # the study's environment among them
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


def test_the_cost_environments_cluster_probabilities_are_its_groups_and_keep_the_expected_share():
    model = tiny_model()
    masks = full_masks(model)
    clusters = dna_page.probability_histograms(model, masks, 0.9, 0.7, level="cluster", bins=10)
    cost = clusters[clusters["series"] == "P(S_g), cost"]
    head = cost[cost["layer"] == "head"]
    assert head.loc[head["count"] > 0, "start"].max() >= 0.9  # the head's clusters are always kept
    expected = dna_page.expected_survivors(model, masks, dna_page.Environment("cost", 0.9, 0.7))
    for layer, rows in cost[cost["layer"] != "head"].groupby("layer"):
        mean_bin = float(((rows["start"] + rows["end"]) / 2 * rows["count"]).sum() / rows["count"].sum())
        fraction = float(expected.loc[expected["layer"] == layer, "cluster_fraction"].iloc[0])
        assert mean_bin == pytest.approx(fraction, abs=0.06), layer  # the histogram's mean is the expected share
