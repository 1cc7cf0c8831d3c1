"""bench.json attributes each timing to its own (generation, backend, workload) cell, and its summaries are of the
samples it records."""

from __future__ import annotations

import datetime
import json
import shutil
import time
from types import SimpleNamespace

import numpy as np
import pytest

import evosynth.deploy.benchmark as benchmark
from conftest import IMAGE_SIZE, read
from evosynth.deploy.backends import Backend
from evosynth.deploy.bench_record import BENCH_FILE
from evosynth.deploy.benchmark import WORKLOADS, Workload, benchmark_run
from evosynth.storage.runs import RunFolder

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
                seconds = FAKE_MS[name, int(target.directory.name.removeprefix("gen_"))] * shape[0] / 1e3

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
        "baseline_generation": 1, "ceiling_channel_multiple": 1,
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
