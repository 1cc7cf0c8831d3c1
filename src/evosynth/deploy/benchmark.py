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

Backends are ``backends.BACKENDS``; all run by default, those that cannot run here (TensorRT without a GPU) are
skipped with the reason. What is measured goes to ``bench.json`` (``bench_record``). ``torch-compile-*`` compile
every (generation, batch size) separately, with inductor's CPU inference settings: measured on 2 cores with an empty
compile cache, 13 s for the first graph, then about 1 s per graph, 55 s for both backends over 13 generations
and batch sizes 1 and 32 (``first_call_ms`` records it per cell; inductor's cache makes a rerun faster).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from evosynth.core.graph import GraphError
from evosynth.deploy.backends import BACKENDS, DEFAULT_BACKENDS, Step, Target
from evosynth.deploy.bench_record import BENCH_FILE, SCHEMA_VERSION
from evosynth.deploy.export import export_network, export_run, run_image_size
from evosynth.deploy.machine import describe_machine
from evosynth.storage.runs import RunFolder, write_json
from evosynth.task.model import FRAME_SIZE, Detector, frame_macs, fresh_network, group_widths

DEFAULT_ROUNDS = 15
SAMPLE_LIMIT = 5  # a sample stops after 5 x sample_ms even if its iterations are not done
BUSY_LOAD_PER_CORE = 0.6  # 1-minute load average per core above which other work shares the machine


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


# The ceiling: dense networks of the ancestor's structure, timed on the frame in the same rounds as the generations,
# so that a reader sees how fast the widths the synthesis can choose run and how close the evolution comes.
CEILING_SCALES = (0.7, 0.5, 0.35, 0.25, 0.18, 0.125)  # every group's width times this, rounded to the run's multiple
CEILING_WORKLOAD = "frame"


@dataclass(frozen=True)
class ReferenceNetwork:
    """A dense network of the ancestor's structure at other widths: a point of the ceiling."""

    label: str
    widths: list[int]
    model: Detector


def ceiling_networks(ancestor: Detector, scales: Sequence[float] = CEILING_SCALES,
                     channel_multiple: int = 1) -> list[ReferenceNetwork]:
    """Dense networks of ``ancestor``'s structure with every group's width times each scale, and the floor (every
    group at ``channel_multiple``); random weights, since only their speed is measured.

    Widths are rounded to ``channel_multiple`` (at least that), as the synthesis rounds the run's kept filters: a
    dense network in other multiples pads differently in the vector units, so it would not show what the run's
    widths allow. Widths that several scales round to are timed once, under the first scale's label, and those equal
    to the ancestor's or the floor's are not timed as a scale. Raises GraphError for a network that cannot be
    narrowed by width.
    """
    if channel_multiple < 1:
        raise ValueError(f"channel_multiple must be at least 1, got {channel_multiple}")
    widths = group_widths(ancestor)

    def rounded(width: float) -> int:
        return max(channel_multiple, round(width / channel_multiple) * channel_multiple)

    floor = [channel_multiple] * len(widths)
    chosen: dict[str, list[int]] = {}
    for scale in scales:
        candidate = [rounded(w * scale) for w in widths]
        if candidate not in (*chosen.values(), floor, widths):
            chosen[f"dense x{scale:g}"] = candidate
    chosen[f"dense, every group at {channel_multiple}"] = floor
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return [ReferenceNetwork(label, w, fresh_network(ancestor, w)) for label, w in chosen.items()]


@contextlib.contextmanager
def _torch_settings(threads: int) -> Iterator[None]:
    """Pin torch's thread count, and compile as for CPU inference, one graph per (generation, batch size).

    All generations share their detector's forward, so without a larger recompile limit dynamo would silently fall
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
    generation: int  # the generation timed, or the baseline generation for a ceiling cell
    reference: ReferenceNetwork | None  # a ceiling cell's network
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
    ceiling_scales: Sequence[float] = CEILING_SCALES,
    channel_multiple: int = 1,
) -> dict[str, Any]:
    """Time every finished generation of a run on each backend and workload; writes and returns bench.json.

    ``threads`` (default: torch's current count) is applied to torch, onnxruntime and OpenVINO alike. Backends
    that cannot run here (no GPU for TensorRT, no native half precision) are listed under ``skipped`` with the
    reason. Where the frame is a workload, the ceiling's dense networks (``ceiling_networks`` at
    ``ceiling_scales`` in multiples of the run's ``channel_multiple``; none where the scales are empty) are timed on
    it in the same rounds. The time taken is about compile + warm-up + rounds x cells x max(sample_ms, one forward
    pass).
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
    needs_exports = any(BACKENDS[name].needs_exports for name in chosen)
    if needs_exports:
        export_run(folder.root)
    generations = folder.load_finished(Detector)
    if not generations:
        raise ValueError(f"{folder.root} has no finished generation to benchmark")
    sizes = {name: WORKLOADS[name].image_size(training_size) for name in workloads}
    baseline = generations[0].number
    references: list[ReferenceNetwork] = []
    ceiling_skipped: str | None = None
    if CEILING_WORKLOAD in workloads and ceiling_scales:
        try:
            references = ceiling_networks(generations[0].model, ceiling_scales, channel_multiple)
        except GraphError as error:
            ceiling_skipped = str(error)

    with _torch_settings(threads), TemporaryDirectory(prefix="evosynth-ceiling-") as exports:
        targets = [(generation.number, None, Target(generation.model, folder.generation_dir(generation.number),
                                                    threads)) for generation in generations]
        for index, reference in enumerate(tqdm(references, desc="export ceiling", unit="network")):
            directory = Path(exports) / str(index)
            if needs_exports:
                export_network(reference.model, baseline, directory, training_size, announce=False)
            targets.append((baseline, reference, Target(reference.model, directory, threads)))
        cells: list[_Cell] = []
        for name in tqdm(chosen, desc="load backends", unit="backend"):
            for number, reference, target in targets:
                prepare = BACKENDS[name].load(target)
                channels = target.model.in_channels
                cells.extend(_Cell(number, reference, name, workload,
                                   prepare((WORKLOADS[workload].batch, channels, *sizes[workload])))
                             for workload in workloads if reference is None or workload == CEILING_WORKLOAD)
        for cell in tqdm(cells, desc="warm-up", unit="cell"):
            _warm_up(cell, warmup_ms, sample_ms)
        for round_number in tqdm(range(rounds), desc="bench rounds", unit="round"):
            # Cells are ordered backend, network, workload; time each (backend, workload) across the networks.
            for name in chosen:
                for workload in workloads:
                    line = [c for c in cells if c.backend == name and c.workload == workload]
                    for cell in line if round_number % 2 == 0 else reversed(line):
                        cell.samples.append(_time_ms(cell.step, cell.iterations, SAMPLE_LIMIT * sample_ms))

    macs = {(g.number, workload): frame_macs(g.model, sizes[workload]) for g in generations for workload in workloads}
    reference_macs = {r.label: frame_macs(r.model, sizes[CEILING_WORKLOAD]) for r in references}  # once per network
    summaries = {id(cell): _summary(cell.samples) for cell in cells}
    medians = {(c.backend, c.workload, c.generation): summaries[id(c)]["median_ms"] for c in cells
               if c.reference is None}
    results: list[dict[str, Any]] = []
    ceiling: list[dict[str, Any]] = []
    for cell in cells:
        summary = summaries[id(cell)]
        shape = WORKLOADS[cell.workload]
        speedup = medians[cell.backend, cell.workload, baseline] / summary["median_ms"]
        cell_macs = (macs[cell.generation, cell.workload] if cell.reference is None
                     else reference_macs[cell.reference.label])
        mac_reduction = macs[baseline, cell.workload] / cell_macs
        row: dict[str, Any] = {
            "generation": cell.generation, "backend": cell.backend, "workload": cell.workload,
            "batch_size": shape.batch, "height": sizes[cell.workload][0], "width": sizes[cell.workload][1],
            "macs": cell_macs, "iterations": cell.iterations,
            "first_call_ms": cell.first_call_ms, "samples_ms": cell.samples, **summary,
            "throughput_fps": shape.batch * 1e3 / summary["median_ms"], "speedup_vs_gen1": speedup,
            "mac_reduction": mac_reduction, "speedup_per_mac_reduction": speedup / mac_reduction,
        }
        if cell.reference is None:
            results.append(row)
        else:
            ceiling.append({"network": cell.reference.label, "widths": cell.reference.widths, **row})

    bench = {
        "schema": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {**describe_machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "settings": {"threads": threads, "rounds": rounds, "sample_ms": sample_ms, "warmup_ms": warmup_ms,
                     "training_size": list(training_size), "baseline_generation": baseline,
                     "ceiling_channel_multiple": channel_multiple,
                     "workloads": {name: {"batch_size": WORKLOADS[name].batch, "height": sizes[name][0],
                                          "width": sizes[name][1], "description": WORKLOADS[name].description}
                                   for name in workloads}},
        "backends": {name: {"arithmetic": BACKENDS[name].arithmetic} for name in chosen},
        "skipped": skipped,
        "generations": [{"generation": g.number, "widths": list(g.metrics["widths"]),
                         "macs_training_size": int(g.metrics["macs"]), "parameters": g.metrics.get("parameters")}
                        for g in generations],
        "results": results,
        "ceiling": ceiling,
        "ceiling_skipped": ceiling_skipped,
        "seconds": time.perf_counter() - started,
    }
    write_json(folder.root / BENCH_FILE, bench)
    return bench
