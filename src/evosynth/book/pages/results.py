"""The results page (``notebooks/results.md``): the run's measured speed-up and its changes from generation 1 to
the last, next to the paper's own reported numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from evosynth.book.display import layer_label
from evosynth.book.pages.generation import detections_frame
from evosynth.core.graph import Group
from evosynth.deploy.bench_record import BENCH_FILE, bench_table, ceiling_table, read_bench
from evosynth.deploy.machine import half_precision_note, machine_summary
from evosynth.errors import EvosynthError
from evosynth.storage.runs import Generation, RunFolder
from evosynth.study.capacity import capacity_table, curve_table, read_capacity, read_width_curve
from evosynth.study.config import RunConfig
from evosynth.study.evolution import stored_run_config
from evosynth.study.paper import (
    PAPER_FPS,
    PAPER_GENERATIONS,
    PAPER_PRECISION_CHANGE_POINTS,
    PAPER_RECALL_CHANGE_POINTS,
    PAPER_SYNAPSE_REDUCTION,
    PAPER_TOLERANCE_POINTS,
)
from evosynth.study.sweep import sweep_results
from evosynth.study.verdict import SLACK_MAC_FRACTION, SLACK_POINTS, Verdict, has_slack, verdict
from evosynth.task.dataset import DetectionSplit
from evosynth.task.model import channel_graph


@dataclass(frozen=True)
class MeasuredSpeed:
    """A run's ``bench.json``: its ``bench_table`` rows and, in words, what measured them."""

    rows: pd.DataFrame
    ceiling: pd.DataFrame  # ``ceiling_table``: dense networks of the ancestor's structure, on the frame
    hardware: str  # the CPU, its cores, the ISA flags that decide the kernels, the threads used, the load
    half_precision: str  # which reduced precisions this CPU computes natively
    skipped: dict[str, str]  # backend -> why it was not measured here
    arithmetic: dict[str, str]  # backend -> the precision it computes in


def measured_speed(run_dir: Path) -> MeasuredSpeed | None:
    """What ``evosynth bench`` measured for the run; None where the run was not benchmarked."""
    path = Path(run_dir) / BENCH_FILE
    if not path.is_file():
        return None
    bench = read_bench(path)
    machine = bench["machine"]
    load = f"load average {machine['load_average_before'][0]:.1f} before, {machine['load_average_after'][0]:.1f} after"
    hardware = f"{machine_summary(machine)}, {bench['settings']['threads']} threads, {load}"
    arithmetic = {name: entry["arithmetic"] for name, entry in bench["backends"].items()}
    return MeasuredSpeed(bench_table(bench), ceiling_table(bench), hardware, half_precision_note(machine),
                         dict(bench["skipped"]), arithmetic)


def deployed_speedup(rows: pd.DataFrame, workload: str) -> pd.Series:
    """The last generation's row of the backend that runs it fastest on ``workload``, as a deployer would choose
    (its speed-up is over generation 1 on the same backend)."""
    rows = rows[rows["workload"] == workload]
    last = rows[rows["generation"] == rows["generation"].max()]
    return last.loc[last["median_ms"].idxmin()]


def ceiling_summary(speed: MeasuredSpeed, backend: str) -> dict[str, float]:
    """On ``backend``, the frame: the floor's speed-up over generation 1 (every group at the fewest channels the
    synthesis keeps: none of its widths run faster), that channel count, and the last generation's share of it."""
    floor = speed.ceiling[speed.ceiling["backend"] == backend]
    floor = floor.loc[floor["macs"].idxmin()]
    last = deployed_speedup(speed.rows[speed.rows["backend"] == backend], "frame")
    return {"floor_speedup": float(floor["speedup_vs_gen1"]), "floor_mac_reduction": float(floor["mac_reduction"]),
            "floor_fps": float(floor["throughput_fps"]), "floor_channels": min(floor["widths"]),
            "share_of_floor": float(last["speedup_vs_gen1"]) / float(floor["speedup_vs_gen1"])}


def first_generation_row(rows: pd.DataFrame, backend: str, workload: str) -> pd.Series:
    chosen = rows[(rows["backend"] == backend) & (rows["workload"] == workload)]
    return chosen.loc[chosen["generation"].idxmin()]


def paper_comparison(table: pd.DataFrame, frame_speed: tuple[float, float] | None = None) -> pd.DataFrame:
    """The paper's reported changes from generation 1 to its last, next to this run's (from ``generations_table``).

    The paper measured frames per second on a Jetson TX1 (TensorRT FP16); ``frame_speed`` is this run's measured
    (generation 1, last generation) frames per second on a 640x480 frame, on the backend that runs the last
    generation fastest (None when the run was not benchmarked). Rows hold None on the side that did not measure a
    quantity.
    """
    first, last = table.iloc[0], table.iloc[-1]
    first_fps, last_fps = frame_speed or (None, None)
    rows = [
        ("generations", "count", PAPER_GENERATIONS, int(last["generation"])),
        ("synapse reduction, generation 1 ÷ last", "times", PAPER_SYNAPSE_REDUCTION, float(last["synapse_reduction"])),
        ("frames per second, generation 1", "fps", PAPER_FPS[0], first_fps),
        ("frames per second, last generation", "fps", PAPER_FPS[1], last_fps),
        ("inference speed-up (measured, whole frames, batch 1), last ÷ generation 1", "times",
         PAPER_FPS[1] / PAPER_FPS[0], last_fps / first_fps if first_fps and last_fps else None),
        ("MAC reduction (multiply-accumulates per image), generation 1 ÷ last", "times", None,
         float(last["mac_reduction"])),
        ("precision change, last − generation 1 (threshold chosen on validation)", "points",
         PAPER_PRECISION_CHANGE_POINTS, 100 * float(last["op_precision"] - first["op_precision"])),
        ("recall change, last − generation 1 (threshold chosen on validation)", "points",
         PAPER_RECALL_CHANGE_POINTS, 100 * float(last["op_recall"] - first["op_recall"])),
        ("precision change at the fixed 0.5 threshold", "points", None,
         100 * float(last["precision_score"] - first["precision_score"])),
        ("recall change at the fixed 0.5 threshold", "points", None, 100 * float(last["recall"] - first["recall"])),
    ]
    return pd.DataFrame(rows, columns=["quantity", "unit", "paper (reported)", "this run"], dtype=object)


def capacity_rows(run_dir: Path, generations: Sequence[Generation]) -> pd.DataFrame | None:
    """The run's ``capacity.capacity_table`` (``generations``: ``load_run``'s), or None where it was not measured."""
    record = read_capacity(run_dir, {g.number: g.metrics for g in generations})
    return capacity_table(record) if record is not None else None


def width_curve_rows(config: RunConfig, run_dir: Path) -> pd.DataFrame | None:
    """The task's capacity curve the study measured beside the run (``capacity.curve_table``), or None."""
    curve = read_width_curve(config, run_dir.parent)
    return curve_table(curve) if curve is not None else None


def final_training(rows: pd.DataFrame | None, last_generation: int) -> pd.Series | None:
    """The run's last generation trained on to convergence under generation 1's rule, its masks kept (the study
    measures it: ``capacity.measure_capacity``): its row of ``rows`` (``capacity_rows``), or None where it was not
    measured."""
    if rows is None:
        return None
    final = rows[(rows["generation"] == last_generation) & (rows["network"] == "trained on")]
    return final.iloc[0] if len(final) else None


def judge(table: pd.DataFrame, speed: MeasuredSpeed | None, final: pd.Series | None = None) -> Verdict:
    """The study's verdict (``study.verdict.verdict``) on a run's ``generations_table``, its ``measured_speed`` and
    its ``final_training`` row, on the whole-frame backend that runs the last generation fastest."""
    if speed is None:
        return verdict(table, None, None, final)
    frame = deployed_speedup(speed.rows, "frame")
    return verdict(table, frame, speed.arithmetic[str(frame["backend"])], final)


def slack_explanation(curve_rows: pd.DataFrame | None) -> str:
    """Whether the ancestor is over-parameterized for the task, from ``capacity.curve_table`` rows (None: not
    measured): the curve's point nearest ``SLACK_MAC_FRACTION`` of its MACs against its own size."""
    if curve_rows is None or len(curve_rows) < 2:
        return "not measured for this build (evosynth capacity-curve measures it)"
    smaller = curve_rows[curve_rows["scale"] < 1.0]
    near = smaller.loc[(smaller["mac_fraction"] - SLACK_MAC_FRACTION).abs().idxmin()]
    change = float(near["ap50_change"])
    base = (f"a dense network of the ancestor's shape with {near['mac_fraction']:.2f} of its multiply-accumulates "
            f"(widths ×{near['scale']:g}: {near['widths']}), trained from scratch to convergence, changes AP50 by "
            f"{change:+.1f} points against the ancestor")
    if has_slack(change):
        return base + (f": within {SLACK_POINTS:g} point, so the ancestor has slack, the regime in which the "
                       "paper's network lost synapses without losing accuracy")
    return base + (f": more than {SLACK_POINTS:g} point, so the ancestor has little slack on this task, and a "
                   "lineage that ends at that size loses accuracy however it is found")


def size_explanation(capacity_rows: pd.DataFrame | None, evolved_label: str,
                     tolerance: float = PAPER_TOLERANCE_POINTS) -> str:
    """Why the last generation lost what it lost, from ``capacity.capacity_table`` rows (None: not measured):
    whether a dense network of its widths, trained from scratch to convergence, does any better."""
    if capacity_rows is None or capacity_rows.empty:
        return ("not measured for this run (evosynth capacity RUN_DIR trains the last generation's widths from "
                "scratch to convergence)")
    last = capacity_rows[capacity_rows["generation"] == capacity_rows["generation"].max()].set_index("network")
    evolved, scratch = last.loc[evolved_label, "ap50_change"], last.loc["from scratch", "ap50_change"]
    base = (f"a dense network of generation {int(last['generation'].iloc[0])}'s widths trained from scratch to "
            f"convergence changes AP50 by {scratch:+.1f} points against generation 1, the evolved one by "
            f"{evolved:+.1f}")
    if evolved >= -tolerance:
        return base + f": the evolved network kept its accuracy within {tolerance:g} points"
    if scratch < -tolerance:
        return base + ": a network this small loses accuracy on this task however it is found, so the loss is the " \
                      "price of the size more than of the synthesis"
    return base + ": a network this small can keep the accuracy, so the loss is the synthesis's or its training's"


# ----------------------------------------------------------------------------------------------- measured speed


def speed_words(speed: MeasuredSpeed | None) -> str:
    """The measured speed-up on the frame and on the thumbnail, in words (or how to measure it)."""
    if speed is None:
        return "This run has no bench.json, so its speed was not measured here: evosynth bench RUN_DIR measures it"
    frame = deployed_speedup(speed.rows, "frame")
    backend = str(frame["backend"])
    first = first_generation_row(speed.rows, backend, "frame")
    thumbnail = deployed_speedup(speed.rows, "thumbnail")
    skipped = "; ".join(f"{name}: {why}" for name, why in speed.skipped.items()) or "none"
    return (f"On a whole frame, the backend that runs the last generation fastest, {backend} "
            f"({speed.arithmetic[backend]}), runs it at {frame['throughput_fps']:.0f} frames per second against "
            f"generation 1's {first['throughput_fps']:.0f} on the same backend: {frame['speedup_vs_gen1']:.2f} times "
            f"faster for {frame['mac_reduction']:.2f} times fewer multiply-accumulates (speed-up ÷ MAC reduction "
            f"{frame['speedup_per_mac_reduction']:.2f}). On the thumbnail, where fixed per-layer costs weigh more, "
            f"the fastest backend ({thumbnail['backend']}) gains {thumbnail['speedup_vs_gen1']:.2f} times. Half "
            f"precision on this CPU: {speed.half_precision}. Not measured here: {skipped}")


def ceiling_words(speed: MeasuredSpeed | None) -> str:
    """The floor's speed-up and the last generation's share of it, in words (or why there is none)."""
    if speed is None or not len(speed.ceiling):
        return ("This build has no measured ceiling: evosynth bench RUN_DIR measures it with the generations, on a "
                "network whose groups it can narrow")
    backend = str(deployed_speedup(speed.rows, "frame")["backend"])
    ceiling = ceiling_summary(speed, backend)
    floor = ceiling["floor_channels"]
    return (f"The narrowest dense network, every group at {floor} channels (the synthesis keeps filters in multiples "
            f"of {floor}) and {ceiling['floor_mac_reduction']:.0f} times fewer multiply-accumulates than generation 1, "
            f"runs {ceiling['floor_speedup']:.1f} times as fast as generation 1 ({ceiling['floor_fps']:.0f} frames per "
            f"second) on {backend}: no widths the synthesis can choose run faster. The last generation's speed-up is "
            f"{ceiling['share_of_floor']:.0%} of that ceiling's")


def frame_speed(speed: MeasuredSpeed | None) -> tuple[float, float] | None:
    """Generation 1's and the last generation's frames per second on the frame's fastest backend, or None."""
    if speed is None:
        return None
    frame = deployed_speedup(speed.rows, "frame")
    first = first_generation_row(speed.rows, str(frame["backend"]), "frame")
    return float(first["throughput_fps"]), float(frame["throughput_fps"])


# ------------------------------------------------------------------------------------- the network shrinking


def group_label(group: Group) -> str:
    """A dependency group named by its first producing layer (and how many more produce into it)."""
    first = layer_label(group.producers[0])
    return first if len(group.producers) == 1 else f"{first} (+{len(group.producers) - 1})"


def width_rows(generations: Sequence[Generation]) -> pd.DataFrame:
    """Per generation and dependency group (data-flow order), the kept filters and their fraction of generation
    1's: the network shrinking layer by layer."""
    graph = channel_graph(generations[0].model)
    labels = [f"{group.index + 1}. {group_label(group)}" for group in graph.groups]
    first = list(generations[0].metrics["widths"])
    if len(first) != len(labels):
        raise ValueError(f"generation 1 records {len(first)} widths for {len(labels)} dependency groups")
    return pd.DataFrame([{"generation": g.number, "group": label, "filters": int(width),
                          "fraction": width / first[index]}
                         for g in generations for index, (label, width) in enumerate(
                             zip(labels, g.metrics["widths"], strict=True))])


# --------------------------------------------------------------------------------------- detections, then and now


def detections_then_and_now(first: Generation, last: Generation, split: DetectionSplit,
                            indices: Sequence[int]) -> pd.DataFrame:
    """The same test images with generation 1's and the last generation's detections, each at its own validated
    threshold (``operating_point``): ``detections_frame`` rows whose image names say the generation."""
    frames = []
    for generation in (first, last):
        threshold = float(generation.metrics["operating_point"]["threshold"])
        frame = detections_frame(generation.model, split, indices, threshold)
        frames.append(frame.assign(image=f"generation {generation.number}, " + frame["image"]))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------- seed bands


def seed_runs(run_dir: Path, config: RunConfig) -> list[Path]:
    """The run and its siblings in the same runs folder that differ from it in the seed only and have finished as
    many generations: what Figures 2 and 3 draw as a band."""
    siblings = [run_dir]
    for folder in sorted(run_dir.parent.iterdir()):
        if folder == run_dir or not (folder / "config.json").is_file():
            continue
        try:
            other = stored_run_config(folder)
        except (EvosynthError, KeyError, TypeError, ValueError):
            continue  # not an evolution run (a baseline's folder)
        if other != config and replace(other, seed=config.seed) == config \
                and RunFolder(folder).is_finished(config.generations):
            siblings.append(folder)
    return siblings


def seed_band(runs: Sequence[Path]) -> pd.DataFrame | None:
    """Per generation, the lowest and highest of each figure's quantity over ``runs`` (``seed_runs``), with
    precision, recall and AP50 as changes from each run's own generation 1 (points); None for a single run."""
    if len(runs) < 2:
        return None
    every = sweep_results(runs)  # one row per run and generation
    first = every[every["generation"] == 1].set_index("run")
    for column in ("op_precision", "op_recall", "ap50"):
        every[f"{column}_change"] = 100 * (every[column] - every["run"].map(first[column]))
    quantities = ["synapses", "macs", "op_precision_change", "op_recall_change", "ap50_change"]
    band = every.groupby("generation")[quantities].agg(["min", "max"])
    band.columns = [f"{quantity}_{end}" for quantity, end in band.columns]
    return band.reset_index().assign(seeds=len(runs))


def seeds_words(runs: Sequence[Path]) -> str:
    """What the figures' bands rest on, in words."""
    if len(runs) < 2:
        return ("This build evolved one seed, so the figures have no seed band (evosynth study --full evolves seeds "
                "1 and 2 as well)")
    seeds = ", ".join(str(stored_run_config(run).seed) for run in runs)
    return f"The bands span the lowest to the highest of {len(runs)} runs that differ in the seed only (seeds {seeds})"
