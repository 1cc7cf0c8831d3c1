"""RunConfig is the one declaration of the run settings: the CLI options, the generation notebook's parameters,
config.json and the sweep-file keys derive from it, and a run folder of another config.json format is refused."""

from __future__ import annotations

import ast
import json
import shutil
from dataclasses import fields

import jupytext
import pytest

from evosynth.book.batch import NOTEBOOKS, generation_jobs
from evosynth.cli import _add_run_options, _config, main
from evosynth.errors import CheckpointError
from evosynth.storage.runs import CONFIG, FORMAT_VERSION, RunFolder
from evosynth.study.config import RunConfig, run_settings
from evosynth.study.grid import AXES, DATASET_KEYS, SweepFileError, load_sweep

GENERATION_NOTEBOOK = NOTEBOOKS / "generation.md"
NOTEBOOK_ONLY = {"run_dir", "generation", "cache_dir"}  # the page's own parameters, besides the run settings


def _parameters_cell() -> ast.Module:
    notebook = jupytext.read(GENERATION_NOTEBOOK)
    [cell] = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    return ast.parse(cell.source)


def _literal_defaults() -> dict[str, object]:
    """The parameters cell as name -> value; every statement must be `name = <literal>`."""
    values = {}
    for statement in _parameters_cell().body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, ast.unparse(statement)
        [target] = statement.targets
        assert isinstance(target, ast.Name), ast.unparse(statement)
        values[target.id] = ast.literal_eval(statement.value)  # raises on anything but a literal
    return values


def test_the_notebook_parameters_are_literals_equal_to_runconfigs_defaults():
    literals = _literal_defaults()
    default = RunConfig()
    settings = {field.name for field in fields(RunConfig)}
    assert set(literals) == settings | NOTEBOOK_ONLY
    for name in sorted(settings):
        value = literals[name]
        assert value == getattr(default, name) and type(value) is type(getattr(default, name)), name
    assert literals["run_dir"] == str(default.default_out())
    assert RunConfig.from_parameters(literals) == default


def test_the_batch_passes_every_setting_the_notebook_declares(tmp_path):
    config = RunConfig(preset="smoke", generations=2, channel_multiple=8, seed=3)
    [first, second] = generation_jobs(config, tmp_path / "run", tmp_path / "cache", tmp_path / "generated")
    assert set(first.parameters) == set(_literal_defaults())
    assert RunConfig.from_parameters(first.parameters) == config and second.parameters["generation"] == 2


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
        assert action.default == (None if setting.fallback else setting.default)
        assert action.choices == (None if setting.choices is None else list(setting.choices))
    assert actions["data_root"].option_strings == ["--data-dir"] and actions["data_root"].metavar == "DATA_DIR"
    assert _config(_run_parser().parse_args([])) == RunConfig()


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
    assert default.name == "paper-digits-cost-as0.98-ac0.84-fp16-seed0"
    rounded = RunConfig(channel_multiple=8)
    assert rounded.identity()["channel_multiple"] == 8 and rounded.name.endswith("-cm8")
    assert rounded.ancestor_name == default.ancestor_name  # rounding acts from generation 2 on
    assert set(default.ancestor_identity()) == {"data", "seed", "precision", "data_spec", "widths", "strides",
                                                "ancestor_budget"}


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


# ------------------------------------------------------------------------------------------------- config.json


def test_a_new_run_folder_records_its_format_version(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.bind({"seed": 0}, 2)
    stored = json.loads((folder.root / CONFIG).read_text())
    assert stored["format_version"] == FORMAT_VERSION and folder.identity_differences({"seed": 0}) == []


@pytest.mark.parametrize(("version", "found"), [
    (None, "has no format_version"), (FORMAT_VERSION + 1, f"has format_version {FORMAT_VERSION + 1}"),
    (0, "has format_version 0"), ("1", "has format_version '1'"), (True, "has format_version True"),
])
def test_a_config_of_another_or_no_format_version_is_refused(tmp_path, version, found):
    folder = RunFolder(tmp_path / "run")
    folder.bind({"seed": 0}, 2)
    path = folder.root / CONFIG
    stored = json.loads(path.read_text())
    stored.pop("format_version")
    if version is not None:
        stored["format_version"] = version
    path.write_text(json.dumps(stored))
    expected = f"{path} {found}; this evosynth reads run folders of format_version {FORMAT_VERSION} only"
    for read in (folder.stored_config, lambda: folder.identity_differences({"seed": 0}),
                 lambda: folder.bind({"seed": 0}, 2)):
        with pytest.raises(CheckpointError) as refused:
            read()
        assert str(refused.value).startswith(expected)
    assert json.loads(path.read_text()) == stored


def test_the_cli_refuses_a_run_folder_of_another_format_with_exit_code_2(smoke_run, data_dir, tmp_path, capsys):
    _, finished = smoke_run
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    stored = json.loads((run / CONFIG).read_text())
    stored.pop("format_version")
    (run / CONFIG).write_text(json.dumps(stored))
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}
    for argv in (["evolve", "--preset", "smoke", "--generations", "3", "--out", str(run), "--cache-dir",
                  str(data_dir)], ["capacity", str(run), "--cache-dir", str(data_dir)]):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"evosynth: error: {run / CONFIG} has no format_version; this evosynth reads run "
                                f"folders of format_version {FORMAT_VERSION} only"), error
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"} == before
