"""Every bad input to `evosynth evolve` on an existing run: one clear error naming the file or value and what to
do, a non-zero exit code, and not a byte changed in the run folder."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from evosynth.book.notebooks import NotebookFailed, NotebookJob, execute
from evosynth.paths import NOTEBOOKS

Damage = Callable[[Path], None]


def _truncate(name: str) -> Damage:
    def damage(run: Path) -> None:
        path = run / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    return damage


def _delete(name: str) -> Damage:
    return lambda run: (run / name).unlink()


def _overwrite(name: str, text: str) -> Damage:
    return lambda run: (run / name).write_text(text)


def _poison_weights(value: float) -> Damage:
    def damage(run: Path) -> None:
        path = run / "gen_02" / "weights.safetensors"
        tensors = load_file(str(path))
        tensors["backbone.0.conv.weight"][0, 0, 0, 0] = value
        save_file(tensors, str(path))
    return damage


def _edit_json(name: str, edit: Callable[[dict], None]) -> Damage:
    def damage(run: Path) -> None:
        data = json.loads((run / name).read_text())
        edit(data)
        (run / name).write_text(json.dumps(data))
    return damage


def _nothing(run: Path) -> None:
    pass


BAD_INPUTS: list[tuple[str, Damage, list[str], str]] = [
    ("truncated weights", _truncate("gen_02/weights.safetensors"), [], r"gen_02/weights.safetensors is corrupt"),
    ("missing weights", _delete("gen_02/weights.safetensors"), [], r"gen_02/weights.safetensors is missing"),
    ("garbage weights", _overwrite("gen_01/weights.safetensors", "not tensors"), [],
     r"gen_01/weights.safetensors is corrupt"),
    ("corrupt metrics", _overwrite("gen_02/metrics.json", '{"generation": 2,'), [],
     r"gen_02/metrics.json is not valid JSON"),
    ("missing metrics under a finished child", _delete("gen_01/metrics.json"), [],
     r"generation 1 is unfinished .*gen_01/metrics.json.* generation 2 is finished"),
    ("corrupt config", _truncate("config.json"), [], r"config.json is not valid JSON"),
    ("config that is not a run's", _overwrite("config.json", "[1, 2]"), [], r"config.json is not a run configuration"),
    ("missing config", _delete("config.json"), [], r"config.json is missing, so the generations .* cannot be checked"),
    ("a run of another configuration", _nothing, ["--alpha-cluster", "0.5"],
     r"holds a run with a different configuration \(differs in: alpha_cluster\)"),
    ("another seed", _nothing, ["--seed", "3"], r"differs in: seed"),
    ("NaN weight in the parent", _poison_weights(float("nan")), [], r"backbone.0.conv.weight contains NaN or Inf"),
    ("Inf weight in the parent", _poison_weights(float("inf")), [], r"backbone.0.conv.weight contains NaN or Inf"),
    ("architecture that does not match its weights",
     _edit_json("gen_02/architecture.json",
                lambda a: a["arguments"].update(widths=[w + 1 for w in a["arguments"]["widths"]])), [],
     r"gen_02/weights.safetensors does not match .*gen_02/architecture.json"),
    ("malformed architecture", _edit_json("gen_02/architecture.json", lambda a: a.pop("builder")), [],
     r"gen_02/architecture.json cannot be rebuilt: a network recipe is incomplete"),
    ("a pruning history that does not apply", _edit_json("gen_02/architecture.json",
                                                          lambda a: a.update(history=[["backbone.9.conv", True, [0]]])),
     [], r"gen_02/architecture.json cannot be rebuilt: the pruning history does not apply"),
    ("alpha 0", _nothing, ["--alpha-synapse", "0"], r"alpha_synapse must be in \(0, 1\], got 0.0"),
    ("negative alpha", _nothing, ["--alpha-cluster=-0.2"], r"alpha_cluster must be in \(0, 1\], got -0.2"),
    ("alpha above 1", _nothing, ["--alpha-cluster", "1.01"], r"alpha_cluster must be in \(0, 1\], got 1.01"),
    ("NaN alpha", _nothing, ["--alpha-synapse", "nan"], r"alpha_synapse must be in \(0, 1\], got nan"),
    ("infinite alpha", _nothing, ["--alpha-synapse", "inf"], r"alpha_synapse must be in \(0, 1\], got inf"),
    ("alpha that is not a number", _nothing, ["--alpha-synapse", "half"], r"invalid float value: 'half'"),
    ("unknown preset", _nothing, ["--preset", "huge"], r"argument --preset: invalid choice: 'huge'"),
    ("unknown environment", _nothing, ["--environment", "famine"], r"argument --environment: invalid choice"),
    ("unknown precision", _nothing, ["--precision", "fp8"], r"argument --precision: invalid choice: 'fp8'"),
    ("no generation", _nothing, ["--generations", "0"], r"generations must be at least 1, got 0"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    result = subprocess.run([sys.executable, "-m", "evosynth.cli", "evolve", "--preset", "smoke", "--generations",
                             "2", "--out", str(out), "--cache-dir", str(data_dir)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != ".lock"}


@pytest.mark.parametrize(("damage", "extra", "message"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_named_and_changes_nothing(damage, extra, message, finished_run, data_dir, tmp_path, in_process):
    """In this process, through the CLI's own ``main`` (what the console script runs; the pickle test below runs the
    real process, exit code and all): an error raised instead of reported fails the test with its traceback."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    damage(run)
    before = _files(run)
    code, stderr = in_process(["evolve", "--preset", "smoke", "--generations", "3", "--out", str(run),
                               "--cache-dir", str(data_dir), *extra])
    assert code == 2, stderr
    error = stderr.strip().splitlines()[-1]
    assert re.search(message, error), error
    assert _files(run) == before, "a failed command changed the run folder"


class _Payload:
    """Unpickling this touches a file: proof of code execution if anything ever unpickles a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_a_pickle_posing_as_weights_is_refused_not_executed(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    marker = tmp_path / "code-was-executed"
    (run / "gen_02" / "weights.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    for command in (["export", str(run)], ["bench", str(run), "--rounds", "1"],
                    ["evolve", "--preset", "smoke", "--generations", "3", "--out", str(run)]):
        result = subprocess.run([sys.executable, "-m", "evosynth.cli", *command], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 2, result.stderr
        assert "gen_02/weights.safetensors is corrupt" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("generation", [0, 3])
def test_a_generation_out_of_range_fails_its_notebook_by_name(generation, smoke_run, data_dir, tmp_path):
    _, run = smoke_run
    before = {path: path.stat().st_mtime_ns for path in run.rglob("*")}
    job = NotebookJob(NOTEBOOKS / "generation.md", tmp_path / "gen.ipynb",
                      {"run_dir": str(run), "generation": generation, "cache_dir": str(data_dir)})
    with pytest.raises(NotebookFailed, match=f"generation must be between 1 and 2, got {generation}"):
        execute(job)
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*")} == before


@pytest.mark.slow  # a Jupyter kernel
def test_a_page_on_a_folder_that_holds_no_run_says_so(data_dir, tmp_path):
    job = NotebookJob(NOTEBOOKS / "generation.md", tmp_path / "gen.ipynb",
                      {"run_dir": str(tmp_path / "nothing"), "generation": 1, "cache_dir": str(data_dir)})
    with pytest.raises(NotebookFailed, match="nothing is not a run folder"):
        execute(job)
    assert not (tmp_path / "nothing").exists()


def _pennfudan_folder(root: Path, last_image: bytes | None) -> Path:
    """A Penn-Fudan-format folder of seven annotated images (enough for its five test folds); the last one's file
    holds ``last_image`` (None: no file), the others are real PNGs."""
    (root / "PNGImages").mkdir(parents=True)
    (root / "Annotation").mkdir()
    for number in range(1, 8):
        name = f"FudanPed{number:05d}.png"
        (root / "Annotation" / f"FudanPed{number:05d}.txt").write_text(
            f'Image filename : "PennFudanPed/PNGImages/{name}"\n'
            'Image size (X x Y x C) : 64 x 48 x 3\n'
            'Objects with ground truth : 1 { "PASpersonWalking" }\n'
            'Bounding box for object 1 "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : (10, 5) - (30, 40)\n'
        )
        if number < 7:
            Image.new("RGB", (64, 48), (number * 30, 90, 30)).save(root / "PNGImages" / name)
        elif last_image is not None:
            (root / "PNGImages" / name).write_bytes(last_image)
    return root


BAD_DATA: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("missing data folder", lambda tmp: ["--data", "pennfudan", "--data-dir", str(tmp / "nowhere")],
     r"nowhere: no such folder"),
    ("empty data folder", lambda tmp: ["--data", "pennfudan", "--data-dir", str((tmp / "empty").resolve())],
     r"empty"),
    ("an image that is not an image",
     lambda tmp: ["--data", "pennfudan", "--data-dir", str(_pennfudan_folder(tmp / "pf", b"not a png"))],
     r"FudanPed00007.png"),
    ("an annotation without its image",
     lambda tmp: ["--data", "pennfudan", "--data-dir", str(_pennfudan_folder(tmp / "pf", None))],
     r"FudanPed00007.png"),
    ("coco folder without annotations", lambda tmp: ["--data", "coco", "--data-dir", str(tmp)], r"annotations.json"),
    ("unknown data set", lambda tmp: ["--data", "imagenet"], r"argument --data: invalid choice: 'imagenet'"),
    ("a folder for generated data", lambda tmp: ["--data-dir", str(tmp)], r"digits.* is generated and reads no folder"),
]


@pytest.mark.parametrize(("arguments", "message"), [case[1:] for case in BAD_DATA], ids=[c[0] for c in BAD_DATA])
def test_bad_data_is_named_and_leaves_no_run_behind(arguments, message, tmp_path, in_process):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "run"
    code, stderr = in_process(["evolve", "--generations", "2", "--out", str(out), "--cache-dir",
                               str(tmp_path / "cache"), *arguments(tmp_path)])
    assert code == 2, stderr
    error = stderr.strip().splitlines()[-1]
    assert re.search(message, error), error
    assert not out.exists()
