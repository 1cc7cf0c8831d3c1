"""`evosynth sweep`: a grid file, its runs as Ray tasks on a local Ray instance, the results table, resuming."""

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from evosynth.book.notebooks import NotebookJob, execute
from evosynth.cli import main
from evosynth.deploy.bench_record import SCHEMA_VERSION
from evosynth.paths import NOTEBOOKS, SWEEPS_DIR
from evosynth.study.config import RunConfig
from evosynth.study.distributed import (
    QUIET_RAY_ENVIRONMENT,
    SweepFailedError,
    ancestors_first,
    call_within,
    run_grid,
    start_ray,
    stop_ray,
)
from evosynth.study.grid import SweepFileError, load_sweep
from evosynth.study.plan import StudyPlan, alpha_explorer_sweep
from evosynth.study.report import COLUMNS
from evosynth.study.sweep import (
    IDENTITY_COLUMNS,
    explorer_runs,
    read_sweep_table,
    seed_spread,
    sweep_table_path,
)

pytestmark = pytest.mark.slow  # starts Ray

SWEEPS = SWEEPS_DIR


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A 2-CPU Ray instance for this module, started and stopped here (run_grid uses the one it finds)."""
    saved = {name: os.environ.get(name) for name in QUIET_RAY_ENVIRONMENT}
    os.environ.update(QUIET_RAY_ENVIRONMENT)
    start_ray(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    stop_ray()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name)
        else:
            os.environ[name] = value


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_tiny_sweep_fills_its_table_and_a_rerun_resumes_only_the_missing_run(local_ray, tmp_path, data_dir):
    grid = load_sweep(SWEEPS / "smoke.toml")
    runs = tmp_path / "runs"
    outcome = run_grid(grid, runs, data_dir)
    assert len(outcome.ran) == 4 and not outcome.failed and not outcome.already_complete
    assert outcome.table == sweep_table_path(runs.resolve(), "smoke")
    table = read_sweep_table(outcome.table)
    assert len(table) == 4
    assert [*IDENTITY_COLUMNS, *COLUMNS, "synapse_reduction", "mac_reduction"] == list(table.columns)
    assert set(table["generation"]) == {2}
    assert sorted(zip(table["alpha_cluster"], table["seed"], strict=True)) == [(0.6, 0), (0.6, 1), (0.9, 0), (0.9, 1)]
    # one trained (FP32) and one restricted (FP16) ancestor per seed, shared by both alphas
    assert len(list((runs / "ancestors").iterdir())) == 4

    resumed, *others = [runs / name for name in table["run"]]
    shutil.rmtree(resumed / "gen_02")
    untouched = {folder: (folder / "gen_02" / "metrics.json").stat().st_mtime_ns for folder in others}
    kept_parent = (resumed / "gen_01" / "metrics.json").stat().st_mtime_ns
    bench = {"schema": SCHEMA_VERSION,
             "results": [{"generation": 2, "backend": "torch-eager-fp32", "workload": "frame", "speedup_vs_gen1": 1.5}]}
    (others[0] / "bench.json").write_text(json.dumps(bench))

    again = run_grid(grid, runs, data_dir)
    assert again.ran == (resumed.resolve(),)
    assert sorted(again.already_complete) == sorted(folder.resolve() for folder in others)
    assert {folder: (folder / "gen_02" / "metrics.json").stat().st_mtime_ns for folder in others} == untouched
    table = read_sweep_table(again.table).set_index("run")
    assert len(table) == 4 and (resumed / "gen_02" / "metrics.json").is_file()
    assert (resumed / "gen_01" / "metrics.json").stat().st_mtime_ns == kept_parent  # resumed, not redone
    assert table.loc[others[0].name, "speedup_torch-eager-fp32_frame"] == 1.5
    assert table["speedup_torch-eager-fp32_frame"].isna().sum() == 3

    explorer = explorer_runs([], str(again.table))  # the alpha explorer's slice: one run per alpha_cluster
    assert sorted(folder.name for folder in explorer) == sorted(table.index[table["seed"] == 0])
    spread = seed_spread(table.reset_index())
    assert list(spread["alpha_cluster"]) == [0.6, 0.9] and set(spread["seeds"]) == {2}

    # `evosynth study --sweep-file`: the same grid, complete, feeds the alpha explorer through its table
    plan = StudyPlan(RunConfig(preset="smoke"), runs, data_dir, tmp_path / "book")
    explorer = alpha_explorer_sweep(plan, load_sweep(SWEEPS / "smoke.toml"))
    assert explorer == {"sweep_table": str(again.table.resolve())}
    assert {folder: (folder / "gen_02" / "metrics.json").stat().st_mtime_ns for folder in others} == untouched
    page = tmp_path / "alpha_explorer.ipynb"
    execute(NotebookJob(NOTEBOOKS / "alpha_explorer.md", page, {"sweep_dirs": [], **explorer}))
    text = page.read_text()
    assert "Each alpha over 2 seeds" in text and "ap50 mean" in text, "the explorer did not show the seeds of the table"


def test_a_failing_point_is_reported_with_its_folder_and_the_others_finish(local_ray, tmp_path, data_dir, capsys):
    sweep = _write(tmp_path, "mixed.toml", """
        [grid]
        generations = 2
        alpha_cluster = 0.9
        [[datasets]]
        data = "digits"
        preset = "smoke"
        [[datasets]]
        data = "pennfudan"
        data_root = "no-such-folder"
        preset = "pedestrians"
    """.replace("\n        ", "\n"))
    runs = tmp_path / "runs"
    code = main(["sweep", str(sweep), "--runs-dir", str(runs), "--cache-dir", str(data_dir)])
    error = capsys.readouterr().err
    assert code == 2
    failed = load_sweep(sweep).points[1]
    assert f"{runs.resolve() / failed.name}: DataSetError" in error and "no such folder" in error
    assert "1 of 2 runs failed" in error
    table = read_sweep_table(runs / "sweeps" / "mixed.csv")
    assert list(table["data"]) == ["digits"] and list(table["generation"]) == [2]


def test_a_run_that_needs_more_cpus_than_any_node_has_is_refused(local_ray, tmp_path, data_dir):
    with pytest.raises(ValueError, match="asks for 3 CPUs .* the largest node of the Ray cluster has 2"):
        run_grid(load_sweep(SWEEPS / "smoke.toml"), tmp_path / "runs", data_dir, threads_per_run=3)


def test_points_of_different_ancestors_start_first():
    points = load_sweep(SWEEPS / "smoke.toml").points
    assert [(p.seed, p.alpha_cluster) for p in ancestors_first(points)] == [(0, 0.6), (1, 0.6), (0, 0.9), (1, 0.9)]


def test_json_and_toml_sweep_files_describe_the_same_grid(tmp_path):
    toml = load_sweep(SWEEPS / "smoke.toml")
    document = {"name": "smoke", "grid": {"preset": "smoke", "generations": 2, "alpha_cluster": [0.6, 0.9],
                                          "seed": [0, 1]}}
    assert load_sweep(_write(tmp_path, "smoke.json", json.dumps(document))).points == toml.points
    default = load_sweep(SWEEPS / "default.toml")
    assert len(default.points) == 9 and {p.preset for p in default.points} == {"paper"}


def test_a_relative_data_root_is_relative_to_the_sweep_file(tmp_path):
    grid = load_sweep(_write(tmp_path, "people.toml", '[[datasets]]\ndata = "pennfudan"\ndata_root = "ped"\n'))
    [point] = grid.points
    assert point.data_root == str(tmp_path / "ped") and point.preset == "pedestrians"


@pytest.mark.parametrize(("text", "names"), [
    ('[grid]\nalpha = 0.9\n', "grid.alpha"),
    ('seeds = [0, 1]\n', "seeds"),
    ('[grid]\nseed = "one"\n', "grid.seed must be an integer"),
    ('[grid]\nseed = true\n', "grid.seed"),
    ('[grid]\nalpha_cluster = [0.9, 1.5]\n', "alpha_cluster must be in (0, 1]"),
    ('[grid]\nenvironment = "harsh"\n', "harsh"),
    ('[grid]\nalpha_cluster = []\n', "grid.alpha_cluster is an empty list"),
    ('[grid]\nseed = [0, 0]\n', "grid.seed lists a value twice"),
    ('[grid]\ngenerations = [2, 3]\n', "generations is not part of a run's identity"),
    ('[grid]\npreset = "smoke"\n[[datasets]]\ndata = "digits"\npreset = "paper"\n', "preset is given in [grid]"),
    ('[[datasets]]\ndata = "digits"\nroot = "x"\n', "datasets[0].root"),
    ('[[datasets]]\npreset = "smoke"\n', "datasets[0] has no data"),
    ('name = "../escape"\n', "name must be a file name"),
    ('[grid\nseed = 0\n', "not valid TOML"),
])
def test_a_bad_sweep_file_is_refused_naming_the_file_and_the_key(tmp_path, text, names):
    path = _write(tmp_path, "bad.toml", text)
    with pytest.raises(SweepFileError) as refused:
        load_sweep(path)
    assert str(path) in str(refused.value) and names in str(refused.value)


def test_the_command_refuses_a_bad_sweep_file_with_exit_code_2_and_writes_nothing(tmp_path, capsys):
    for path in (_write(tmp_path, "bad.toml", "[grid]\nalpha_cluster = 2\n"), tmp_path / "missing.toml",
                 _write(tmp_path, "sweep.yaml", "grid: {}\n")):
        assert main(["sweep", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"evosynth: error: {path}") and "Traceback" not in error
    assert not (tmp_path / "runs").exists()


def test_the_study_refuses_a_bad_sweep_file_before_any_work(tmp_path, capsys):
    path = _write(tmp_path, "bad.toml", "[grid]\nalpha_cluster = 2\n")
    arguments = ["study", "--preset", "smoke", "--sweep-file", str(path), "--runs-dir", str(tmp_path / "runs"),
                 "--book-dir", str(tmp_path / "book")]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"evosynth: error: {path}") and "alpha_cluster" in error
    assert not (tmp_path / "runs").exists() and not (tmp_path / "book").exists()


def test_a_run_past_the_run_limit_is_cancelled_and_named_while_the_table_is_written(
    local_ray, tmp_path, data_dir, monkeypatch
):
    import time

    import evosynth.study.distributed as distributed

    def stuck_run(config, folder, cache_dir, threads):  # nested: Ray ships it by value to its workers
        time.sleep(600)

    # A real smoke run can end within any limit short enough for a test (with a cached ancestor it takes < 0.5 s).
    monkeypatch.setattr(distributed, "evolve_point", stuck_run)
    grid = load_sweep(SWEEPS / "smoke.toml")
    started = time.monotonic()
    outcome = run_grid(grid, tmp_path / "runs", data_dir, run_limit_s=0.5)
    assert time.monotonic() - started < 60
    assert len(outcome.failed) == len(grid.points) and not outcome.ran
    assert all("within the limit of 0.5 s" in failure.error for failure in outcome.failed)
    assert outcome.table.is_file()
    with pytest.raises(SweepFailedError, match="rerun the same command"):
        outcome.raise_for_failures()


def test_a_call_past_its_limit_returns_instead_of_waiting_and_errors_reach_the_caller():
    import threading

    release = threading.Event()
    assert call_within(0.2, "a stuck call", release.wait) is False  # Ray's stuck shutdown, in miniature
    release.set()
    assert call_within(5, "a quick call", lambda: None) is True
    with pytest.raises(ZeroDivisionError):
        call_within(5, "a failing call", lambda: 1 / 0)


def test_a_ray_start_past_its_limit_is_stopped_and_named(monkeypatch):
    import time
    import types

    import evosynth.study.distributed as distributed

    def stuck_init(**options):
        time.sleep(60)

    killed = []
    monkeypatch.setattr(distributed, "RAY_START_LIMIT_S", 1)
    monkeypatch.setattr(distributed, "_import_ray", lambda: types.SimpleNamespace(init=stuck_init))
    monkeypatch.setattr(distributed, "stop_local_ray_processes", lambda: killed.append(True) or [])
    started = time.monotonic()
    with pytest.raises(distributed.RayStuckError, match="Ray did not start within 1 s"):
        distributed.start_ray(address="local")
    assert time.monotonic() - started < 10 and killed == [True]
