"""How hard may the environment push on Penn-Fudan? The study's slack criterion on the pedestrians task.

The capacity curve of the pedestrians preset (``capacity.measure_width_curve``: dense networks of the ancestor's
shape at a fraction of its widths, trained from scratch with the ancestor's own budget; the ancestor itself at
width x1), over seeds whose test folds are their seeds, and the environment it allows
(``verdict.slack_alpha_cluster``): the cost environment's alpha_cluster that takes a run in its offspring to the
smallest MAC fraction where a dense network still loses no more than ``verdict.SLACK_POINTS`` of AP50.

    .venv/bin/python benchmarks/pedestrian_slack.py --data-dir ../shared/data/PennFudanPed \
        --out benchmarks/pedestrian_slack_<machine>.json [--scales 0.25 0.41 1] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from evosynth.deploy.machine import describe_machine, machine_summary, source_commit
from evosynth.files import write_json
from evosynth.paths import CACHE_DIR, RUNS_DIR
from evosynth.study.capacity import STUDY_SCALES, curve_table, format_curve, measure_width_curve
from evosynth.study.config import RunConfig
from evosynth.study.verdict import SLACK_POINTS, slack_alpha_cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a Penn-Fudan folder (PennFudanPed/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scales", nargs="+", type=float, default=list(STUDY_SCALES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    args = parser.parse_args()
    started = time.perf_counter()
    config = RunConfig(preset="pedestrians", data="pennfudan", data_root=str(args.data_dir.resolve()))
    record = measure_width_curve(config, args.scales, args.seeds, args.runs_dir, args.cache_dir)
    table = curve_table(record)
    allowed = slack_alpha_cluster(table, config.generations)
    write_json(args.out, {
        "machine": describe_machine(), "commit": source_commit(),
        "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "preset": config.preset,
        "alphas_in_use": [config.alpha_synapse, config.alpha_cluster], "slack_points": SLACK_POINTS,
        "curve": table.to_dict("records"), "networks": record["networks"],
        "allowed": None if allowed is None else {"mac_fraction": allowed[0], "alpha_cluster": allowed[1],
                                                 "generations": config.generations},
        "seconds": time.perf_counter() - started})
    print(f"{machine_summary(describe_machine())}\n{format_curve(table)}")
    if allowed is None:
        print(f"no smaller network keeps AP50 within {SLACK_POINTS:g} point: the task leaves this ancestor no slack")
    else:
        print(f"slack down to {allowed[0]:.3f} of the MACs: alpha_cluster {allowed[1]:.3f} reaches it in "
              f"{config.generations - 1} offspring (the preset has {config.alpha_cluster:g})")


if __name__ == "__main__":
    main()
