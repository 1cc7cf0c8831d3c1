"""Command line: ``evosynth evolve`` runs or resumes an evolution and prints what every generation achieved."""

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


def _add_evolve(commands: argparse._SubParsersAction) -> None:
    evolve = commands.add_parser(
        "evolve",
        help="evolve generations of the detector (resumes a run folder that already has some)",
        description="Evolve a detector over generations: synthesize, train at FP32, restrict precision, repeat.",
    )
    evolve.add_argument("--generations", type=int, default=13, help="generations including the ancestor (13)")
    evolve.add_argument("--alpha-synapse", type=float, default=DEFAULT_ALPHA_SYNAPSE,
                        help=f"environmental factor for synapses, in (0, 1] ({DEFAULT_ALPHA_SYNAPSE})")
    evolve.add_argument("--alpha-cluster", type=float, default=DEFAULT_ALPHA_CLUSTER,
                        help=f"environmental factor for clusters (filters), in (0, 1] ({DEFAULT_ALPHA_CLUSTER})")
    evolve.add_argument("--environment", choices=ENVIRONMENT_MODELS, default=DEFAULT_ENVIRONMENT,
                        help=f"how alpha acts on the probabilities ({DEFAULT_ENVIRONMENT})")
    evolve.add_argument("--seed", type=int, default=0, help="run seed: same seed, same offspring (0)")
    evolve.add_argument("--precision", choices=list(PRECISIONS), default="fp16",
                        help="synaptic precision restriction after training (fp16; fp32 = none)")
    evolve.add_argument("--preset", choices=list(PRESETS), default="paper",
                        help="paper = the full study; smoke = tiny and fast, for tests (paper)")
    evolve.add_argument("--out", type=Path, default=None, help="run folder (runs/<run name>)")
    evolve.add_argument("--data-dir", type=Path, default=Path("data/cache"),
                        help="where generated data sets are cached (data/cache)")


def _evolve(arguments: argparse.Namespace) -> None:
    from evosynth.study.evolution import evolve
    from evosynth.study.report import format_table, generations_table

    config = RunConfig(
        preset=arguments.preset,
        environment=arguments.environment,
        alpha_synapse=arguments.alpha_synapse,
        alpha_cluster=arguments.alpha_cluster,
        precision=arguments.precision,
        seed=arguments.seed,
        generations=arguments.generations,
    )
    out = arguments.out or config.default_out()
    generations = evolve(config, out, arguments.data_dir)
    print(f"\nrun folder: {out}")
    print(format_table(generations_table(generations)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evosynth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_evolve(commands)
    arguments = parser.parse_args(argv)
    try:
        _evolve(arguments)
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
