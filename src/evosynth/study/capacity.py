"""Size or synthesis? What a generation's architecture can reach when training is not the limit.

For chosen generations of a run, two networks are trained to convergence under the ancestor's rule (until
validation AP50 stops improving): the generation itself, trained on from its weights with its masks kept, and a
dense network of the same widths trained from random initialisation. Both are restricted to the run's precision
and measured on the test split like every generation. If neither comes near generation 1, the accuracy lost is
the price of the network's size, not of the synthesis or of the offspring's fixed training budget.

Results go to ``<run>/capacity.json``, one entry per generation and kind, written as each is finished: a rerun
computes only what is missing (or what was computed under another rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from evosynth.core.synthesis import generation_generator
from evosynth.errors import CheckpointError
from evosynth.storage.runs import Generation, RunFolder, read_json, write_json
from evosynth.study.config import RunConfig
from evosynth.study.evolution import load_run, load_task_data, restrict_and_measure
from evosynth.task.dataset import DetectionData
from evosynth.task.model import GridDetector
from evosynth.task.training import TrainingBudget, TrainingCurve, train

CAPACITY_FILE = "capacity.json"
KINDS = ("trained_on", "from_scratch")
AS_EVOLVED = "as evolved"  # the table's label of each generation as the run bred it
CAPACITY_STREAM = 104_729  # its training draws differ from the generation's own, which it continues
QUALITY = ("precision_score", "recall", "ap50")
RECORDED = (*QUALITY, "synapses", "macs", "widths", "epochs", "train_seconds")


def _converge(config: RunConfig, data: DetectionData, generation: Generation, kind: str) -> dict[str, Any]:
    """Train one network of ``generation``'s widths to convergence and measure it as a generation is measured."""
    rule = config.resolved_preset.ancestor
    if kind == "trained_on":
        model, masks = generation.model, generation.masks
    else:
        torch.manual_seed(config.seed)
        model = GridDetector(generation.model.architecture)
        masks = {name: torch.ones_like(layer.weight, dtype=torch.bool) for name, layer in model.prunable_layers()}
    curve = train(model, masks, data.train, data.val, rule,
                  generation_generator(config.seed + CAPACITY_STREAM, generation.number),
                  description=f"gen {generation.number:02d} {kind.replace('_', ' ')}")
    measured = restrict_and_measure(config, data, generation.number, None, model, masks, curve.to_json()).metrics
    return {**{key: measured[key] for key in RECORDED}, "best_epoch": curve.best_epoch,
            "stopped_by": stopping_reason(curve, rule),
            "rule": rule.to_json()}


def stopping_reason(curve: TrainingCurve, rule: TrainingBudget) -> str:
    """Why training to convergence ended: validation AP50 stopped improving for ``patience`` epochs (also when that
    happened at the last allowed epoch), or the epoch cap came first."""
    stalled = bool(curve.epochs) and rule.patience is not None and curve.epochs[-1] - curve.best_epoch >= rule.patience
    return "patience" if stalled else "epoch cap"


def measure_capacity(run_dir: Path, numbers: Sequence[int] | None = None,
                     cache_dir: Path = Path("data/cache")) -> dict[str, Any]:
    """Compute (or reuse) both kinds for generations ``numbers`` of the run (default: its last) and return the
    whole capacity record."""
    config, generations = load_run(run_dir)
    by_number = {g.number: g for g in generations}
    numbers = list(numbers) if numbers else [generations[-1].number]
    missing = [n for n in numbers if n not in by_number or n == 1]
    if missing:
        raise ValueError(f"{run_dir} has no offspring generation {missing[0]}; choose among "
                         f"{', '.join(str(n) for n in sorted(by_number) if n > 1) or 'none (evolve it first)'}")
    record = _stored(run_dir) or {"generations": {}}
    rule = config.resolved_preset.ancestor.to_json()
    to_do = [(n, kind) for n in numbers for kind in KINDS
             if record["generations"].get(str(n), {}).get(kind, {}).get("rule") != rule]
    if to_do:
        data = load_task_data(config, cache_dir)
        with RunFolder(run_dir).locked():
            for number, kind in tqdm(to_do, desc="capacity", unit="network"):
                entry = _converge(config, data, by_number[number], kind)
                record["generations"].setdefault(str(number), {})[kind] = entry
                write_json(run_dir / CAPACITY_FILE, record)
    return _with_run_metrics(record, by_number, numbers)


def _stored(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CAPACITY_FILE
    if not path.is_file():
        return None
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("generations"), dict):
        raise CheckpointError(f"{path} is not a capacity record; delete it to measure again")
    return record


def _with_run_metrics(record: dict[str, Any], by_number: dict[int, Generation],
                      numbers: Sequence[int]) -> dict[str, Any]:
    """The record plus what the table compares against: generation 1, and each generation as evolved."""
    return {**record, "ancestor": {key: by_number[1].metrics[key] for key in RECORDED},
            "evolved": {str(n): {key: by_number[n].metrics[key] for key in RECORDED} for n in numbers}}


def read_capacity(run_dir: Path, generations: Sequence[Generation]) -> dict[str, Any] | None:
    """What ``evosynth capacity`` measured for the run whose ``generations`` (``load_run``) are given, for every
    generation with both networks, or None if it was not run: the book shows it without computing anything."""
    record = _stored(run_dir)
    if record is None:
        return None
    by_number = {g.number: g for g in generations}
    numbers = sorted(int(n) for n, entry in record["generations"].items()
                     if int(n) in by_number and set(KINDS) <= set(entry))
    return _with_run_metrics(record, by_number, numbers) if numbers else None


def capacity_table(record: dict[str, Any]) -> pd.DataFrame:
    """One row per generation and network (as evolved, trained on, from scratch): size and the change in
    precision, recall and AP50 against generation 1, in points."""
    ancestor = record["ancestor"]
    rows = []
    for number, evolved in record["evolved"].items():
        for kind, entry in {AS_EVOLVED: evolved, **{k.replace("_", " "): record["generations"][number][k]
                                                       for k in KINDS}}.items():
            rows.append({
                "generation": int(number), "network": kind, "widths": "-".join(map(str, entry["widths"])),
                "synapse_reduction": ancestor["synapses"] / entry["synapses"],
                "mac_reduction": ancestor["macs"] / entry["macs"], "epochs": entry["epochs"],
                **{f"{key}_change": 100 * (entry[key] - ancestor[key]) for key in QUALITY},
            })
    return pd.DataFrame(rows)


READABLE = {"synapse_reduction": "synapses ÷", "mac_reduction": "MACs ÷", "precision_score_change": "ΔP (pts)",
            "recall_change": "ΔR (pts)", "ap50_change": "ΔAP50 (pts)"}


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """``capacity_table`` with column names a reader understands (÷: generation 1 over this; Δ: this minus it)."""
    return table.rename(columns=READABLE)


def format_capacity(table: pd.DataFrame) -> str:
    ratio, points = "{:.1f}x".format, "{:+.1f}".format
    formats = {name: ratio if "÷" in name else points for name in READABLE.values()}
    return readable(table).to_string(index=False, formatters=formats)
