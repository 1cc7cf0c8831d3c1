import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from evosynth.book.pages.generation import inheritance
from evosynth.core.precision import is_representable
from evosynth.deploy.export import export_run
from evosynth.errors import CheckpointError, ConfigMismatchError
from evosynth.storage.runs import RunFolder
from evosynth.study.capacity import measure_capacity
from evosynth.study.compare import Lineage, run_lineage
from evosynth.study.config import RunConfig
from evosynth.study.evolution import ensure_generation, evolve
from evosynth.task.model import GridDetector, channel_graph, frame_macs, group_widths


def test_smoke_run_writes_every_artifact(smoke_run):
    config, out = smoke_run
    assert json.loads((out / "config.json").read_text())["identity"]["preset"] == "smoke"
    for number in (1, 2):
        directory = out / f"gen_{number:02d}"
        metrics = json.loads((directory / "metrics.json").read_text())
        for key in ("precision_score", "recall", "ap50", "synapses", "clusters", "parameters", "macs",
                    "bytes_fp32", "bytes_fp16", "train_seconds", "generation", "seed", "alpha_synapse",
                    "alpha_cluster", "environment", "precision"):
            assert key in metrics, key
        assert metrics["generation"] == number
        assert (directory / "architecture.json").is_file()
    first, second = (json.loads((out / f"gen_0{n}/metrics.json").read_text()) for n in (1, 2))
    assert second["synapses"] < first["synapses"]


def test_every_saved_weight_is_fp16(smoke_run):
    _, out = smoke_run
    tensors = load_file(str(out / "gen_02" / "weights.safetensors"))
    floats = {k: v for k, v in tensors.items() if v.is_floating_point()}
    assert floats and all(v.dtype == torch.float16 for v in floats.values())
    generation = RunFolder(out).load(2)
    for name, value in generation.model.state_dict().items():
        if value.is_floating_point():
            assert is_representable(value, "fp16"), name


def test_offspring_keeps_parent_masks_and_head(smoke_run):
    _, out = smoke_run
    folder = RunFolder(out)
    parent, child = folder.load(1), folder.load(2)
    assert child.model.head.out_channels == parent.model.head.out_channels == 5
    for (name, layer) in child.model.prunable_layers():
        assert torch.all(layer.weight[~child.masks[name]] == 0)


def test_resume_after_interruption_gives_the_same_run(smoke_run, data_dir, tmp_path):
    config, finished = smoke_run
    out = tmp_path / "resumed"
    evolve(config.with_generations(1), out, data_dir)  # interrupted after generation 1
    (out / "gen_02").mkdir()
    (out / "gen_02" / "weights.safetensors").write_bytes(b"half-written")  # a crash mid-generation
    evolve(config, out, data_dir)
    for name in ("gen_01/weights.safetensors", "gen_02/weights.safetensors"):
        assert (out / name).read_bytes() == (finished / name).read_bytes(), name
    resumed = json.loads((out / "gen_02/metrics.json").read_text())
    original = json.loads((finished / "gen_02/metrics.json").read_text())
    for key in ("precision_score", "recall", "ap50", "synapses", "macs"):
        assert resumed[key] == original[key]


def test_other_seed_gives_another_offspring(smoke_run, data_dir, tmp_path):
    config, finished = smoke_run
    out = tmp_path / "seed1"
    evolve(RunConfig(preset="smoke", generations=2, seed=1), out, data_dir)
    assert (out / "gen_02/weights.safetensors").read_bytes() != (finished / "gen_02/weights.safetensors").read_bytes()


def test_a_different_config_cannot_write_into_a_run(smoke_run, data_dir):
    _, out = smoke_run
    with pytest.raises(ConfigMismatchError, match="alpha_cluster"):
        evolve(RunConfig(preset="smoke", generations=2, alpha_cluster=0.5), out, data_dir)


def test_pages_read_a_finished_generation_while_its_run_is_locked_and_not_another_runs(smoke_run, data_dir):
    """Generation pages execute side by side: reading a finished generation takes no write lock, and still refuses
    a folder that holds another configuration."""
    config, out = smoke_run
    with RunFolder(out).locked():
        read = ensure_generation(config, out, 2, data_dir)
    assert read.number == 2 and read.metrics == RunFolder(out).load(2).metrics
    with pytest.raises(ConfigMismatchError, match="alpha_cluster"):
        ensure_generation(RunConfig(preset="smoke", generations=2, alpha_cluster=0.5), out, 2, data_dir)


def test_corrupt_or_missing_checkpoint_is_named(smoke_run, tmp_path):
    _, finished = smoke_run
    out = tmp_path / "damaged"
    shutil.copytree(finished, out)
    weights = out / "gen_01" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="gen_01/weights.safetensors is corrupt"):
        RunFolder(out).load(1)
    weights.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        RunFolder(out).load(1)
    (out / "gen_02" / "metrics.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="metrics.json is not valid JSON"):
        RunFolder(out).load(2)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evosynth.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha-synapse", "1.5"], "alpha_synapse must be in (0, 1]"),
        (["--alpha-cluster", "0"], "alpha_cluster must be in (0, 1]"),
        (["--alpha-cluster", "nan"], "alpha_cluster must be in (0, 1]"),
        (["--environment", "famine"], "invalid choice: 'famine'"),
        (["--preset", "huge"], "invalid choice: 'huge'"),
    ],
)
@pytest.mark.slow  # the CLI in its own process
def test_cli_bad_input_fails_with_a_clear_message(args, message, tmp_path):
    result = _cli("evolve", "--preset", "smoke", "--out", str(tmp_path / "run"), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "run" / "gen_01").exists()


@pytest.mark.slow  # trains
def test_cli_smoke_run_prints_the_table(tmp_path, data_dir):
    result = _cli("evolve", "--preset", "smoke", "--generations", "2", "--out", str(tmp_path / "run"),
                  "--cache-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "synapses" in lines[-3] and lines[-2].split()[0] == "1" and lines[-1].split()[0] == "2"


def test_channel_rounding_gives_multiples_of_eight_and_its_own_run(data_dir, tmp_path):
    rounded = RunConfig(preset="smoke", generations=3, alpha_cluster=0.5)  # the smoke preset rounds to 8
    assert rounded.channel_multiple == 8
    assert "channel_multiple" not in rounded.identity() and "-cm" not in rounded.name
    assert RunConfig(preset="smoke", channel_multiple=16).name.endswith("-cm16")
    generations = evolve(rounded, tmp_path / "run", data_dir)
    for generation in generations[1:]:
        assert all(width % 8 == 0 for width in generation.model.architecture.widths), generation.metrics["widths"]
    inheritance(generations[1], generations[2], rounded)  # the notebooks' replay reproduces rounded offspring
    with pytest.raises(ValueError, match="channel_multiple must be one of"):
        RunConfig(channel_multiple=3)


def test_every_precision_restricts_the_one_ancestor_trained_at_fp32(tmp_path, data_dir, monkeypatch):
    import evosynth.study.evolution as evolution
    from evosynth.core.precision import restrict

    trainings = []
    real_train = evolution.train
    monkeypatch.setattr(evolution, "train", lambda *a, **k: trainings.append(k["description"]) or real_train(*a, **k))
    configs = [RunConfig(preset="smoke", generations=1, precision=p) for p in ("fp16", "bf16", "int8", "fp32")]
    for config in configs:
        evolve(config, tmp_path / config.name, data_dir)
    assert trainings == ["gen 01"], "the ancestor must be trained once for every precision"
    trained = load_file(str(tmp_path / configs[-1].name / "gen_01" / "weights.safetensors"))
    for config in configs[:-1]:
        restricted = load_file(str(tmp_path / config.name / "gen_01" / "weights.safetensors"))
        expected = restrict(trained, config.precision)
        assert isinstance(expected, dict) and set(restricted) == set(trained)
        for name, value in restricted.items():
            assert torch.equal(value, expected[name]), (config.precision, name)
        metrics = json.loads((tmp_path / config.name / "gen_01" / "metrics.json").read_text())
        assert metrics["precision"] == config.precision and metrics["epochs"] >= 1


@pytest.mark.slow  # trains, exports
def test_a_deep_detector_runs_through_the_study(data_dir, tmp_path):
    """The study's evolution, its L1 baseline, the capacity measurement, the generation page's replay and the
    export work on a residual detector as on the chain: its widths are its groups', its MACs the counted ones."""
    config = RunConfig(preset="smoke-deep", generations=2, alpha_cluster=0.6)
    out = tmp_path / config.name  # where the comparison finds the run its baselines follow
    generations = evolve(config, out, data_dir)
    parent, child = generations
    assert not isinstance(child.model, GridDetector) and child.metrics["macs"] < parent.metrics["macs"]
    assert child.metrics["widths"] == group_widths(child.model) != parent.metrics["widths"]
    assert child.metrics["macs"] == frame_macs(child.model, (48, 48))
    assert len(inheritance(parent, child, config)) == sum(layer.weight.shape[0] for layer in
                                                          channel_graph(parent.model, (48, 48)).layers)
    l1 = run_lineage(Lineage("l1-filter", config), tmp_path, data_dir)
    assert RunFolder(l1).metrics(2)["widths"] == child.metrics["widths"]
    assert measure_capacity(out, [2], data_dir, kinds=("from_scratch",))["generations"]["2"]
    assert [result.generation for result in export_run(out)] == [1, 2]
