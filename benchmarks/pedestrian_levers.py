"""What makes a Penn-Fudan ancestor learn the task, and how long must an offspring train? Measured over folds.

The pedestrians ancestor trained from scratch on 110 photographs stopped at about 0.45 AP50. This script trains the
ancestor (generation 1 of a pedestrians run: the study's own code path, FP16-restricted, measured at the validated
operating point) under each lever in turn, each adding to the one before where the name says so, for seeds whose
test fold is their seed (``RunConfig.data_spec``): so the spread over seeds is the spread over the test images too.

    .venv/bin/python benchmarks/pedestrian_levers.py --data-dir ../shared/data/PennFudanPed \
        --out benchmarks/pedestrian_levers_<machine>.json [--levers copy-paste] [--seeds 0 1 2]

A lever is a preset of its own, known to this script only (``presets.extra_presets``), so its ancestors have run
folders of their own under ``--runs-dir`` and are reused when the script is run again.

With ``--offspring-epochs``, it then evolves the pedestrians preset's first ``--offspring-generations`` generations
(its ancestor and environment) once per offspring budget, the same seeds, and records each generation's AP50, P
and R against generation 1: how many epochs an offspring needs to recover from its parent's surgery.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from evosynth.deploy.machine import describe_machine, machine_summary, source_commit
from evosynth.files import write_json
from evosynth.paths import CACHE_DIR, RUNS_DIR
from evosynth.storage.runs import Generation
from evosynth.study.config import RunConfig
from evosynth.study.evolution import ancestor_generation, load_task_data, run_generation
from evosynth.study.presets import BUILT_IN_PRESETS, Preset, extra_presets

BASE = BUILT_IN_PRESETS["pedestrians"]


@dataclass(frozen=True)
class Lever:
    description: str
    augmentation: str
    max_epochs: int
    patience: int

    def preset(self, name: str) -> Preset:
        budget = replace(BASE.ancestor, augmentation=self.augmentation, max_epochs=self.max_epochs,
                         patience=self.patience)
        return replace(BASE, name=f"lever-{name}", ancestor=budget)


LEVERS: dict[str, Lever] = {
    "grid-shift": Lever("whole-cell shifts and colour-channel permutations (the digits task's augmentation)",
                        "grid-shift", 100, 12),
    "flip-scale": Lever("mirror, zoom x0.75-1.33 and move by up to a fifth, per image", "flip-scale", 300, 30),
    "photometric": Lever("flip-scale, and brightness, contrast and saturation jitter", "photometric", 300, 30),
    "copy-paste": Lever("photometric, and pedestrians cut out by their masks pasted onto other training images",
                        "copy-paste", 300, 30),
}


def measure(name: str, lever: Lever, seeds: list[int], root: Path, runs_dir: Path,
            cache_dir: Path) -> dict[str, Any]:
    rows = []
    for seed in seeds:
        config = RunConfig(preset=f"lever-{name}", data="pennfudan", data_root=str(root), seed=seed, generations=1)
        generation = ancestor_generation(config, load_task_data(config, cache_dir), runs_dir)
        metrics, curve = generation.metrics, generation.curve
        rows.append({"seed": seed, "fold": config.data_spec().fold, "ap50": metrics["ap50"],
                     "op_precision": metrics["operating_point"]["precision"],
                     "op_recall": metrics["operating_point"]["recall"], "epochs": metrics["epochs"],
                     "best_epoch": curve["best_epoch"], "train_seconds": curve["seconds"]})
        print(f"{name} seed {seed}: AP50 {rows[-1]['ap50']:.3f}, P {rows[-1]['op_precision']:.3f}, "
              f"R {rows[-1]['op_recall']:.3f}, {rows[-1]['epochs']} epochs, {rows[-1]['train_seconds']:.0f} s",
              flush=True)
    ap50 = [row["ap50"] for row in rows]
    return {"name": name, "description": lever.description, "budget": asdict(lever.preset(name).ancestor),
            "seeds": rows, "mean_ap50": statistics.fmean(ap50), "low_ap50": min(ap50), "high_ap50": max(ap50),
            "mean_train_seconds": statistics.fmean(row["train_seconds"] for row in rows)}


def offspring_budgets(epochs: list[int], generations: int, seeds: list[int], root: Path, runs_dir: Path,
                      cache_dir: Path) -> dict[str, Any]:
    """Per offspring budget (epochs), per seed, generations 2..``generations`` bred from the pedestrians preset's
    own ancestor (trained once, shared with the study's runs under ``runs_dir``) under its environment, against
    generation 1 in points, and the seconds each offspring trained."""
    results: dict[str, Any] = {}
    presets = {count: replace(BASE, name=f"offspring-{count}", offspring=replace(BASE.offspring, max_epochs=count))
               for count in epochs}
    with extra_presets(*presets.values()):
        for count, preset in presets.items():
            rows = []
            for seed in seeds:
                base = RunConfig(preset=BASE.name, data="pennfudan", data_root=str(root), seed=seed)
                data = load_task_data(base, cache_dir)
                parent = ancestor_generation(base, data, runs_dir)
                first = parent.metrics
                variant = replace(base, preset=preset.name)
                for number in range(2, generations + 1):
                    result, recipe = run_generation(variant, data, number, parent)
                    parent = Generation(number, result.model, result.masks, result.metrics, result.curve, recipe)
                    rows.append({"seed": seed, "generation": number, "mac_reduction": first["macs"] /
                                 result.metrics["macs"], "ap50_change": 100 * (result.metrics["ap50"] - first["ap50"]),
                                 **{f"op_{key}_change": 100 * (result.metrics["operating_point"][key]
                                                              - first["operating_point"][key])
                                    for key in ("precision", "recall")},
                                 "train_seconds": result.curve["seconds"]})
            last = [row for row in rows if row["generation"] == generations]
            results[str(count)] = {"generations": rows, "mean_last_ap50_change": statistics.fmean(
                row["ap50_change"] for row in last)}
            print(f"offspring {count} epochs: generation {generations} AP50 "
                  f"{results[str(count)]['mean_last_ap50_change']:+.1f} points (mean of seeds)", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a Penn-Fudan folder (PennFudanPed/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--levers", nargs="+", choices=LEVERS, default=list(LEVERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--offspring-epochs", nargs="*", type=int, default=[],
                        help="offspring budgets (epochs) to compare on the preset's first generations")
    parser.add_argument("--offspring-generations", type=int, default=4)
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR / "pedestrian_levers")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    args = parser.parse_args()
    started = time.perf_counter()

    def save(levers: list[dict[str, Any]], offspring: dict[str, Any]) -> None:
        write_json(args.out, {"machine": describe_machine(), "commit": source_commit(),
                              "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "network": asdict(BASE.network), "data": asdict(BASE.data), "levers": levers,
                              "offspring": offspring, "seconds": time.perf_counter() - started})

    presets = [LEVERS[name].preset(name) for name in args.levers]
    results: list[dict[str, Any]] = []
    with extra_presets(*presets):
        for name in args.levers:
            results.append(measure(name, LEVERS[name], args.seeds, args.data_dir.resolve(), args.runs_dir,
                                   args.cache_dir))
            save(results, {})
    offspring = offspring_budgets(args.offspring_epochs, args.offspring_generations, args.seeds,
                                  args.data_dir.resolve(), args.runs_dir, args.cache_dir)
    save(results, offspring)
    print(f"\n{machine_summary(describe_machine())}")
    for result in results:
        print(f"{result['name']:>16}: AP50 {result['mean_ap50']:.3f} "
              f"[{result['low_ap50']:.3f}, {result['high_ap50']:.3f}], "
              f"{result['mean_train_seconds']:.0f} s per ancestor")


if __name__ == "__main__":
    main()
