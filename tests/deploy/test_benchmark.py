"""The speed measurement: every backend that can run here is timed on every generation and workload."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from evosynth.cli import main
from evosynth.deploy.backends import BACKENDS
from evosynth.deploy.bench_record import BENCH_FILE, BenchFormatError, bench_is_current, measured_table
from evosynth.deploy.benchmark import WORKLOADS, benchmark_run, ceiling_networks
from evosynth.deploy.machine import describe_machine
from evosynth.task.model import group_widths
from evosynth.task.recipe import Recipe

FAST = {"rounds": 2, "sample_ms": 1.0, "warmup_ms": 1.0, "threads": 1}


def test_bench_json_records_every_cell(run_dir, no_tensorrt):
    backends = ("torch-eager-fp32", "onnxruntime-cpu", "openvino-fp32", "tensorrt-fp16")
    bench = benchmark_run(run_dir, backends=backends, channel_multiple=4, **FAST)
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
    assert bench["settings"]["threads"] == 1 and bench["settings"]["ceiling_channel_multiple"] == 4
    machine = bench["machine"]
    assert machine["cpu"] and machine["logical_cores"] >= 1 and isinstance(machine["avx512_flags"], list)
    assert {key: machine[key] for key in ("cpu", "isa", "avx512_flags")} == {
        key: describe_machine()[key] for key in ("cpu", "isa", "avx512_flags")}
    assert machine["versions"]["torch"] == torch.__version__
    assert set(bench["backends"]) == set(backends[:3]) and bench["seconds"] > 0
    # the ceiling: dense networks of the ancestor's structure, on the frame, against generation 1 of the same rounds
    ancestor_widths = bench["generations"][0]["widths"]
    ceiling = {(r["network"], r["backend"]): r for r in bench["ceiling"]}
    assert {backend for _, backend in ceiling} == set(backends[:3]) and bench["ceiling_skipped"] is None
    floor = ceiling["dense, every group at 4", "onnxruntime-cpu"]
    assert floor["widths"] == [4] * len(ancestor_widths) and floor["workload"] == "frame"
    assert floor["mac_reduction"] > cells[2, "onnxruntime-cpu", "frame"]["mac_reduction"]
    generation_1 = cells[1, "openvino-fp32", "frame"]
    for row in bench["ceiling"]:
        assert all(4 <= w <= a and w % 4 == 0 for w, a in zip(row["widths"], ancestor_widths, strict=True))
        if row["backend"] == "openvino-fp32":
            assert row["speedup_vs_gen1"] == pytest.approx(generation_1["median_ms"] / row["median_ms"])


def test_bench_of_a_folder_that_is_not_an_evolution_runs_asks_for_the_ceilings_rounding(run_dir, tmp_path,
                                                                                      in_process):
    run = shutil.copytree(run_dir, tmp_path / "baseline")
    stored = json.loads((run / "config.json").read_text())
    for part in ("identity", "config"):
        del stored[part]["preset"]  # as a folder whose identity is not a RunConfig's
    (run / "config.json").write_text(json.dumps(stored))
    arguments = ["bench", str(run), "--backends", "onnxruntime-cpu", "--workloads", "frame", "--rounds", "1",
                 "--threads", "1"]
    code, stderr = in_process(arguments)
    assert code == 2 and "is not an evolution run's folder" in stderr and "--channel-multiple" in stderr
    assert in_process([*arguments, "--channel-multiple", "4"])[0] == 0
    assert json.loads((run / BENCH_FILE).read_text())["settings"]["ceiling_channel_multiple"] == 4
    code, stderr = in_process([*arguments, "--channel-multiple", "0"])
    assert code == 2 and "channel_multiple must be at least 1" in stderr  # named, not read as "the run's"
    thumbnails = [*arguments[:5], "thumbnail", *arguments[6:]]  # no frame, no ceiling: no rounding to ask for
    assert in_process(thumbnails)[0] == 0 and json.loads((run / BENCH_FILE).read_text())["ceiling"] == []


def test_the_ceiling_keeps_the_runs_channel_multiple_and_times_each_width_once():
    ancestor = Recipe("residual_detector", {"stem_widths": [8], "widths": [16, 32], "blocks": 1,
                                            "patch_stem": True}, (1, 3, 64, 48)).build()
    widths = group_widths(ancestor)
    for multiple in (1, 4, 8):
        networks = ceiling_networks(ancestor, (0.9, 0.5, 0.49, 0.1), multiple)
        chosen = [network.widths for network in networks]
        assert len({tuple(w) for w in chosen}) == len(chosen) and widths not in chosen  # no width timed twice
        assert chosen[-1] == [multiple] * len(widths) and networks[-1].label == f"dense, every group at {multiple}"
        for network in networks:
            assert all(w % multiple == 0 and multiple <= w <= max(a, multiple)
                       for w, a in zip(network.widths, widths, strict=True))
            assert group_widths(network.model) == network.widths
    assert [n.label for n in ceiling_networks(ancestor, (0.5, 0.49), 8)][0] == "dense x0.5"  # the first label kept
    with pytest.raises(ValueError, match="channel_multiple must be at least 1"):
        ceiling_networks(ancestor, (0.5,), 0)


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
    bench = json.loads((run_dir / BENCH_FILE).read_text())
    assert bench["settings"]["ceiling_channel_multiple"] == 1  # the run's own rounding (CONFIG: channel_multiple 1)
    assert {min(row["widths"]) for row in bench["ceiling"]} >= {1} and any(
        row["widths"] == [1] * len(row["widths"]) for row in bench["ceiling"])
    assert main(["bench", str(run_dir), "--rounds", "0"]) == 2
