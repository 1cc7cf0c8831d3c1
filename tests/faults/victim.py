"""Runs the evosynth CLI with a fault armed: the process SIGKILLs itself at an exact moment.

Usage: ``python victim.py FAULT -- evosynth-arguments...`` where FAULT is
- ``mid-write:N``: during the N-th atomic file write, after half of the temporary file is on disk (before rename);
- ``after-write:N``: right after the N-th atomic file write completed (e.g. between two generations);
- ``step:N``: at the N-th optimizer step of training.
The fault is a real SIGKILL (no cleanup, no finally blocks, no flush), armed from outside the library by
wrapping the functions it calls, so the library carries no test hooks.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

import evosynth.files
import evosynth.storage.runs
import evosynth.task.cache
from evosynth.cli import main
from evosynth.files import atomic_write


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm_writes(kind: str, target: int) -> None:
    calls = 0

    def faulty_write(path: Path, write):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls != target:
            return atomic_write(path, write)
        if kind == "after-write":
            atomic_write(path, write)
            _die()

        def half_then_die(temporary: Path) -> None:
            write(temporary)
            content = temporary.read_bytes()
            temporary.write_bytes(content[: len(content) // 2])
            _die()

        return atomic_write(path, half_then_die)

    for module in (evosynth.files, evosynth.storage.runs, evosynth.task.cache):  # every writer's name
        module.atomic_write = faulty_write  # type: ignore[attr-defined]


def _arm_steps(target: int) -> None:
    original = torch.optim.AdamW.step
    calls = 0

    def faulty_step(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == target:
            _die()
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = faulty_step  # type: ignore[method-assign]


if __name__ == "__main__":
    fault, separator, *arguments = sys.argv[1:]
    assert separator == "--", "usage: victim.py FAULT -- evosynth arguments"
    kind, number = fault.split(":")
    if kind == "step":
        _arm_steps(int(number))
    else:
        _arm_writes(kind, int(number))
    sys.exit(main(arguments))
