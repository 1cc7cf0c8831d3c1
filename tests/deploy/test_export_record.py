"""export.json records the checks each export ran and the weights it ran them on: every figure is recomputed here
from the exported graphs."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from conftest import IMAGE_SIZE, fp32_ancestor_folder, read
from evosynth.core.precision import is_representable
from evosynth.deploy.export import (
    CHECK_BATCHES,
    EXPORT_RECORD,
    FP16_RELATIVE_TOLERANCE,
    FP32_TOLERANCE,
    ONNX_FP16,
    ONNX_FP32,
    export_network,
    export_run,
    tensorrt_unavailable,
)
from evosynth.storage.runs import RunFolder
from evosynth.task.model import FRAME_SIZE, GridDetector

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
    export_network(generation.model, generation.number, tmp_path, IMAGE_SIZE, announce=False)
    assert _check_export_record(generation, tmp_path)["weights_fp16_exact"] is False
