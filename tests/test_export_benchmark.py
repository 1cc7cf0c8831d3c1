"""ONNX exports reproduce the PyTorch model; bench.json holds every cell and its bookkeeping. No timing thresholds:
speeds on a shared CI machine are not testable, only that they are measured and recorded consistently."""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from evosynth.cli import main
from evosynth.deploy.benchmark import (
    BACKENDS,
    BENCH_FILE,
    WORKLOADS,
    BenchFormatError,
    bench_is_current,
    benchmark_run,
    measured_table,
)
from evosynth.deploy.export import (
    EXPORT_RECORD,
    FP32_TOLERANCE,
    ONNX_FP16,
    ONNX_FP32,
    TRT_ENGINE,
    export_generation,
    export_run,
    run_image_size,
    tensorrt_unavailable,
)
from evosynth.deploy.machine import describe_machine
from evosynth.storage.runs import WEIGHTS, RunFolder
from evosynth.study.config import RunConfig
from evosynth.study.evolution import evolve

IMAGE_SIZE = (48, 48)  # the smoke preset's canvas
FAST = {"rounds": 2, "sample_ms": 1.0, "warmup_ms": 1.0, "threads": 1}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    """A 2-generation smoke run of this module's own: exporting and benchmarking write into it."""
    out = tmp_path_factory.mktemp("bench") / "run"
    evolve(RunConfig(preset="smoke", generations=2), out, data_dir)
    return out


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError


def _onnx_output(path, images):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images})[0]


def test_onnx_graphs_match_pytorch_with_dynamic_batch(run_dir, tmp_path):
    generation = RunFolder(run_dir).load(2)
    result = export_generation(generation, tmp_path, IMAGE_SIZE)
    assert result.weights_fp16_exact and not result.reused
    assert result.max_abs_error_fp32 <= FP32_TOLERANCE and result.max_abs_error_fp16 <= result.fp16_tolerance
    model = generation.model.eval()
    for batch in (1, 3):
        images = torch.rand(batch, 3, *IMAGE_SIZE, generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            reference = model(images).numpy()
        fp32 = _onnx_output(tmp_path / ONNX_FP32, images.numpy())
        fp16 = _onnx_output(tmp_path / ONNX_FP16, images.numpy().astype(np.float16))
        assert fp32.dtype == np.float32 and fp16.dtype == np.float16
        assert fp32.shape == fp16.shape == reference.shape
        np.testing.assert_allclose(fp32, reference, rtol=0, atol=FP32_TOLERANCE)
        np.testing.assert_allclose(fp16.astype(np.float32), reference, rtol=0, atol=result.fp16_tolerance)
    graph = onnx.load(str(tmp_path / ONNX_FP16)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert all(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer if init.dims)
    assert onnx.load(str(tmp_path / ONNX_FP32)).graph.input[0].type.tensor_type.shape.dim[0].dim_param


def test_export_run_reuses_fresh_exports_and_redoes_stale_ones(run_dir):
    first = export_run(run_dir)
    assert [r.generation for r in first] == [1, 2]
    assert all(json.loads((r.directory / EXPORT_RECORD).read_text())["image_size"] == list(IMAGE_SIZE) for r in first)
    assert all(r.reused for r in export_run(run_dir))
    weights = run_dir / "gen_02" / WEIGHTS
    later = (run_dir / "gen_02" / ONNX_FP32).stat().st_mtime + 10
    os.utime(weights, (later, later))  # weights newer than the exports: a redone generation
    again = export_run(run_dir)
    assert [r.reused for r in again] == [True, False]
    assert not list((run_dir / "gen_02").glob("*.tmp"))


def test_without_tensorrt_export_says_why_and_uses_the_cpu_path(run_dir, tmp_path, no_tensorrt, capsys):
    reason = tensorrt_unavailable()
    assert reason and "tensorrt" in reason
    result = export_generation(RunFolder(run_dir).load(1), tmp_path, IMAGE_SIZE)
    assert result.engine is None and result.tensorrt == reason
    assert not (tmp_path / TRT_ENGINE).exists()
    message = capsys.readouterr().err.strip().splitlines()
    assert len(message) == 1 and "skipped" in message[0] and "CPU path" in message[0]


def test_bench_json_records_every_cell(run_dir, no_tensorrt):
    backends = ("torch-eager-fp32", "onnxruntime-cpu", "openvino-fp32", "tensorrt-fp16")
    bench = benchmark_run(run_dir, backends=backends, **FAST)
    assert json.loads((run_dir / BENCH_FILE).read_text()) == json.loads(json.dumps(bench))
    assert "tensorrt is not importable" in bench["skipped"]["tensorrt-fp16"]
    cells = {(r["generation"], r["backend"], r["workload"]): r for r in bench["results"]}
    assert set(cells) == {(g, b, w) for g in (1, 2) for b in backends[:3] for w in WORKLOADS}
    for (generation, _, workload), cell in cells.items():
        batch = WORKLOADS[workload].batch
        assert cell["batch_size"] == batch
        assert len(cell["samples_ms"]) == 2 and cell["iterations"] >= 1
        assert 0 < cell["min_ms"] <= cell["q1_ms"] <= cell["median_ms"] <= cell["q3_ms"] <= cell["max_ms"]
        assert cell["throughput_fps"] == pytest.approx(batch * 1e3 / cell["median_ms"])
        if generation == 1:
            assert cell["speedup_vs_gen1"] == 1.0 and cell["mac_reduction"] == 1.0
        assert cell["speedup_per_mac_reduction"] == pytest.approx(cell["speedup_vs_gen1"] / cell["mac_reduction"])
    assert cells[2, "onnxruntime-cpu", "frame"]["mac_reduction"] > 1
    assert (cells[1, "onnxruntime-cpu", "frame"]["height"], cells[1, "onnxruntime-cpu", "frame"]["width"]) == (480, 640)
    assert bench["settings"]["threads"] == 1
    machine = bench["machine"]
    assert machine["cpu"] and machine["logical_cores"] >= 1 and isinstance(machine["avx512_flags"], list)
    assert {key: machine[key] for key in ("cpu", "isa", "avx512_flags")} == {
        key: describe_machine()[key] for key in ("cpu", "isa", "avx512_flags")}
    assert machine["versions"]["torch"] == torch.__version__
    assert set(bench["backends"]) == set(backends[:3]) and bench["seconds"] > 0


def test_compiled_backends_run_every_generation(run_dir):
    backends = ("torch-compile-fp32", "torch-compile-bf16")
    bench = benchmark_run(run_dir, backends=backends, workloads=("thumbnail",), **FAST)
    assert {(r["generation"], r["backend"]) for r in bench["results"]} == {(g, b) for g in (1, 2) for b in backends}
    assert all(r["median_ms"] > 0 and r["first_call_ms"] > 0 for r in bench["results"])


def test_openvino_computes_in_half_precision_only_where_the_cpu_does_and_says_so_elsewhere(run_dir):
    import openvino

    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    for precision, capability in (("bf16", "BF16"), ("fp16", "FP16")):
        reason = BACKENDS[f"openvino-{precision}"].unavailable()
        assert (reason is None) == (capability in capabilities), (precision, reason, capabilities)
        if reason is not None:
            assert f"no native {precision.upper()} arithmetic" in reason
    fp16 = BACKENDS["openvino-fp16"].unavailable()
    assert fp16 is None or "storage only" in fp16
    available = [name for name in ("openvino-bf16", "openvino-fp16") if BACKENDS[name].unavailable() is None]
    bench = benchmark_run(run_dir, backends=("openvino-fp32", "openvino-bf16", "openvino-fp16"),
                          workloads=("thumbnail",), **FAST)
    assert set(bench["backends"]) == {"openvino-fp32", *available}
    assert set(bench["skipped"]) == {"openvino-bf16", "openvino-fp16"} - set(available)


def test_a_bench_json_of_another_schema_is_refused_naming_what_to_do(run_dir):
    (run_dir / BENCH_FILE).write_text(json.dumps({"schema": 1, "results": []}))
    with pytest.raises(BenchFormatError, match="measure again with `evosynth bench"):
        measured_table(run_dir)
    assert not bench_is_current(run_dir)


def test_unknown_backend_is_refused(run_dir):
    with pytest.raises(ValueError, match="unknown backend"):
        benchmark_run(run_dir, backends=("no-such-runtime",))
    assert set(BACKENDS) >= {"torch-eager-fp32", "torch-compile-fp32", "torch-compile-bf16", "onnxruntime-cpu",
                             "tensorrt-fp16"}


def test_cli_export_and_bench_print_their_tables(run_dir, capsys):
    assert main(["export", str(run_dir)]) == 0
    assert "gen 02" in capsys.readouterr().out
    assert main(["bench", str(run_dir), "--backends", "onnxruntime-cpu", "--rounds", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out and "MAC ÷" in out and "onnxruntime-cpu" in out
    assert main(["bench", str(run_dir), "--rounds", "0"]) == 2


def test_the_image_size_of_a_run_is_its_presets_canvas_or_its_photographs_size(tmp_path):
    photographs = RunConfig(preset="pedestrians", data="pennfudan", data_root=str(tmp_path / "PennFudanPed"))
    for config, size in ((RunConfig(preset="smoke"), (48, 48)), (photographs, (128, 160))):
        folder = RunFolder(tmp_path / config.name)
        folder.bind(config.identity())
        assert run_image_size(folder.root) == size
