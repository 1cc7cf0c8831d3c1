"""Size or synthesis? What a generation's architecture can reach when training is not the limit.

For chosen generations of a run, two networks are trained to convergence under the ancestor's rule (until
validation AP50 stops improving): the generation itself, trained on from its weights with its masks kept, and a
dense network of the same widths trained from random initialisation. Both are restricted to the run's precision
and measured on the test split like every generation. If neither comes near generation 1, the accuracy lost is
the price of the network's size, not of the synthesis or of the offspring's fixed training budget.

Results go to ``<run>/capacity.json``, one entry per generation and kind, written as each is finished: a rerun
computes only what is missing (or what was computed under another rule).

The task's capacity curve (``measure_width_curve``) asks the same question before any evolution: dense networks of
the ancestor's shape with every width scaled, trained from scratch under the same rule, AP50 against MACs. It is the
frontier every method of removing synapses is judged against, and it says whether the ancestor has slack: where
networks with a fraction of its MACs reach its accuracy, evolution has room to remove them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from evosynth.core.synthesis import generation_generator
from evosynth.errors import CheckpointError
from evosynth.paths import CACHE_DIR, RUNS_DIR
from evosynth.storage.runs import Generation, RunFolder, read_json, write_json
from evosynth.study.config import RunConfig
from evosynth.study.evolution import (
    TRAINING_STREAM,
    ancestor_generation,
    load_run,
    load_task_data,
    new_ancestor,
    restrict_and_measure,
)
from evosynth.task.dataset import DetectionData
from evosynth.task.model import Detector, channel_graph, fresh_network, group_widths, trace_size
from evosynth.task.training import TrainingBudget, TrainingCurve, train

CAPACITY_FILE = "capacity.json"
KINDS = ("trained_on", "from_scratch")
AS_EVOLVED = "as evolved"  # the table's label of each generation as the run bred it
CAPACITY_STREAM = 104_729  # its training draws differ from the generation's own, which it continues
QUALITY = ("precision_score", "recall", "ap50")
RECORDED = (*QUALITY, "operating_point", "synapses", "macs", "widths", "epochs", "train_seconds")


def _converge(config: RunConfig, data: DetectionData, generation: Generation, kind: str) -> dict[str, Any]:
    """Train one network of ``generation``'s widths to convergence and measure it as a generation is measured."""
    if kind == "trained_on":
        return _train_to_convergence(config, data, generation.model, generation.masks, generation.number,
                                     f"gen {generation.number:02d} trained on")
    return _from_scratch(config, data, generation.model, None, generation.number,
                         f"gen {generation.number:02d} from scratch")


def _from_scratch(config: RunConfig, data: DetectionData, structure: Detector, widths: Sequence[int] | None,
                  number: int, description: str,
                  stream: int = CAPACITY_STREAM) -> dict[str, Any]:
    """A dense network of ``structure``'s shape (at ``widths`` per group where given), initialised from the run
    seed, trained to convergence and measured."""
    torch.manual_seed(config.seed)
    model = fresh_network(structure, widths)
    masks = {layer.parameter: torch.ones_like(layer.weight, dtype=torch.bool)
             for layer in channel_graph(model, trace_size(model)).layers}
    return _train_to_convergence(config, data, model, masks, number, description, stream)


def _train_to_convergence(config: RunConfig, data: DetectionData, model: Detector,
                          masks: dict[str, torch.Tensor], number: int, description: str,
                          stream: int = CAPACITY_STREAM) -> dict[str, Any]:
    """Train under the ancestor's rule (until validation AP50 stops improving), restrict, measure on the test split;
    training draws come from the stream (``stream`` + run seed, ``number``)."""
    rule = config.resolved_preset.ancestor
    curve = train(model, masks, data.train, data.val, rule,
                  generation_generator(config.seed + stream, number), description=description)
    measured = restrict_and_measure(config, data, number, None, model, masks, curve.to_json()).metrics
    return _entry(measured, curve, rule)


def _entry(metrics: dict[str, Any], curve: TrainingCurve, rule: TrainingBudget) -> dict[str, Any]:
    return {**{key: metrics[key] for key in RECORDED}, "best_epoch": curve.best_epoch,
            "stopped_by": stopping_reason(curve, rule), "rule": rule.to_json()}


def stopping_reason(curve: TrainingCurve, rule: TrainingBudget) -> str:
    """Why training to convergence ended: validation AP50 stopped improving for ``patience`` epochs (also when that
    happened at the last allowed epoch), or the epoch cap came first."""
    stalled = bool(curve.epochs) and rule.patience is not None and curve.epochs[-1] - curve.best_epoch >= rule.patience
    return "patience" if stalled else "epoch cap"


def measure_capacity(run_dir: Path, numbers: Sequence[int] | None = None, cache_dir: Path = CACHE_DIR, *,
                     trained_as: RunConfig | None = None, kinds: Sequence[str] = KINDS) -> dict[str, Any]:
    """Compute (or reuse) ``kinds`` for generations ``numbers`` of the run (default: its last) and return the
    whole capacity record.

    ``trained_as``: the evolution run whose task and training rule apply, for a lineage folder that is not one (a
    baseline follows one: ``compare.Lineage.config``); its from-scratch network is the evolution's at the same widths,
    so a baseline asks for ``trained_on`` only."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown capacity kind {unknown[0]!r}; choose among {', '.join(KINDS)}")
    if trained_as is None:
        config, generations = load_run(run_dir)
    else:
        config, generations = trained_as, RunFolder(run_dir).load_finished(Detector)
    by_number = {g.number: g for g in generations}
    numbers = list(numbers) if numbers else [generations[-1].number]
    missing = [n for n in numbers if n not in by_number or n == 1]
    if missing:
        raise ValueError(f"{run_dir} has no offspring generation {missing[0]}; choose among "
                         f"{', '.join(str(n) for n in sorted(by_number) if n > 1) or 'none (evolve it first)'}")
    record = _stored(run_dir) or {"generations": {}}
    rule = config.resolved_preset.ancestor.to_json()
    to_do = [(n, kind) for n in numbers for kind in kinds
             if record["generations"].get(str(n), {}).get(kind, {}).get("rule") != rule]
    if to_do:
        data = load_task_data(config, cache_dir)
        with RunFolder(run_dir).locked():
            for number, kind in tqdm(to_do, desc="capacity", unit="network"):
                entry = _converge(config, data, by_number[number], kind)
                record["generations"].setdefault(str(number), {})[kind] = entry
                write_json(run_dir / CAPACITY_FILE, record)
    return _with_run_metrics(record, {n: g.metrics for n, g in by_number.items()}, numbers)


def _stored(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CAPACITY_FILE
    if not path.is_file():
        return None
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("generations"), dict):
        raise CheckpointError(f"{path} is not a capacity record; delete it to measure again")
    return record


def _with_run_metrics(record: dict[str, Any], by_number: Mapping[int, Mapping[str, Any]],
                      numbers: Sequence[int]) -> dict[str, Any]:
    """The record plus what the table compares against: generation 1, and each generation as evolved."""
    return {**record, "ancestor": {key: by_number[1][key] for key in RECORDED},
            "evolved": {str(n): {key: by_number[n][key] for key in RECORDED} for n in numbers}}


def read_capacity(run_dir: Path, by_number: Mapping[int, Mapping[str, Any]],
                  kinds: Sequence[str] = KINDS) -> dict[str, Any] | None:
    """What ``evosynth capacity`` measured for the run whose generations' metrics are given (by number, 1
    included), for every generation with each of ``kinds``, or None if it was not run: the book shows it without
    computing anything."""
    record = _stored(run_dir)
    if record is None:
        return None
    numbers = sorted(int(n) for n, entry in record["generations"].items()
                     if int(n) in by_number and set(kinds) <= set(entry))
    return _with_run_metrics(record, by_number, numbers) if numbers else None


def capacity_table(record: dict[str, Any]) -> pd.DataFrame:
    """One row per generation and network (as evolved, and whichever of trained on and from scratch were measured):
    size and the change in precision, recall and AP50 against generation 1, in points (precision and recall at the
    fixed 0.5 threshold, and ``op_``: at each network's validated operating point)."""
    ancestor = record["ancestor"]
    rows = []
    for number, evolved in record["evolved"].items():
        measured = record["generations"][number]
        for kind, entry in {AS_EVOLVED: evolved, **{k.replace("_", " "): measured[k] for k in KINDS
                                                       if k in measured}}.items():
            rows.append({
                "generation": int(number), "network": kind, "widths": "-".join(map(str, entry["widths"])),
                "synapse_reduction": ancestor["synapses"] / entry["synapses"],
                "mac_reduction": ancestor["macs"] / entry["macs"], "epochs": entry["epochs"],
                **{f"{key}_change": 100 * (entry[key] - ancestor[key]) for key in QUALITY},
                **{f"op_{key}_change": 100 * (entry["operating_point"][key] - ancestor["operating_point"][key])
                   for key in ("precision", "recall")},
            })
    return pd.DataFrame(rows)


READABLE = {"synapse_reduction": "synapses ÷", "mac_reduction": "MACs ÷", "precision_score_change": "ΔP@0.5 (pts)",
            "recall_change": "ΔR@0.5 (pts)", "op_precision_change": "ΔP (pts)", "op_recall_change": "ΔR (pts)",
            "ap50_change": "ΔAP50 (pts)"}


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """``capacity_table`` with column names a reader understands (÷: generation 1 over this; Δ: this minus it)."""
    return table.rename(columns=READABLE)


def format_capacity(table: pd.DataFrame) -> str:
    ratio, points = "{:.1f}x".format, "{:+.1f}".format
    formats = {name: ratio if "÷" in name else points for name in READABLE.values()}
    return readable(table).to_string(index=False, formatters=formats)


# ------------------------------------------------------------------------------------------ the capacity curve

CURVE_FOLDER = "capacity-curves"
# Quarter to double the ancestor's widths: 1/16 to 4 times its MACs, with 1/6 of them (the paper's regime: the
# ancestor keeps its accuracy at that size) between 0.375 and 0.5.
DEFAULT_SCALES = (0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0)
# What the study measures (the ancestor's own size costs nothing: it is the ancestor): 1/16 and about 1/6 of its
# MACs, the sizes of a late and of the paper's last generation.
STUDY_SCALES = (0.25, 0.41, 1.0)


def scaled_widths(widths: Sequence[int], scale: float) -> tuple[int, ...]:
    """Every width times ``scale``, rounded, at least one filter."""
    if scale <= 0:
        raise ValueError(f"a width scale must be positive, got {scale}")
    return tuple(max(1, round(width * scale)) for width in widths)


def _task_identity(config: RunConfig) -> dict[str, Any]:
    """What the curve depends on: the ancestor's identity without its seed (seeds are the curve's entries)."""
    return {key: value for key, value in config.ancestor_identity().items() if key != "seed"}


def curve_path(config: RunConfig, runs_dir: Path = RUNS_DIR) -> Path:
    """``runs/capacity-curves/<preset>-<data>-<precision>-<hash of the task>.json``: shared by every run of the task."""
    digest = hashlib.sha256(json.dumps(_task_identity(config), sort_keys=True).encode()).hexdigest()[:10]
    return runs_dir / CURVE_FOLDER / f"{config.preset}-{config.data_label}-{config.precision}-{digest}.json"


def measure_width_curve(config: RunConfig, scales: Sequence[float] = DEFAULT_SCALES, seeds: Sequence[int] = (0,),
                        runs_dir: Path = RUNS_DIR, cache_dir: Path = CACHE_DIR) -> dict[str, Any]:
    """Dense networks of the ancestor's shape at every width scale and seed, trained from scratch to convergence
    (computed, or reused from the task's curve file, where each is written as it is finished)."""
    path = curve_path(config, runs_dir)
    record = read_json(path) if path.is_file() else {"task": _task_identity(config), "networks": {}}
    if record.get("task") != json.loads(json.dumps(_task_identity(config))):
        raise CheckpointError(f"{path} holds the curve of another task; delete it to measure again")
    preset = config.resolved_preset
    rule = preset.ancestor.to_json()
    to_do = [(scale, seed) for seed in seeds for scale in scales
             if record["networks"].get(_curve_key(scale, seed), {}).get("rule") != rule]
    if to_do:
        data = load_task_data(config, cache_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        for scale, seed in tqdm(to_do, desc="capacity curve", unit="network"):
            seeded = replace(config, seed=seed)
            if scale == 1.0:  # the ancestor itself: the same initialisation, training draws and rule
                ancestor = ancestor_generation(seeded, data, runs_dir)
                entry = _entry(ancestor.metrics, TrainingCurve.from_json(ancestor.curve), preset.ancestor)
            else:
                structure = new_ancestor(seeded, data)[0]
                entry = _from_scratch(seeded, data, structure, scaled_widths(group_widths(structure), scale),
                                      1, f"widths x{scale:g} seed {seed}", stream=TRAINING_STREAM)
            record["networks"][_curve_key(scale, seed)] = {**entry, "scale": scale, "seed": seed}
            write_json(path, record)
    return record


def read_width_curve(config: RunConfig, runs_dir: Path) -> dict[str, Any] | None:
    """The task's capacity curve as measured so far under ``runs_dir`` (None: not measured): the book reads it
    without computing anything."""
    path = curve_path(config, runs_dir)
    return read_json(path) if path.is_file() else None


def _curve_key(scale: float, seed: int) -> str:
    return f"x{scale:g}-seed{seed}"


def curve_table(record: dict[str, Any], reference_scale: float = 1.0) -> pd.DataFrame:
    """One row per width scale (means over its seeds, and their spread): MACs, AP50, precision and recall, and
    each quality's change from the ancestor's own size (``reference_scale``) in points, seed by seed."""
    networks = pd.DataFrame(record["networks"].values())
    reference = networks[networks["scale"] == reference_scale].set_index("seed")
    if reference.empty:
        raise ValueError(f"the curve has no network at the ancestor's size (scale {reference_scale:g})")
    for key in QUALITY:
        networks[f"{key}_change"] = [100 * (row[key] - reference[key].get(row["seed"], float("nan")))
                                     for _, row in networks.iterrows()]
    networks["mac_fraction"] = networks["macs"] / float(reference["macs"].iloc[0])
    grouped = networks.groupby("scale")
    table = grouped.agg(widths=("widths", lambda w: "-".join(map(str, w.iloc[0]))), macs=("macs", "first"),
                        mac_fraction=("mac_fraction", "first"), seeds=("seed", "count"),
                        ap50=("ap50", "mean"), ap50_low=("ap50", "min"), ap50_high=("ap50", "max"),
                        precision_score=("precision_score", "mean"), recall=("recall", "mean"),
                        ap50_change=("ap50_change", "mean"), epochs=("epochs", "mean"))
    return table.reset_index()


CURVE_READABLE = {"scale": "width ×", "mac_fraction": "MACs (× ancestor)", "ap50": "AP50",
                  "ap50_change": "ΔAP50 (pts)", "precision_score": "precision", "recall": "recall"}


def format_curve(table: pd.DataFrame) -> str:
    shown = table.assign(macs=table["macs"] / 1e6).rename(columns={**CURVE_READABLE, "macs": "MMACs"})
    formats = {"MMACs": "{:.1f}".format, "MACs (× ancestor)": "{:.3f}".format, "ΔAP50 (pts)": "{:+.1f}".format,
               **{name: "{:.3f}".format for name in ("AP50", "ap50_low", "ap50_high", "precision", "recall")}}
    return shown.drop(columns=["epochs"]).to_string(index=False, formatters=formats)
