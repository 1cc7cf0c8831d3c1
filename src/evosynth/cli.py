"""Command line of evosynth.

``evosynth evolve`` runs or resumes an evolution and prints what every generation achieved;
``evosynth study`` runs the whole study (generation notebooks, alpha sweep, book);
``evosynth sweep SWEEP_FILE`` runs a grid of runs (alpha x seed x environment ...) on Ray, locally or on a cluster;
``evosynth compare`` runs the pruning baselines and ablations next to the evolution and writes one table;
``evosynth capacity RUN`` asks whether a generation's accuracy loss is its size: it trains it, and its widths from
scratch, to convergence;
``evosynth capacity-curve`` asks how much network the task needs: the ancestor's shape at several width scales,
trained from scratch to convergence;
``evosynth check-book`` reads the built book in headless Chromium, network cut off, and lists what a reader would
see broken;
``evosynth vendor-js`` is the set-up step that puts the book's JavaScript on disk (npm registry, once);
``evosynth data download pennfudan`` fetches the Penn-Fudan pedestrians (only on this explicit command).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evosynth.errors import EvosynthError
from evosynth.paths import CACHE_DIR, RUNS_DIR
from evosynth.study.config import RunConfig


class HelpWithDefaults(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, read from the option itself, so that no help text types one
    (a help that says its default in words, "(default: ...)", keeps its own)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if not action.option_strings or default is None or default is False or default == argparse.SUPPRESS \
                or "(default" in text:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def _alphas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where data sets are cached, generated or decoded")


def _add_runs_dir(parser: argparse.ArgumentParser, where: str = "") -> None:
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="where run folders go" + where)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    RunConfig.add_arguments(parser)  # one option per run setting, derived from RunConfig's fields
    _add_cache_dir(parser)


def _config(arguments: argparse.Namespace) -> RunConfig:
    return RunConfig.from_parameters(vars(arguments))


def _evolve(arguments: argparse.Namespace) -> None:
    from evosynth.study.evolution import evolve
    from evosynth.study.report import format_table, generations_table

    config = _config(arguments)
    out = arguments.out or config.default_out()
    generations = evolve(config, out, arguments.cache_dir)
    print(f"\nrun folder: {out}")
    print(format_table(generations_table(generations)))


def _study(arguments: argparse.Namespace) -> None:
    from evosynth.book.batch import run_study
    from evosynth.study.evolution import load_run
    from evosynth.study.plan import StudyPlan, default_pedestrians_root
    from evosynth.study.report import format_table, generations_table

    config = _config(arguments)
    if config.data != "digits":
        raise ValueError(f"the study's book is made for the digits data set; run {config.data!r} with evosynth evolve")
    plan = StudyPlan(config, arguments.runs_dir, arguments.cache_dir, arguments.book_dir, arguments.sweep,
                     sweep_file=arguments.sweep_file, comparison=arguments.comparison, full=arguments.full,
                     pedestrians_root=arguments.pedestrians or default_pedestrians_root())
    index = run_study(plan)
    _, generations = load_run(plan.runs_dir / plan.config.name)
    print(format_table(generations_table(generations)))
    print(f"\nthe book: {index.resolve()}")


def _vendor_js(arguments: argparse.Namespace) -> None:
    from evosynth.book.build import vendor_dir
    from evosynth.book.offline import fetch_vendor_js

    fetch_vendor_js(vendor_dir(arguments.book_dir))


def _export(arguments: argparse.Namespace) -> None:
    from evosynth.deploy.export import FP32_TOLERANCE, export_run

    for result in export_run(arguments.run_dir):
        state = "up to date" if result.reused else "exported"
        engine = f", TensorRT engine {result.engine.name}" if result.engine else ""
        print(f"gen {result.generation:02d} {state}: max |ONNX - PyTorch| FP32 {result.max_abs_error_fp32:.1e} "
              f"(<= {FP32_TOLERANCE:g}), FP16 {result.max_abs_error_fp16:.1e} (<= {result.fp16_tolerance:.1e}){engine}")


def _bench(arguments: argparse.Namespace) -> None:
    from evosynth.deploy.bench_record import BENCH_FILE, format_bench_table
    from evosynth.deploy.benchmark import CEILING_WORKLOAD, benchmark_run
    from evosynth.deploy.machine import machine_summary

    channel_multiple = arguments.channel_multiple
    if channel_multiple is None:  # the ceiling's rounding is needed only where the ceiling is timed
        channel_multiple = _run_channel_multiple(arguments.run_dir) if CEILING_WORKLOAD in arguments.workloads else 1
    bench = benchmark_run(arguments.run_dir, backends=arguments.backends, workloads=arguments.workloads,
                          rounds=arguments.rounds, threads=arguments.threads, channel_multiple=channel_multiple)
    print(format_bench_table(bench))
    for name, reason in bench["skipped"].items():
        print(f"skipped {name}: {reason}")
    print(f"\n{machine_summary(bench['machine'])}; {bench['settings']['threads']} threads, {bench['seconds']:.0f} s; "
          f"written to {arguments.run_dir / BENCH_FILE}")


def _run_channel_multiple(run_dir: Path) -> int:
    """The channel multiple an evolution run's synthesis rounded to; another folder must name one."""
    from evosynth.study.evolution import stored_run_config

    try:
        return stored_run_config(run_dir).channel_multiple
    except (ValueError, TypeError) as error:
        raise EvosynthError(f"{run_dir} is not an evolution run's folder ({error}): name the ceiling's rounding "
                            "with --channel-multiple") from error


def _compare(arguments: argparse.Namespace) -> None:
    import time

    from evosynth.study.compare import final_generation, get_comparison, run_comparison, store_record, table_path

    plan = get_comparison(arguments.preset, arguments.data_dir)
    started = time.perf_counter()
    table = run_comparison(plan, arguments.runs_dir, arguments.cache_dir)
    columns = ["synapses", "macs", "precision_score", "recall", "ap50"]
    print(final_generation(table)[columns].to_string(float_format="{:.3f}".format))
    print(f"\n{len(table)} rows in {table_path(plan, arguments.runs_dir)} ({time.perf_counter() - started:.0f} s)")
    if arguments.store:
        print(f"record stored as {store_record(plan, arguments.runs_dir, arguments.store)}")


def _capacity(arguments: argparse.Namespace) -> None:
    from evosynth.study.capacity import CAPACITY_FILE, capacity_table, format_capacity, measure_capacity

    record = measure_capacity(arguments.run_dir, arguments.generation, arguments.cache_dir)
    print(format_capacity(capacity_table(record)))
    print(f"\nchanges are against generation 1, in points; written to {arguments.run_dir / CAPACITY_FILE}")


def _capacity_curve(arguments: argparse.Namespace) -> None:
    from evosynth.study.capacity import curve_path, curve_table, format_curve, measure_width_curve

    config = _config(arguments)
    seeds = arguments.seeds or [config.seed]
    record = measure_width_curve(config, arguments.scales, seeds, arguments.runs_dir, arguments.cache_dir)
    print(format_curve(curve_table(record)))
    print(f"\nchanges are against the ancestor's own widths (x1), in points; written to "
          f"{curve_path(config, arguments.runs_dir)}")


def _check_book(arguments: argparse.Namespace) -> None:
    from evosynth.book.browser import read_book
    from evosynth.book.offline import CHART_CLASS

    reports = read_book(arguments.html_dir, CHART_CLASS)
    for report in reports:
        state = f"{len(report.problems)} problem(s)" if report.problems else "clean"
        print(f"{report.page}: {report.charts} chart(s), {report.height_px} px long, {state}")
        for problem in report.problems:
            print(f"  {problem}")
    broken = [report for report in reports if report.problems]
    if broken:
        raise EvosynthError(f"{len(broken)} of {len(reports)} pages show a reader a problem")


def _lab(arguments: argparse.Namespace) -> None:
    from evosynth.book.lab import run_lab

    run_lab(arguments.pages, arguments.port)


def _sweep(arguments: argparse.Namespace) -> None:
    from evosynth.study.distributed import run_grid
    from evosynth.study.grid import load_sweep
    from evosynth.study.sweep import read_sweep_table, varying_axes

    grid = load_sweep(arguments.sweep_file)
    if arguments.generations is not None:
        grid = grid.with_generations(arguments.generations)
    outcome = run_grid(grid, arguments.runs_dir, arguments.cache_dir, address=arguments.address,
                       num_cpus=arguments.num_cpus, threads_per_run=arguments.threads_per_run,
                       run_limit_s=arguments.run_limit)
    table = read_sweep_table(outcome.table)
    if len(table):
        shown = [*varying_axes(table), "generation", "synapse_reduction", "mac_reduction", "precision_score",
                 "recall", "ap50"]
        print(table[shown].to_string(index=False, float_format="{:.3f}".format))
    print(f"{len(outcome.ran)} run(s) ran, {len(outcome.already_complete)} were already complete, "
          f"{len(outcome.failed)} failed; {outcome.rows} row(s) in {outcome.table}")
    outcome.raise_for_failures()


def _download(arguments: argparse.Namespace) -> None:
    from evosynth.task.download import ARCHIVES, download

    folder = download(ARCHIVES[arguments.name], arguments.to)
    print(f"{arguments.name} is in {folder}; use it with --data {arguments.name} --data-dir {folder}")


def _evolve_options(parser: argparse.ArgumentParser) -> None:
    _add_run_options(parser)
    parser.add_argument("--out", type=Path, default=None, help=f"run folder (default: {RUNS_DIR}/<run name>)")


def _study_options(parser: argparse.ArgumentParser) -> None:
    from evosynth.paths import BOOK_DIR
    from evosynth.study.compare import COMPARISONS, DEFAULT_COMPARISON
    from evosynth.study.sweep import DEFAULT_ALPHA_CLUSTERS

    _add_run_options(parser)
    _add_runs_dir(parser)
    parser.add_argument("--book-dir", type=Path, default=BOOK_DIR, help="the book's source folder")
    explorer = parser.add_mutually_exclusive_group()
    explorer.add_argument("--sweep", type=_alphas, default=DEFAULT_ALPHA_CLUSTERS,
                          help="alpha_cluster values of the alpha explorer's sweep beside the run's own, "
                               f"comma-separated (default: {','.join(map(str, DEFAULT_ALPHA_CLUSTERS))})")
    explorer.add_argument("--sweep-file", type=Path, default=None, metavar="FILE",
                          help="instead, the alpha explorer shows this grid (such as sweeps/default.toml), run on a "
                               "local Ray instance like `evosynth sweep FILE` (complete runs are reused)")
    parser.add_argument("--pedestrians", type=Path, default=None, metavar="PATH",
                        help="a Penn-Fudan folder: the evolution against L1 filter pruning on real pedestrians, three "
                             "seeds on three test folds, a chapter of the book "
                             "(default: where `evosynth data download pennfudan` puts it, if it is there)")
    parser.add_argument("--comparison", choices=list(COMPARISONS), default=DEFAULT_COMPARISON,
                        help="the comparison of this build the book shows beside the evolution-against-pruning "
                             "question (reduced: fits the study's time budget; ablations: every ablation, "
                             f"{COMPARISONS['ablations'].generations} generations)")
    parser.add_argument("--full", action="store_true",
                        help="also compute the full comparison (the evolution against L1 filter pruning and "
                             f"strongest-first, {COMPARISONS['full'].generations} generations, seeds "
                             f"{', '.join(map(str, COMPARISONS['full'].seeds))} beside the run's, timed on the "
                             "frame; about 2 hours on 2 cores, resumable): the book shows it instead of the stored "
                             "measurement")


def _vendor_js_options(parser: argparse.ArgumentParser) -> None:
    from evosynth.paths import BOOK_DIR

    parser.add_argument("--book-dir", type=Path, default=BOOK_DIR, help="the book's source folder")


def _add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help=f"a run folder ({RUNS_DIR}/<run name>)")


def _bench_options(parser: argparse.ArgumentParser) -> None:
    from evosynth.deploy.backends import BACKENDS, DEFAULT_BACKENDS
    from evosynth.deploy.benchmark import DEFAULT_ROUNDS, DEFAULT_WORKLOADS, WORKLOADS

    _add_run_dir(parser)
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(DEFAULT_BACKENDS),
                        metavar="NAME", help=f"runtimes to time, of {', '.join(BACKENDS)} (those that cannot run "
                                             "here are skipped with the reason)")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(DEFAULT_WORKLOADS),
                        metavar="NAME", help="inputs to time, of " + "; ".join(
                            f"{name} = {workload.description}" for name, workload in WORKLOADS.items()))
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="timing rounds, generations interleaved")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for torch, onnxruntime and OpenVINO alike (default: torch's)")
    parser.add_argument("--channel-multiple", type=int, default=None,
                        help="round the ceiling's dense widths to this many channels (default: the evolution run's "
                             "channel multiple, as its synthesis rounds kept filters)")


def _compare_options(parser: argparse.ArgumentParser) -> None:
    from evosynth.study.compare import COMPARISONS, DEFAULT_COMPARISON, PEDESTRIANS_COMPARISON

    parser.add_argument("--preset", choices=[*COMPARISONS, PEDESTRIANS_COMPARISON], default=DEFAULT_COMPARISON,
                        help="reduced = the baselines, no restriction and the shallow ancestor along the study's "
                             f"run, its first {COMPARISONS['reduced'].generations} generations (make study); full = "
                             "the evolution against L1 filter pruning and strongest-first over "
                             f"{COMPARISONS['full'].generations} generations and three seeds, final training and "
                             "frame speed included; ablations = both levels, the budget environment, FP32, BF16, "
                             "int8, the cluttered task and the shallow ancestor, "
                             f"{COMPARISONS['ablations'].generations} generations; smoke = tiny, for tests; "
                             f"{PEDESTRIANS_COMPARISON} = the evolution against L1 filter pruning on Penn-Fudan "
                             "(--data-dir), three seeds, each testing on its own fold")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="PATH",
                        help=f"the Penn-Fudan folder of the {PEDESTRIANS_COMPARISON} comparison")
    parser.add_argument("--store", type=Path, default=None, metavar="FOLDER",
                        help="afterwards, copy the comparison's record (tables, machine, date, commit) into FOLDER "
                             "(benchmarks/: the book shows a stored full comparison until a reader computes one)")
    _add_runs_dir(parser)
    _add_cache_dir(parser)


def _capacity_options(parser: argparse.ArgumentParser) -> None:
    _add_run_dir(parser)
    parser.add_argument("--generation", type=int, nargs="+", default=None, metavar="N",
                        help="offspring generations to measure (default: the run's last)")
    _add_cache_dir(parser)


def _capacity_curve_options(parser: argparse.ArgumentParser) -> None:
    from evosynth.study.capacity import DEFAULT_SCALES

    RunConfig.add_arguments(parser)
    parser.add_argument("--scales", type=float, nargs="+", default=list(DEFAULT_SCALES), metavar="S",
                        help="width scales")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="N",
                        help="seeds of every scale (default: the run's --seed)")
    _add_runs_dir(parser)
    _add_cache_dir(parser)


def _check_book_options(parser: argparse.ArgumentParser) -> None:
    from evosynth.paths import BOOK_DIR

    parser.add_argument("html_dir", type=Path, nargs="?", default=BOOK_DIR / "_build" / "html",
                        help="the built book (default: the checkout's book/_build/html)")


def _lab_options(parser: argparse.ArgumentParser) -> None:
    from evosynth.book.lab import DEFAULT_PORT
    from evosynth.paths import NOTEBOOKS

    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="loopback port")
    parser.add_argument("--pages", type=Path, default=NOTEBOOKS, help="the pages' folder")


def _sweep_options(parser: argparse.ArgumentParser) -> None:
    from evosynth.study.distributed import RUN_LIMIT_S

    parser.add_argument("sweep_file", type=Path, help="the grid: a .toml or .json file (such as sweeps/default.toml)")
    _add_runs_dir(parser, "; on a cluster, storage every node mounts at the same path")
    _add_cache_dir(parser)
    parser.add_argument("--address", default=None,
                        help="an existing Ray cluster: auto (this node belongs to one) or ray://HOST:10001 (default: "
                             "a private Ray instance on this machine)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of the local Ray instance (default: all cores); not with --address")
    parser.add_argument("--threads-per-run", type=int, default=1,
                        help="CPUs each run reserves and torch threads it uses: runs at once = CPUs / this")
    parser.add_argument("--run-limit", type=float, default=RUN_LIMIT_S,
                        help="seconds one run may take before the sweep cancels what is still pending")
    parser.add_argument("--generations", type=int, default=None,
                        help="every run this long instead of the file's generations")


def _data_options(parser: argparse.ArgumentParser) -> None:
    from evosynth.task.download import ARCHIVES

    commands = parser.add_subparsers(dest="data_command", required=True)
    fetch = commands.add_parser("download", help="download, check and unpack a data set",
                                formatter_class=HelpWithDefaults,
                                description="Download the official archive, check what it unpacks to (file counts "
                                            "and a reference file's SHA-256) and move it into place.")
    fetch.add_argument("name", choices=list(ARCHIVES), help="the data set")
    fetch.add_argument("--to", type=Path, default=None, help="the folder to create (default: " + ", ".join(
        f"{name}: {archive.destination}" for name, archive in ARCHIVES.items()) + ")")
    fetch.set_defaults(handler=_download)


@dataclass(frozen=True)
class Command:
    """One command: its line in the command list, its options and what it does."""

    help: str
    add_options: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], None] | None  # None: its subcommands have theirs
    description: str | None = None  # the command's own help page (default: ``help``)


COMMANDS: dict[str, Command] = {
    "evolve": Command("evolve generations (resumes a run folder that has some)", _evolve_options, _evolve,
                      "Evolve a detector: synthesize, train at FP32, restrict, repeat."),
    "study": Command("the whole study: generation notebooks, alpha sweep, the book", _study_options, _study,
                     "Compute the study's runs, execute its pages with Papermill and build the book."),
    "vendor-js": Command("set-up: put the book's JavaScript on disk (npm registry)", _vendor_js_options, _vendor_js),
    "export": Command("export every generation of a run to ONNX (and TensorRT on a GPU)", _add_run_dir, _export,
                      "Write model.onnx (FP32) and model_fp16.onnx into every gen_NN/ folder, checked against "
                      "PyTorch; a TensorRT FP16 engine where possible."),
    "bench": Command("measure inference speed of every generation, write bench.json", _bench_options, _bench,
                     "Latency and throughput per generation, backend and workload (a 640x480 frame, a thumbnail, 32 "
                     "thumbnails), generations interleaved; speed-up vs generation 1 and vs MAC reduction."),
    "compare": Command("evolution vs pruning baselines, and its ablations, in one table", _compare_options, _compare,
                       "Run (or resume) every lineage of a comparison: the evolution, L1-norm filter pruning, "
                       "strongest-first and iterative magnitude pruning with the same training, and the evolution's "
                       f"precision, level, environment, seed and task ablations; write {RUNS_DIR}/comparison-<preset>"
                       ".csv and its record, comparison-<preset>.json."),
    "capacity": Command("size or synthesis? train generations to convergence, and their widths from scratch",
                        _capacity_options, _capacity,
                        "For generations of a run: the generation trained on to convergence (masks kept) and a dense "
                        "network of its widths trained from scratch to convergence, both by the ancestor's rule; "
                        "written to <run>/capacity.json, reused on a rerun."),
    "capacity-curve": Command("how much network does the task need? the ancestor's shape at several widths",
                              _capacity_curve_options, _capacity_curve,
                              "Dense networks of the ancestor's shape with every width scaled, trained from scratch "
                              "by the ancestor's rule (until validation AP50 stops improving), restricted and "
                              "measured like a generation: AP50 against MACs. Written to "
                              f"{RUNS_DIR}/capacity-curves/, reused on a rerun."),
    "check-book": Command("read the built book in headless Chromium, network cut off", _check_book_options,
                          _check_book,
                          "Loads every page from a server on the loopback interface and lists console errors, "
                          "failed loads and charts that stayed blank; exits with code 2 if a page has any. Needs "
                          "Chromium from the system's packages."),
    "lab": Command("the pages as live notebooks in JupyterLab (the alpha sliders redraw)", _lab_options, _lab,
                   "Starts JupyterLab on the study's pages with the project's settings: a page (.md) opens as a "
                   "notebook; Run All draws its charts offline and its live sliders redraw them. Prints the URL; "
                   "stop it with Ctrl-C."),
    "sweep": Command("run a grid of runs (alpha x seed x environment ...) on Ray, locally or on a cluster",
                     _sweep_options, _sweep,
                     "Run every point of a sweep file's grid as an ordinary run folder <runs-dir>/<run name> "
                     "(complete runs are skipped, incomplete ones resume) as Ray tasks, then write "
                     "<runs-dir>/sweeps/<name>.csv. The sweep file format is described in sweeps/default.toml."),
    "data": Command("data sets: download a real one (never done otherwise)", _data_options, None),
}


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(prog="evosynth", description=__doc__, formatter_class=HelpWithDefaults)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.description or command.help,
                                    formatter_class=HelpWithDefaults)
        command.add_options(sub)
        if command.handler is not None:
            sub.set_defaults(handler=command.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        arguments.handler(arguments)
    except (EvosynthError, ValueError) as error:
        print(f"evosynth: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evosynth: interrupted; finished generations are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
