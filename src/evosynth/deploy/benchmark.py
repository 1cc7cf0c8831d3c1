"""Real inference speed of every generation, per runtime ("backend") and workload, written to ``bench.json``.

Workloads (``WORKLOADS``): one 640x480 camera frame, the paper's unit of frames per second (the detector is fully
convolutional, so its grid just grows; compute-bound on a CPU), one training-size thumbnail (bound by
per-layer overheads) and a batch of 32 thumbnails.

Only ratios measured in one process are meaningful on a shared machine, so the method is built for ratios:
every (generation, backend, workload) cell is warmed up and given a fixed number of iterations per sample
(enough for ``sample_ms``), then the cells are timed in ``rounds``, generations interleaved within each round
(in alternating order) so that drift and load spikes hit all generations alike. Each cell reports the median
per-forward latency over rounds, its quartiles and extremes, and ``speedup_vs_gen1`` = median of generation 1
/ median of this generation, computed per backend and workload. Dividing by the MAC reduction says how much
of the arithmetic saved turns into time saved. Thread pools do not spin between calls (onnxruntime's is told
not to; OpenVINO's and torch's sleep when idle), so that interleaved sessions do not steal the cores.

Backends live in ``BACKENDS`` (name -> ``Backend``); adding one is one entry. All run by default; those that
cannot run here (TensorRT without a GPU) are skipped with the reason. ``torch-compile-*`` compile every
(generation, batch size) separately, with inductor's CPU inference settings: measured on 2 cores with an empty
compile cache, 13 s for the first graph, then about 1 s per graph, 55 s for both backends over 13 generations
and batch sizes 1 and 32 (``first_call_ms`` records it per cell; inductor's cache makes a rerun faster).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from evosynth.deploy.export import (
    ENGINE_MAX_BATCH,
    INPUT_NAME,
    ONNX_FP32,
    OUTPUT_NAME,
    TRT_ENGINE,
    export_run,
    run_image_size,
    tensorrt_unavailable,
)
from evosynth.deploy.machine import describe_machine
from evosynth.errors import EvosynthError
from evosynth.storage.runs import Generation, RunFolder, read_json, write_json
from evosynth.task.model import FRAME_SIZE, count_macs

BENCH_FILE = "bench.json"
DEFAULT_ROUNDS = 15
SAMPLE_LIMIT = 5  # a sample stops after 5 x sample_ms even if its iterations are not done
BUSY_LOAD_PER_CORE = 0.6  # 1-minute load average per core above which other work shares the machine
SCHEMA_VERSION = 2  # 2: workloads (frame, thumbnail, thumbnail batch); bench.json of another schema is refused

Shape = tuple[int, int, int, int]  # batch, channels, height, width
Step = Callable[[], object]  # one forward pass on an input bound in advance
Prepare = Callable[[Shape], Step]  # input shape -> its step


class BenchFormatError(EvosynthError):
    """A bench.json this version cannot read: measure again."""


@dataclass(frozen=True)
class Workload:
    """One input every generation is timed on: a batch of images of one size (None: the run's training size)."""

    batch: int
    size: tuple[int, int] | None
    description: str

    def image_size(self, training_size: tuple[int, int]) -> tuple[int, int]:
        return self.size or training_size


WORKLOADS: dict[str, Workload] = {
    "frame": Workload(1, FRAME_SIZE, f"one {FRAME_SIZE[1]}x{FRAME_SIZE[0]} camera frame"),
    "thumbnail": Workload(1, None, "one training-size thumbnail"),
    "thumbnail-b32": Workload(32, None, "32 training-size thumbnails"),
}
DEFAULT_WORKLOADS = tuple(WORKLOADS)


@dataclass(frozen=True)
class Target:
    """What a backend needs to load one generation."""

    generation: Generation
    directory: Path  # the generation's folder, holding its exports
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
    return copy.deepcopy(target.generation.model).eval()


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


@contextlib.contextmanager
def _torch_settings(threads: int) -> Iterator[None]:
    """Pin torch's thread count, and compile as for CPU inference, one graph per (generation, batch size).

    All generations share GridDetector.forward, so without a larger recompile limit dynamo would silently fall
    back to eager after 8 graphs; failing loudly is better than timing the wrong thing. Inductor's ``freezing``
    (weights as constants, convolutions prepacked) is its recommended CPU inference mode.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with (torch._dynamo.config.patch(recompile_limit=4096, fail_on_recompile_limit_hit=True),
              torch._inductor.config.patch(freezing=True)):
            yield
    finally:
        torch.set_num_threads(before)


def _time_ms(step: Step, iterations: int, limit_ms: float = float("inf")) -> float:
    """Mean milliseconds per call over ``iterations`` calls, cut short once ``limit_ms`` has passed.

    The limit bounds the bench's time when other work slows calls 100-fold after warm-up (seen here with torch's
    OpenMP threads on a shared 2-core machine): 11 minutes instead of 2 without it.
    """
    start, calls = time.perf_counter(), 0
    while calls < iterations:
        step()
        calls += 1
        if (time.perf_counter() - start) * 1e3 > limit_ms:
            break
    return (time.perf_counter() - start) * 1e3 / calls


@dataclass
class _Cell:
    generation: int
    backend: str
    workload: str
    step: Step
    first_call_ms: float = 0.0
    iterations: int = 1
    samples: list[float] = field(default_factory=list)


def _warm_up(cell: _Cell, warmup_ms: float, sample_ms: float) -> None:
    """First call (compiles, allocates), then run for warmup_ms and choose iterations so a sample lasts sample_ms.

    The median call sets the iterations: a load spike during warm-up must not leave a cell with 1-call samples,
    which read slower (cold caches after the previous cell) and noisier than the others.
    """
    cell.first_call_ms = _time_ms(cell.step, 1)
    calls: list[float] = []
    while len(calls) < 3 or sum(calls) < warmup_ms:
        calls.append(_time_ms(cell.step, 1))
    cell.iterations = max(1, round(sample_ms / float(np.median(calls))))


def _summary(samples: list[float]) -> dict[str, float]:
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return {"median_ms": float(median), "q1_ms": float(q1), "q3_ms": float(q3),
            "min_ms": float(min(samples)), "max_ms": float(max(samples))}


def benchmark_run(
    run_dir: Path,
    backends: Sequence[str] = DEFAULT_BACKENDS,
    workloads: Sequence[str] = DEFAULT_WORKLOADS,
    rounds: int = DEFAULT_ROUNDS,
    threads: int | None = None,
    sample_ms: float = 20.0,
    warmup_ms: float = 100.0,
) -> dict[str, Any]:
    """Time every finished generation of a run on each backend and workload; writes and returns bench.json.

    ``threads`` (default: torch's current count) is applied to torch, onnxruntime and OpenVINO alike. Backends
    that cannot run here (no GPU for TensorRT, no native half precision) are listed under ``skipped`` with the
    reason. The time taken is about compile + warm-up + rounds x cells x max(sample_ms, one forward pass): about
    3 minutes for the default 13-generation run with the study's backends on 2 cores.
    """
    unknown = [name for name in backends if name not in BACKENDS]
    unknown += [name for name in workloads if name not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown backend(s) or workload(s) {', '.join(unknown)}; choose backends from "
                         f"{', '.join(BACKENDS)} and workloads from {', '.join(WORKLOADS)}")
    if rounds < 1 or not workloads:
        raise ValueError(f"need rounds >= 1 and at least one workload, got rounds={rounds}, workloads={workloads}")
    started = time.perf_counter()
    load_before = os.getloadavg()
    threads = threads or torch.get_num_threads()
    if load_before[0] > BUSY_LOAD_PER_CORE * (os.cpu_count() or 1):
        # Other processes on the cores stall torch's OpenMP barriers: seen here as 0.3 ms passes taking 240 ms.
        tqdm.write(f"machine busy (load average {load_before[0]:.1f}): timings will be noisy, torch's the most "
                   "(fewer threads, e.g. 1, suffer less)", file=sys.stderr)
    folder = RunFolder(Path(run_dir))
    training_size = run_image_size(folder.root)
    skipped = {name: reason for name in backends if (reason := BACKENDS[name].unavailable())}
    chosen = [name for name in backends if name not in skipped]
    if any(BACKENDS[name].needs_exports for name in chosen):
        export_run(folder.root)
    generations = folder.load_finished()
    if not generations:
        raise ValueError(f"{folder.root} has no finished generation to benchmark")
    sizes = {name: WORKLOADS[name].image_size(training_size) for name in workloads}

    with _torch_settings(threads):
        cells: list[_Cell] = []
        for name in tqdm(chosen, desc="load backends", unit="backend"):
            for generation in generations:
                target = Target(generation, folder.generation_dir(generation.number), threads)
                prepare = BACKENDS[name].load(target)
                channels = generation.model.architecture.in_channels
                cells.extend(_Cell(generation.number, name, workload,
                                   prepare((WORKLOADS[workload].batch, channels, *sizes[workload])))
                             for workload in workloads)
        for cell in tqdm(cells, desc="warm-up", unit="cell"):
            _warm_up(cell, warmup_ms, sample_ms)
        for round_number in tqdm(range(rounds), desc="bench rounds", unit="round"):
            # Cells are ordered backend, generation, workload; time each (backend, workload) across generations.
            for name in chosen:
                for workload in workloads:
                    row = [c for c in cells if c.backend == name and c.workload == workload]
                    for cell in row if round_number % 2 == 0 else reversed(row):
                        cell.samples.append(_time_ms(cell.step, cell.iterations, SAMPLE_LIMIT * sample_ms))

    architectures = {g.number: g.model.architecture for g in generations}
    macs = {(number, workload): count_macs(architecture, sizes[workload])
            for number, architecture in architectures.items() for workload in workloads}
    baseline = generations[0].number
    summaries = {id(cell): _summary(cell.samples) for cell in cells}
    medians = {(c.backend, c.workload, c.generation): summaries[id(c)]["median_ms"] for c in cells}
    results = []
    for cell in cells:
        summary = summaries[id(cell)]
        shape = WORKLOADS[cell.workload]
        speedup = medians[cell.backend, cell.workload, baseline] / summary["median_ms"]
        mac_reduction = macs[baseline, cell.workload] / macs[cell.generation, cell.workload]
        results.append({
            "generation": cell.generation, "backend": cell.backend, "workload": cell.workload,
            "batch_size": shape.batch, "height": sizes[cell.workload][0], "width": sizes[cell.workload][1],
            "macs": macs[cell.generation, cell.workload], "iterations": cell.iterations,
            "first_call_ms": cell.first_call_ms, "samples_ms": cell.samples, **summary,
            "throughput_fps": shape.batch * 1e3 / summary["median_ms"], "speedup_vs_gen1": speedup,
            "mac_reduction": mac_reduction, "speedup_per_mac_reduction": speedup / mac_reduction,
        })

    bench = {
        "schema": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {**describe_machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "settings": {"threads": threads, "rounds": rounds, "sample_ms": sample_ms, "warmup_ms": warmup_ms,
                     "training_size": list(training_size), "baseline_generation": baseline,
                     "workloads": {name: {"batch_size": WORKLOADS[name].batch, "height": sizes[name][0],
                                          "width": sizes[name][1], "description": WORKLOADS[name].description}
                                   for name in workloads}},
        "backends": {name: {"arithmetic": BACKENDS[name].arithmetic} for name in chosen},
        "skipped": skipped,
        "generations": [{"generation": g.number, "widths": list(g.model.architecture.widths),
                         "macs_training_size": int(g.metrics["macs"]), "parameters": g.metrics.get("parameters")}
                        for g in generations],
        "results": results,
        "seconds": time.perf_counter() - started,
    }
    write_json(folder.root / BENCH_FILE, bench)
    return bench


def read_bench(path: Path) -> dict[str, Any]:
    """A bench.json of this schema; another is refused with what to do (measure again)."""
    bench = read_json(path)
    if bench.get("schema") != SCHEMA_VERSION:
        raise BenchFormatError(f"{path} is of bench schema {bench.get('schema')!r}; this evosynth reads schema "
                               f"{SCHEMA_VERSION} only: measure again with `evosynth bench {path.parent}`")
    return bench


def bench_is_current(run_dir: Path) -> bool:
    """The run has a bench.json of this schema."""
    path = Path(run_dir) / BENCH_FILE
    return path.is_file() and read_json(path).get("schema") == SCHEMA_VERSION


def measured_table(run_dir: Path) -> pd.DataFrame | None:
    """``bench_table`` of a run folder's bench.json, or None where the run was not benchmarked."""
    path = Path(run_dir) / BENCH_FILE
    return bench_table(read_bench(path)) if path.is_file() else None


BENCH_COLUMNS = ["generation", "backend", "workload", "batch_size", "height", "width", "macs", "median_ms", "q1_ms",
                 "q3_ms", "throughput_fps", "speedup_vs_gen1", "mac_reduction", "speedup_per_mac_reduction"]


def bench_table(bench: dict[str, Any]) -> pd.DataFrame:
    """One row per (generation, backend, workload): what the CLI prints and the results notebook plots."""
    return pd.DataFrame(bench["results"], columns=BENCH_COLUMNS).sort_values(["workload", "backend", "generation"])


def format_bench_table(bench: dict[str, Any]) -> str:
    hidden = ["q1_ms", "q3_ms", "batch_size", "height", "width", "macs"]
    shown = bench_table(bench).drop(columns=hidden).rename(columns={
        "generation": "gen", "median_ms": "median ms", "throughput_fps": "img/s",
        "speedup_vs_gen1": "speed-up", "mac_reduction": "MAC ÷", "speedup_per_mac_reduction": "speed-up / MAC ÷"})
    formats = {"median ms": "{:.2f}".format, "img/s": "{:.0f}".format, "speed-up": "{:.2f}x".format,
               "MAC ÷": "{:.2f}x".format, "speed-up / MAC ÷": "{:.2f}".format}
    return shown.to_string(index=False, formatters=formats)  # type: ignore[arg-type]
