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
from collections.abc import Sequence
from pathlib import Path

from evosynth.errors import EvosynthError
from evosynth.study.config import RunConfig


def _alphas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"),
                        help="where data sets are cached, generated or decoded (data/cache)")


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
    from evosynth.book.batch import StudyPlan, default_pedestrians_root, run_study
    from evosynth.study.evolution import load_run
    from evosynth.study.report import format_table, generations_table

    config = _config(arguments)
    if config.data != "digits":
        raise ValueError(f"the study's book is made for the digits data set; run {config.data!r} with evosynth evolve")
    plan = StudyPlan(config, arguments.runs_dir, arguments.cache_dir, arguments.book_dir, arguments.sweep,
                     sweep_file=arguments.sweep_file, comparison=arguments.comparison,
                     pedestrians_root=arguments.pedestrians or default_pedestrians_root())
    index = run_study(plan)
    _, generations = load_run(plan.runs_dir / plan.config.name)
    print(format_table(generations_table(generations)))
    print(f"\nthe book: {index.resolve()}")


def _vendor_js(arguments: argparse.Namespace) -> None:
    from evosynth.book.batch import vendor_dir
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
    from evosynth.deploy.benchmark import BENCH_FILE, benchmark_run, format_bench_table
    from evosynth.deploy.machine import machine_summary

    bench = benchmark_run(arguments.run_dir, backends=arguments.backends, workloads=arguments.workloads,
                          rounds=arguments.rounds, threads=arguments.threads)
    print(format_bench_table(bench))
    for name, reason in bench["skipped"].items():
        print(f"skipped {name}: {reason}")
    print(f"\n{machine_summary(bench['machine'])}; {bench['settings']['threads']} threads, {bench['seconds']:.0f} s; "
          f"written to {arguments.run_dir / BENCH_FILE}")


def _compare(arguments: argparse.Namespace) -> None:
    import time

    from evosynth.study.compare import final_generation, get_comparison, run_comparison, table_path

    plan = get_comparison(arguments.preset)
    started = time.perf_counter()
    table = run_comparison(plan, arguments.runs_dir, arguments.cache_dir)
    columns = ["synapses", "macs", "precision_score", "recall", "ap50"]
    print(final_generation(table)[columns].to_string(float_format="{:.3f}".format))
    print(f"\n{len(table)} rows in {table_path(plan, arguments.runs_dir)} ({time.perf_counter() - started:.0f} s)")


def _capacity(arguments: argparse.Namespace) -> None:
    from evosynth.study.capacity import CAPACITY_FILE, capacity_table, format_capacity, measure_capacity

    record = measure_capacity(arguments.run_dir, arguments.generation, arguments.cache_dir)
    print(format_capacity(capacity_table(record)))
    print(f"\nchanges are against generation 1, in points; written to {arguments.run_dir / CAPACITY_FILE}")


def _capacity_curve(arguments: argparse.Namespace) -> None:
    from evosynth.study.capacity import curve_path, curve_table, format_curve, measure_width_curve

    config = _config(arguments)
    record = measure_width_curve(config, arguments.scales, arguments.seeds, arguments.runs_dir, arguments.cache_dir)
    print(format_curve(curve_table(record)))
    print(f"\nchanges are against the ancestor's own widths (x1), in points; written to "
          f"{curve_path(config, arguments.runs_dir)}")


def _check_book(arguments: argparse.Namespace) -> None:
    from evosynth.book.browser import read_book
    from evosynth.book.offline import CHART_CLASS

    reports = read_book(arguments.html_dir, CHART_CLASS)
    for report in reports:
        print(f"{report.page}: {report.charts} chart(s), " + ("clean" if not report.problems else
                                                           f"{len(report.problems)} problem(s)"))
        for problem in report.problems:
            print(f"  {problem}")
    broken = [report for report in reports if report.problems]
    if broken:
        raise EvosynthError(f"{len(broken)} of {len(reports)} pages show a reader a problem")


def _lab(arguments: argparse.Namespace) -> None:
    from evosynth.book.lab import run_lab

    run_lab(arguments.pages, arguments.port)


def _download(arguments: argparse.Namespace) -> None:
    from evosynth.task.download import ARCHIVES, download

    folder = download(ARCHIVES[arguments.name], arguments.to)
    print(f"{arguments.name} is in {folder}; use it with --data {arguments.name} --data-dir {folder}")


def main(argv: Sequence[str] | None = None) -> int:
    from evosynth.book.batch import BOOK_DIR, NOTEBOOKS
    from evosynth.deploy.benchmark import BACKENDS, DEFAULT_BACKENDS, DEFAULT_ROUNDS, DEFAULT_WORKLOADS, WORKLOADS
    from evosynth.study.capacity import DEFAULT_SCALES
    from evosynth.study.compare import COMPARISONS
    from evosynth.study.sweep import DEFAULT_ALPHA_CLUSTERS
    from evosynth.task.download import ARCHIVES

    parser = argparse.ArgumentParser(prog="evosynth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    evolve = commands.add_parser("evolve", help="evolve generations (resumes a run folder that has some)",
                                 description="Evolve a detector: synthesize, train at FP32, restrict, repeat.")
    _add_run_options(evolve)
    evolve.add_argument("--out", type=Path, default=None, help="run folder (runs/<run name>)")
    evolve.set_defaults(handler=_evolve)

    study = commands.add_parser("study", help="the whole study: generation notebooks, alpha sweep, the book",
                                description="Execute the study notebooks with Papermill and build the book.")
    _add_run_options(study)
    study.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run folders go (runs)")
    study.add_argument("--book-dir", type=Path, default=BOOK_DIR, help="the book's source folder (book)")
    explorer = study.add_mutually_exclusive_group()
    explorer.add_argument("--sweep", type=_alphas, default=DEFAULT_ALPHA_CLUSTERS,
                          help="alpha_cluster values of the alpha explorer's sweep, comma-separated "
                               f"({','.join(map(str, DEFAULT_ALPHA_CLUSTERS))})")
    explorer.add_argument("--sweep-file", type=Path, default=None, metavar="FILE",
                          help="instead, the alpha explorer shows this grid (sweeps/default.toml: 3 alphas x 3 seeds), "
                               "run on a local Ray instance like `evosynth sweep FILE` (complete runs are reused)")
    study.add_argument("--pedestrians", type=Path, default=None, metavar="PATH",
                       help="a Penn-Fudan folder: the same evolution on real pedestrians, a chapter of the book "
                            "(default: data/pennfudan/PennFudanPed if `evosynth data download pennfudan` put it there)")
    study.add_argument("--comparison", choices=list(COMPARISONS), default="reduced",
                       help="the comparison with pruning baselines and ablations the book shows (reduced: fits the "
                            "study's time budget; full: every lineage, about 40 min more)")
    study.set_defaults(handler=_study)

    vendor = commands.add_parser("vendor-js", help="set-up: put the book's JavaScript on disk (npm registry)")
    vendor.add_argument("--book-dir", type=Path, default=BOOK_DIR, help="the book's source folder (book)")
    vendor.set_defaults(handler=_vendor_js)

    export = commands.add_parser("export", help="export every generation of a run to ONNX (and TensorRT on a GPU)",
                                 description="Write model.onnx (FP32) and model_fp16.onnx into every gen_NN/ folder, "
                                             "checked against PyTorch; a TensorRT FP16 engine where possible.")
    export.add_argument("run_dir", type=Path, help="a run folder (runs/<run name>)")
    export.set_defaults(handler=_export)

    bench = commands.add_parser("bench", help="measure inference speed of every generation, write bench.json",
                                description="Latency and throughput per generation, backend and workload (a "
                                            "640x480 frame, a thumbnail, 32 thumbnails), generations interleaved; "
                                            "speed-up vs generation 1 and vs MAC reduction.")
    bench.add_argument("run_dir", type=Path, help="a run folder (runs/<run name>)")
    bench.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(DEFAULT_BACKENDS), metavar="NAME",
                       help=f"runtimes to time, of {', '.join(BACKENDS)} (all; those that cannot run here "
                            "are skipped with the reason)")
    bench.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(DEFAULT_WORKLOADS),
                       metavar="NAME", help="inputs to time, of " + "; ".join(
                           f"{name} = {workload.description}" for name, workload in WORKLOADS.items()) + " (all)")
    bench.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                       help=f"timing rounds, generations interleaved ({DEFAULT_ROUNDS})")
    bench.add_argument("--threads", type=int, default=None,
                       help="threads for torch, onnxruntime and OpenVINO alike (torch's default)")
    bench.set_defaults(handler=_bench)

    compare = commands.add_parser("compare", help="evolution vs pruning baselines, and its ablations, in one table",
                                  description="Run (or resume) every lineage of a comparison: the evolution, L1-norm "
                                              "filter pruning and iterative magnitude pruning with the same "
                                              "training, and the evolution's precision, level and seed ablations; "
                                              "write runs/comparison-<preset>.csv.")
    compare.add_argument("--preset", choices=list(COMPARISONS), default="reduced",
                         help="reduced = the baselines, no restriction and synapses only along the study's "
                              f"run, its first {COMPARISONS['reduced'].generations} generations (make study); full = "
                              "every lineage (+ filters only, BF16, int8, two more seeds), "
                              f"{COMPARISONS['full'].generations} generations; smoke = tiny, for tests (reduced)")
    compare.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run folders go (runs)")
    _add_cache_dir(compare)
    compare.set_defaults(handler=_compare)

    capacity = commands.add_parser(
        "capacity", help="size or synthesis? train generations to convergence, and their widths from scratch",
        description="For generations of a run: the generation trained on to convergence (masks kept) and a dense "
                    "network of its widths trained from scratch to convergence, both by the ancestor's rule; "
                    "written to <run>/capacity.json, reused on a rerun.")
    capacity.add_argument("run_dir", type=Path, help="a run folder (runs/<run name>)")
    capacity.add_argument("--generation", type=int, nargs="+", default=None, metavar="N",
                          help="offspring generations to measure (the run's last)")
    _add_cache_dir(capacity)
    capacity.set_defaults(handler=_capacity)

    curve = commands.add_parser(
        "capacity-curve", help="how much network does the task need? the ancestor's shape at several widths",
        description="Dense networks of the ancestor's shape with every width scaled, trained from scratch by the "
                    "ancestor's rule (until validation AP50 stops improving), restricted and measured like a "
                    "generation: AP50 against MACs. Written to runs/capacity-curves/, reused on a rerun.")
    RunConfig.add_arguments(curve)
    curve.add_argument("--scales", type=float, nargs="+", default=list(DEFAULT_SCALES), metavar="S",
                       help="width scales (" + " ".join(f"{scale:g}" for scale in DEFAULT_SCALES) + ")")
    curve.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="N", help="seeds of every scale (0)")
    curve.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run folders go (runs)")
    _add_cache_dir(curve)
    curve.set_defaults(handler=_capacity_curve)

    check = commands.add_parser("check-book", help="read the built book in headless Chromium, network cut off",
                                description="Loads every page from a server on the loopback interface and lists "
                                            "console errors, failed loads and charts that stayed blank; exits "
                                            "with code 2 if a page has any. Needs Chromium from the system's "
                                            "packages.")
    check.add_argument("html_dir", type=Path, nargs="?", default=BOOK_DIR / "_build" / "html",
                       help="the built book (book/_build/html)")
    check.set_defaults(handler=_check_book)

    from evosynth.book.lab import DEFAULT_PORT

    lab = commands.add_parser("lab", help="the pages as live notebooks in JupyterLab (the alpha sliders redraw)",
                              description="Starts JupyterLab on the study's pages with the project's settings: a "
                                          "page (.md) opens as a notebook; Run All draws its charts offline and "
                                          "its live sliders redraw them. Prints the URL; stop it with Ctrl-C.")
    lab.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"loopback port ({DEFAULT_PORT})")
    lab.add_argument("--pages", type=Path, default=NOTEBOOKS, help=f"the pages' folder ({NOTEBOOKS.name})")
    lab.set_defaults(handler=_lab)

    from evosynth.study.distributed import add_sweep_command

    add_sweep_command(commands)

    data = commands.add_parser("data", help="data sets: download a real one (never done otherwise)")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("download", help="download, check and unpack a data set",
                                     description="Download the official archive, check what it unpacks to (file "
                                                 "counts and a reference file's SHA-256) and move it into place.")
    fetch.add_argument("name", choices=list(ARCHIVES), help="the data set")
    fetch.add_argument("--to", type=Path, default=None,
                       help="the folder to create (" + ", ".join(
                           f"{name}: {archive.destination}" for name, archive in ARCHIVES.items()) + ")")
    fetch.set_defaults(handler=_download)

    arguments = parser.parse_args(argv)
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
