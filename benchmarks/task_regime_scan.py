"""Which task leaves the ancestor slack? The capacity curve's decisive point, measured for variants of the task.

The paper's premise is an over-parameterized ancestor: a network of a small fraction of its MACs, trained from scratch,
does about as well. This script measures that premise for variants of the embedded ``digits`` task (around the cluttered
task, the study's default before its task was chosen for slack) and of the ancestor's widths; it is how the study's task
was chosen: for each variant, the ancestor (width x1) and the dense network of the ancestor's shape at ``--scale`` of
its widths (x0.41: 0.18 of its MACs), both trained from scratch to convergence by the study's own capacity curve
(``capacity.measure_width_curve``; networks already measured under ``--runs-dir`` are reused). It writes one JSON with
the machine, each variant's spec, its curve rows and the AP50 the small network gives up. With ``--lineages`` it also
evolves each variant with the study's settings and records what its last generation kept against its generation 1 (the
outcome the slack is for), the same generation after a final training to convergence (the study's final network) and L1
filter pruning to the same widths with the same training.

    .venv/bin/python benchmarks/task_regime_scan.py --out benchmarks/task_regime_<machine>.json [--variants c1 e1]

A variant is a preset of its own, known for the scan only (``presets.extra_presets``; its name is part of its run
folders and curve file), so the numbers come from exactly the code path the study's capacity curve uses.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from evosynth.deploy.machine import describe_machine, machine_summary
from evosynth.files import write_json
from evosynth.paths import CACHE_DIR, RUNS_DIR
from evosynth.storage.runs import RunFolder
from evosynth.study.capacity import capacity_table, curve_table, format_curve, measure_capacity, measure_width_curve
from evosynth.study.compare import FINAL_KINDS, METHOD_LABELS, Lineage, run_lineage
from evosynth.study.config import RunConfig
from evosynth.study.evolution import evolve
from evosynth.study.presets import BUILT_IN_PRESETS, PRESETS, SLACK_TASK, Preset, chain, extra_presets
from evosynth.study.report import generations_table
from evosynth.study.verdict import SLACK_POINTS, has_slack

FOLLOWERS = ("l1-filter", "matched")  # the baselines a lineage is measured against, at its widths and training


@dataclass(frozen=True)
class Variant:
    """The study's ancestor on the cluttered task (the ``cluttered`` preset, the generator's defaults) with some of
    its data spec's knobs (``data``) or its widths changed; with neither, that preset itself."""

    description: str
    data: dict[str, Any] = field(default_factory=dict)
    widths: tuple[int, ...] | None = None

    def preset(self, name: str) -> Preset:
        base = BUILT_IN_PRESETS["cluttered"]
        network = chain(self.widths, tuple(base.network.arguments["strides"])) if self.widths else base.network
        return replace(base, name=name, data=replace(base.data, **self.data), network=network)


FEWER_NEGATIVES = {"fragments": (0, 1), "scribbles": (0, 1)}
# e3s64 is the study's task (``config.SLACK_TASK``): its knobs that differ from the cluttered task's; e3 is the same
# task drawn on the cluttered task's 96-pixel canvas, the study's task before it was drawn smaller
SLACK_KNOBS = {f.name: getattr(SLACK_TASK, f.name) for f in fields(SLACK_TASK)
               if getattr(SLACK_TASK, f.name) != getattr(BUILT_IN_PRESETS["cluttered"].data, f.name)}
CANVAS_96 = {"canvas": 96, "digit_height": (24.0, 44.0)}
VARIANTS: dict[str, Variant] = {
    "cluttered": Variant("the cluttered task (the study's default before its task was chosen for slack) and the "
                         "study's ancestor, unchanged"),
    "c1": Variant("fewer hard negatives (stroke fragments 0-1, scribbles 0-1 per canvas)", FEWER_NEGATIVES),
    "c1w15": Variant("fewer hard negatives, ancestor 1.5x wider", FEWER_NEGATIVES, widths=(48, 72, 96, 144, 192)),
    "c1n2": Variant("fewer hard negatives, 2,000 training canvases", {**FEWER_NEGATIVES, "n_train": 2000}),
    "c1n8": Variant("fewer hard negatives, 8,000 training canvases", {**FEWER_NEGATIVES, "n_train": 8000}),
    "c7": Variant("fewer hard negatives, faint and heavily occluded digits (contrast >= 0.1, occlusion <= 0.8)",
                  {**FEWER_NEGATIVES, "min_contrast": 0.1, "max_occlusion": 0.8}),
    "c8": Variant("fewer hard negatives, clear digits (contrast >= 0.45, occlusion <= 0.3)",
                  {**FEWER_NEGATIVES, "min_contrast": 0.45, "max_occlusion": 0.3}),
    "e1": Variant("no hard negatives, digits 18-40 px tall", {"fragments": (0, 0), "scribbles": (0, 0),
                                                               "digit_height": (18.0, 40.0)}),
    "e3": Variant("an easy task: 1-3 digits 24-44 px on a 96-pixel canvas, no hard negatives, little clutter, clear "
                  "digits (the study's task before it was drawn smaller)", {**SLACK_KNOBS, **CANVAS_96}),
    # the same task drawn smaller (digits scaled with the canvas): 0.44 and 0.69 of the compute per image
    "e3s64": Variant("the study's task: the easy task on a 64-pixel canvas, digits 16-29 px", SLACK_KNOBS),
    "e3s80": Variant("the easy task on an 80-pixel canvas, digits 20-37 px", {**SLACK_KNOBS, "canvas": 80,
                                                                            "digit_height": (20.0, 36.7)}),
}


def scan(name: str, variant: Variant, scale: float, seeds: list[int], runs_dir: Path,
         cache_dir: Path) -> dict[str, Any]:
    """One variant's two points of the curve (its networks, seed by seed, and their means); its preset must be
    known (``extra_presets``)."""
    started = time.perf_counter()
    record = measure_width_curve(RunConfig(preset=name), (scale, 1.0), seeds, runs_dir, cache_dir)
    networks = {key: value for key, value in record["networks"].items()
                if value["seed"] in seeds and value["scale"] in (scale, 1.0)}
    table = curve_table({**record, "networks": networks})
    print(f"\n{name}: {variant.description}\n{format_curve(table)}")
    mean_loss = -float(table.loc[table["scale"] == scale, "ap50_change"].iloc[0])
    return {"description": variant.description, "data": asdict(PRESETS[name].data),
            "network": asdict(PRESETS[name].network), "networks": networks, "curve": table.to_dict("records"),
            "mean_ap50_loss_points": mean_loss,
            "has_slack": has_slack(-mean_loss), "seconds_this_call": time.perf_counter() - started}


def _changes(table: pd.DataFrame) -> dict[str, float]:
    """A lineage's last generation against its first (``report.generations_table``), in points."""
    first, last = table.iloc[0], table.iloc[-1]
    return {"synapse_reduction": last["synapse_reduction"], "mac_reduction": last["mac_reduction"],
            "ap50_first": first["ap50"], "ap50_last": last["ap50"],
            **{f"{key}_change_points": 100 * (last[key] - first[key]) for key in ("ap50", "op_precision", "op_recall")}}


def _say(what: str, result: dict[str, float]) -> None:
    print(f"{what}: 1/{result['synapse_reduction']:.1f} of the synapses, 1/{result['mac_reduction']:.1f} of the "
          f"MACs; AP50 {result['ap50_change_points']:+.1f}, P {result['op_precision_change_points']:+.1f}, R "
          f"{result['op_recall_change_points']:+.1f} points (at the validated operating point)")


def lineage(config: RunConfig, runs_dir: Path, cache_dir: Path,
            followers: tuple[str, ...] = FOLLOWERS) -> dict[str, Any]:
    """A run's evolution (resumed where ``runs_dir`` holds it), its last generation against its first; the same
    generation after a final training to convergence and rebuilt from scratch (``capacity.measure_capacity``); and
    the baselines that take the same widths with the same training (``FOLLOWERS``: L1 filter pruning, dense; the
    strongest-first twin, the same synapses too), as bred and after the same final training."""
    started = time.perf_counter()
    run_dir, generations = runs_dir / config.name, config.generations
    result: dict[str, Any] = {"seed": config.seed, "generations": generations,
                              **_changes(generations_table(evolve(config, run_dir, cache_dir)))}
    _say(f"{config.name}, generation {generations} as bred", result)
    rows = capacity_table(measure_capacity(run_dir, [generations], cache_dir)).set_index("network")
    for network in ("trained on", "from scratch"):
        result[network.replace(" ", "_")] = _capacity_changes(rows.loc[network])
        _say(f"  {network}", result[network.replace(" ", "_")])
    for method in followers:
        folder = RunFolder(run_lineage(Lineage(method, config), runs_dir, cache_dir))
        key = method.replace("-", "_")
        result[key] = _changes(generations_table(folder.load_finished()))
        _say(f"  {METHOD_LABELS[method]}, same widths and training", result[key])
        rows = capacity_table(measure_capacity(folder.root, [generations], cache_dir, trained_as=config,
                                               kinds=FINAL_KINDS)).set_index("network")
        result[key]["trained_on"] = _capacity_changes(rows.loc["trained on"])
        _say("    trained on", result[key]["trained_on"])
    result["seconds_this_call"] = time.perf_counter() - started
    return result


def _capacity_changes(row: pd.Series) -> dict[str, Any]:
    """A ``capacity_table`` row in the keys of ``_changes``."""
    return {"synapse_reduction": row["synapse_reduction"], "mac_reduction": row["mac_reduction"],
            "epochs": int(row["epochs"]), "ap50_change_points": row["ap50_change"],
            "op_precision_change_points": row["op_precision_change"],
            "op_recall_change_points": row["op_recall_change"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the JSON goes")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--scale", type=float, default=0.41, help="the small network's width scale (0.41)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lineages", action="store_true", help="also evolve each variant, seed by seed")
    parser.add_argument("--generations", type=int, default=13)
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    arguments = parser.parse_args()
    machine = describe_machine()
    # each variant is a preset of its own, known for this scan only (the built-in "cluttered" is itself)
    variants = [VARIANTS[name].preset(name) for name in arguments.variants if name not in BUILT_IN_PRESETS]
    with extra_presets(*variants):
        results = {name: scan(name, VARIANTS[name], arguments.scale, arguments.seeds, arguments.runs_dir,
                              arguments.cache_dir) for name in arguments.variants}
        if arguments.lineages:
            for name, result in results.items():
                result["lineages"] = [lineage(RunConfig(preset=name, seed=seed, generations=arguments.generations),
                                              arguments.runs_dir, arguments.cache_dir) for seed in arguments.seeds]
    write_json(arguments.out, {"machine": machine, "scale": arguments.scale, "seeds": arguments.seeds,
                               "slack_points": SLACK_POINTS, "variants": results})
    print(f"\n{machine_summary(machine)}")
    for name, result in results.items():
        print(f"{name:6s} AP50 given up at x{arguments.scale:g}: {result['mean_ap50_loss_points']:+.1f} points "
              f"({'slack' if result['has_slack'] else 'no slack'})  {result['description']}")


if __name__ == "__main__":
    main()
