"""How evolutionary synthesis compares: pruning baselines and ablations, run in the same study as the evolution.

Every line of the comparison (a *lineage*) starts from the same ancestor and goes through the same generation
step (``evolution.run_generation``: the same offspring training budget and random streams, the same precision
restriction, the same measurement); lineages differ only in how each offspring is decided:

``evolution``
    stochastic synthesis, ``evolve`` itself. The ablations are evolution runs too: the precision restriction
    (fp32 = none, fp16, bf16, int8), the level of synthesis (``synapse``: alpha_cluster = 1, ``cluster``:
    alpha_synapse = 1, ``both``; with the budget environment an alpha of 1 keeps every entry, so 1 switches a
    level off exactly), the environment (the count budget, or the cost environment at the same expected MAC
    shrink per generation), the run seed and the task (the cluttered task, on which the same ancestor has no
    slack).
``l1-filter``
    L1-norm filter pruning to the widths the evolution reached in the same generation (read from its
    ``gen_NN/architecture.json``): the same MACs, every filter dense.
``matched``
    the evolution's structure chosen strongest-first: L1 filters to its widths, then per layer its synapse count,
    largest |w| first. The same MACs and synapses, so only the choosing rule differs from the evolution's.
``imp``
    iterative magnitude pruning, a fixed share (``IMP_FRACTION``) of the remaining synapses per generation and
    layer, masks only.

Each method, and each ablation axis, is a small strategy object in ``evosynth.study.methods`` (``METHODS``,
``ABLATIONS``) that this module looks up. A baseline lineage is an ordinary resumable run folder keyed by its
parameters: its generation 1 is adopted from the evolution run it follows (which shares the study's ancestor), and a
rerun loads the generations it has.
``run_comparison`` runs every lineage of a plan and writes one tidy table, one row per lineage and generation. A plan
with ``final_training`` also trains the last generation of the reference and of each baseline on to convergence, as
the study does for its own last generation, so that the lineages can be compared after the whole recipe
(``final_training_table``).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from evosynth.deploy.backends import STUDY_BACKENDS
from evosynth.deploy.bench_record import bench_is_current, measured_table
from evosynth.deploy.benchmark import CEILING_WORKLOAD, DEFAULT_ROUNDS, benchmark_run
from evosynth.deploy.machine import describe_machine, machine_tag, source_commit
from evosynth.errors import EvosynthError
from evosynth.files import atomic_write, write_json
from evosynth.storage.runs import METRICS, Generation, RunFolder, read_json
from evosynth.study.capacity import AS_EVOLVED, capacity_table, measure_capacity, read_capacity
from evosynth.study.config import RunConfig
from evosynth.study.evolution import Decide, breed, evolve, load_task_data, run_generation, save_result
from evosynth.study.methods import ABLATIONS, METHODS, Method, get_method
from evosynth.task.dataset import DetectionData

METHOD_LABELS = {key: method.label for key, method in METHODS.items()}
BASELINES: tuple[str, ...] = tuple(key for key, method in METHODS.items() if method.follows)
SPEED_BACKEND = "torch-eager-fp32"  # runs everywhere; ``evosynth bench`` measures it for every generation
SPEED_WORKLOADS = {"frame": ("latency_ms_frame", "median_ms"), "thumbnail-b32": ("throughput_fps_batch32",
                                                                             "throughput_fps")}
SPEED_COLUMNS: tuple[str, ...] = tuple(column for column, _ in SPEED_WORKLOADS.values())
QUALITY_COLUMNS = {"precision_score": "precision", "recall": "recall", "ap50": "AP50"}
QUESTIONS: tuple[str, ...] = ("methods", *ABLATIONS)
AS_BRED = "as bred"  # a lineage's last generation before the final training, whatever its method
FINAL_KINDS = ("trained_on",)  # a lineage's from-scratch network is the evolution's at its widths


@dataclass(frozen=True)
class Lineage:
    """One line of the comparison: a method, and the evolution run that fixes its training, restriction and seed
    (for ``l1-filter`` and ``matched`` also its structure; for ``evolution`` it is the run itself)."""

    method: str
    config: RunConfig

    def __post_init__(self) -> None:
        get_method(self.method)  # an unknown method is refused, the known ones listed

    @property
    def strategy(self) -> Method:
        """The method's strategy object (``methods.METHODS``)."""
        return METHODS[self.method]

    @property
    def name(self) -> str:
        """The run folder's name: the evolution's own, or the baseline's parameters."""
        return self.strategy.run_name(self.config)

    def identity(self) -> dict[str, Any]:
        """What a baseline's generations depend on (an evolution's identity is its config's)."""
        return self.strategy.identity(self.config)

    def metrics_fields(self) -> dict[str, Any]:
        """What a baseline's metrics say about the method (its environment and alphas do not apply)."""
        return self.strategy.metrics_fields(self.config)

    def decider(self, reference: RunFolder) -> Decide:
        """How this lineage decides generation ``number`` from its parent (``reference``: its evolution's folder)."""
        return self.strategy.decider(self.config, reference)

    @property
    def level(self) -> str:
        return self.strategy.level(self.config)

    def label(self, reference: RunConfig) -> str:
        """A legend entry: the method, and how an evolution run differs from the reference."""
        return self.strategy.legend(self.config, reference)

    def is_reference(self, reference: RunConfig) -> bool:
        """Whether this lineage is the reference evolution run itself."""
        return not self.strategy.follows and self.config == reference


def run_lineage(lineage: Lineage, runs_dir: Path, cache_dir: Path) -> Path:
    """Run (or resume) one lineage into ``runs_dir/<lineage name>``; finished generations are loaded, not redone."""
    reference = RunFolder(runs_dir / lineage.config.name)
    evolve(lineage.config, reference.root, cache_dir)  # the ancestor, and the widths L1 follows
    if not lineage.strategy.follows:  # the lineage is that evolution run itself
        return reference.root
    folder = RunFolder(runs_dir / lineage.name)
    decide = lineage.decider(reference)
    data: DetectionData | None = None

    def make_generation(number: int, parent: Generation | None) -> None:
        nonlocal data
        if parent is None:  # the shared ancestor, as the evolution adopts it
            folder.adopt(1, reference, 1, lineage.metrics_fields())
            return
        if data is None:  # loaded only when a generation is computed: a finished lineage is cheap
            data = load_task_data(lineage.config, cache_dir)
        save_result(folder, number, *run_generation(lineage.config, data, number, parent, decide),
                    lineage.metrics_fields())

    breed(folder, lineage.identity(), lineage.config.generations, make_generation, lineage.name)
    return folder.root


@dataclass(frozen=True)
class ComparisonPlan:
    """Which lineages a comparison runs: the reference evolution run (its ``generations`` is the comparison's
    length), the evolution ablations around it, and the baselines, which follow the reference and each of its seed
    variants (so that methods are compared over the same seeds)."""

    name: str
    reference: RunConfig
    baselines: tuple[str, ...] = BASELINES
    precisions: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    tasks: tuple[str, ...] = ()
    # the reference's and the baselines' last generation trained on to convergence as generation 1 was (the study's
    # final network, ``capacity.measure_capacity``): the comparison after the whole recipe
    final_training: bool = False
    # the backends every seeded lineage (evolution and baselines) is timed on, on the 640x480 frame (``bench.json``)
    timed_backends: tuple[str, ...] = ()

    @property
    def generations(self) -> int:
        return self.reference.generations

    def seeded_references(self) -> list[RunConfig]:
        """The reference and its seed variants: the evolution runs the baselines follow."""
        return [self.reference, *(ABLATIONS["seed"].vary(self.reference, seed) for seed in self.seeds
                                  if seed != self.reference.seed)]

    def lineages(self) -> list[Lineage]:
        """The reference first, then the ablations (each differing from it in one thing), then the baselines."""
        reference = self.reference
        variants = [ABLATIONS[axis].vary(reference, value) for axis, values in self.ablations().items()
                    for value in values]
        evolutions = [reference, *dict.fromkeys(v for v in variants if v != reference)]
        return ([Lineage("evolution", c) for c in evolutions]
                + [Lineage(m, c) for c in self.seeded_references() for m in self.baselines])

    def seeded_lineages(self) -> list[Lineage]:
        """The lineages that compare methods: the seeded references and the baselines that follow them."""
        seeded = self.seeded_references()
        return [lineage for lineage in self.lineages() if lineage.strategy.follows or lineage.config in seeded]

    def final_trained(self) -> list[Lineage]:
        """The lineages ``final_training`` trains on: the seeded references and the baselines that follow them."""
        return self.seeded_lineages() if self.final_training else []

    def timed(self) -> list[Lineage]:
        """The lineages timed on the frame (``timed_backends``): the seeded references and their baselines."""
        return self.seeded_lineages() if self.timed_backends else []

    def ablations(self) -> dict[str, tuple[Any, ...]]:
        """Per ablation axis (``methods.ABLATIONS``, in its order), the values the plan varies the reference to."""
        return {"precision": self.precisions, "level": self.levels, "environment": self.environments,
                "seed": self.seeds, "task": self.tasks}


ENVIRONMENTS = ("budget", "cost")  # the environment ablation: the reference's, and the other at its MAC shrink
FULL_SEEDS = (1, 2)  # beside the reference's seed 0
COMPARISONS: dict[str, ComparisonPlan] = {
    # the question the book asks, over the study's 13 generations and seeds 0-2: the evolution against L1 filter
    # pruning and strongest-first at its widths, with the same training and the same final training, each
    # generation timed on the frame (`evosynth study --full`; about 2 hours on 2 CPU cores)
    "full": ComparisonPlan("full", RunConfig(), baselines=("l1-filter", "matched"), seeds=FULL_SEEDS,
                           final_training=True, timed_backends=STUDY_BACKENDS),
    # every evolution ablation, for the study's 13 generations, one seed
    "ablations": ComparisonPlan("ablations", RunConfig(), baselines=(), precisions=("fp32", "bf16", "int8"),
                                levels=("synapse", "cluster"), environments=ENVIRONMENTS,
                                tasks=("cluttered", "shallow")),
    # what `make study` runs on 2 CPU cores: generations 1-2 of the baselines and of the run with no restriction,
    # sharing the study's ancestor, and of the shallow ancestor (the chain, the one other ancestor trained). The
    # levels, the budget environment, BF16, int8 and the cluttered task are `ablations`', the seeds and the final
    # training `full`'s (on the deep ancestor, the synapse-only run alone, whose offspring keep every filter, took a
    # fifth of the comparison's time).
    "reduced": ComparisonPlan("reduced", RunConfig().with_generations(2), precisions=("fp32",), tasks=("shallow",)),
    # every lineage on the tiny preset, for tests
    "smoke": ComparisonPlan("smoke", RunConfig(preset="smoke", generations=3), precisions=("fp32", "bf16", "int8"),
                            levels=("synapse", "cluster"), environments=ENVIRONMENTS, seeds=(1,),
                            tasks=("smoke-cluttered",), final_training=True),
}


DEFAULT_COMPARISON = "reduced"  # what `make study` runs and the book shows: it fits the study's time budget
FULL_COMPARISON = "full"  # the question the book asks; `evosynth study --full` computes it, else it is read stored
PEDESTRIANS_COMPARISON = "pedestrians"  # the same question on Penn-Fudan, where its folder is here


def pedestrians_comparison(root: Path, generations: int | None = None, preset: str = "pedestrians") -> ComparisonPlan:
    """The question on real pedestrians: the evolution of the pedestrians preset (its ancestor, its environment) on
    the Penn-Fudan folder ``root``, seeds 0-2, each testing on its own cross-validation fold, and L1 filter pruning
    following each seed, every last generation also trained on to convergence; ``generations`` as the study's run
    (the default length without)."""
    reference = RunConfig(preset=preset, data="pennfudan", data_root=str(root))
    reference = reference.with_generations(generations or reference.generations)
    return ComparisonPlan(PEDESTRIANS_COMPARISON, reference, baselines=("l1-filter",), seeds=FULL_SEEDS,
                          final_training=True)


def get_comparison(name: str, pedestrians_root: Path | None = None) -> ComparisonPlan:
    """A comparison by name; the pedestrians comparison on the Penn-Fudan folder ``pedestrians_root``."""
    if name == PEDESTRIANS_COMPARISON:
        if pedestrians_root is None:
            raise ValueError(f"the {name!r} comparison reads a Penn-Fudan folder: name it (--data-dir PATH; "
                             "`evosynth data download pennfudan` fetches one)")
        return pedestrians_comparison(pedestrians_root)
    try:
        return COMPARISONS[name]
    except KeyError:
        raise ValueError(f"unknown comparison {name!r}; choose one of "
                         f"{', '.join([*COMPARISONS, PEDESTRIANS_COMPARISON])}") from None


def table_path(plan: ComparisonPlan, runs_dir: Path) -> Path:
    return runs_dir / f"comparison-{plan.name}.csv"


def _speeds(folder: Path) -> dict[int, dict[str, float]]:
    """Per generation, the measured latency on a 640x480 frame and the throughput of 32 thumbnails (``bench.json``;
    empty without it)."""
    rows = measured_table(folder)
    if rows is None:
        return {}
    speeds: dict[int, dict[str, float]] = {}
    for row in rows[rows["backend"] == SPEED_BACKEND].to_dict("records"):
        if row["workload"] in SPEED_WORKLOADS:
            column, field = SPEED_WORKLOADS[row["workload"]]
            speeds.setdefault(int(row["generation"]), {})[column] = float(row[field])
    return speeds


def comparison_table(plan: ComparisonPlan, runs_dir: Path) -> pd.DataFrame:
    """One row per lineage and generation (1 .. the plan's length), read from the run folders' metrics.

    Columns: method, label, run, reference (the evolution run the others are compared with), seed, task (the
    preset), precision
    (the restriction), level, environment, alpha_synapse, alpha_cluster, generation, synapses, clusters,
    parameters, macs, precision_score (P), recall (R), ap50, op_precision and op_recall (at the generation's
    threshold chosen on the validation split), latency_ms_frame and throughput_fps_batch32 (PyTorch
    eager FP32 on the machine that measured it; empty where the run folder has no ``bench.json``).
    """
    rows = []
    for lineage in plan.lineages():
        folder = RunFolder(runs_dir / lineage.name)
        speeds = _speeds(folder.root)
        config = lineage.config
        for number in range(1, plan.generations + 1):
            metrics = read_json(folder.generation_dir(number) / METRICS)
            rows.append({
                "method": lineage.method, "label": lineage.label(plan.reference), "run": lineage.name,
                "reference": lineage.is_reference(plan.reference),
                "seed": config.seed, "task": config.preset, "precision": config.precision, "level": lineage.level,
                "environment": config.environment,
                "alpha_synapse": metrics["alpha_synapse"], "alpha_cluster": metrics["alpha_cluster"],
                "generation": number,
                **{key: metrics[key] for key in ("synapses", "clusters", "parameters", "macs", *QUALITY_COLUMNS)},
                "op_precision": metrics["operating_point"]["precision"],
                "op_recall": metrics["operating_point"]["recall"],
                **dict.fromkeys(SPEED_COLUMNS, float("nan")), **speeds.get(number, {}),
            })
    return pd.DataFrame(rows)


def speed_table(plan: ComparisonPlan, runs_dir: Path) -> pd.DataFrame:
    """Per timed lineage, generation and backend, the frames per second on the 640x480 frame and the speed-up
    against the lineage's generation 1 on the same backend, in the same bench (``bench.json``; rows only where
    one was measured)."""
    rows: list[dict[str, Any]] = []
    for lineage in plan.seeded_lineages():
        measured = measured_table(runs_dir / lineage.name)
        if measured is None:
            continue
        frame = measured[measured["workload"] == CEILING_WORKLOAD]
        rows.extend({"method": lineage.method, "label": lineage.strategy.label, "seed": lineage.config.seed,
                     "generation": int(row["generation"]), "backend": row["backend"],
                     "fps": float(row["throughput_fps"]), "speedup": float(row["speedup_vs_gen1"])}
                    for row in frame.to_dict("records"))
    return pd.DataFrame(rows, columns=["method", "label", "seed", "generation", "backend", "fps", "speedup"])


def time_lineages(plan: ComparisonPlan, runs_dir: Path, rounds: int = DEFAULT_ROUNDS) -> None:
    """Time every generation of the plan's timed lineages on the frame, where the run folder has no current
    ``bench.json`` (a study's own bench, with more workloads and the ceiling, is kept)."""
    for lineage in tqdm(plan.timed(), desc=f"time {plan.name} on the frame", unit="lineage"):
        folder = runs_dir / lineage.name
        if not bench_is_current(folder):
            benchmark_run(folder, backends=plan.timed_backends, workloads=(CEILING_WORKLOAD,), rounds=rounds,
                          ceiling_scales=())


def run_comparison(plan: ComparisonPlan, runs_dir: Path, cache_dir: Path) -> pd.DataFrame:
    """Run (or resume) every lineage of ``plan``, train on and time the lineages the plan says, write its table to
    ``table_path`` (CSV) and its record (``record_path``: the table, the final training and the speeds, with the
    machine and commit) and return the table."""
    for lineage in tqdm(plan.lineages(), desc=f"comparison {plan.name}", unit="lineage"):
        run_lineage(lineage, runs_dir, cache_dir)
    for lineage in plan.final_trained():
        measure_capacity(runs_dir / lineage.name, [plan.generations], cache_dir, trained_as=lineage.config,
                         kinds=FINAL_KINDS)
    time_lineages(plan, runs_dir)
    table = comparison_table(plan, runs_dir)
    atomic_write(table_path(plan, runs_dir), lambda tmp: tmp.write_text(table.to_csv(index=False)))
    write_json(record_path(plan.name, runs_dir), comparison_record(plan, runs_dir, table))
    return table


RECORD_FORMAT = 1  # a comparison record (``comparison_record``) another version cannot read is refused


def record_path(comparison: str, runs_dir: Path) -> Path:
    """Where ``run_comparison`` writes the record of the comparison named ``comparison``."""
    return runs_dir / f"comparison-{comparison}.json"


def comparison_record(plan: ComparisonPlan, runs_dir: Path, table: pd.DataFrame) -> dict[str, Any]:
    """What a computed comparison measured, self-contained: the table (every lineage and generation), the final
    training's rows, the frame speeds, the seeds, and where it was computed (machine, date, commit). Stored in
    ``benchmarks/`` (``evosynth compare --store``), it is what the book shows until a reader computes the plan."""
    return {
        "format": RECORD_FORMAT, "comparison": plan.name, "generations": plan.generations,
        "seeds": sorted({config.seed for config in plan.seeded_references()}),
        "reference": plan.reference.name,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": source_commit(), "machine": describe_machine(),
        "table": _records(table), "final_training": _records(final_training_table(plan, runs_dir)),
        "speeds": _records(speed_table(plan, runs_dir)),
    }


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows for JSON: NaN (not measured) as null."""
    return json.loads(table.to_json(orient="records"))


@dataclass(frozen=True)
class StoredComparison:
    """A comparison record read back: its tables and where and when it was computed."""

    path: Path
    comparison: str
    generations: int
    seeds: list[int]
    created: str
    commit: str
    machine: dict[str, Any]
    table: pd.DataFrame
    final_training: pd.DataFrame
    speeds: pd.DataFrame


def read_record(path: Path) -> StoredComparison:
    """A comparison record of this format; another is refused, naming the file and what to do."""
    record = read_json(path)
    if record.get("format") != RECORD_FORMAT:
        raise EvosynthError(f"{path} is a comparison record of format {record.get('format')!r}; this evosynth reads "
                            f"format {RECORD_FORMAT}: compute it again with `evosynth compare --preset "
                            f"{record.get('comparison', '<name>')}`")
    return StoredComparison(path, record["comparison"], record["generations"], record["seeds"], record["created"],
                            record["commit"], record["machine"], _frame(record["table"]),
                            _frame(record["final_training"]), _frame(record["speeds"]))


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """``_records`` read back: null (not measured) as NaN."""
    frame = pd.DataFrame(records)
    return frame.astype({column: float for column in frame.columns if frame[column].isna().all()})


def store_record(plan: ComparisonPlan, runs_dir: Path, folder: Path) -> Path:
    """Copy a computed comparison's record into ``folder`` (``benchmarks/``), named by the plan and the machine."""
    source = record_path(plan.name, runs_dir)
    if not source.is_file():
        raise EvosynthError(f"{source} does not exist: compute the comparison first (`evosynth compare --preset "
                            f"{plan.name} --runs-dir {runs_dir}`)")
    record = read_json(source)
    target = folder / f"comparison_{plan.name}_{machine_tag(record['machine'])}.json"
    write_json(target, record)
    return target


def missing_lineages(plan: ComparisonPlan, runs_dir: Path) -> list[str]:
    """The lineages of ``plan`` whose generations (or whose final training, where the plan has one) are not all in
    ``runs_dir``: what ``run_comparison`` would compute."""
    missing = [lineage.name for lineage in plan.lineages()
               if not all(RunFolder(runs_dir / lineage.name).is_finished(n) for n in range(1, plan.generations + 1))]
    for lineage in plan.final_trained():
        folder = RunFolder(runs_dir / lineage.name)
        if lineage.name not in missing and read_capacity(folder.root, _ends(folder, plan), FINAL_KINDS) is None:
            missing.append(f"{lineage.name} (final training)")
    return missing


def _ends(folder: RunFolder, plan: ComparisonPlan) -> dict[int, dict[str, Any]]:
    """A lineage's first and last generations' metrics: what its final training is compared with."""
    return {number: folder.metrics(number) for number in (1, plan.generations)}


def read_comparison(plan: ComparisonPlan, runs_dir: Path) -> pd.DataFrame:
    """The comparison's table, read from the run folders ``run_comparison`` computed: a page reads, it never
    trains. A comparison not computed yet is refused, naming the lineages and the command that computes them."""
    missing = missing_lineages(plan, runs_dir)
    if missing:
        raise EvosynthError(
            f"the {plan.name!r} comparison is not computed in {runs_dir}: {len(missing)} lineage(s) missing "
            f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); run `evosynth compare --preset "
            f"{plan.name} --runs-dir {runs_dir}` (or `evosynth study`, which does it before the pages)")
    return comparison_table(plan, runs_dir)


def final_training_table(plan: ComparisonPlan, runs_dir: Path) -> pd.DataFrame:
    """Per lineage of ``plan.final_trained``, its last generation as bred (``network``: ``AS_BRED``, a baseline's
    too) and after the final training: the ``capacity.capacity_table`` rows (changes against its generation 1) with
    the lineage's ``label``, ``method`` and ``seed``; empty where the plan has no final training or it was not
    measured."""
    tables = []
    for lineage in plan.final_trained():
        folder = RunFolder(runs_dir / lineage.name)
        record = read_capacity(folder.root, _ends(folder, plan), FINAL_KINDS)
        if record is not None:
            rows = capacity_table(record)
            last = rows[rows["generation"] == plan.generations].replace({"network": {AS_EVOLVED: AS_BRED}})
            tables.append(last.assign(label=lineage.label(plan.reference), method=lineage.method,
                                      seed=lineage.config.seed))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def read_table(path: Path) -> pd.DataFrame:
    """A table written by ``run_comparison``."""
    return pd.read_csv(path)


# --------------------------------------------------------------------------------------------------- views


def question_rows(table: pd.DataFrame, question: str) -> pd.DataFrame:
    """The rows that answer one question; each varies one thing around the reference evolution run.

    ``methods``: the reference and the baselines that follow it (the reference's seed); ``precision``, ``level``,
    ``environment``, ``seed``, ``task``: the evolution runs that differ from the reference in that column only (the
    reference among them).
    """
    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r}; choose one of {', '.join(QUESTIONS)}")
    follows = _follows(table)
    reference = table[table["reference"]].iloc[0]
    if question == "methods":
        return table[(follows & (table["seed"] == reference["seed"])) | table["reference"]].reset_index(drop=True)
    keep = ~follows
    for column in ABLATIONS:
        if column != question:
            keep &= table[column] == reference[column]
    return table[keep].reset_index(drop=True)


def seeded_method_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that compare methods over seeds: the evolution at the reference's settings on every seed, and the
    baselines that follow each."""
    return pd.concat([question_rows(table, "seed"), table[_follows(table)]], ignore_index=True)


def _follows(table: pd.DataFrame) -> pd.Series:
    """Per row, whether its lineage is a baseline that follows an evolution run."""
    return table["method"].map(lambda method: get_method(method).follows).astype(bool)


def pareto_front(rows: pd.DataFrame, cost: str, quality: str) -> pd.Series:
    """True for the rows no other row beats: none costs at most as much and scores at least as well, one strictly."""
    costs, qualities = rows[cost].to_numpy(), rows[quality].to_numpy()
    front = [
        not (((costs <= c) & (qualities >= q) & ((costs < c) | (qualities > q))).any())
        for c, q in zip(costs, qualities, strict=True)
    ]
    return pd.Series(front, index=rows.index, name="pareto")


def seed_summary(rows: pd.DataFrame, columns: Sequence[str] = ("ap50", "precision_score", "recall", "synapses"),
                 by: Sequence[str] = ()) -> pd.DataFrame:
    """Per generation and quantity (and per value of the ``by`` columns), the mean over seeds and its min–max
    spread: of ``question_rows(..., "seed")``, or of a sweep's runs per alpha (``by=["alpha_cluster"]``)."""
    long = rows.melt(id_vars=[*by, "generation", "seed"], value_vars=list(columns), var_name="quantity")
    summary = long.groupby([*by, "quantity", "generation"])["value"].agg(["mean", "min", "max", "std", "count"])
    return summary.rename(columns={"count": "seeds"}).reset_index()


def final_generation(rows: pd.DataFrame) -> pd.DataFrame:
    """The last generation of every lineage, one row each, indexed by label."""
    last = rows[rows["generation"] == rows["generation"].max()]
    return last.set_index("label")


def change_words(points: float, unit: str = "points") -> str:
    """A measured difference for the page's prose, read before "the other's": ``1.2 points higher than``,
    ``0.4 points lower than``, or ``within 0.05 points of``."""
    if abs(points) < 0.05:
        return f"within 0.05 {unit} of"
    return f"{abs(points):.1f} {unit} {'higher' if points > 0 else 'lower'} than"
