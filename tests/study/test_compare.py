"""The comparison: a tiny comparison runs every lineage into one table, resumes without redoing finished
generations, and a page reads it only once it is computed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from evosynth.book import compare_charts
from evosynth.errors import EvosynthError
from evosynth.storage.runs import RunFolder
from evosynth.study import compare
from evosynth.study.compare import ComparisonPlan, Lineage, question_rows, run_comparison
from evosynth.study.config import RunConfig
from evosynth.study.methods import METHODS, environment_equivalent, get_method

SMOKE = ComparisonPlan("test", RunConfig(preset="smoke", generations=2), precisions=("fp32", "int8"),
                       levels=("synapse", "cluster"), environments=("budget", "cost"), seeds=(1,))


# --------------------------------------------------------------------------------------------- the comparison


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, pd.DataFrame]:
    runs = tmp_path_factory.mktemp("compare")
    return runs, run_comparison(SMOKE, runs, data_dir)


def test_a_page_reads_a_computed_comparison_and_refuses_one_that_is_not(comparison, tmp_path):
    runs, table = comparison
    pd.testing.assert_frame_equal(compare.read_comparison(SMOKE, runs), table)
    assert compare.missing_lineages(SMOKE, runs) == []
    with pytest.raises(EvosynthError, match=r"not computed .*13 lineage\(s\) missing.*evosynth compare --preset test"):
        compare.read_comparison(SMOKE, tmp_path)
    assert list(tmp_path.iterdir()) == [], "reading trained or wrote something"


def test_a_tiny_comparison_fills_one_table_with_every_lineage(comparison):
    runs, table = comparison
    assert set(table["method"]) == {"evolution", "l1-filter", "matched", "imp"}
    assert len(table) == len(SMOKE.lineages()) * SMOKE.generations == 13 * 2  # the baselines follow both seeds
    follows_seed_1 = table[(table["seed"] == 1) & (table["method"] != "evolution")]
    assert sorted(follows_seed_1["method"].unique()) == sorted(compare.BASELINES)
    assert compare.read_table(compare.table_path(SMOKE, runs)).shape == table.shape
    assert sorted(question_rows(table, "precision")["precision"].unique()) == ["fp16", "fp32", "int8"]
    assert sorted(question_rows(table, "level")["level"].unique()) == ["both", "cluster", "synapse"]
    assert sorted(question_rows(table, "seed")["seed"].unique()) == [0, 1]
    environments = question_rows(table, "environment").set_index(["environment", "generation"])
    assert sorted(environments.index.unique("environment")) == ["budget", "cost"]
    budget, cost = (environments.loc[(name, 2), "alpha_cluster"] for name in ("budget", "cost"))
    assert cost == pytest.approx(budget**2, abs=1e-3)  # the same expected MAC shrink per generation
    other = "budget" if SMOKE.reference.environment == "cost" else "cost"
    alpha = environment_equivalent(SMOKE.reference, other).alpha_cluster
    what = "filters" if other == "budget" else "MACs"
    assert environments.loc[(other, 2), "label"] == (
        f"evolutionary synthesis, {other} environment (keep {alpha:g} of the {what})")
    methods = question_rows(table, "methods").set_index(["method", "generation"])
    first = methods.xs(1, level="generation")
    assert first["synapses"].nunique() == 1 and first["ap50"].nunique() == 1  # one shared ancestor
    evolution, l1, matched, imp = (methods.loc[m] for m in ("evolution", "l1-filter", "matched", "imp"))
    assert l1.loc[2, "macs"] == evolution.loc[2, "macs"]  # L1 follows the evolution's widths
    assert l1.loc[2, "synapses"] > evolution.loc[2, "synapses"]  # ... with every kept filter dense
    assert (matched.loc[2, ["macs", "synapses"]] == evolution.loc[2, ["macs", "synapses"]]).all()  # its structure
    assert imp.loc[2, "macs"] == imp.loc[1, "macs"]  # masks only: no cheaper to run
    layers = len(SMOKE.reference.resolved_preset.network.arguments["widths"]) + 1
    assert imp.loc[2, "synapses"] == pytest.approx(0.8 * imp.loc[1, "synapses"], abs=0.5 * layers)  # rounding
    ancestor = [(runs / Lineage(m, SMOKE.reference).name / "gen_01/weights.safetensors").read_bytes()
                for m in ("evolution", "l1-filter", "matched", "imp")]
    assert ancestor[0] == ancestor[1] == ancestor[2] == ancestor[3]


def test_resuming_a_comparison_redoes_only_unfinished_generations(comparison, data_dir, monkeypatch):
    runs, table = comparison
    imp = RunFolder(runs / Lineage("imp", SMOKE.reference).name)
    (imp.generation_dir(2) / "metrics.json").unlink()  # a crash before generation 2 finished
    redone = []
    real = compare.run_generation

    def counting(config, data, number, parent, decide=None):
        redone.append(number)
        return real(config, data, number, parent, decide)

    monkeypatch.setattr(compare, "run_generation", counting)
    monkeypatch.setattr("evosynth.study.evolution.run_generation", counting)
    again = run_comparison(SMOKE, runs, data_dir)
    assert redone == [2]
    pd.testing.assert_frame_equal(again, table)  # the redone generation replays bit for bit


def test_the_task_ablation_evolves_the_same_ancestor_shape_on_another_task_with_its_own_generation_1(
        comparison, data_dir):
    runs, _ = comparison
    plan = replace(SMOKE, name="tasks", baselines=(), precisions=(), levels=(), environments=(), seeds=(),
                   tasks=("smoke-cluttered",))
    table = run_comparison(plan, runs, data_dir)
    tasks = question_rows(table, "task").set_index(["task", "generation"])
    assert sorted(tasks.index.unique("task")) == ["smoke", "smoke-cluttered"]
    assert tasks.loc[("smoke-cluttered", 1), "label"] == "evolutionary synthesis, smoke-cluttered task"
    ancestors = [(runs / run / "gen_01/weights.safetensors").read_bytes()
                 for run in tasks.xs(1, level="generation")["run"]]
    assert ancestors[0] != ancestors[1]  # an ancestor of its own, trained on its own task
    assert tasks.loc[("smoke-cluttered", 1), "synapses"] == tasks.loc[("smoke", 1), "synapses"]  # its shape
    assert set(question_rows(table, "seed")["task"]) == {"smoke"}  # other questions hold the task fixed
    assert "cluttered" in {lineage.config.preset for lineage in compare.COMPARISONS["ablations"].lineages()}


def test_the_final_training_trains_the_reference_and_each_baseline_once(comparison, data_dir, monkeypatch):
    runs, _ = comparison
    plan = replace(SMOKE, name="final", precisions=(), levels=(), environments=(), seeds=(), final_training=True)
    assert [lineage.method for lineage in plan.final_trained()] == ["evolution", *compare.BASELINES]
    assert replace(plan, final_training=False).final_trained() == []
    run_comparison(plan, runs, data_dir)
    finals = compare.final_training_table(plan, runs)
    networks = (compare.AS_BRED, "trained on")
    assert sorted(zip(finals["method"], finals["network"], strict=True)) == sorted(
        (method, network) for method in ("evolution", *compare.BASELINES) for network in networks)
    assert (finals["generation"] == plan.generations).all()
    trained = finals[finals["network"] == "trained on"].set_index("method")
    assert trained.loc["l1-filter", "mac_reduction"] == trained.loc["evolution", "mac_reduction"]
    assert trained.loc["l1-filter", "label"] == compare.METHOD_LABELS["l1-filter"]

    def no_training(*args, **kwargs):
        raise AssertionError("a final training was done again")

    monkeypatch.setattr("evosynth.study.capacity.train", no_training)
    run_comparison(plan, runs, data_dir)  # measured once, reused
    assert compare.final_training_table(replace(plan, final_training=False), runs).empty


def test_every_registered_method_runs_through_the_same_generation_step(comparison, data_dir):
    runs, _ = comparison
    config = SMOKE.reference
    reference = RunFolder(runs / config.name)
    parent = reference.load(1)  # the shared ancestor every lineage starts from
    data = compare.load_task_data(config, data_dir)
    assert set(METHODS) == {"evolution", *compare.BASELINES}
    for key in METHODS:
        lineage = Lineage(key, config)
        result, _ = compare.run_generation(config, data, 2, parent, lineage.decider(reference))
        stored = RunFolder(runs / lineage.name).load(2)  # what the lineage bred: the step replays it bit for bit
        for quantity in ("synapses", "clusters", "macs", "widths", "precision_score", "recall", "ap50"):
            assert result.metrics[quantity] == stored.metrics[quantity], (key, quantity)
        assert all(torch.equal(result.masks[name], stored.masks[name]) for name in stored.masks), key
        assert stored.metrics.get("method", "evolution") == key


def test_an_unknown_method_is_refused_with_the_known_ones_listed():
    known = "choose one of evolution, l1-filter, matched, imp"
    with pytest.raises(ValueError, match=f"unknown method 'snip'; {known}"):
        get_method("snip")
    with pytest.raises(ValueError, match=f"unknown method 'snip'; {known}"):
        Lineage("snip", SMOKE.reference)
    assert compare.METHOD_LABELS == {key: method.label for key, method in METHODS.items()}


def test_pareto_front_keeps_only_undominated_points():
    rows = pd.DataFrame({"macs": [1, 2, 3, 3, 4], "ap50": [0.5, 0.4, 0.7, 0.6, 0.7]})
    assert compare.pareto_front(rows, "macs", "ap50").tolist() == [True, False, True, False, False]


def test_charts_read_without_code(comparison):
    _, table = comparison
    methods = question_rows(table, "methods")
    spec = compare_charts.accuracy_cost_chart(methods, "macs").to_dict()
    assert "Accuracy against MACs" in str(spec["title"]) and "Pareto" in str(spec["title"])
    assert "multiply-accumulates" in str(spec)
    ablation = compare_charts.ablation_chart(question_rows(table, "precision"), "precision", "Precision", "sub")
    assert ablation.to_dict()["title"]["text"] == "Precision"
    seeds = compare_charts.seed_band_chart(compare.seed_summary(question_rows(table, "seed"))).to_dict()
    assert "2 seeds" in seeds["title"]["text"]


def test_a_timed_comparison_records_every_seed_and_method_with_its_machine_and_commit(comparison, data_dir, tmp_path):
    runs, _ = comparison
    plan = replace(SMOKE, name="timed", precisions=(), levels=(), environments=(), baselines=("l1-filter",),
                   final_training=True, timed_backends=("torch-eager-fp32",))
    assert [(lineage.method, lineage.config.seed) for lineage in plan.timed()] == [
        ("evolution", 0), ("evolution", 1), ("l1-filter", 0), ("l1-filter", 1)]
    table = run_comparison(plan, runs, data_dir)
    speeds = compare.speed_table(plan, runs)
    assert sorted(set(zip(speeds["method"], speeds["seed"], strict=True))) == [
        ("evolution", 0), ("evolution", 1), ("l1-filter", 0), ("l1-filter", 1)]
    assert (speeds.loc[speeds["generation"] == 1, "speedup"] == 1).all() and (speeds["fps"] > 0).all()
    stored = compare.read_record(compare.store_record(plan, runs, tmp_path))
    assert stored.path.name.startswith("comparison_timed_cpu") and stored.seeds == [0, 1]
    assert stored.commit and stored.machine["cpu"] and stored.created
    pd.testing.assert_frame_equal(stored.table, table, check_dtype=False, check_like=True)
    assert set(stored.final_training["method"]) == {"evolution", "l1-filter"}
    assert len(stored.speeds) == len(speeds)
    record = compare.read_json(stored.path)
    compare.write_json(stored.path, {**record, "format": 0})
    with pytest.raises(EvosynthError, match="format 0.*evosynth compare --preset timed"):
        compare.read_record(stored.path)
