"""Deployable exports of every generation, so that its speed can be measured by real inference runtimes.

Per generation folder:

- ``model.onnx``: FP32 graph carrying the generation's restricted weights (FP16 values in FP32 storage), for
  CPU runtimes; on a CPU without native half arithmetic this is how the FP16 restriction runs.
- ``model_fp16.onnx``: FP16 graph (weights, activations, input and output in float16) for GPUs, where half
  arithmetic is real. onnxruntime's CPU provider runs it in FP32 internally, which is enough to check it.
- ``model_fp16.engine``: a TensorRT FP16 engine, only where ``tensorrt`` imports and a CUDA device exists.
- ``export.json``: what was checked (largest deviation from PyTorch per graph) and whether TensorRT ran.

Both graphs have dynamic batch, height and width axes (the detector is fully convolutional: the same graph runs a
training-size thumbnail and a whole camera frame) and are checked against the PyTorch model with onnxruntime, at
the training size and at the frame size, before they replace anything on disk. Exporting folds BatchNorm into the
convolutions, which is why the FP32 graph agrees with PyTorch to about 1e-5 rather than bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from evosynth.core.precision import is_representable
from evosynth.errors import EvosynthError
from evosynth.files import atomic_write
from evosynth.storage.runs import WEIGHTS, RunFolder, read_json, write_json
from evosynth.task.model import FRAME_SIZE, Detector

ONNX_FP32 = "model.onnx"
ONNX_FP16 = "model_fp16.onnx"
TRT_ENGINE = "model_fp16.engine"
EXPORT_RECORD = "export.json"
INPUT_NAME = "images"
OUTPUT_NAME = "maps"
FP32_TOLERANCE = 1e-4  # absolute; BatchNorm folding and kernel order differ from PyTorch by ~1e-5
# FP16 graph: every activation is rounded to 11 significant bits (relative step 2^-11 ~ 4.9e-4) after each of
# the six layers, so outputs drift by a few 1e-3 of their scale; 1e-2 of max(1, largest |output|) leaves headroom.
FP16_RELATIVE_TOLERANCE = 1e-2
ENGINE_MAX_BATCH = 64  # the TensorRT optimisation profile covers batch 1..64 up to the frame size, tuned for 32
ENGINE_OPT_BATCH = 32
CHECK_BATCHES = (1, 3)  # 1 and 3 images exercise the dynamic batch axis (3: not a specialised size)
EXPORT_FORMAT = 2  # 2: dynamic height and width; exports of another format are made again


class ExportError(EvosynthError):
    """An exported graph disagrees with the PyTorch model, or an export step failed."""


@dataclass(frozen=True)
class ExportResult:
    """Where a generation's exports are and how closely they reproduce the PyTorch model."""

    generation: int
    directory: Path
    onnx_fp32: Path
    onnx_fp16: Path
    engine: Path | None
    max_abs_error_fp32: float
    max_abs_error_fp16: float
    fp16_tolerance: float  # the absolute tolerance the FP16 graph was held to
    weights_fp16_exact: bool  # every weight of the exported model is an FP16 value
    tensorrt: str  # "built", or why no engine was built
    reused: bool  # up to date on disk, not exported again

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "max_abs_error_fp32": self.max_abs_error_fp32,
            "max_abs_error_fp16": self.max_abs_error_fp16,
            "fp32_tolerance": FP32_TOLERANCE,
            "fp16_tolerance": self.fp16_tolerance,
            "weights_fp16_exact": self.weights_fp16_exact,
            "tensorrt": self.tensorrt,
        }


def tensorrt_unavailable() -> str | None:
    """Why no TensorRT engine can be built or run here, or None when it can (tensorrt is imported lazily)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as error:
        return f"tensorrt is not importable ({error})"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def tensorrt_skip_message(reason: str) -> str:
    return f"TensorRT FP16 engine skipped: {reason}; the CPU path (onnxruntime on {ONNX_FP32}) is used instead"


def run_image_size(run_dir: Path) -> tuple[int, int]:
    """The input size the run was trained at, read from its stored preset (presets may change after a run); a
    baseline's identity holds the preset of the evolution run it follows (``widths_of``, ``structure_of``)."""
    identity = RunFolder(run_dir).stored_config()["identity"]
    followed = [value for value in identity.values() if isinstance(value, dict) and "preset_definition" in value]
    try:
        data = (followed[0] if followed else identity)["preset_definition"]["data"]
        if "canvas" in data:  # generated digits: a square canvas
            return int(data["canvas"]), int(data["canvas"])
        return int(data["height"]), int(data["width"])  # photographs, letterboxed to one size
    except (KeyError, TypeError, ValueError) as error:
        raise EvosynthError(f"{run_dir} has no image size in its config.json ({error})") from error


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter warns that it is the TorchScript one (below, why it is); a library should not pass that on."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """The network as ONNX with dynamic batch, height and width, by torch's TorchScript exporter: it wrote a
    generation in 0.06-0.16 s where the torch.export-based one (``dynamo=True``) took 2-5 s, and OpenVINO and
    ONNX Runtime ran both graphs equally fast (benchmarks/README.md, "Exporting")."""
    with _quiet_exporter(), torch.inference_mode(), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "graph.onnx"
        torch.onnx.export(model, (example,), path, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}, dynamo=False)
        return path.read_bytes()


def _max_abs_error(graph: bytes, model: Detector, inputs: list[torch.Tensor], dtype: type[np.generic]) -> float:
    """Largest |onnxruntime - PyTorch| over every check input, run on onnxruntime's CPU provider."""
    import onnxruntime

    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    error = 0.0
    for images in inputs:
        with torch.inference_mode():
            reference = model(images)
        (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy().astype(dtype)})
        if output.shape != tuple(reference.shape):
            raise ExportError(f"ONNX output shape {output.shape} != PyTorch {tuple(reference.shape)}")
        error = max(error, float(np.abs(output.astype(np.float32) - reference.numpy()).max()))
    return error


def _build_engine(onnx_fp16: bytes, image_shape: tuple[int, int, int]) -> bytes:
    """A TensorRT engine computing in FP16, with a batch profile 1..ENGINE_MAX_BATCH."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Strongly typed: TensorRT keeps the graph's own float16 types (the FP16 graph) instead of choosing per layer.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_fp16):
        problems = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {ONNX_FP16}: {problems}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    channels, height, width = image_shape
    largest = (ENGINE_MAX_BATCH, channels, max(height, FRAME_SIZE[0]), max(width, FRAME_SIZE[1]))
    profile.set_shape(INPUT_NAME, (1, *image_shape), (ENGINE_OPT_BATCH, *image_shape), largest)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError("TensorRT failed to build the FP16 engine (see its log above)")
    return bytes(engine)


def _record_is_fresh(directory: Path, image_size: tuple[int, int], with_engine: bool) -> bool:
    """Exports exist, are newer than the weights, and were made for this input size."""
    names = [ONNX_FP32, ONNX_FP16, EXPORT_RECORD] + ([TRT_ENGINE] if with_engine else [])
    paths = [directory / name for name in names]
    if not all(path.is_file() for path in paths):
        return False
    weights = (directory / WEIGHTS).stat().st_mtime
    record = read_json(directory / EXPORT_RECORD)
    return (min(path.stat().st_mtime for path in paths) >= weights and record.get("image_size") == list(image_size)
            and record.get("format") == EXPORT_FORMAT)


def _reused(number: int, directory: Path, with_engine: bool) -> ExportResult:
    record = read_json(directory / EXPORT_RECORD)
    return ExportResult(
        generation=number, directory=directory, onnx_fp32=directory / ONNX_FP32,
        onnx_fp16=directory / ONNX_FP16, engine=directory / TRT_ENGINE if with_engine else None,
        max_abs_error_fp32=float(record["max_abs_error_fp32"]), max_abs_error_fp16=float(record["max_abs_error_fp16"]),
        fp16_tolerance=float(record["fp16_tolerance"]), weights_fp16_exact=bool(record["weights_fp16_exact"]),
        tensorrt=str(record["tensorrt"]), reused=True,
    )


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _announce(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def export_network(
    network: Detector, number: int, directory: Path, image_size: tuple[int, int], announce: bool = True
) -> ExportResult:
    """Export a network (generation ``number``'s, or a reference network's) into ``directory`` (for a generation
    its ``gen_NN/`` folder) and check every graph.

    Raises ExportError when a graph deviates from PyTorch beyond its tolerance; nothing is replaced then.
    ``announce`` prints the one-line reason when no TensorRT engine is built.
    """
    directory = Path(directory)
    model = copy.deepcopy(network).eval()
    image_shape = (model.in_channels, *image_size)
    random = torch.Generator().manual_seed(number)
    images = torch.rand((max(CHECK_BATCHES), *image_shape), generator=random)
    frame = torch.rand((1, image_shape[0], *FRAME_SIZE), generator=random)
    inputs = [images[:batch] for batch in CHECK_BATCHES] + [frame]
    with torch.inference_mode():
        largest_output = max(float(model(x).abs().max()) for x in inputs)

    fp32 = onnx_bytes(model, images)
    fp32_error = _max_abs_error(fp32, model, inputs, np.float32)
    if not fp32_error <= FP32_TOLERANCE:
        raise ExportError(f"generation {number}: FP32 ONNX deviates by {fp32_error:.3g} > {FP32_TOLERANCE}")
    fp16 = onnx_bytes(copy.deepcopy(model).half(), images.half())
    fp16_tolerance = FP16_RELATIVE_TOLERANCE * max(1.0, largest_output)
    fp16_error = _max_abs_error(fp16, model, inputs, np.float16)
    if not fp16_error <= fp16_tolerance:
        raise ExportError(
            f"generation {number}: FP16 ONNX deviates by {fp16_error:.3g} > {fp16_tolerance:.3g}"
        )

    state = model.state_dict().values()
    weights_fp16_exact = all(is_representable(t, "fp16") for t in state if t.is_floating_point())
    reason = tensorrt_unavailable()
    engine = None if reason else _build_engine(fp16, image_shape)
    for name, data in ((ONNX_FP32, fp32), (ONNX_FP16, fp16), (TRT_ENGINE, engine)):
        if data is not None:
            atomic_write(directory / name, partial(_write_bytes, data=data))
    if reason and announce:
        _announce(tensorrt_skip_message(reason))
    result = ExportResult(
        generation=number, directory=directory, onnx_fp32=directory / ONNX_FP32,
        onnx_fp16=directory / ONNX_FP16, engine=None if reason else directory / TRT_ENGINE,
        max_abs_error_fp32=fp32_error, max_abs_error_fp16=fp16_error, fp16_tolerance=fp16_tolerance,
        weights_fp16_exact=weights_fp16_exact,
        tensorrt="built" if engine is not None else str(reason), reused=False,
    )
    write_json(directory / EXPORT_RECORD, {**result.to_json(), "image_size": list(image_size), "format": EXPORT_FORMAT})
    return result


def export_run(run_dir: Path) -> list[ExportResult]:
    """Export every finished generation of a run into its ``gen_NN/`` folder; up-to-date exports are reused."""
    folder = RunFolder(Path(run_dir))
    image_size = run_image_size(folder.root)
    reason = tensorrt_unavailable()
    if reason:
        _announce(tensorrt_skip_message(reason))
    results = []
    for number in tqdm(folder.finished(), desc="export", unit="gen"):
        directory = folder.generation_dir(number)
        if _record_is_fresh(directory, image_size, with_engine=reason is None):
            results.append(_reused(number, directory, with_engine=reason is None))
        else:
            network = folder.load(number, Detector).model
            results.append(export_network(network, number, directory, image_size, announce=False))
    return results
