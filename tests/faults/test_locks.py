"""Two writers never share a folder: a second run on a run folder is refused; runs that share an ancestor take
turns training it, and the one that waited reuses it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from evosynth.storage.runs import RunFolder
from evosynth.study.config import RunConfig

pytestmark = pytest.mark.slow  # runs the CLI in other processes


def _evolve(out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evosynth.cli", "evolve", "--preset", "smoke", "--generations", "2",
                           "--out", str(out), "--cache-dir", str(cache), *extra],
                          capture_output=True, text=True, timeout=300)


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path, data_dir):
    out = tmp_path / "run"
    with RunFolder(out).locked():
        refused = _evolve(out, data_dir)
        assert refused.returncode == 2
        assert f"{out} is being written by pid {os.getpid()}" in refused.stderr
        assert "choose another --out folder" in refused.stderr
        assert not list(out.glob("gen_*")), "the refused run wrote into the folder"
    assert _evolve(out, data_dir).returncode == 0, "the lock outlived its holder"


def test_runs_sharing_an_ancestor_take_turns(tmp_path, data_dir):
    config = RunConfig(preset="smoke", generations=2)
    ancestor = RunFolder(tmp_path / "ancestors" / config.ancestor_name)
    release = threading.Event()

    def hold() -> None:
        with ancestor.locked():
            release.wait(timeout=60)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    process = subprocess.Popen([sys.executable, "-m", "evosynth.cli", "evolve", "--preset", "smoke", "--generations",
                                "2", "--out", str(tmp_path / "run"), "--cache-dir", str(data_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    assert process.poll() is None, "the run did not wait for the ancestor's lock"
    release.set()
    holder.join()
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert f"waiting for pid {os.getpid()}" in stderr
    assert (tmp_path / "run" / "gen_02" / "metrics.json").is_file()
