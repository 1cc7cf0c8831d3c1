"""`evosynth capacity`: a generation trained on, and its widths trained from scratch, both to convergence; recorded
once, reused on a rerun, and the run's own generations left as they were."""

import hashlib
import json
import shutil

import pytest

import evosynth.study.capacity as capacity
from evosynth.book.notebooks import NotebookJob, execute
from evosynth.cli import main
from evosynth.errors import CheckpointError
from evosynth.paths import NOTEBOOKS
from evosynth.storage.runs import WEIGHTS, RunFolder
from evosynth.study.capacity import CAPACITY_FILE, capacity_table, measure_capacity, read_capacity
from evosynth.study.compare import Lineage, run_lineage
from evosynth.study.evolution import load_run


@pytest.fixture()
def run(smoke_run, tmp_path):
    """A copy of the session's smoke run: capacity.json is written into the run folder."""
    _, source = smoke_run
    return shutil.copytree(source, tmp_path / "run")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_both_networks_have_the_generations_widths_and_the_run_is_untouched(run, data_dir):
    weights = RunFolder(run).generation_dir(2) / WEIGHTS
    before = _digest(weights)
    record = measure_capacity(run, [2], data_dir)
    generation = RunFolder(run).load(2)
    trained_on, from_scratch = (record["generations"]["2"][kind] for kind in ("trained_on", "from_scratch"))
    assert trained_on["widths"] == from_scratch["widths"] == list(generation.model.architecture.widths)
    assert trained_on["synapses"] == generation.metrics["synapses"]  # its masks are kept
    dense = sum(layer.weight.numel() for _, layer in generation.model.prunable_layers())
    assert from_scratch["synapses"] == dense > generation.metrics["synapses"]
    assert trained_on["rule"]["patience"] is not None and from_scratch["stopped_by"] in ("patience", "epoch cap")
    assert _digest(weights) == before
    assert json.loads((run / CAPACITY_FILE).read_text())["generations"]["2"].keys() == {"trained_on", "from_scratch"}


def test_a_rerun_reuses_what_was_measured(run, data_dir, monkeypatch):
    first = measure_capacity(run, [2], data_dir)

    def no_training(*args, **kwargs):
        raise AssertionError("a measured network was trained again")

    monkeypatch.setattr(capacity, "train", no_training)
    assert measure_capacity(run, [2], data_dir)["generations"] == first["generations"]


def test_table_rows_are_changes_against_generation_1(run, data_dir):
    table = capacity_table(measure_capacity(run, None, data_dir))  # default: the run's last generation
    assert list(table["network"]) == ["as evolved", "trained on", "from scratch"]
    assert (table["generation"] == 2).all()
    ancestor = RunFolder(run).load(1).metrics
    evolved = RunFolder(run).load(2).metrics
    row = table.iloc[0]
    assert row["ap50_change"] == pytest.approx(100 * (evolved["ap50"] - ancestor["ap50"]))
    assert row["synapse_reduction"] == pytest.approx(ancestor["synapses"] / evolved["synapses"])


def test_a_baseline_is_trained_on_under_the_rule_of_the_run_it_follows(smoke_run, data_dir, tmp_path):
    config, source = smoke_run
    runs = tmp_path / "runs"
    shutil.copytree(source, runs / config.name)
    l1 = run_lineage(Lineage("l1-filter", config), runs, data_dir)
    record = measure_capacity(l1, [2], data_dir, trained_as=config, kinds=("trained_on",))
    trained_on = record["generations"]["2"]["trained_on"]
    assert record["generations"]["2"].keys() == {"trained_on"}  # its from-scratch network is the evolution's
    assert trained_on["widths"] == list(RunFolder(source).load(2).model.architecture.widths)
    assert trained_on["rule"] == config.resolved_preset.ancestor.to_json()
    assert list(capacity_table(record)["network"]) == ["as evolved", "trained on"]
    with pytest.raises(ValueError, match="unknown capacity kind 'dense'"):
        measure_capacity(l1, [2], data_dir, trained_as=config, kinds=("dense",))


def test_bad_requests_are_refused_by_name(run, data_dir, tmp_path):
    with pytest.raises(ValueError, match="no offspring generation 1"):
        measure_capacity(run, [1], data_dir)
    with pytest.raises(ValueError, match="no offspring generation 7"):
        measure_capacity(run, [7], data_dir)
    with pytest.raises(CheckpointError, match="not a run folder"):
        measure_capacity(tmp_path / "nothing", [2], data_dir)
    (run / CAPACITY_FILE).write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a capacity record"):
        measure_capacity(run, [2], data_dir)
    (run / CAPACITY_FILE).write_text("{truncated")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        measure_capacity(run, [2], data_dir)


def test_cli_prints_the_table(run, data_dir, capsys):
    assert main(["capacity", str(run), "--generation", "2", "--cache-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "from scratch" in out and "trained on" in out and CAPACITY_FILE in out
    assert main(["capacity", str(run), "--generation", "5", "--cache-dir", str(data_dir)]) == 2


def test_the_bounds_page_shows_what_was_measured(run, data_dir, tmp_path):
    _, generations = load_run(run)
    metrics = {g.number: g.metrics for g in generations}
    assert read_capacity(run, metrics) is None  # not measured: the page says how to measure it, computes nothing
    measure_capacity(run, [2], data_dir)
    assert read_capacity(run, metrics)["evolved"].keys() == {"2"}
    job = NotebookJob(NOTEBOOKS / "bounds.md", tmp_path / "bounds.ipynb", {"run_dir": str(run)})
    execute(job)
    outputs = json.dumps([cell.get("outputs") for cell in json.loads(job.output.read_text())["cells"]])
    assert "Size or synthesis? Accuracy against generation 1" in outputs
    assert "not measured for this run" not in outputs


def test_training_that_stalls_at_the_last_allowed_epoch_stopped_by_patience():
    from evosynth.study.capacity import stopping_reason
    from evosynth.task.training import TrainingBudget, TrainingCurve

    rule = TrainingBudget(max_epochs=10, patience=5)
    def curve(epochs: int, best: int) -> TrainingCurve:
        return TrainingCurve(list(range(1, epochs + 1)), [0.0] * epochs, [0.5] * epochs, [1e-3] * epochs,
                             best_epoch=best, seconds=1.0)
    assert stopping_reason(curve(10, 5), rule) == "patience"  # stale 5 epochs, ended on the cap: patience still
    assert stopping_reason(curve(8, 3), rule) == "patience"
    assert stopping_reason(curve(10, 8), rule) == "epoch cap"  # still improving when the cap came


# ------------------------------------------------------------------------------------------ the capacity curve


def test_the_curve_scales_the_ancestor_and_its_own_size_is_the_ancestor(smoke_run, data_dir, tmp_path, monkeypatch):
    config, out = smoke_run
    runs = tmp_path / "runs"
    shutil.copytree(out.parent / "ancestors", runs / "ancestors")  # the run's ancestor: the curve's x1 point
    record = capacity.measure_width_curve(config, (0.5, 1.0), (0,), runs, data_dir)
    ancestor = RunFolder(out).load(1).metrics
    own, half = record["networks"]["x1-seed0"], record["networks"]["x0.5-seed0"]
    assert {key: own[key] for key in capacity.RECORDED} == {key: ancestor[key] for key in capacity.RECORDED}
    assert half["widths"] == [max(1, round(w / 2)) for w in ancestor["widths"]] and half["macs"] < ancestor["macs"]
    assert half["rule"] == config.resolved_preset.ancestor.to_json() and half["epochs"] >= 1
    table = capacity.curve_table(record)
    assert list(table["scale"]) == [0.5, 1.0] and table["ap50_change"].iloc[1] == 0.0
    assert table["mac_fraction"].iloc[0] == pytest.approx(half["macs"] / ancestor["macs"])

    def no_training(*args, **kwargs):
        raise AssertionError("a measured network was trained again")

    monkeypatch.setattr(capacity, "train", no_training)
    assert capacity.measure_width_curve(config, (0.5, 1.0), (0,), runs, data_dir) == record


def test_a_curve_file_of_another_task_is_refused(smoke_run, data_dir, tmp_path):
    config, _ = smoke_run
    path = capacity.curve_path(config, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"task": {"widths": [1, 2]}, "networks": {}}))
    with pytest.raises(CheckpointError, match="another task"):
        capacity.measure_width_curve(config, (0.5,), (0,), tmp_path, data_dir)
    with pytest.raises(ValueError, match="positive"):
        capacity.scaled_widths((8, 16), 0.0)
