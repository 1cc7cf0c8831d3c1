"""Runtimes ("backends") a generation's speed is measured on: how each loads a generation, when it cannot run
here and what arithmetic it does. ``BACKENDS`` is the registry; adding one is one entry.

Thread pools do not spin between calls (onnxruntime's is told not to; OpenVINO's and torch's sleep when idle), so
that the sessions of interleaved generations do not steal the cores from the one being timed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evosynth.deploy.export import (
    ENGINE_MAX_BATCH,
    INPUT_NAME,
    ONNX_FP32,
    OUTPUT_NAME,
    TRT_ENGINE,
    tensorrt_unavailable,
)
from evosynth.task.model import Detector

Shape = tuple[int, int, int, int]  # batch, channels, height, width
Step = Callable[[], object]  # one forward pass on an input bound in advance
Prepare = Callable[[Shape], Step]  # input shape -> its step


@dataclass(frozen=True)
class Target:
    """What a backend needs to load one network (a generation's, or a reference network's)."""

    model: Detector
    directory: Path  # where its exports are (a generation's folder)
    threads: int


@dataclass(frozen=True)
class Backend:
    """A runtime: how to load a generation into it, when it cannot run here, and what arithmetic it does."""

    load: Callable[[Target], Prepare]
    arithmetic: str  # for figure captions: which precision the numbers are computed in
    needs_exports: bool = False
    unavailable: Callable[[], str | None] = lambda: None


def _torch_prepare(model: Callable[[torch.Tensor], torch.Tensor], bf16: bool = False) -> Prepare:
    def prepare(shape: Shape) -> Step:
        images = torch.rand(shape)

        def step() -> object:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(images)

        return step

    return prepare


def _eval_copy(target: Target) -> torch.nn.Module:
    return copy.deepcopy(target.model).eval()


def _torch_eager(target: Target) -> Prepare:
    return _torch_prepare(_eval_copy(target))


def _torch_compile(target: Target, bf16: bool) -> Prepare:
    # dynamic=False: one specialised graph per input shape, as a deployment would compile it.
    return _torch_prepare(torch.compile(_eval_copy(target), dynamic=False), bf16)


def onnxruntime_session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session of an ONNX file on ``threads`` threads whose pool does not spin when idle."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # Every generation has its own session and thread pool; spinning idle workers of the other 12 pools would
    # steal the cores from the one being timed (measured here: 1.5-3x slower, with a wide spread).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnxruntime(target: Target) -> Prepare:
    session = onnxruntime_session(target.directory / ONNX_FP32, target.threads)

    def prepare(shape: Shape) -> Step:
        feed = {INPUT_NAME: np.random.default_rng(shape[0]).random(shape, dtype=np.float32)}
        return lambda: session.run([OUTPUT_NAME], feed)

    return prepare


OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}  # ours -> INFERENCE_PRECISION_HINT
OPENVINO_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}  # the CPU plugin's name for native support of each


def openvino_request(path: Path, shape: Shape, precision: str, threads: int) -> Any:
    """An inference request of an ONNX file compiled by OpenVINO's CPU plugin for one static input shape, as a
    deployment would compile it, computing in ``precision`` (its inference precision hint: bf16 / f16 convert
    weights and activations inside the plugin)."""
    import openvino

    core = openvino.Core()
    model = core.read_model(str(path))
    model.reshape(list(shape))
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision], "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
    return compiled.create_infer_request()


def _openvino(target: Target, precision: str) -> Prepare:
    """The FP32 ONNX export on OpenVINO's CPU plugin in ``precision``, one compiled model per input shape."""

    def prepare(shape: Shape) -> Step:
        request = openvino_request(target.directory / ONNX_FP32, shape, precision, target.threads)
        images = np.random.default_rng(shape[0]).random(shape, dtype=np.float32)
        return lambda: request.infer({0: images})

    return prepare


def _tensorrt(target: Target) -> Prepare:
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine((target.directory / TRT_ENGINE).read_bytes())
    context = engine.create_execution_context()
    stream = torch.cuda.Stream()

    def prepare(shape: Shape) -> Step:
        if shape[0] > ENGINE_MAX_BATCH:
            raise ValueError(f"the TensorRT engine was built for batches up to {ENGINE_MAX_BATCH}, not {shape[0]}")
        images = torch.rand(shape, device="cuda", dtype=torch.float16)
        context.set_input_shape(INPUT_NAME, tuple(images.shape))
        maps = torch.empty(tuple(context.get_tensor_shape(OUTPUT_NAME)), device="cuda", dtype=torch.float16)

        def step() -> object:
            # One context serves every batch size, so shapes and addresses are set on every call (cheap).
            context.set_input_shape(INPUT_NAME, tuple(images.shape))
            context.set_tensor_address(INPUT_NAME, images.data_ptr())
            context.set_tensor_address(OUTPUT_NAME, maps.data_ptr())
            context.execute_async_v3(stream.cuda_stream)
            stream.synchronize()
            return maps

        return step

    return prepare


def _torch_cuda_fp16(target: Target) -> Prepare:
    model = _eval_copy(target).half().cuda()

    def prepare(shape: Shape) -> Step:
        images = torch.rand(shape, device="cuda", dtype=torch.float16)

        def step() -> object:
            with torch.inference_mode():
                maps = model(images)
            torch.cuda.synchronize()
            return maps

        return step

    return prepare


def _torch_cuda_graph_fp16(target: Target) -> Prepare:
    """The FP16 model replayed as one CUDA graph per batch size: a small network at batch 1 is otherwise bound by
    the CPU launching its kernels one by one (eager, every generation takes about as long on a large GPU), which
    hides what compaction saves on the GPU."""
    model = _eval_copy(target).half().cuda()

    def prepare(shape: Shape) -> Step:
        images = torch.rand(shape, device="cuda", dtype=torch.float16)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad():
            warm_up = torch.cuda.Stream()  # capture needs the lazy cuDNN/cuBLAS set-up done on a side stream
            warm_up.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(warm_up):
                for _ in range(3):
                    model(images)
            torch.cuda.current_stream().wait_stream(warm_up)
            with torch.cuda.graph(graph):
                maps = model(images)

        def step() -> object:
            graph.replay()
            torch.cuda.synchronize()
            return maps

        return step

    return prepare


def _cuda_unavailable() -> str | None:
    return None if torch.cuda.is_available() else "no CUDA device"


def _onnxruntime_unavailable() -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as error:
        return f"onnxruntime is not importable ({error}); install the 'export' extra"
    return None


def _openvino_unavailable(precision: str) -> str | None:
    """Why OpenVINO cannot compute in ``precision`` on this CPU, or None. Its CPU plugin lists the precisions the
    CPU computes natively; asked for one it lacks, it would silently compute in FP32."""
    try:
        import openvino
    except ImportError as error:
        return f"openvino is not importable ({error}); install the 'openvino' extra"
    capability = OPENVINO_CAPABILITY.get(precision)
    if capability is None:
        return None
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if capability in capabilities:
        return None
    if precision == "fp16":
        return ("this CPU has no native FP16 arithmetic (no avx512_fp16 / amx_fp16): FP16 is storage only here, "
                "its FP16-rounded weights computed in FP32 (openvino-fp32)")
    return (f"this CPU has no native {precision.upper()} arithmetic "
            f"(OpenVINO's CPU capabilities: {', '.join(capabilities)})")


FP32_ON_FP16 = "FP32 arithmetic on the FP16-rounded weights"
BACKENDS: dict[str, Backend] = {
    "torch-eager-fp32": Backend(_torch_eager, FP32_ON_FP16),
    "torch-compile-fp32": Backend(lambda t: _torch_compile(t, bf16=False), FP32_ON_FP16),
    "torch-compile-bf16": Backend(lambda t: _torch_compile(t, bf16=True),
                                  "BF16 autocast arithmetic (weights and activations cast to bfloat16)"),
    "onnxruntime-cpu": Backend(_onnxruntime, FP32_ON_FP16 + " (model.onnx, BatchNorm folded)", needs_exports=True,
                               unavailable=_onnxruntime_unavailable),
    "openvino-fp32": Backend(lambda t: _openvino(t, "fp32"), FP32_ON_FP16 + " (OpenVINO CPU, model.onnx)",
                             needs_exports=True, unavailable=lambda: _openvino_unavailable("fp32")),
    "openvino-bf16": Backend(lambda t: _openvino(t, "bf16"),
                             "BF16 arithmetic (OpenVINO CPU, inference precision bf16: weights and activations)",
                             needs_exports=True, unavailable=lambda: _openvino_unavailable("bf16")),
    "openvino-fp16": Backend(lambda t: _openvino(t, "fp16"),
                             "FP16 arithmetic (OpenVINO CPU, inference precision f16: weights and activations)",
                             needs_exports=True, unavailable=lambda: _openvino_unavailable("fp16")),
    "torch-cuda-fp16": Backend(_torch_cuda_fp16, "FP16 arithmetic on the GPU (PyTorch eager, weights and activations)",
                               unavailable=_cuda_unavailable),
    "torch-cuda-graph-fp16": Backend(_torch_cuda_graph_fp16,
                                     "FP16 arithmetic on the GPU (PyTorch, replayed as a CUDA graph)",
                                     unavailable=_cuda_unavailable),
    "tensorrt-fp16": Backend(_tensorrt, "FP16 arithmetic on the GPU (TensorRT engine of model_fp16.onnx)",
                             needs_exports=True, unavailable=tensorrt_unavailable),
}
DEFAULT_BACKENDS = tuple(BACKENDS)
# The study's Figure 2 times eager PyTorch, onnxruntime, OpenVINO and, on a GPU, CUDA and TensorRT; torch.compile
# would add minutes of compilation (a graph per generation and input shape; `evosynth bench` times it too).
STUDY_BACKENDS = tuple(name for name in BACKENDS if not name.startswith("torch-compile"))
