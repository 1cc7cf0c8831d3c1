"""Which ONNX exporter should `evosynth export` use? Time to export, and frame time of what each one wrote.

torch 2.13 has two exporters: the TorchScript one (``dynamo=False``, deprecated since torch 2.9) and the
torch.export-based one (``dynamo=True``, the default, which needs onnxscript). For the study's deep ancestor and a
network of its family at about a last generation's MACs (random weights), this script exports each network at
FP32 and FP16 both ways (seconds per export, after one warm-up export of each kind), then times a 640x480 frame at
batch 1 on every CPU backend of ``evosynth bench`` for each FP32 graph in interleaved rounds (medians), and
writes a JSON with the machine.

    .venv/bin/python benchmarks/exporters.py --out benchmarks/exporters_<machine>.json
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import torch
from deep_ancestor import CANDIDATES, TRAINING_BATCH, TRAINING_SIDE
from structure_ceiling import frame_steps, time_cells, timing_parser
from torch import nn
from tqdm.auto import tqdm

from evosynth.deploy.export import INPUT_NAME, OUTPUT_NAME, onnx_bytes
from evosynth.deploy.machine import write_measurement
from evosynth.task.recipe import Recipe

NETWORKS: dict[str, tuple[str, dict[str, Any]]] = {
    "residual 64-128, patch stem (the ancestor)": CANDIDATES["residual 64-128, patch stem"],
    "residual 24-48, patch stem (about a last generation's MACs)": (
        "residual_detector", {"stem_widths": [16], "widths": [24, 48], "blocks": 2, "patch_stem": True}),
}


def _torch_export_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """The torch.export-based exporter with the same dynamic axes as `evosynth export`'s."""
    dimensions = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=8),
                  3: torch.export.Dim("width", min=8)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes={INPUT_NAME: dimensions}, dynamo=True, verbose=False)
    assert program is not None
    return program.model_proto.SerializeToString()


EXPORTERS = {"torchscript (dynamo=False)": onnx_bytes, "torch.export (dynamo=True)": _torch_export_bytes}


def main() -> None:
    arguments = timing_parser(__doc__, rounds=9, sample_ms=60.0).parse_args()
    torch.set_num_threads(arguments.threads)
    example = torch.rand(TRAINING_BATCH // 16, 3, TRAINING_SIDE, TRAINING_SIDE)
    rows: list[dict[str, Any]] = []
    cells: dict[tuple[str, str, str], Callable[[], object]] = {}
    with TemporaryDirectory() as folder:
        for export in EXPORTERS.values():  # warm-up: first-call imports and caches of each exporter
            export(Recipe(*NETWORKS[next(iter(NETWORKS))], (1, 3, TRAINING_SIDE, TRAINING_SIDE)).build().eval(),
                   example)
        for network, (builder, options) in tqdm(NETWORKS.items(), desc="export", unit="network"):
            torch.manual_seed(0)
            model = Recipe(builder, options, (1, 3, TRAINING_SIDE, TRAINING_SIDE)).build().eval()
            for exporter, export in EXPORTERS.items():
                seconds = {}
                for precision, (copy_of, images) in {"fp32": (model, example),
                                                     "fp16": (copy.deepcopy(model).half(), example.half())}.items():
                    started = time.perf_counter()
                    graph = export(copy_of, images)
                    seconds[precision] = time.perf_counter() - started
                    if precision == "fp32":
                        path = Path(folder) / f"{len(cells)}.onnx"
                        path.write_bytes(graph)
                        cells.update({(network, exporter, backend): step
                                      for backend, step in frame_steps(path, arguments.threads).items()})
                rows.append({"network": network, "exporter": exporter, "export_seconds_fp32": seconds["fp32"],
                             "export_seconds_fp16": seconds["fp16"]})
        samples = time_cells(cells, arguments.rounds, arguments.sample_ms)
    for row in rows:
        row["frame_ms"] = {backend: float(np.median(times)) for (network, exporter, backend), times in samples.items()
                           if network == row["network"] and exporter == row["exporter"]}
    print(write_measurement(arguments.out, {"threads": arguments.threads, "rounds": arguments.rounds,
                                            "sample_ms": arguments.sample_ms, "results": rows}))
    for row in rows:
        frames = ", ".join(f"{backend} {ms:.2f} ms" for backend, ms in row["frame_ms"].items())
        print(f"{row['network'][:22]:22s} {row['exporter']:27s} export {row['export_seconds_fp32']:.2f} s + "
              f"{row['export_seconds_fp16']:.2f} s (FP16); frame: {frames}")


if __name__ == "__main__":
    main()
