"""ONNX export (and TensorRT where possible) of every generation, checked against PyTorch."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime
import torch

from evosynth.deploy.export import (
    EXPORT_RECORD,
    FP32_TOLERANCE,
    ONNX_FP16,
    ONNX_FP32,
    TRT_ENGINE,
    export_network,
    export_run,
    run_image_size,
    tensorrt_unavailable,
)
from evosynth.storage.runs import WEIGHTS, RunFolder
from evosynth.study.config import RunConfig

IMAGE_SIZE = (48, 48)  # the smoke preset's canvas


def _onnx_output(path, images):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images})[0]


def test_onnx_graphs_match_pytorch_with_dynamic_batch(run_dir, tmp_path):
    generation = RunFolder(run_dir).load(2)
    result = export_network(generation.model, generation.number, tmp_path, IMAGE_SIZE)
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
    result = export_network(RunFolder(run_dir).load(1).model, 1, tmp_path, IMAGE_SIZE)
    assert result.engine is None and result.tensorrt == reason
    assert not (tmp_path / TRT_ENGINE).exists()
    message = capsys.readouterr().err.strip().splitlines()
    assert len(message) == 1 and "skipped" in message[0] and "CPU path" in message[0]


def test_the_image_size_of_a_run_is_its_presets_canvas_or_its_photographs_size(tmp_path):
    photographs = RunConfig(preset="pedestrians", data="pennfudan", data_root=str(tmp_path / "PennFudanPed"))
    for config, size in ((RunConfig(preset="smoke"), (48, 48)), (photographs, (128, 160))):
        folder = RunFolder(tmp_path / config.name)
        folder.bind(config.identity())
        assert run_image_size(folder.root) == size
