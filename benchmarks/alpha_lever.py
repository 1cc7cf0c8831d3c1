"""Where on the alpha axis does the study keep its accuracy? The study's lineage at other environmental factors.

The environment decides how much each generation removes (``alpha_cluster``: the fraction of the parent's MACs kept,
``alpha_synapse``: of its synapses); the law P(S_g | W_{g-1}) * F(alpha) is the same at every point. For each
(alpha_synapse, alpha_cluster) pair and seed this evolves the study's task for its 13 generations and records, with
``task_regime_scan.lineage``, the last generation against the same seed's generation 1: as bred, after a final
training to convergence, rebuilt from scratch, and L1 filter pruning to the same widths with the same training (as
bred and trained on). It writes one JSON with the machine, every lineage and each pair's means over the seeds.

    .venv/bin/python benchmarks/alpha_lever.py --out benchmarks/alpha_lever_<machine>.json --alphas 0.96,0.86
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import mean
from typing import Any

from task_regime_scan import FOLLOWERS, lineage

from evosynth.deploy.machine import describe_machine, machine_summary
from evosynth.files import write_json
from evosynth.paths import CACHE_DIR, RUNS_DIR
from evosynth.study.config import RunConfig

MEASURES = ("synapse_reduction", "mac_reduction", "ap50_change_points", "op_precision_change_points",
            "op_recall_change_points")
NETWORKS = {"as bred": (), "trained on": ("trained_on",), "L1, as bred": ("l1_filter",),
            "L1, trained on": ("l1_filter", "trained_on"), "strongest-first twin, as bred": ("matched",),
            "strongest-first twin, trained on": ("matched", "trained_on")}


def _pair(text: str) -> tuple[float, float]:
    synapse, cluster = (float(value) for value in text.split(","))
    return synapse, cluster


def _network(result: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        result = result[key]
    return result


def means(lineages: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per network measured (``NETWORKS``), each measure's mean over the seeds."""
    return {name: {measure: mean(_network(result, path)[measure] for result in lineages) for measure in MEASURES}
            for name, path in NETWORKS.items() if not path or path[0] in lineages[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the JSON goes")
    parser.add_argument("--alphas", type=_pair, nargs="+", required=True, metavar="SYNAPSE,CLUSTER")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--channel-multiple", type=int, default=None, help="the rounding of kept filters (default: "
                        "the study preset's)")
    parser.add_argument("--followers", nargs="+", choices=FOLLOWERS, default=list(FOLLOWERS),
                        help="the baselines measured at each lineage's widths (at alpha_synapse 1 the twin is L1)")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    arguments = parser.parse_args()
    machine = describe_machine()
    points = []
    for alpha_synapse, alpha_cluster in arguments.alphas:
        lineages: list[dict[str, Any]] = []
        point = {"alpha_synapse": alpha_synapse, "alpha_cluster": alpha_cluster, "lineages": lineages}
        points.append(point)
        for seed in arguments.seeds:  # written after every lineage: a stopped scan keeps its finished seeds
            config = RunConfig(seed=seed, alpha_synapse=alpha_synapse, alpha_cluster=alpha_cluster,
                               channel_multiple=arguments.channel_multiple)
            lineages.append(lineage(config, arguments.runs_dir, arguments.cache_dir, tuple(arguments.followers)))
            point["means"] = means(lineages)
            write_json(arguments.out, {"machine": machine, "seeds": arguments.seeds,
                                       "channel_multiple": config.channel_multiple, "points": points})
    print(f"\n{machine_summary(machine)}; means over seeds {arguments.seeds}, last generation against generation 1")
    for point in points:
        for name, values in point["means"].items():
            print(f"as {point['alpha_synapse']:g} ac {point['alpha_cluster']:g}  {name:15s} "
                  f"{values['synapse_reduction']:5.1f}x synapses {values['mac_reduction']:4.1f}x MACs  AP50 "
                  f"{values['ap50_change_points']:+.1f}  P {values['op_precision_change_points']:+.1f}  R "
                  f"{values['op_recall_change_points']:+.1f}")


if __name__ == "__main__":
    main()
