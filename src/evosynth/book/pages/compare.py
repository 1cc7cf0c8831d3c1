"""What the comparison page shows, computed here so that the page keeps only the calls that draw.

Two parts. *Evolution against pruning*: the full comparison (``compare.FULL_COMPARISON``: the evolution, L1 filter
pruning and strongest-first over every generation and three seeds), read from the runs folder where `evosynth study
--full` computed it, otherwise from the record this repository's code stored in ``benchmarks/``, named with its
machine, date and commit. *This build's comparison*: the plan `evosynth study` ran (``reduced`` by default), its
baselines and ablations, in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evosynth.deploy.machine import machine_summary
from evosynth.errors import EvosynthError
from evosynth.paths import REPO_ROOT
from evosynth.study.compare import (
    FULL_COMPARISON,
    METHOD_LABELS,
    ComparisonPlan,
    StoredComparison,
    change_words,
    final_generation,
    final_training_table,
    pareto_front,
    question_rows,
    read_record,
    record_path,
    seed_summary,
    seeded_method_rows,
)
from evosynth.study.methods import PRESET_LEGENDS, environment_equivalent

BENCHMARKS = REPO_ROOT / "benchmarks"


def stored_pattern(comparison: str) -> str:
    """The file names `evosynth compare --preset COMPARISON --store benchmarks/` writes."""
    return f"comparison_{comparison}_*.json"


STORED_PATTERN = stored_pattern(FULL_COMPARISON)
FULL_COMMAND = "evosynth study --full"  # what computes the full comparison in a reader's build
TRAINED_ON = "trained on"


# ----------------------------------------------------------------------------------- evolution against pruning


@dataclass(frozen=True)
class Evidence:
    """A comparison a page shows, whether this build computed it or it was stored earlier, the command that
    computes it in a reader's build, and what computed it where it was computed here."""

    record: StoredComparison
    computed_here: bool
    command: str = FULL_COMMAND
    computed_by: str = FULL_COMMAND

    def source_words(self) -> str:
        """Where the numbers come from, for the page's prose."""
        record = self.record
        where = (f"{machine_summary(record.machine)}, {record.created[:10]}, commit {record.commit}")
        if self.computed_here:
            return f"computed in this build's runs folder by {self.computed_by} ({where})"
        return (f"stored in benchmarks/{record.path.name} by an earlier run of this repository's code ({where}); "
                f"they were not computed in this build: {self.command} computes them here and the page then shows "
                "those")


def stored_records(folder: Path = BENCHMARKS, comparison: str = FULL_COMPARISON) -> list[StoredComparison]:
    """The stored records of a comparison, each read once, newest first."""
    return sorted(map(read_record, folder.glob(stored_pattern(comparison))), key=lambda record: record.created,
                  reverse=True)


def evidence(runs_dir: Path, folder: Path = BENCHMARKS, comparison: str = FULL_COMPARISON,
             command: str = FULL_COMMAND, computed_by: str = FULL_COMMAND) -> Evidence:
    """The comparison computed in ``runs_dir`` (its record, which ``run_comparison`` writes once every lineage
    is done), else the newest one stored in ``folder``; with neither, a clear refusal naming ``command``, which
    computes it."""
    computed = record_path(comparison, runs_dir)
    if computed.is_file():
        return Evidence(read_record(computed), computed_here=True, command=command, computed_by=computed_by)
    stored = stored_records(folder, comparison)
    if not stored:
        raise EvosynthError(f"no {comparison} comparison in {runs_dir} and none stored in {folder} "
                            f"({stored_pattern(comparison)}): compute it with {command}")
    return Evidence(stored[0], computed_here=False, command=command)


def seed_changes(record: StoredComparison) -> pd.DataFrame:
    """Per method, seed and generation: AP50, precision and recall (at the validated operating point) against the
    lineage's generation 1 in points, and its synapses and MACs as a fraction of generation 1's."""
    table = seeded_method_rows(record.table)
    first = table[table["generation"] == 1].set_index(["method", "seed"])
    keyed = table.set_index(["method", "seed"])
    for column in ("ap50", "op_precision", "op_recall"):
        table[f"{column}_change"] = 100 * (keyed[column] - first[column].reindex(keyed.index)).to_numpy()
    for column in ("synapses", "macs"):
        table[f"{column}_reduction"] = (first[column].reindex(keyed.index) / keyed[column]).to_numpy()
    table["label"] = table["method"].map(METHOD_LABELS)
    return table


def band(record: StoredComparison, quantity: str = "ap50_change") -> pd.DataFrame:
    """Per method and generation, the mean over seeds of ``quantity`` (a ``seed_changes`` column) and its
    lowest-to-highest range: the seed band."""
    changes = seed_changes(record)
    summary = seed_summary(changes, columns=(quantity,), by=("method", "label"))
    return summary.drop(columns="quantity")


def fastest_backend(record: StoredComparison) -> str | None:
    """Of the backends that timed every lineage (the study's own bench times more than the comparison's), the one
    with the most frames per second on the evolution's last generation, mean over seeds; None where none did."""
    if record.speeds.empty:  # a comparison that timed nothing (the pedestrians comparison)
        return None
    speeds = record.speeds[record.speeds["generation"] == record.generations]
    lineages = speeds.groupby(["method", "seed"])["backend"].agg(set)
    common = set.intersection(*lineages) if len(lineages) else set()
    last = speeds[(speeds["method"] == "evolution") & speeds["backend"].isin(common)]
    return str(last.groupby("backend")["fps"].mean().idxmax()) if not last.empty else None


def method_summary(record: StoredComparison) -> pd.DataFrame:
    """Per method, at the last generation, each quantity's mean over seeds and its range: synapses ÷ and MACs ÷
    against generation 1, AP50, precision and recall as bred and AP50 after the final training (points against
    generation 1), and the frame speed-up on the ``fastest_backend``. Long: method, label, quantity, mean, min,
    max, seeds."""
    changes = seed_changes(record)
    last = changes[changes["generation"] == record.generations]
    columns = {"synapses_reduction": "synapses ÷", "macs_reduction": "MACs ÷", "ap50_change": "ΔAP50 as bred",
               "op_precision_change": "ΔP as bred", "op_recall_change": "ΔR as bred"}
    frames = [last[["method", "seed", column]].rename(columns={column: "value"}).assign(quantity=name)
              for column, name in columns.items()]
    finals = record.final_training
    if not finals.empty:
        trained = finals[finals["network"] == TRAINED_ON]
        frames.append(trained[["method", "seed", "ap50_change"]].rename(columns={"ap50_change": "value"})
                      .assign(quantity="ΔAP50 after final training"))
    backend = fastest_backend(record)
    if backend is not None:
        speeds = record.speeds
        timed = speeds[(speeds["backend"] == backend) & (speeds["generation"] == record.generations)]
        frames.append(timed[["method", "seed", "speedup"]].rename(columns={"speedup": "value"})
                      .assign(quantity=f"frame speed-up ({backend})"))
    long = pd.concat(frames, ignore_index=True)
    summary = long.groupby(["method", "quantity"], sort=False)["value"].agg(["mean", "min", "max", "count"])
    summary = summary.rename(columns={"count": "seeds"}).reset_index()
    return summary.assign(label=summary["method"].map(METHOD_LABELS))


SHORT_LABELS = {"evolution": "evolution", "l1-filter": "L1 filter pruning", "matched": "strongest-first"}


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """``method_summary`` as the page's table: one row per method, one column per quantity, each cell the mean and,
    in brackets, the lowest and the highest seed."""
    def cell(row: pd.Series) -> str:
        ratio = "÷" in row["quantity"] or "speed-up" in row["quantity"]
        mean, low, high = ("{:.1f}x" if ratio else "{:+.1f}").format(row["mean"]), *(
            ("{:.1f}" if ratio else "{:+.1f}").format(row[end]) for end in ("min", "max"))
        return f"{mean} [{low}, {high}]"

    cells = summary.assign(cell=summary.apply(cell, axis=1),
                           method=summary["method"].map(lambda method: SHORT_LABELS.get(method, method)))
    order = list(dict.fromkeys(summary["quantity"]))
    table = cells.pivot(index="method", columns="quantity", values="cell")[order]
    return table.loc[list(dict.fromkeys(cells["method"]))].rename_axis(None).rename_axis(None, axis=1)


def methods_words(found: Evidence) -> dict[str, Any]:
    """The page's sentences on evolution against pruning: where the numbers come from, the seeds, and the answer."""
    record = found.record
    summary = method_summary(record).set_index(["method", "quantity"])
    changes = seed_changes(record)
    seeds = ", ".join(map(str, record.seeds))
    per_seed = changes[(changes["generation"] == record.generations)].pivot(index="seed", columns="method",
                                                                            values="ap50_change")
    evolution = per_seed["evolution"]
    offspring = changes[changes["generation"] > 1].pivot_table(index=["seed", "generation"], columns="method",
                                                               values="ap50_change")
    sentences = []
    for method in per_seed.columns.drop("evolution"):
        label = METHOD_LABELS[method]
        gap = evolution - per_seed[method]
        sentence = (f"at generation {record.generations} the evolution's AP50 is {change_words(gap.mean())} that of "
                    f"{label} as bred, on the mean of the seeds ({int((gap < 0).sum())} of {len(gap)} seeds favour "
                    f"{label})")
        trained = (method, "ΔAP50 after final training")
        if trained in summary.index:
            after = summary.loc[("evolution", trained[1]), "mean"] - summary.loc[trained, "mean"]
            sentence += f" and {change_words(after)} it after the final training"
        wins = int((offspring[method] > offspring["evolution"]).sum())
        sentences.append(f"{sentence}; {label} has the higher AP50 in {wins} of the {len(offspring)} offspring "
                         "generations of all seeds")
    spread = evolution.max() - evolution.min()
    l1_gap = (evolution - per_seed["l1-filter"]).mean() if "l1-filter" in per_seed else float("nan")
    if "l1-filter" not in per_seed:
        answer = "This comparison has no L1 filter pruning lineage"
    elif l1_gap > 0:
        answer = (f"Yes, on these seeds: the evolution ends {l1_gap:.1f} points above L1 filter pruning at the same "
                  "MACs")
    else:
        answer = (f"No, on these seeds: L1 filter pruning at the same MACs ends {-l1_gap:.1f} points above the "
                  "evolution")
    answer += (f" (AP50 as bred, mean of seeds {seeds}; the evolution's own seeds span {spread:.1f} points at "
               f"generation {record.generations})")
    return {"methods_source": found.source_words(), "methods_seeds": seeds, "methods_answer": answer,
            "methods_details": "; ".join(sentences), "methods_generations": record.generations}


# ------------------------------------------------------------------------------------- this build's comparison


def build_words(plan: ComparisonPlan, table: pd.DataFrame, runs_dir: Path) -> dict[str, Any]:
    """Every sentence of the page's part on the comparison this build ran (its baselines and ablations)."""
    methods = question_rows(table, "methods")
    evolved = methods[methods["method"] == "evolution"].set_index("generation")["synapses"]
    final = final_generation(methods)
    evolution = final.loc[METHOD_LABELS["evolution"]]
    words: dict[str, Any] = {
        "comparison_name": plan.name, "plan_generations": plan.generations, "last_generation": plan.generations,
        "plan_reduction": float(evolved.iloc[0] / evolved.iloc[-1]),
    }
    baselines = [method for method in ("l1-filter", "matched", "imp") if METHOD_LABELS[method] in final.index]
    said = []
    for method in baselines:
        row = final.loc[METHOD_LABELS[method]]
        said.append(f"{METHOD_LABELS[method]} ({row['synapses'] / evolution['synapses']:.2f} times the evolution's "
                    f"synapses at {row['macs'] / evolution['macs']:.2f} times its MACs) has an AP50 "
                    f"{change_words(100 * (row['ap50'] - evolution['ap50']))} the evolution's")
    front = methods[pareto_front(methods, "macs", "ap50")]
    last_front = sorted(front.loc[front["generation"] == plan.generations, "label"])
    words["baseline_words"] = "; ".join(said) or "no baseline ran"
    words["front_last"] = ", ".join(last_front) if last_front else "none"
    words["final_words"] = _final_words(plan, runs_dir)
    words.update(_ablation_words(plan, table))
    return words


def _final_words(plan: ComparisonPlan, runs_dir: Path) -> str:
    finals = final_training_table(plan, runs_dir)
    if finals.empty:
        return (f"the {plan.name} comparison has no final training (the full comparison above has one, for every "
                "seed)")
    trained = finals[(finals["network"] == TRAINED_ON) & (finals["seed"] == plan.reference.seed)].set_index("method")
    gaps = trained["ap50_change"] - trained.loc["evolution", "ap50_change"]
    return "; ".join(f"{trained.loc[method, 'label']} has an AP50 {change_words(gap)} the evolution's"
                     for method, gap in gaps.drop("evolution").items())


def _ablation_words(plan: ComparisonPlan, table: pd.DataFrame) -> dict[str, str]:
    """A sentence per ablation axis, "not run" where the plan does not vary it."""
    words = {}
    precisions = question_rows(table, "precision")
    if precisions["precision"].nunique() > 1:
        last = final_generation(precisions).set_index("precision")
        words["precision_gaps"] = "; ".join(
            f"{p.upper()} {change_words(100 * (last.loc[p, 'ap50'] - last.loc['fp32', 'ap50']))} FP32, at "
            f"{int(last.loc[p, 'synapses']):,} synapses against {int(last.loc['fp32', 'synapses']):,}"
            for p in last.index if p != "fp32")
    else:
        words["precision_gaps"] = "not run in this comparison"
    levels = question_rows(table, "level")
    words["levels_run"] = ", ".join(sorted(levels["level"].unique()))
    environments = question_rows(table, "environment")
    alphas = {name: environment_equivalent(plan.reference, name).alpha_cluster for name in ("budget", "cost")}
    words["budget_alpha"], words["cost_alpha"] = f"{alphas['budget']:g}", f"{alphas['cost']:g}"
    if environments["environment"].nunique() > 1:
        last = final_generation(environments).set_index("environment")
        words["environment_gap"] = (
            f"the cost environment ends at {last.loc['cost', 'macs'] / 1e6:.2f} M MACs and AP50 "
            f"{last.loc['cost', 'ap50']:.3f}, the budget at {last.loc['budget', 'macs'] / 1e6:.2f} M and "
            f"{last.loc['budget', 'ap50']:.3f}")
    else:
        words["environment_gap"] = "not run in this comparison"
    tasks = question_rows(table, "task")
    if tasks["task"].nunique() > 1:
        first = tasks[tasks["generation"] == 1].set_index("task")
        last = final_generation(tasks).set_index("task")
        named = {task: "the study's ancestor and task" if task == plan.reference.preset
                 else "the " + PRESET_LEGENDS.get(task, f"{task} task") for task in last.index}
        words["task_changes"] = "; ".join(
            f"{named[task]} keeps 1/{first.loc[task, 'synapses'] / last.loc[task, 'synapses']:.1f} of its synapses "
            f"and 1/{first.loc[task, 'macs'] / last.loc[task, 'macs']:.1f} of its MACs at AP50 "
            f"{100 * (last.loc[task, 'ap50'] - first.loc[task, 'ap50']):+.1f} points (from "
            f"{first.loc[task, 'ap50']:.3f})" for task in last.index)
    else:
        words["task_changes"] = "not run in this comparison"
    return words


def varied(table: pd.DataFrame, question: str) -> pd.DataFrame | None:
    """``question_rows`` of an ablation axis where the plan varied it (two values or more), else None: nothing to
    draw."""
    rows = question_rows(table, question)
    return rows if rows[question].nunique() > 1 else None
