"""Every figure of metrics.json is the figure it claims to be, recomputed independently (from the saved artifacts,
or from a network captured at the step the figure measures): a record holding a constant, the value before the
step, another generation's or lineage's value, the FP32 value where the restricted one is claimed, or a wrong unit
fails."""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, replace

import pytest
import torch
from safetensors.torch import load_file

import evosynth.study.evolution as evolution
import evosynth.task.training as training
from conftest import (
    IMAGE_SIZE,
    QUALITY_KEYS,
    as_tuple,
    clone_state,
    counted_macs,
    fingerprint,
    fingerprinted,
    fp32_ancestor_folder,
    model_with,
    quality_of,
    read,
)
from evosynth.core.precision import int8_scale, restrict, rounded, storage_note
from evosynth.core.pruning import IMP_FRACTION
from evosynth.storage.runs import ARCHITECTURE, CURVE, METRICS, WEIGHTS, RunFolder
from evosynth.study.compare import Lineage, run_lineage
from evosynth.study.config import RunConfig
from evosynth.study.evolution import evolve, restrict_and_measure
from evosynth.task.metrics import assess, evaluate


def half_fp16_spacing(largest: float) -> float:
    """Half the distance between neighbouring FP16 values at magnitude ``largest`` (the most rounding can move it)."""
    _, exponent = math.frexp(largest)  # largest = m * 2**exponent, 0.5 <= m < 1: FP16 spacing there is 2**(e-11)
    return max(2.0 ** (exponent - 12), 2.0 ** -25)


def check_generation_record(folder: RunFolder, number: int, expected: dict, quality, data,
                            budget) -> dict:
    """What every metrics.json must agree with, recomputed from that generation's own files."""
    directory = folder.generation_dir(number)
    generation = folder.load(number)
    metrics, curve = read(directory / METRICS), read(directory / CURVE)
    architecture = read(directory / ARCHITECTURE)
    tensors = load_file(str(directory / WEIGHTS))
    for key, value in expected.items():
        assert metrics[key] == value, key
    assert metrics["generation"] == number and metrics["parent"] == (number - 1 if number > 1 else None)
    # quality: of this generation's saved (restricted) weights, on the test split
    assert quality_of(metrics) == as_tuple(quality(generation.model, data.test))
    # the operating point: this generation's threshold, chosen on the validation split, applied to the test split
    assert metrics["operating_point"] == asdict(assess(generation.model, data.val, data.test)[1])
    # size, recounted from the saved weights and masks
    widths = list(generation.model.architecture.widths)  # the ancestor rebuilt, its pruning history replayed
    assert metrics["widths"] == widths and architecture["builder"] == "grid_detector"
    assert metrics["clusters"] == sum(widths)
    synapses = sum(int(mask.sum()) for mask in generation.masks.values())
    assert metrics["synapses"] == synapses == sum(layer["synapses"] for layer in architecture["layers"].values())
    alive = sum(int((layer.weight != 0).sum()) for _, layer in generation.model.prunable_layers())
    assert alive <= synapses
    parameters = dict(generation.model.named_parameters())
    assert metrics["parameters"] == sum(p.numel() for p in parameters.values())
    assert metrics["bytes_fp32"] == sum(p.numel() * 4 for p in parameters.values())
    if metrics["precision"] in ("fp16", "bf16"):  # the file stores every parameter in 2 bytes: the unit is bytes
        assert metrics["bytes_fp16"] == sum(tensors[n].numel() * tensors[n].element_size() for n in parameters)
    assert metrics["bytes_fp16"] == sum(p.numel() * 2 for p in parameters.values())
    assert metrics["macs"] == counted_macs(generation.model, IMAGE_SIZE)
    # training figures: this generation's own curve
    assert curve["budget"] == budget.to_json()
    assert metrics["epochs"] == len(curve["epochs"]) == len(curve["val_ap50"])
    assert metrics["train_seconds"] == curve["seconds"] > 0
    assert metrics["val_ap50"] == curve["val_ap50"][curve["epochs"].index(curve["best_epoch"])]
    if budget.patience is None:  # an offspring trains its fixed budget
        assert metrics["epochs"] == budget.max_epochs
    return metrics


def check_rounding_error(recorded: dict, fp32: dict[str, torch.Tensor], restricted: dict[str, torch.Tensor],
                         precision: str) -> None:
    """rounding_error: per floating tensor, the largest |FP32 - restricted|, recomputed; nonzero for synapses."""
    floats = {name for name, t in fp32.items() if t.is_floating_point()}
    assert set(recorded) == floats
    for name in floats:
        change = float((restricted[name].to(torch.float32) - fp32[name].to(torch.float32)).abs().max())
        assert recorded[name] == change, name
        if name.endswith("conv.weight") or name == "head.weight":
            assert recorded[name] > 0, name  # a restriction that changed nothing was measured against itself
            largest = float(fp32[name].abs().max())
            if precision == "fp16":
                assert recorded[name] <= half_fp16_spacing(largest), name
            elif precision == "int8":
                assert recorded[name] <= float(int8_scale(fp32[name]).max()) / 2, name


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory, smoke_run, data_dir):
    """An fp16 evolution (alpha_cluster 0.5, sharing the smoke run's FP32 ancestor) measured with ``fingerprint``,
    with the FP32 network each measurement started from captured; and a run adopting its ancestor."""
    smoke_config, smoke_out = smoke_run
    config = RunConfig(preset="smoke", generations=2, alpha_cluster=0.5)
    runs = tmp_path_factory.mktemp("traced")
    source = fp32_ancestor_folder(smoke_out, config).root
    shutil.copytree(source, runs / "ancestors" / source.name)  # the FP16 ancestor is restricted and measured anew
    captured: dict[int, dict[str, torch.Tensor]] = {}
    real = evolution.restrict_and_measure

    def spy(config, data, number, parent, model, masks, curve):
        captured[number] = clone_state(model)
        return real(config, data, number, parent, model, masks, curve)

    with pytest.MonkeyPatch.context() as patch:
        fingerprinted(patch)
        patch.setattr(training, "evaluate", fingerprint)
        patch.setattr(evolution, "restrict_and_measure", spy)
        evolve(config, runs / "run", data_dir)
    other = RunConfig(preset="smoke", generations=1, alpha_synapse=0.9)
    evolve(other, runs / "other", data_dir)  # adopts the ancestor that the alpha_cluster 0.5 run made
    return config, runs, captured, other


# ------------------------------------------------------------------------------------------ metrics.json


def test_smoke_run_metrics_agree_with_its_artifacts(smoke_run, data):
    config, out = smoke_run
    preset = config.resolved_preset
    expected = {"seed": 0, "alpha_synapse": config.alpha_synapse, "alpha_cluster": config.alpha_cluster,
                "environment": config.environment, "precision": "fp16", "precision_note": storage_note("fp16")}
    folder = RunFolder(out)
    records = [check_generation_record(folder, n, expected, evaluate, data,
                                       preset.ancestor if n == 1 else preset.offspring) for n in (1, 2)]
    assert records[0]["train_seconds"] != records[1]["train_seconds"]  # each generation's own training
    ancestor = fp32_ancestor_folder(out, config)
    trained = ancestor.load(1)
    assert records[0]["fp32"] == dict(zip(QUALITY_KEYS, as_tuple(evaluate(trained.model, data.test)), strict=True))
    fp32_state, restricted = load_file(str(ancestor.generation_dir(1) / WEIGHTS)), folder.load(1).model.state_dict()
    check_rounding_error(records[0]["rounding_error"], fp32_state, restricted, "fp16")
    for number, record in enumerate(records, 1):
        for name, error in record["rounding_error"].items():
            if name.endswith("weight") and "bn" not in name:
                assert error > 0, (number, name)
    # the FP32 ancestor: nothing is restricted, so nothing changed and both measurements are one
    fp32_record = trained.metrics
    assert fp32_record["precision"] == "fp32" and set(fp32_record["rounding_error"].values()) == {0.0}
    assert fp32_record["fp32"] == {key: fp32_record[key] for key in QUALITY_KEYS}


def test_restricted_and_fp32_quality_are_measured_on_their_own_weights(traced_run, data):
    config, runs, captured, _ = traced_run
    folder = RunFolder(runs / "run")
    preset = config.resolved_preset
    expected = {"seed": 0, "alpha_synapse": config.alpha_synapse, "alpha_cluster": 0.5,
                "environment": config.environment,
                "precision": "fp16", "precision_note": storage_note("fp16")}
    fp32_ancestor = load_file(str(RunFolder(runs / "ancestors" / replace(config, precision="fp32").ancestor_name)
                                  .generation_dir(1) / WEIGHTS))
    assert set(captured) == {1, 2}
    assert all(torch.equal(captured[1][name], fp32_ancestor[name]) for name in captured[1])
    records = {}
    for number in (1, 2):
        record = check_generation_record(folder, number, expected, fingerprint, data,
                                         preset.ancestor if number == 1 else preset.offspring)
        generation = folder.load(number)
        saved = load_file(str(folder.generation_dir(number) / WEIGHTS))
        restricted = restrict(captured[number], "fp16")
        assert all(torch.equal(saved[name], restricted[name]) for name in restricted)  # saved = restricted FP32
        fp32_model = model_with(captured[number], generation.model.architecture)
        assert record["fp32"] == dict(zip(QUALITY_KEYS, as_tuple(fingerprint(fp32_model, data.test)), strict=True))
        assert quality_of(record) != quality_of(record["fp32"])  # the restricted network, not the FP32 one
        check_rounding_error(record["rounding_error"], captured[number], generation.model.state_dict(), "fp16")
        records[number] = record
    # gen 2's validation AP50 is its own FP32 network's (the kept epoch), on the validation split
    offspring_fp32 = model_with(captured[2], folder.load(2).model.architecture)
    assert records[2]["val_ap50"] == fingerprint(offspring_fp32, data.val).ap50 != records[1]["val_ap50"]
    assert records[2]["fp32"]["ap50"] != fingerprint(offspring_fp32, data.val).ap50  # test split, not val
    assert quality_of(records[1]) != quality_of(records[2])


def test_an_adopted_ancestor_records_the_adopting_runs_fields(traced_run):
    _, runs, _, other = traced_run
    ancestor = read(runs / "ancestors" / other.ancestor_name / "gen_01" / METRICS)
    adopted = read(runs / "other" / "gen_01" / METRICS)
    # made by the traced run
    assert ancestor["alpha_synapse"] == RunConfig().alpha_synapse and ancestor["alpha_cluster"] == 0.5
    assert adopted["alpha_synapse"] == 0.9
    assert adopted["alpha_cluster"] == other.alpha_cluster == RunConfig().alpha_cluster
    assert adopted["environment"] == other.environment
    assert {k: v for k, v in adopted.items() if not k.startswith("alpha")} == \
        {k: v for k, v in ancestor.items() if not k.startswith("alpha")}


def test_restrict_and_measure_records_the_step_it_measures(smoke_run, data, monkeypatch):
    """Non-default identity fields, int8, and a curve whose best epoch is neither the last nor the longest."""
    smoke_config, out = smoke_run
    config = RunConfig(preset="smoke", environment="multiplicative", alpha_synapse=0.7, alpha_cluster=0.8,
                       precision="int8", seed=5)
    trained = fp32_ancestor_folder(out, smoke_config).load(1)
    parent = replace(trained, number=4)
    model, masks = trained.model, {name: m.clone() for name, m in trained.masks.items()}
    masks["head.weight"][0, :3] = False  # synapses are counted from the masks
    fp32_state = clone_state(model)
    curve = {"epochs": [1, 2, 3], "val_ap50": [0.1, 0.4, 0.401], "best_epoch": 2, "seconds": 12.5, "loss": [3, 2, 1]}
    fingerprinted(monkeypatch)
    result = restrict_and_measure(config, data, 5, parent, model, masks, curve)
    metrics = result.metrics
    assert {k: metrics[k] for k in ("generation", "parent", "seed", "alpha_synapse", "alpha_cluster", "environment",
                                    "precision", "precision_note")} == {
        "generation": 5, "parent": 4, "seed": 5, "alpha_synapse": 0.7, "alpha_cluster": 0.8,
        "environment": "multiplicative", "precision": "int8", "precision_note": storage_note("int8")}
    assert metrics["val_ap50"] == 0.4 and metrics["epochs"] == 3 and metrics["train_seconds"] == 12.5
    expected_restricted = rounded(fp32_state, "int8")
    assert all(torch.equal(model.state_dict()[n], expected_restricted[n]) for n in expected_restricted)
    assert all(torch.equal(result.restricted_state[n], expected_restricted[n]) for n in expected_restricted)
    assert quality_of(metrics) == as_tuple(fingerprint(model, data.test))
    assert metrics["fp32"] == dict(zip(QUALITY_KEYS, as_tuple(fingerprint(model_with(fp32_state, model.architecture),
                                                                           data.test)), strict=True))
    assert quality_of(metrics) != quality_of(metrics["fp32"])
    check_rounding_error(metrics["rounding_error"], fp32_state, expected_restricted, "int8")
    untouched = [n for n, t in fp32_state.items() if t.is_floating_point() and t.dim() < 2]
    assert untouched and all(metrics["rounding_error"][n] == 0.0 for n in untouched)  # int8: synapses only
    assert metrics["synapses"] == sum(int(m.sum()) for m in masks.values()) == \
        sum(layer.weight.numel() for _, layer in model.prunable_layers()) - 3
    assert metrics["macs"] == counted_macs(model, IMAGE_SIZE)
    assert metrics["widths"] == config.resolved_preset.network.arguments["widths"]


@pytest.fixture(scope="module")
def baseline_runs(tmp_path_factory, smoke_run, data_dir):
    """L1-filter and IMP lineages following the smoke run, their offspring measured with ``fingerprint``."""
    config, out = smoke_run
    runs = tmp_path_factory.mktemp("baselines")
    shutil.copytree(out, runs / config.name)
    shutil.copytree(out.parent / "ancestors", runs / "ancestors")
    with pytest.MonkeyPatch.context() as patch:
        fingerprinted(patch)
        for method in ("l1-filter", "imp"):
            run_lineage(Lineage(method, config), runs, data_dir)
    return config, runs


@pytest.mark.parametrize("method", ["l1-filter", "imp"])
def test_baseline_metrics_are_the_baselines_own(baseline_runs, data, method):
    config, runs = baseline_runs
    lineage = Lineage(method, config)
    folder, reference = RunFolder(runs / lineage.name), RunFolder(runs / config.name)
    fields = {"method": method, "environment": None, "alpha_synapse": None, "alpha_cluster": None,
              "follows": config.name, **({"prune_fraction": IMP_FRACTION} if method == "imp" else {})}
    expected = {**fields, "seed": 0, "precision": "fp16", "precision_note": storage_note("fp16")}
    first = read(folder.generation_dir(1) / METRICS)
    assert {k: first[k] for k in fields} == fields
    assert {k: v for k, v in first.items() if k not in fields} == \
        {k: v for k, v in read(reference.generation_dir(1) / METRICS).items() if k not in fields}
    record = check_generation_record(folder, 2, expected, fingerprint, data, config.resolved_preset.offspring)
    assert ("prune_fraction" in record) == (method == "imp") and IMP_FRACTION == 0.2
    assert quality_of(record) != as_tuple(fingerprint(reference.load(2).model, data.test))  # not the evolution's
    parent = folder.load(1)
    if method == "l1-filter":
        assert record["widths"] == read(reference.generation_dir(2) / METRICS)["widths"]
    else:
        assert record["widths"] == list(parent.model.architecture.widths)
        remaining = [int(m.sum()) for m in parent.masks.values()]
        assert record["synapses"] == sum(r - math.floor(IMP_FRACTION * r + 0.5) for r in remaining)
