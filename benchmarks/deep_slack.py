"""Does the deep ancestor leave slack on the study's task? Its dense copies at smaller widths, trained from scratch.

The issue's criterion (``study.verdict.has_slack``): a dense network of the ancestor's shape at about 0.18 of its
MACs, trained from scratch to convergence by the study's own rule, within ``SLACK_POINTS`` AP50 points of the
ancestor. The deep candidate (``deep_ancestor.CANDIDATES``) becomes a preset for this experiment only (the paper
preset's task and budgets, ``extra_presets``), and the study's capacity curve (``capacity.measure_width_curve``)
trains it at each width scale and seed into a runs folder of this script's own.

    .venv/bin/python benchmarks/deep_slack.py --out benchmarks/deep_slack_<machine>.json
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from deep_ancestor import CANDIDATES

from evosynth.deploy.machine import write_measurement
from evosynth.study.capacity import curve_table, format_curve, measure_width_curve
from evosynth.study.config import RunConfig
from evosynth.study.presets import Network, extra_presets, get_preset
from evosynth.study.verdict import SLACK_POINTS, has_slack

SCALES = (1.0, 0.41)  # x0.41 of every group's width: about 0.18 of the MACs (both sides of each layer shrink)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the JSON goes")
    parser.add_argument("--runs", type=Path, default=Path("runs/deep-slack"), help="the runs folder (resumed)")
    parser.add_argument("--candidate", default="residual 64-128, patch stem", choices=list(CANDIDATES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    arguments = parser.parse_args()
    builder, options = CANDIDATES[arguments.candidate]
    preset = replace(get_preset("paper"), name="deep-candidate", network=Network(builder, options))
    started = time.perf_counter()
    with extra_presets(preset):
        config = RunConfig(preset=preset.name)
        record = measure_width_curve(config, SCALES, arguments.seeds, runs_dir=arguments.runs)
        table = curve_table(record)
    change = float(table.loc[table["scale"] == SCALES[1], "ap50_change"].iloc[0])
    summary_line = write_measurement(arguments.out, {"candidate": arguments.candidate, "builder": builder,
                               "arguments": options, "scales": list(SCALES), "seeds": arguments.seeds,
                               "networks": record["networks"], "curve": table.to_dict("records"),
                               "ap50_change_points": change, "slack_points": SLACK_POINTS,
                               "has_slack": has_slack(change), "seconds": time.perf_counter() - started})
    print(summary_line)
    print(format_curve(table))
    print(f"x{SCALES[1]:g}: AP50 {change:+.1f} points from scratch; slack (within {SLACK_POINTS:g} points): "
          f"{has_slack(change)}")


if __name__ == "__main__":
    main()
