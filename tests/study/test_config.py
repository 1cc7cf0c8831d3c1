"""RunConfig is the one declaration of the run settings and their defaults: the CLI options and their help, the
pages' runs, config.json and the sweep-file keys derive from it; a data set's settings are checked and named in
the run's identity."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import fields, replace
from pathlib import Path

import jupytext
import pytest

from evosynth import cli
from evosynth.book.batch import generation_jobs, study_jobs
from evosynth.book.pages.locate import default_run_dir, run_config, run_folder, sweep_folders
from evosynth.cli import _add_run_options, _config, main
from evosynth.errors import CheckpointError
from evosynth.paths import NOTEBOOKS, REPO_ROOT, RUNS_DIR, SWEEPS_DIR
from evosynth.storage.runs import CONFIG
from evosynth.study.config import RunConfig, run_settings
from evosynth.study.evolution import evolve
from evosynth.study.grid import AXES, DATASET_KEYS, SweepFileError, load_sweep
from evosynth.study.plan import StudyPlan
from evosynth.study.presets import Preset, chain, extra_presets
from evosynth.study.sweep import sweep_configs
from evosynth.task.imageset import ImageSetSpec
from evosynth.task.training import TrainingBudget

# --------------------------------------------------------------------------------------------------- runs


def test_run_identity_names_the_data_set(tmp_path: Path) -> None:
    digits = RunConfig()
    assert "data_root" not in digits.identity() and "category" not in digits.identity()
    assert digits.data_source() == {} and digits.name.startswith("paper-digits-")
    one = RunConfig(preset="pedestrians", data="pennfudan", data_root=str(tmp_path / "a"))
    other = replace(one, data_root=str(tmp_path / "b"))
    assert one.data_root == str((tmp_path / "a").resolve()) and one.data_source() == {"root": one.data_root}
    assert one.identity()["data"] == "pennfudan" and one.identity()["data_root"] == one.data_root
    assert one.name.startswith("pedestrians-pennfudan-") and one.name != other.name
    assert one.ancestor_name != other.ancestor_name and one.ancestor_identity() != other.ancestor_identity()
    person = RunConfig(preset="pedestrians", data="coco", data_root=str(tmp_path / "a"), category="person")
    assert person.name.startswith("pedestrians-coco-person-") and person.data_source()["category"] == "person"
    assert RunConfig.from_json(json.loads(json.dumps(person.identity()))) == person


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"data": "imagenet"}, "unknown data set 'imagenet'; known: coco, digits, pennfudan"),
        ({"preset": "pedestrians", "data": "pennfudan"}, r"'pennfudan' is read from its folder.*--data-dir"),
        ({"data_root": "somewhere"}, r"'digits' is generated and reads no folder: drop --data-dir"),
        ({"preset": "pedestrians", "data": "pennfudan", "data_root": ".", "category": "person"}, "coco"),
        ({"data": "pennfudan", "data_root": "."}, "preset 'paper' is made for digits.*choose one of: pedestrians"),
    ],
)
def test_a_wrong_data_configuration_is_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig(**fields)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "pennfudan"], "'pennfudan' is read from its folder: name it (--data-dir PATH)"),
        (["--data-dir", "somewhere"], "'digits' is generated and reads no folder"),
        (["--data", "coco", "--data-dir", "nowhere"], "nowhere: no such folder"),
    ],
)
def test_cli_refuses_a_wrong_data_set(args: list[str], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["evolve", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "gen_01").exists()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["evolve", "--data", "imagenet"])
    assert exit_.value.code == 2 and "invalid choice: 'imagenet'" in capsys.readouterr().err


def test_a_pennfudan_run_evolves_from_the_cli(pennfudan_root: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    tiny = Preset(name="tiny-pedestrians", data=ImageSetSpec(height=32, width=40), network=chain((4, 8), (2, 2)),
                  ancestor=TrainingBudget(max_epochs=2, batch_size=8, patience=1),
                  offspring=TrainingBudget(max_epochs=1, batch_size=8))
    out = tmp_path / "run"
    args = ["evolve", "--data", "pennfudan", "--data-dir", str(pennfudan_root), "--preset", tiny.name,
            "--generations", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    with extra_presets(tiny):  # known here only
        assert cli.main(args) == 0, capsys.readouterr().err
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[-2].split()[0] == "1" and lines[-1].split()[0] == "2"
        identity = json.loads((out / "config.json").read_text())["identity"]
        assert identity["data"] == "pennfudan" and identity["data_root"] == str(pennfudan_root.resolve())
        metrics = json.loads((out / "gen_02" / "metrics.json").read_text())
        assert metrics["macs"] > 0 and 0.0 <= metrics["recall"] <= 1.0
        ancestors = list((tmp_path / "ancestors").iterdir())
        assert len(ancestors) == 2 and all(a.name.startswith("tiny-pedestrians-pennfudan-") for a in ancestors)
        assert {"-fp16-", "-fp32-"} == {next(p for p in ("-fp16-", "-fp32-") if p in a.name) for a in ancestors}
        config = RunConfig(preset=tiny.name, data="pennfudan", data_root=str(pennfudan_root), generations=2)
        assert [g.number for g in evolve(config, out, tmp_path / "cache")] == [1, 2]  # resumed, not refused
    with pytest.raises(ValueError, match="unknown preset 'tiny-pedestrians'"):  # and nowhere else
        RunConfig(preset=tiny.name, data="pennfudan", data_root=str(pennfudan_root))


# What a page's parameter cell may name: what comes from outside the page. Run settings are not among them: a page
# reads them from its run's config.json, so that a default is written once, in RunConfig.
FROM_OUTSIDE = {"run_dir": (type(None),), "generation": (int,), "cache_dir": (type(None),), "runs_dir": (type(None),),
                "comparison": (type(None),), "sweep_dirs": (type(None),), "sweep_table": (type(None),)}
PAGES = sorted(NOTEBOOKS.glob("*.md"))


def _parameters(page: Path) -> dict[str, object]:
    """A page's parameters cell as name -> value; every statement must be `name = <literal>`."""
    notebook = jupytext.read(page)
    [cell] = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    values = {}
    for statement in ast.parse(cell.source).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, ast.unparse(statement)
        [target] = statement.targets
        assert isinstance(target, ast.Name), ast.unparse(statement)
        values[target.id] = ast.literal_eval(statement.value)  # raises on anything but a literal
    return values


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_a_pages_parameters_name_only_what_comes_from_outside_and_default_to_the_library(page):
    parameters = _parameters(page)
    assert parameters and set(parameters) <= set(FROM_OUTSIDE), set(parameters) - set(FROM_OUTSIDE)
    for name, value in parameters.items():
        assert isinstance(value, FROM_OUTSIDE[name]), (name, value)  # None: the library's default


def test_the_batch_passes_only_what_the_pages_declare(tmp_path):
    plan = StudyPlan(RunConfig(preset="smoke", generations=2), tmp_path / "runs", tmp_path / "cache", tmp_path)
    jobs = [*generation_jobs(tmp_path / "run", 2, tmp_path / "cache", tmp_path / "generated"),
            *study_jobs(plan, tmp_path / "run", {"sweep_table": str(tmp_path / "t.csv")}, tmp_path, tmp_path)]
    assert [job.parameters["generation"] for job in jobs[:2]] == [1, 2]
    for job in jobs:
        assert set(job.parameters) <= set(_parameters(job.source)), job.source.name


def test_a_page_reads_the_runs_own_settings(smoke_run, tmp_path):
    config, run = smoke_run
    assert run_config(run) == config and run_config(run).preset == "smoke" != RunConfig().preset
    assert run_folder(None) == default_run_dir() == REPO_ROOT / RUNS_DIR / RunConfig().name
    if not (default_run_dir() / CONFIG).is_file():  # the default run, before anything computed it
        assert run_config(default_run_dir()) == RunConfig()
    with pytest.raises(CheckpointError, match="is not a run folder"):
        run_config(tmp_path / "nothing")
    assert sweep_folders(None) == [REPO_ROOT / RUNS_DIR / c.name for c in sweep_configs(RunConfig())]


def test_the_sweep_file_names_only_what_it_varies_and_holds_the_studys_sweep():
    """sweeps/default.toml (shown on the scaling page) cannot drift from the defaults: it holds none of its own."""
    points = load_sweep(SWEEPS_DIR / "default.toml").points
    varied = {"alpha_cluster", "seed"}
    for point in points:
        assert replace(point, alpha_cluster=RunConfig().alpha_cluster, seed=0) == RunConfig(), point
    assert {point.seed for point in points} == {0, 1, 2}
    study_sweep = {config.alpha_cluster for config in sweep_configs(RunConfig())}
    assert study_sweep < {point.alpha_cluster for point in points}
    assert varied == {s.name for s in run_settings() if len({getattr(p, s.name) for p in points}) > 1}


def _run_parser():
    import argparse

    parser = argparse.ArgumentParser()
    _add_run_options(parser)
    return parser


def test_every_setting_is_a_cli_option_with_its_default_choices_and_help():
    actions = {action.dest: action for action in _run_parser()._actions}
    for setting in run_settings():
        action = actions[setting.name]
        assert action.option_strings == [setting.flag] and action.help == setting.help
        assert f"({setting.default})" not in setting.help  # the help formatter adds the default, read from here
        assert action.default == (None if setting.fallback else setting.default)
        assert action.choices == (None if setting.choices is None else list(setting.choices))
    assert actions["data_root"].option_strings == ["--data-dir"] and actions["data_root"].metavar == "DATA_DIR"
    assert _config(_run_parser().parse_args([])) == RunConfig()


def test_the_help_says_each_default_as_the_code_has_it(capsys):
    with pytest.raises(SystemExit):
        main(["evolve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    default = RunConfig()
    for name in ("environment", "generations"):
        assert f"(default: {getattr(default, name)})" in text, name
    for name in ("alpha_synapse", "alpha_cluster"):  # each preset's, as the presets have them
        for preset in ("paper", "pedestrians"):
            alpha = getattr(RunConfig(preset=preset, data="digits" if preset == "paper" else "pennfudan",
                                      data_root=None if preset == "paper" else "."), name)
            assert re.search(rf"{alpha:g} for [a-z, -]*\b{preset}\b", text), (name, preset)
    assert f"(default: {RUNS_DIR}/<run name>)" in text and "(default: data/cache)" in text


def test_cli_options_become_the_same_config(tmp_path):
    arguments = _run_parser().parse_args(["--data", "pennfudan", "--data-dir", str(tmp_path), "--seed", "2",
                                          "--channel-multiple", "4", "--alpha-cluster", "1"])
    config = _config(arguments)
    assert config == RunConfig(preset="pedestrians", data="pennfudan", data_root=str(tmp_path), seed=2,
                               channel_multiple=4, alpha_cluster=1.0)
    assert config.preset == "pedestrians"  # the first preset made for the data set, as no --preset was given
    assert _config(_run_parser().parse_args(["--preset", "smoke"])).preset == "smoke"


def test_identity_and_names_keep_their_keys():
    default = RunConfig()
    assert list(default.identity()) == ["preset", "environment", "alpha_synapse", "alpha_cluster", "precision",
                                        "seed", "data", "preset_definition"]
    named = RunConfig(preset="paper", environment="budget", alpha_synapse=0.9, alpha_cluster=0.7, precision="fp16")
    assert named.name == "paper-digits-budget-as0.9-ac0.7-fp16-seed0"
    unrounded = RunConfig(channel_multiple=1)
    assert unrounded.identity()["channel_multiple"] == 1 and unrounded.name.endswith("-cm1")
    assert unrounded.ancestor_name == default.ancestor_name  # rounding acts from generation 2 on
    # a run rounds as its preset does unless it names another multiple; naming the preset's own is the same run
    assert (default.channel_multiple, RunConfig(preset="smoke").channel_multiple) == (16, 8)
    assert RunConfig(channel_multiple=16).identity() == default.identity()
    assert RunConfig(channel_multiple=8).name.endswith("-cm8")
    assert set(default.ancestor_identity()) == {"data", "seed", "precision", "data_spec", "network", "ancestor_budget"}


def test_from_json_reads_what_a_run_folder_stores_and_refuses_an_incomplete_one():
    config = RunConfig(preset="smoke", channel_multiple=16, generations=4, seed=5)
    stored = json.loads(json.dumps({**config.identity(), "generations": config.generations}))
    assert RunConfig.from_json(stored) == config
    del stored["seed"]
    with pytest.raises(ValueError, match="lacks seed"):
        RunConfig.from_json(stored)


def test_sweep_keys_derive_from_the_settings(tmp_path):
    assert set(AXES) | set(DATASET_KEYS) == {field.name for field in fields(RunConfig)}
    assert list(AXES) == [s.name for s in run_settings() if "grid" in s.sweep]  # field order: the points' order
    path = tmp_path / "bad.toml"
    path.write_text('[grid]\nchannel_multiple = [1, 3]\n')
    with pytest.raises(SweepFileError, match=r"grid.channel_multiple must be one of 1, 4, 8, 16, got 3"):
        load_sweep(path)
    path.write_text('[grid]\nchannel_multiple = [1, 8]\n')
    assert [p.channel_multiple for p in load_sweep(path).points] == [1, 8]
