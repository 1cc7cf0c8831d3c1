"""What a measurement ran on: the CPU, its instruction-set flags and the library versions, from ``/proc/cpuinfo``.

Every figure the study reports names its machine, because float kernels (and so trained weights, lineages and
timings) differ between instruction sets. The description is parsed from the text of ``/proc/cpuinfo`` so that it
can be tested against recorded excerpts of every kind of machine met so far (``tests/fixtures/cpuinfo``), whatever
machine runs the tests.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from evosynth.files import write_json
from evosynth.paths import REPO_ROOT

CPUINFO = Path("/proc/cpuinfo")
GIT_TIMEOUT_S = 10  # reading the commit never waits longer
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16")  # what decides the kernels
VERSIONED_PACKAGES = ("torch", "onnxruntime", "onnx", "openvino", "numpy", "tensorrt")


def parse_cpuinfo(text: str) -> tuple[str | None, list[str]]:
    """The first processor's model name (None where the text has none) and its flags, from ``/proc/cpuinfo``'s
    text. Names are kept whole: they may hold full stops ("Intel(R) Xeon(R) Processor @ 2.80GHz")."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, separator, value = line.partition(":")
        if separator:
            fields.setdefault(key.strip(), value.strip())
    return fields.get("model name") or None, fields.get("flags", "").split()


def _read_cpuinfo() -> str:
    try:
        return CPUINFO.read_text()
    except OSError:  # not Linux: the name comes from platform, the flags are unknown
        return ""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_machine(cpuinfo: str | None = None) -> dict[str, Any]:
    """What the numbers were measured on: they mean nothing without it. ``cpuinfo``: the text of a
    ``/proc/cpuinfo`` (this machine's when None)."""
    name, flags = parse_cpuinfo(_read_cpuinfo() if cpuinfo is None else cpuinfo)
    return {
        "cpu": name or platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "isa": {flag: flag in flags for flag in ISA_FLAGS},
        "avx512_flags": sorted(flag for flag in flags if flag.startswith(("avx512", "amx"))),
        "native_fp16_arithmetic": "avx512_fp16" in flags or "amx_fp16" in flags,
        "native_bf16_arithmetic": "avx512_bf16" in flags or "amx_bf16" in flags,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {package: _version(package) for package in VERSIONED_PACKAGES},
    }


def machine_summary(machine: dict[str, Any]) -> str:
    """The CPU, its cores and the ISA flags that decide the kernels, in one line for captions and notes."""
    isa = machine.get("isa", {})
    present = [flag for flag in ISA_FLAGS if isa.get(flag)]
    missing = [flag for flag in ISA_FLAGS if flag in isa and not isa[flag]]
    return (f"{machine['cpu']}, {machine['usable_cores']} cores; {', '.join(present) or 'no AVX2/AVX-512'}"
            + (f"; no {', '.join(missing)}" if missing else ""))


def machine_tag(machine: dict[str, Any]) -> str:
    """A measurement file's machine suffix, as ``benchmarks/`` names them: ``cpu2_amd``, ``cpu2_intel``, or the
    GPU's first word (``h100``)."""
    if machine.get("gpu"):
        return machine["gpu"].split()[1 if machine["gpu"].startswith("NVIDIA") else 0].lower()
    vendor = "amd" if "AMD" in machine["cpu"] else "intel" if "Intel" in machine["cpu"] else "cpu"
    return f"cpu{machine['usable_cores']}_{vendor}"


def source_commit() -> str:
    """The commit of the checkout this evosynth runs from (``+changes`` where the work tree differs from it), or
    "unknown" outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=GIT_TIMEOUT_S, check=True).stdout.strip()
        changes = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if changes else "")


def write_measurement(path: Path, fields: dict[str, Any]) -> str:
    """Write a measurement's JSON with the machine it ran on (``machine``, first); return that machine's summary,
    for the console."""
    machine = describe_machine()
    write_json(path, {"machine": machine, **fields})
    return machine_summary(machine)


def half_precision_note(machine: dict[str, Any]) -> str:
    """What the FP16 restriction means on this CPU: half-precision arithmetic, or storage only."""
    bf16 = "computes BF16 natively" if machine["native_bf16_arithmetic"] else "has no native BF16 arithmetic"
    if machine["native_fp16_arithmetic"]:
        return f"this CPU computes FP16 natively (avx512_fp16 / amx_fp16) and {bf16.removeprefix('computes ')}"
    return (f"this CPU has no native FP16 arithmetic, so the FP16 restriction is storage there (FP16-rounded weights "
            f"computed in FP32), and {bf16}")
