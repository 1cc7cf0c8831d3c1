"""The Penn-Fudan page (``notebooks/pedestrians.md``): the pedestrians comparison (``compare.pedestrians_comparison``:
the evolution against L1 filter pruning on three seeds, each testing on its own cross-validation fold) computed in
this build where the data is here, otherwise the record this repository's code stored in ``benchmarks/``; and what
the ancestor needed to learn the task (``benchmarks/pedestrian_levers.py``'s stored measurement)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from evosynth.book import charts
from evosynth.book.pages.compare import BENCHMARKS, Evidence, evidence, method_summary, seed_changes
from evosynth.book.pages.results import detections_then_and_now
from evosynth.deploy.machine import machine_summary
from evosynth.errors import EvosynthError
from evosynth.study.compare import PEDESTRIANS_COMPARISON
from evosynth.study.evolution import load_run, load_task_data
from evosynth.study.presets import get_preset
from evosynth.study.verdict import PAPER_TOLERANCE_POINTS, score_kept

COMMAND = ("evosynth data download pennfudan, then make study (or evosynth study --pedestrians PATH with a copy "
           "elsewhere)")
LEVERS_PATTERN = "pedestrian_levers_*.json"  # what benchmarks/pedestrian_levers.py writes
SCORE_COLUMNS = {"ap50_change": "AP50", "op_precision_change": "precision", "op_recall_change": "recall"}


def pedestrians_evidence(runs_dir: Path, folder: Path = BENCHMARKS) -> Evidence:
    """The pedestrians comparison computed in ``runs_dir`` by the study, else the newest one stored in ``folder``."""
    return evidence(runs_dir, folder, PEDESTRIANS_COMPARISON, COMMAND,
                    computed_by="evosynth study, which found the Penn-Fudan folder")


def verdict_words(found: Evidence) -> dict[str, Any]:
    """The page's sentences: the evolution's last generation against its first (mean and range over the seeds),
    the paper's rule applied to the means, and how many points the folds alone span."""
    record = found.record
    summary = method_summary(record)
    evolution = summary[summary["method"] == "evolution"].set_index("quantity")
    changes = seed_changes(record)
    ancestors = changes[(changes["method"] == "evolution") & (changes["generation"] == 1)]["ap50"]
    last = record.generations
    means = evolution_means(changes)
    missed = [f"{name} {means.loc[last, column]:+.1f}" for column, name in SCORE_COLUMNS.items()
              if not score_kept(means.loc[last, column])]
    rule = (f"each no more than {PAPER_TOLERANCE_POINTS:g} points below generation 1, on the mean of the seeds")
    kept = (f"**kept**: AP50, precision and recall are {rule}" if not missed
            else f"**not kept**: {', '.join(missed)} points, where the paper's rule asks for {rule}")

    def ranged(quantity: str, ratio: bool = False) -> str:
        row = evolution.loc[quantity]
        form = "{:.1f}x" if ratio else "{:+.1f}"
        return f"{form.format(row['mean'])} ({form.format(row['min'])} to {form.format(row['max'])})"

    return {
        "ped_kept_reduction": kept_reduction_words(means),
        "ped_source": found.source_words(), "ped_generations": last,
        "ped_seeds": ", ".join(map(str, record.seeds)),
        "ped_synapses": ranged("synapses ÷", ratio=True), "ped_macs": ranged("MACs ÷", ratio=True),
        "ped_ap50": ranged("ΔAP50 as bred"), "ped_precision": ranged("ΔP as bred"),
        "ped_recall": ranged("ΔR as bred"), "ped_kept": kept,
        "ped_ancestor_ap50": f"{ancestors.mean():.3f} ({ancestors.min():.3f} to {ancestors.max():.3f})",
        "ped_fold_spread": 100 * float(ancestors.max() - ancestors.min()),
    }


def evolution_means(changes: pd.DataFrame) -> pd.DataFrame:
    """Per generation, the evolution's reductions and score changes (``compare.seed_changes`` columns), mean of the
    seeds."""
    evolution = changes[changes["method"] == "evolution"]
    return evolution.groupby("generation")[["synapses_reduction", "macs_reduction", *SCORE_COLUMNS]].mean()


def kept_reduction_words(means: pd.DataFrame) -> str:
    """The largest reduction the evolution reached with AP50, precision and recall each kept by the paper's rule on
    the mean of the seeds (``evolution_means``), or which score fell first where no offspring did."""
    means = means.drop(index=1)
    kept = means[means[list(SCORE_COLUMNS)].map(score_kept).all(axis=1)]
    if kept.empty:
        first = means.iloc[0]
        fallen = ", ".join(f"{name} {first[column]:+.1f}" for column, name in SCORE_COLUMNS.items()
                           if not score_kept(first[column]))
        return (f"no offspring generation keeps all three on the mean of the seeds: generation "
                f"{int(means.index[0])} already has {fallen} points")
    best = kept.loc[kept["macs_reduction"].idxmax()]
    return (f"the largest reduction that keeps all three on the mean of the seeds is generation {int(best.name)}'s: "
            f"{best['synapses_reduction']:.1f}x fewer synapses, {best['macs_reduction']:.1f}x fewer MACs")


@dataclass(frozen=True)
class LeverRecord:
    """``benchmarks/pedestrian_levers.py``'s measurement: the ancestor's test AP50 per training lever."""

    path: Path
    machine: dict[str, Any]
    created: str
    commit: str
    levers: list[dict[str, Any]]  # in the order tried

    def source_words(self) -> str:
        return (f"stored in benchmarks/{self.path.name} by benchmarks/pedestrian_levers.py "
                f"({machine_summary(self.machine)}, {self.created[:10]}, commit {self.commit})")


def lever_record(folder: Path = BENCHMARKS) -> LeverRecord:
    """The newest stored lever measurement; without one, a refusal naming the script that measures it."""
    records = [json.loads(path.read_text()) | {"path": path} for path in folder.glob(LEVERS_PATTERN)]
    if not records:
        raise EvosynthError(f"no {LEVERS_PATTERN} in {folder}: benchmarks/pedestrian_levers.py measures the "
                            "ancestor's levers")
    newest = max(records, key=lambda record: record["created"])
    return LeverRecord(newest["path"], newest["machine"], newest["created"], newest["commit"], newest["levers"])


def lever_words(record: LeverRecord) -> dict[str, str]:
    """The first lever's AP50, the lever the pedestrians preset trains its ancestor with, and the source."""
    first = record.levers[0]
    budget = asdict(get_preset("pedestrians").ancestor)
    kept = [lever["name"] for lever in record.levers if lever["budget"] == budget]
    return {"lever_first": f"{first['mean_ap50']:.3f} (mean of its seeds)",
            "lever_kept": f"the {kept[0]} row's budget" if kept else "a budget this table does not hold",
            "lever_source": record.source_words()}


def lever_table(record: LeverRecord) -> pd.DataFrame:
    """One row per lever in the order tried: what it is, the ancestor's test AP50 (mean over seeds and range), its
    epochs and training seconds."""
    rows = []
    for lever in record.levers:
        seeds = pd.DataFrame(lever["seeds"])
        rows.append({"lever": lever["name"], "what it adds": lever["description"],
                     "AP50, mean [low, high]": f"{seeds['ap50'].mean():.3f} [{seeds['ap50'].min():.3f}, "
                                               f"{seeds['ap50'].max():.3f}]",
                     "epochs (mean)": round(seeds["epochs"].mean()),
                     "training s (mean)": round(seeds["train_seconds"].mean())})
    return pd.DataFrame(rows).set_index("lever").rename_axis(None)


def first_and_last_detections(found: Evidence, runs_dir: Path, cache_dir: Path, images: int = 4) -> pd.DataFrame:
    """Generation 1's and the last generation's detections of seed 0's evolution on the first ``images`` test
    photographs of its fold (``results.detections_then_and_now``): only for a comparison computed here, whose
    networks and data are at hand."""
    table = found.record.table
    config, generations = load_run(runs_dir / table.loc[table["reference"], "run"].iloc[0])
    test = load_task_data(config, cache_dir).test
    return detections_then_and_now(generations[0], generations[-1], test, range(min(images, len(test))))


def detections_chart(found: Evidence, runs_dir: Path, cache_dir: Path) -> alt.FacetChart | None:
    """``first_and_last_detections`` drawn, for a comparison computed here; None (nothing shown) for a stored one,
    whose networks and photographs this build does not have."""
    if not found.computed_here:
        return None
    return charts.detections_chart(first_and_last_detections(found, runs_dir, cache_dir), columns=4, size=145)
