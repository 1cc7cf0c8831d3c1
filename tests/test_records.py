"""Every figure written to metrics.json, bench.json, export.json and capacity.json is the figure it claims to be.

Each test recomputes a recorded figure independently (from the saved artifacts, or from a network captured at the
step the figure measures) and would fail if the record held a constant, the value before the step, another
generation's (or lineage's, or backend's) value, the FP32 value where the restricted one is claimed, or a wrong
unit. On the smoke task the real detection quality is 0 everywhere, which pins nothing, so where a quality figure
must be told apart the evaluation is replaced by ``fingerprint``: a "quality" that is a function of the exact
weights evaluated and of the split evaluated on.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime
import pytest
import torch
from safetensors.torch import load_file

import evosynth.deploy.benchmark as benchmark
import evosynth.study.capacity as capacity
import evosynth.study.evolution as evolution
import evosynth.task.training as training
from evosynth.core.precision import int8_scale, is_representable, restrict, rounded, storage_note
from evosynth.core.pruning import IMP_FRACTION
from evosynth.deploy.benchmark import BENCH_FILE, WORKLOADS, Backend, Workload, benchmark_run
from evosynth.deploy.export import (
    CHECK_BATCHES,
    EXPORT_RECORD,
    FP16_RELATIVE_TOLERANCE,
    FP32_TOLERANCE,
    ONNX_FP16,
    ONNX_FP32,
    export_generation,
    export_run,
    tensorrt_unavailable,
)
from evosynth.storage.runs import ARCHITECTURE, CURVE, METRICS, WEIGHTS, RunFolder
from evosynth.study.capacity import CAPACITY_FILE, KINDS, RECORDED, measure_capacity
from evosynth.study.compare import Lineage, run_lineage
from evosynth.study.config import DEFAULT_ALPHA_CLUSTER, DEFAULT_ALPHA_SYNAPSE, RunConfig
from evosynth.study.evolution import evolve, load_task_data, restrict_and_measure
from evosynth.task.metrics import OperatingPoint, Quality, assess, evaluate
from evosynth.task.model import FRAME_SIZE, GridDetector

IMAGE_SIZE = (48, 48)  # the smoke preset's canvas
QUALITY_KEYS = ("precision_score", "recall", "ap50")


# ------------------------------------------------------------------------------------------------- helpers


def fingerprint(model: GridDetector, split) -> Quality:
    """A stand-in for ``evaluate``: three numbers that change with any weight of the model and with the split."""
    values = torch.cat([t.detach().double().flatten() for t in model.state_dict().values() if t.is_floating_point()])
    return Quality(precision=float(values.sum()), recall=float(values.abs().sum()),
                   ap50=float(values.square().sum() + split.images.double().mean()))


def fingerprint_assessment(model: GridDetector, validation, test) -> tuple[Quality, OperatingPoint]:
    """A stand-in for ``assess``: the test split's ``fingerprint`` and the real operating point."""
    return fingerprint(model, test), assess(model, validation, test)[1]


def fingerprinted(patch: pytest.MonkeyPatch) -> None:
    """Measure generations with ``fingerprint`` (the FP32 figure and the restricted one)."""
    patch.setattr(evolution, "evaluate", fingerprint)
    patch.setattr(evolution, "assess", fingerprint_assessment)


def quality_of(metrics: dict) -> tuple[float, float, float]:
    return tuple(metrics[key] for key in QUALITY_KEYS)


def as_tuple(quality: Quality) -> tuple[float, float, float]:
    return quality.precision, quality.recall, quality.ap50


def clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def model_with(state: dict[str, torch.Tensor], architecture) -> GridDetector:
    model = GridDetector(architecture)
    model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()})
    return model


def counted_macs(model: GridDetector, image_size: tuple[int, int]) -> int:
    """Multiply-accumulates counted on a real forward pass (hooks on every conv), not by ``count_macs``."""
    macs = 0

    def hook(layer, _inputs, output):
        nonlocal macs
        kh, kw = layer.kernel_size
        macs += output[0].numel() * (layer.in_channels // layer.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            copy.deepcopy(model).eval()(torch.zeros(1, model.architecture.in_channels, *image_size))
    finally:
        for handle in handles:
            handle.remove()
    return macs


def half_fp16_spacing(largest: float) -> float:
    """Half the distance between neighbouring FP16 values at magnitude ``largest`` (the most rounding can move it)."""
    _, exponent = math.frexp(largest)  # largest = m * 2**exponent, 0.5 <= m < 1: FP16 spacing there is 2**(e-11)
    return max(2.0 ** (exponent - 12), 2.0 ** -25)


def read(path: Path):
    return json.loads(path.read_text())


def fp32_ancestor_folder(smoke_out: Path, config: RunConfig) -> RunFolder:
    return RunFolder(smoke_out.parent / "ancestors" / replace(config, precision="fp32").ancestor_name)


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
    widths = list(generation.model.architecture.widths)
    assert metrics["widths"] == widths == architecture["widths"]
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


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data(smoke_run, data_dir):
    config, _ = smoke_run
    return load_task_data(config, data_dir)


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
    assert ancestor["alpha_synapse"] == DEFAULT_ALPHA_SYNAPSE and ancestor["alpha_cluster"] == 0.5
    assert adopted["alpha_synapse"] == 0.9 and adopted["alpha_cluster"] == other.alpha_cluster == DEFAULT_ALPHA_CLUSTER
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
    assert metrics["widths"] == list(config.resolved_preset.widths)


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
        assert record["widths"] == read(reference.generation_dir(2) / ARCHITECTURE)["widths"]
    else:
        assert record["widths"] == list(parent.model.architecture.widths)
        remaining = [int(m.sum()) for m in parent.masks.values()]
        assert record["synapses"] == sum(r - math.floor(IMP_FRACTION * r + 0.5) for r in remaining)


# ------------------------------------------------------------------------------------------- export.json


@pytest.fixture(scope="module")
def exported(tmp_path_factory, smoke_run):
    _, out = smoke_run
    run = shutil.copytree(out, tmp_path_factory.mktemp("export") / "run")
    return run, export_run(run)


def _onnx_error(path: Path, model: GridDetector, inputs: list[torch.Tensor], dtype) -> float:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    error = 0.0
    for images in inputs:
        with torch.inference_mode():
            reference = model(images)
        (output,) = session.run(None, {"images": images.numpy().astype(dtype)})
        error = max(error, float(np.abs(output.astype(np.float32) - reference.numpy()).max()))
    return error


def _check_export_record(generation, directory: Path) -> dict:
    """The record holds the deviations of the graphs on the thumbnails of every check batch and on a frame."""
    record = read(directory / EXPORT_RECORD)
    model = copy.deepcopy(generation.model).eval()
    channels = model.architecture.in_channels
    random = torch.Generator().manual_seed(generation.number)
    images = torch.rand((max(CHECK_BATCHES), channels, *IMAGE_SIZE), generator=random)
    inputs = [images[:batch] for batch in CHECK_BATCHES] + [torch.rand((1, channels, *FRAME_SIZE), generator=random)]
    with torch.inference_mode():
        largest = max(float(model(x).abs().max()) for x in inputs)
    assert record["generation"] == generation.number and record["image_size"] == list(IMAGE_SIZE)
    assert record["max_abs_error_fp32"] == _onnx_error(directory / ONNX_FP32, model, inputs, np.float32)
    assert record["max_abs_error_fp16"] == _onnx_error(directory / ONNX_FP16, model, inputs, np.float16)
    assert record["max_abs_error_fp16"] > 0  # FP16 activations always move the output
    assert record["fp32_tolerance"] == FP32_TOLERANCE
    assert record["fp16_tolerance"] == FP16_RELATIVE_TOLERANCE * max(1.0, largest)
    floats = [t for t in model.state_dict().values() if t.is_floating_point()]
    assert record["weights_fp16_exact"] == all(is_representable(t, "fp16") for t in floats)
    assert record["tensorrt"] == (tensorrt_unavailable() or "built")
    return record


def test_export_json_records_the_checks_it_ran(exported):
    run, results = exported
    folder = RunFolder(run)
    records = [_check_export_record(folder.load(n), folder.generation_dir(n)) for n in (1, 2)]
    assert all(record["weights_fp16_exact"] for record in records)
    assert records[0]["max_abs_error_fp16"] != records[1]["max_abs_error_fp16"]  # each generation's own graphs
    for result, record in zip(results, records, strict=True):
        assert result.max_abs_error_fp32 == record["max_abs_error_fp32"]
        assert result.max_abs_error_fp16 == record["max_abs_error_fp16"]
    reused = export_run(run)  # what a rerun reports is what was recorded
    assert [(r.max_abs_error_fp32, r.max_abs_error_fp16, r.reused) for r in reused] == \
        [(r["max_abs_error_fp32"], r["max_abs_error_fp16"], True) for r in records]


def test_export_json_says_when_weights_are_not_fp16(smoke_run, tmp_path):
    config, out = smoke_run
    generation = fp32_ancestor_folder(out, config).load(1)
    export_generation(generation, tmp_path, IMAGE_SIZE, announce=False)
    assert _check_export_record(generation, tmp_path)["weights_fp16_exact"] is False


# -------------------------------------------------------------------------------------------- bench.json

# fake backends: (backend, generation) -> milliseconds per image; B is slower in generation 2, so a speed-up taken
# across backends, generations or batch sizes would show
FAKE_MS = {("fake-a", 1): 3.0, ("fake-a", 2): 1.0, ("fake-b", 1): 2.0, ("fake-b", 2): 5.0}


def test_bench_json_attributes_each_timing_to_its_own_cell(smoke_run, tmp_path, monkeypatch):
    _, out = smoke_run
    run = shutil.copytree(out, tmp_path / "run")
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(benchmark, "time", SimpleNamespace(perf_counter=lambda: clock.now))

    def fake(name):
        def load(target):
            def prepare(shape):
                seconds = FAKE_MS[name, target.generation.number] * shape[0] / 1e3

                def step():
                    clock.now += seconds

                return step

            return prepare

        return Backend(load, arithmetic=f"{name} arithmetic")

    for name in ("fake-a", "fake-b"):
        monkeypatch.setitem(benchmark.BACKENDS, name, fake(name))
    monkeypatch.setitem(benchmark.WORKLOADS, "four", Workload(4, None, "four thumbnails"))
    bench = benchmark_run(run, backends=("fake-a", "fake-b"), workloads=("thumbnail", "four"), rounds=3, threads=1,
                          sample_ms=10.4, warmup_ms=5.0)
    assert read(run / BENCH_FILE) == json.loads(json.dumps(bench))
    folder = RunFolder(run)
    metrics = {n: folder.load(n).metrics for n in (1, 2)}
    cells = {(r["backend"], r["generation"], r["workload"]): r for r in bench["results"]}
    assert set(cells) == {(b, g, w) for b in ("fake-a", "fake-b") for g in (1, 2) for w in ("thumbnail", "four")}
    timed = 0.0
    for (backend, generation, workload), cell in cells.items():
        batch = WORKLOADS[workload].batch
        assert (cell["batch_size"], cell["height"], cell["width"]) == (batch, *IMAGE_SIZE)
        assert cell["macs"] == metrics[generation]["macs"]  # at the training size, what the run recorded
        ms = FAKE_MS[backend, generation] * batch
        approx = pytest.approx(ms, rel=1e-6)
        assert cell["first_call_ms"] == approx and cell["samples_ms"] == [approx] * 3
        assert all(cell[k] == approx for k in ("median_ms", "q1_ms", "q3_ms", "min_ms", "max_ms"))
        assert cell["iterations"] == max(1, round(10.4 / ms))  # no ratio near x.5
        assert cell["throughput_fps"] == pytest.approx(batch * 1e3 / ms)
        speedup = FAKE_MS[backend, 1] / FAKE_MS[backend, generation]
        assert cell["speedup_vs_gen1"] == pytest.approx(speedup)
        mac_reduction = metrics[1]["macs"] / metrics[generation]["macs"]
        assert cell["mac_reduction"] == pytest.approx(mac_reduction)
        assert cell["speedup_per_mac_reduction"] == pytest.approx(speedup / mac_reduction)
        timed += ms * (1 + 3 * cell["iterations"])
    assert bench["seconds"] * 1e3 >= timed * (1 - 1e-9)  # every timed call happened within the bench's time
    assert bench["generations"] == [
        {"generation": n, "widths": list(folder.load(n).model.architecture.widths),
         "macs_training_size": metrics[n]["macs"], "parameters": metrics[n]["parameters"]} for n in (1, 2)]
    assert bench["settings"] == {
        "threads": 1, "rounds": 3, "sample_ms": 10.4, "warmup_ms": 5.0, "training_size": list(IMAGE_SIZE),
        "baseline_generation": 1,
        "workloads": {"thumbnail": {"batch_size": 1, "height": IMAGE_SIZE[0], "width": IMAGE_SIZE[1],
                                    "description": WORKLOADS["thumbnail"].description},
                      "four": {"batch_size": 4, "height": IMAGE_SIZE[0], "width": IMAGE_SIZE[1],
                               "description": "four thumbnails"}}}
    assert bench["backends"] == {n: {"arithmetic": f"{n} arithmetic"} for n in ("fake-a", "fake-b")}
    assert bench["skipped"] == {}


def test_bench_json_summaries_are_of_the_recorded_samples(smoke_run, tmp_path):
    _, out = smoke_run
    run = shutil.copytree(out, tmp_path / "run")
    started_at = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    bench = benchmark_run(run, backends=("torch-eager-fp32",), workloads=("thumbnail", "frame"), rounds=4,
                          threads=1, sample_ms=1.0, warmup_ms=1.0)
    wall = time.perf_counter() - started
    cells = {(r["generation"], r["workload"]): r for r in bench["results"]}
    for (_, batch), cell in cells.items():
        samples = cell["samples_ms"]
        assert len(samples) == 4
        q1, median, q3 = np.percentile(samples, [25, 50, 75])
        assert (cell["q1_ms"], cell["median_ms"], cell["q3_ms"]) == (q1, median, q3)
        assert (cell["min_ms"], cell["max_ms"]) == (min(samples), max(samples))
        assert cell["speedup_vs_gen1"] == cells[1, batch]["median_ms"] / cell["median_ms"]
    assert cells[1, "thumbnail"]["samples_ms"] != cells[2, "thumbnail"]["samples_ms"]  # timed separately, not copied
    assert (cells[1, "frame"]["height"], cells[1, "frame"]["width"]) == (480, 640)
    assert cells[1, "frame"]["median_ms"] > cells[1, "thumbnail"]["median_ms"]  # 33 times the pixels
    all_samples = sum(sum(c["samples_ms"]) + c["first_call_ms"] for c in cells.values())
    assert all_samples <= bench["seconds"] * 1e3 and bench["seconds"] <= wall
    created = datetime.datetime.fromisoformat(bench["created"])
    assert started_at.replace(microsecond=0) <= created <= datetime.datetime.now(datetime.UTC)
    machine = bench["machine"]
    assert len(machine["load_average_before"]) == len(machine["load_average_after"]) == 3


# ------------------------------------------------------------------------------------------ capacity.json


def test_capacity_entries_are_the_converged_restricted_networks(smoke_run, data, data_dir, tmp_path, monkeypatch):
    config, out = smoke_run
    run = shutil.copytree(out, tmp_path / "run")
    rule = config.resolved_preset.ancestor
    # scripted validation AP50 per epoch: the best epoch is the 2nd for one network, the 3rd for the other
    scripted = {"trained on": [0.1, 0.5, 0.3], "from scratch": [0.2, 0.2, 0.6]}
    trainings, measured = [], []
    real_train, real_measure = capacity.train, capacity.restrict_and_measure

    def spy_train(model, masks, *args, **kwargs):
        values, states = iter(scripted[kwargs["description"].split(" ", 2)[2]]), []

        def validation(model, split):
            states.append(clone_state(model))
            return Quality(0.0, 0.0, next(values))

        monkeypatch.setattr(training, "evaluate", validation)
        curve = real_train(model, masks, *args, **kwargs)
        trainings.append((kwargs["description"], curve, states))
        return curve

    def spy_measure(config, data, number, parent, model, masks, curve):
        fp32 = clone_state(model)
        result = real_measure(config, data, number, parent, model, masks, curve)
        measured.append((fp32, clone_state(model), masks))
        return result

    monkeypatch.setattr(capacity, "train", spy_train)
    monkeypatch.setattr(capacity, "restrict_and_measure", spy_measure)
    fingerprinted(monkeypatch)
    record = measure_capacity(run, [2], data_dir)
    stored = read(run / CAPACITY_FILE)["generations"]["2"]
    assert record["generations"]["2"] == stored
    folder = RunFolder(run)
    evolved, ancestor = folder.load(2), folder.load(1)
    architecture = evolved.model.architecture
    assert len(trainings) == len(measured) == 2
    for kind, (description, curve, states), (fp32, restricted, masks) in zip(KINDS, trainings, measured,
                                                                              strict=True):
        entry = stored[kind]
        assert kind.replace("_", " ") in description
        assert entry["best_epoch"] == {"trained_on": 2, "from_scratch": 3}[kind]
        kept = states[entry["best_epoch"] - 1]  # the network measured is the best epoch's
        assert all(torch.equal(fp32[n], t) for n, t in kept.items())
        restricted_model = model_with(restricted, architecture)
        assert all(torch.equal(restricted[n], t) for n, t in rounded(fp32, config.precision).items())
        assert quality_of(entry) == as_tuple(fingerprint(restricted_model, data.test))
        assert quality_of(entry) != as_tuple(fingerprint(model_with(fp32, architecture), data.test))  # not FP32
        assert quality_of(entry) != as_tuple(fingerprint(evolved.model, data.test))  # not before training
        assert entry["epochs"] == len(curve.epochs) and entry["best_epoch"] == curve.best_epoch
        assert entry["train_seconds"] == curve.seconds != evolved.metrics["train_seconds"]
        assert entry["stopped_by"] == ("patience" if len(curve.epochs) < rule.max_epochs else "epoch cap")
        assert entry["rule"] == rule.to_json()
        assert entry["widths"] == list(architecture.widths)
        assert entry["synapses"] == sum(int(m.sum()) for m in masks.values())
        assert entry["macs"] == counted_macs(restricted_model, IMAGE_SIZE)
    assert stored["trained_on"]["synapses"] == evolved.metrics["synapses"]
    dense = sum(layer.weight.numel() for _, layer in evolved.model.prunable_layers())
    assert stored["from_scratch"]["synapses"] == dense
    assert stored["trained_on"]["train_seconds"] != stored["from_scratch"]["train_seconds"]
    assert quality_of(stored["trained_on"]) != quality_of(stored["from_scratch"])
    assert record["evolved"] == {"2": {key: evolved.metrics[key] for key in RECORDED}}
    assert record["ancestor"] == {key: ancestor.metrics[key] for key in RECORDED}
