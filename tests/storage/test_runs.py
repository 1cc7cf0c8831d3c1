"""A run folder's config.json records its format version, and a folder of another or no version is refused by name."""

from __future__ import annotations

import json
import shutil

import pytest

from evosynth.cli import main
from evosynth.errors import CheckpointError
from evosynth.storage.runs import CONFIG, FORMAT_VERSION, RunFolder

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
