"""What every figure says it was measured on, for each kind of machine met so far (``fixtures/cpuinfo``), whatever
machine runs the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evosynth.deploy.machine import (
    ISA_FLAGS,
    describe_machine,
    half_precision_note,
    machine_summary,
    parse_cpuinfo,
    write_measurement,
)

CPUINFO = Path(__file__).parents[1] / "fixtures" / "cpuinfo"
# kind -> (model name, flags of ISA_FLAGS it has, native FP16, native BF16)
KINDS = {
    "amd_epyc": ("AMD EPYC", {"avx2", "avx512f", "avx512_bf16"}, False, True),
    "intel_emerald_rapids": ("Intel(R) Xeon(R) Processor",
                             {"avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16"}, True, True),
    "intel_ice_lake": ("Intel(R) Xeon(R) Processor @ 2.80GHz", {"avx2", "avx512f"}, False, False),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_described_by_its_name_and_the_flags_that_decide_the_kernels(kind):
    name, present, fp16, bf16 = KINDS[kind]
    machine = describe_machine((CPUINFO / f"{kind}.txt").read_text())
    assert machine["cpu"] == name
    assert machine["isa"] == {flag: flag in present for flag in ISA_FLAGS}
    assert (machine["native_fp16_arithmetic"], machine["native_bf16_arithmetic"]) == (fp16, bf16)
    assert all(flag.startswith(("avx512", "amx")) for flag in machine["avx512_flags"])
    summary = machine_summary(machine)
    assert summary.startswith(f"{name}, {machine['usable_cores']} cores; "), "the name is kept whole"
    listed, _, missing = summary.partition("; no ")
    assert all(flag in listed for flag in present)
    assert set(missing.split(", ")) == set(ISA_FLAGS) - present


@pytest.mark.parametrize("kind", KINDS)
def test_the_half_precision_note_says_what_the_fp16_restriction_means_on_each_kind(kind):
    _, _, fp16, bf16 = KINDS[kind]
    note = half_precision_note(describe_machine((CPUINFO / f"{kind}.txt").read_text()))
    assert ("computes FP16 natively" in note) is fp16
    assert ("restriction is storage" in note) is not fp16
    assert ("no native BF16" in note) is not bf16


def test_a_cpuinfo_without_a_model_name_or_flags_still_describes_the_machine():
    assert parse_cpuinfo("") == (None, [])
    machine = describe_machine("processor : 0\n")
    assert machine["cpu"] and not any(machine["isa"].values())
    assert "no AVX2/AVX-512" in machine_summary(machine)


def test_this_machine_is_described_from_its_own_cpuinfo():
    """Whatever the kind: the description reads the running machine's /proc/cpuinfo when it has one."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    assert describe_machine() == describe_machine(text)


def test_a_measurement_is_written_with_the_machine_it_ran_on(tmp_path: Path) -> None:
    summary = write_measurement(tmp_path / "m.json", {"fps": 12.5})
    stored = json.loads((tmp_path / "m.json").read_text())
    assert stored == {"machine": describe_machine(), "fps": 12.5}
    assert summary == machine_summary(stored["machine"])
