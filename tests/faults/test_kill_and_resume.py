"""SIGKILL `evosynth evolve` at exact and at random moments, rerun the same command, and compare with a run that
was never interrupted: every file of every generation must be equal bit for bit (timings aside), no generation
finished before the kill may be redone, and no partial file may remain."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

VICTIM = Path(__file__).with_name("victim.py")
GENERATIONS = "3"
TIMING_KEYS = {"train_seconds", "seconds"}  # wall-clock measurements, the only fields allowed to differ
# The first test of the module also builds the reference (a warm-up run and the timed run, each a subprocess with
# its own 300 s limit): its limit covers both.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(660)]


def _evolve_args(out: Path, cache: Path) -> list[str]:
    return ["evolve", "--preset", "smoke", "--generations", GENERATIONS, "--out", str(out), "--cache-dir", str(cache)]


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evosynth.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """An uninterrupted run (its folder, its data cache) and how long it took."""
    root = tmp_path_factory.mktemp("reference")
    cache = root / "cache"
    warm_up = _cli(_evolve_args(root / "warm-up", cache))  # fills the data cache: the timed run does generations only
    assert warm_up.returncode == 0, warm_up.stderr
    start = time.perf_counter()
    result = _cli(_evolve_args(root / "run", cache))
    assert result.returncode == 0, result.stderr
    return root / "run", cache, time.perf_counter() - start


def _without_timings(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    return value


def _snapshot(run: Path) -> dict[str, object]:
    """Every file of the run and of its ancestor, JSON compared without timings, everything else as bytes."""
    files = {}
    for root in (run, *sorted((run.parent / "ancestors").glob("*"))):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name != ".lock":
                key = f"{root.name}/{path.relative_to(root)}"
                files[key] = _without_timings(json.loads(path.read_text())) if path.suffix == ".json" else (
                    path.read_bytes())
    return files


def _finished_stamps(run: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of each finished generation's metrics.json: unchanged means not redone."""
    return {str(p.relative_to(run)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in run.glob("gen_*/metrics.json")}


def _resume_and_compare(run: Path, cache: Path, reference_run: Path) -> None:
    finished_before = _finished_stamps(run)
    result = _cli(_evolve_args(run, cache))
    assert result.returncode == 0, result.stderr
    stamps = _finished_stamps(run)
    assert {k: stamps[k] for k in finished_before} == finished_before, "a finished generation was redone"
    assert _snapshot(run) == _snapshot(reference_run)
    leftovers = [p for p in run.parent.rglob("*.tmp")]
    assert not leftovers, f"partial files left behind: {leftovers}"


# Writes of a smoke run whose data cache exists: 1 run config, 2 FP16 ancestor config, 3 FP32 (trained) ancestor
# config, 4-7 its weights, architecture, curve, metrics, 8-11 the FP16 ancestor (the trained one restricted),
# 12-15 the run's copy of it, 16-19 generation 2, 20-23 generation 3.
# Optimizer steps: 1-9 the ancestor (3 epochs of 3 batches), 10-12 generation 2, 13-15 generation 3.
FAULTS = [
    "mid-write:1",  # the run's config.json
    "mid-write:4",  # the trained ancestor's weights
    "after-write:7",  # the trained ancestor finished, not yet restricted
    "mid-write:8",  # the restricted ancestor's weights
    "mid-write:11",  # the restricted ancestor's metrics.json: the mark of a finished generation
    "mid-write:14",  # copying the ancestor into the run
    "after-write:15",  # between generations 1 and 2
    "mid-write:16",  # generation 2's weights
    "after-write:18",  # generation 2 complete but for its metrics.json
    "after-write:19",  # between generations 2 and 3
    "mid-write:23",  # generation 3's metrics.json
    "step:2",  # training the ancestor
    "step:11",  # training generation 2
]


@pytest.mark.parametrize("fault", FAULTS)
def test_killed_at_an_exact_moment_resumes_to_the_same_run(fault, reference, tmp_path):
    reference_run, cache, _ = reference
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(VICTIM), fault, "--", *_evolve_args(run, cache)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, f"the fault {fault} never fired: {killed.stderr[-2000:]}"
    _resume_and_compare(run, cache, reference_run)


def test_killed_while_generating_the_data_cache_resumes(reference, tmp_path):
    reference_run, _, _ = reference
    run, cache = tmp_path / "run", tmp_path / "cache"
    killed = subprocess.run([sys.executable, str(VICTIM), "mid-write:2", "--", *_evolve_args(run, cache)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert not list(cache.rglob("spec.json")), "a half-written cache must not look complete"
    _resume_and_compare(run, cache, reference_run)
    assert not list(cache.rglob("*.tmp"))


@pytest.mark.parametrize("draw", range(3))
def test_killed_at_a_random_moment_resumes_to_the_same_run(draw, reference, tmp_path):
    reference_run, cache, seconds = reference
    delay = random.Random(f"kill-{draw}").uniform(0.3, 0.8 * seconds)
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "evosynth.cli", *_evolve_args(run, cache)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before the kill: nothing was tested"
    _resume_and_compare(run, cache, reference_run)
