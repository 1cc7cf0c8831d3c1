"""Command line of evosynth.

``evosynth evolve`` runs or resumes an evolution and prints what every generation achieved;
``evosynth study`` runs the whole study (generation notebooks, alpha sweep, book);
``evosynth vendor-js`` is the set-up step that puts the book's JavaScript on disk (npm registry, once).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from evosynth.environment import ENVIRONMENT_MODELS
from evosynth.errors import EvosynthError
from evosynth.precision import PRECISIONS
from evosynth.study.config import (
    DEFAULT_ALPHA_CLUSTER,
    DEFAULT_ALPHA_SYNAPSE,
    DEFAULT_ENVIRONMENT,
    PRESETS,
    RunConfig,
)


def _alphas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generations", type=int, default=13, help="generations including the ancestor (13)")
    parser.add_argument("--alpha-synapse", type=float, default=DEFAULT_ALPHA_SYNAPSE,
                        help=f"environmental factor for synapses, in (0, 1] ({DEFAULT_ALPHA_SYNAPSE})")
    parser.add_argument("--alpha-cluster", type=float, default=DEFAULT_ALPHA_CLUSTER,
                        help=f"environmental factor for clusters (filters), in (0, 1] ({DEFAULT_ALPHA_CLUSTER})")
    parser.add_argument("--environment", choices=ENVIRONMENT_MODELS, default=DEFAULT_ENVIRONMENT,
                        help=f"how alpha acts on the probabilities ({DEFAULT_ENVIRONMENT})")
    parser.add_argument("--seed", type=int, default=0, help="run seed: same seed, same offspring (0)")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp16",
                        help="synaptic precision restriction after training (fp16; fp32 = none)")
    parser.add_argument("--preset", choices=list(PRESETS), default="paper",
                        help="paper = the full study; smoke = tiny and fast, for tests (paper)")
    parser.add_argument("--data-dir", type=Path, default=Path("data/cache"),
                        help="where generated data sets are cached (data/cache)")


def _config(arguments: argparse.Namespace) -> RunConfig:
    return RunConfig(
        preset=arguments.preset,
        environment=arguments.environment,
        alpha_synapse=arguments.alpha_synapse,
        alpha_cluster=arguments.alpha_cluster,
        precision=arguments.precision,
        seed=arguments.seed,
        generations=arguments.generations,
    )


def _evolve(arguments: argparse.Namespace) -> None:
    from evosynth.study.evolution import evolve
    from evosynth.study.report import format_table, generations_table

    config = _config(arguments)
    out = arguments.out or config.default_out()
    generations = evolve(config, out, arguments.data_dir)
    print(f"\nrun folder: {out}")
    print(format_table(generations_table(generations)))


def _study(arguments: argparse.Namespace) -> None:
    from evosynth.study.batch import StudyPlan, run_study
    from evosynth.study.evolution import load_run
    from evosynth.study.report import format_table, generations_table

    plan = StudyPlan(_config(arguments), arguments.runs_dir, arguments.data_dir, arguments.book_dir, arguments.sweep)
    index = run_study(plan)
    _, generations = load_run(plan.runs_dir / plan.config.name)
    print(format_table(generations_table(generations)))
    print(f"\nthe book: {index.resolve()}")


def _vendor_js(arguments: argparse.Namespace) -> None:
    from evosynth.study.batch import vendor_dir
    from evosynth.study.offline import fetch_vendor_js

    fetch_vendor_js(vendor_dir(arguments.book_dir))


def _export(arguments: argparse.Namespace) -> None:
    from evosynth.export import FP32_TOLERANCE, export_run

    for result in export_run(arguments.run_dir):
        state = "up to date" if result.reused else "exported"
        engine = f", TensorRT engine {result.engine.name}" if result.engine else ""
        print(f"gen {result.generation:02d} {state}: max |ONNX - PyTorch| FP32 {result.max_abs_error_fp32:.1e} "
              f"(<= {FP32_TOLERANCE:g}), FP16 {result.max_abs_error_fp16:.1e} (<= {result.fp16_tolerance:.1e}){engine}")


def _bench(arguments: argparse.Namespace) -> None:
    from evosynth.benchmark import BENCH_FILE, benchmark_run, format_bench_table

    bench = benchmark_run(arguments.run_dir, backends=arguments.backends, rounds=arguments.rounds,
                          threads=arguments.threads)
    print(format_bench_table(bench))
    for name, reason in bench["skipped"].items():
        print(f"skipped {name}: {reason}")
    machine = bench["machine"]
    print(f"\n{machine['cpu']}, {bench['settings']['threads']} threads, {bench['seconds']:.0f} s; "
          f"written to {arguments.run_dir / BENCH_FILE}")


def main(argv: Sequence[str] | None = None) -> int:
    from evosynth.benchmark import BACKENDS, DEFAULT_BACKENDS, DEFAULT_ROUNDS
    from evosynth.study.batch import BOOK_DIR
    from evosynth.study.sweep import DEFAULT_ALPHA_CLUSTERS

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
    study.add_argument("--sweep", type=_alphas, default=DEFAULT_ALPHA_CLUSTERS,
                       help="alpha_cluster values of the alpha explorer's sweep, comma-separated "
                            f"({','.join(map(str, DEFAULT_ALPHA_CLUSTERS))})")
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
                                description="Latency and throughput per generation, backend and batch size, "
                                            "generations interleaved; speed-up vs generation 1 and vs MAC reduction.")
    bench.add_argument("run_dir", type=Path, help="a run folder (runs/<run name>)")
    bench.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(DEFAULT_BACKENDS), metavar="NAME",
                       help=f"runtimes to time, of {', '.join(BACKENDS)} (all; those that cannot run here "
                            "are skipped with the reason)")
    bench.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                       help=f"timing rounds, generations interleaved ({DEFAULT_ROUNDS})")
    bench.add_argument("--threads", type=int, default=None,
                       help="threads for torch and onnxruntime alike (torch's default)")
    bench.set_defaults(handler=_bench)

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
