"""The study's judgements, in one place: which of the paper's three claims a run reproduces, and whether an ancestor
has slack. The results page, the intro and the benchmark scripts read these rules; none keeps a copy.

The paper's claims (``evosynth.study.paper``) and the rule each is judged by:

- **synapses**: the last generation has at least ``PAPER_SYNAPSE_REDUCTION`` times fewer synapses than generation 1;
- **accuracy**: its precision and recall are each no more than ``PAPER_TOLERANCE_POINTS`` below generation 1's. The
  claim is that accuracy is not lost, so the rule is one-sided: a gain is a gain (the paper's own precision rose by
  about two points). One measurement is judged (``JUDGED_MEASUREMENT``); the others are reported beside it;
- **speed**: a whole frame runs at least ``PAPER_SPEEDUP`` times faster, on the backend that runs the last
  generation fastest (a ratio inside one ``bench.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from evosynth.study.paper import (
    PAPER_FPS,
    PAPER_SPEEDUP,
    PAPER_SYNAPSE_REDUCTION,
    PAPER_TOLERANCE_POINTS,
)


def score_kept(change: float, tolerance: float = PAPER_TOLERANCE_POINTS) -> bool:
    """A score's change in points from generation 1 is no more than ``tolerance`` below it (one-sided: a gain is a
    gain). Judged on the value as a page states it (to 0.1 point), so that a sentence never reads "-2.0 ... lost"."""
    return round(change, 1) >= -tolerance


def accuracy_kept(precision_change: float, recall_change: float,
                  tolerance: float = PAPER_TOLERANCE_POINTS) -> bool:
    """The paper's accuracy rule: neither precision nor recall is more than ``tolerance`` points below generation 1."""
    return score_kept(precision_change, tolerance) and score_kept(recall_change, tolerance)


def synapses_reduced(reduction: float) -> bool:
    return reduction >= PAPER_SYNAPSE_REDUCTION


def speed_reached(speedup: float) -> bool:
    return speedup >= PAPER_SPEEDUP


# Measurements of the last generation's accuracy, in the order the results page lists them. The study's result is
# the first one it has: the last generation trained on to convergence as generation 1 was (neither held to a shorter
# training than the other), at the score threshold chosen on validation data, the one a deployer would set.
FINAL_TRAINING = "after the final training"
AS_BRED = "as bred"
VALIDATED_THRESHOLD = "threshold chosen on validation data"
FIXED_THRESHOLD = "fixed 0.5 threshold"
JUDGED_WHY = {
    FINAL_TRAINING: "the last generation trained on to convergence, as generation 1 was, so that neither is held "
                    "to a shorter training than the other, at the score threshold chosen on validation data, as a "
                    "deployer would set it",
    AS_BRED: "the last generation as bred, with the offspring's training budget (the final training was not "
             "measured in this build), at the score threshold chosen on validation data, as a deployer would set it",
}


@dataclass(frozen=True)
class AccuracyMeasurement:
    """One measurement of the last generation's accuracy against generation 1's, in points."""

    training: str  # FINAL_TRAINING or AS_BRED
    threshold: str  # VALIDATED_THRESHOLD or FIXED_THRESHOLD
    precision_change: float
    recall_change: float
    ap50_change: float

    @property
    def kept(self) -> bool:
        return accuracy_kept(self.precision_change, self.recall_change)

    @property
    def name(self) -> str:
        return f"{self.training}, {self.threshold}"


def accuracy_measurements(table: pd.DataFrame, final: pd.Series | None = None) -> list[AccuracyMeasurement]:
    """The last generation's accuracy changes from generation 1, the judged one first: ``table`` is
    ``report.generations_table``, ``final`` the last generation's row of ``capacity.capacity_table`` after the final
    training (None where it was not measured)."""
    first, last = table.iloc[0], table.iloc[-1]

    def change(column: str) -> float:
        return 100 * float(last[column] - first[column])

    bred_ap50 = change("ap50")
    measurements = [
        AccuracyMeasurement(AS_BRED, VALIDATED_THRESHOLD, change("op_precision"), change("op_recall"), bred_ap50),
        AccuracyMeasurement(AS_BRED, FIXED_THRESHOLD, change("precision_score"), change("recall"), bred_ap50),
    ]
    if final is not None:
        final_ap50 = float(final["ap50_change"])
        measurements = [
            AccuracyMeasurement(FINAL_TRAINING, VALIDATED_THRESHOLD, float(final["op_precision_change"]),
                                float(final["op_recall_change"]), final_ap50),
            AccuracyMeasurement(FINAL_TRAINING, FIXED_THRESHOLD, float(final["precision_score_change"]),
                                float(final["recall_change"]), final_ap50),
            *measurements,
        ]
    return measurements


def accuracy_table(measurements: Sequence[AccuracyMeasurement]) -> pd.DataFrame:
    """The measurements as a table for the page, the judged one first and marked."""
    return pd.DataFrame([{
        "measurement": m.training, "threshold": m.threshold, "judged": "the verdict's" if index == 0 else "beside it",
        "precision change (points)": m.precision_change, "recall change (points)": m.recall_change,
        "AP50 change (points)": m.ap50_change,
        f"no more than {PAPER_TOLERANCE_POINTS:g} points below": "yes" if m.kept else "no",
    } for index, m in enumerate(measurements)])


@dataclass(frozen=True)
class Verdict:
    """What reproduced and what did not, in sentences computed from the run (the pages glue them)."""

    synapses: str
    accuracy: str
    accuracy_why: str  # which measurement was judged, and why that one
    speed: str
    reproduced: int  # how many of the paper's three claims (synapses, accuracy, speed) this run reproduced
    measured: int  # how many it could measure (speed needs a bench.json)
    measurements: tuple[AccuracyMeasurement, ...]

    @property
    def headline(self) -> str:
        return f"{self.reproduced} of the paper's {self.measured} measured claims reproduced"


def verdict(table: pd.DataFrame, frame: pd.Series | None, arithmetic: str | None = None,
            final: pd.Series | None = None) -> Verdict:
    """The paper's three claims against a run: ``table`` is its ``report.generations_table``; ``frame`` the
    ``bench_table`` row of its last generation on a whole frame on the backend that runs it fastest (None where the
    run was not benchmarked), ``arithmetic`` what that backend computes in; ``final`` as in
    ``accuracy_measurements``."""
    last = table.iloc[-1]
    generations, reduction = int(last["generation"]), float(last["synapse_reduction"])
    synapses_ok = synapses_reduced(reduction)
    synapses = (f"{reduction:.1f}× fewer synapses after {generations} generations: the paper's "
                f"{PAPER_SYNAPSE_REDUCTION:g}-fold reduction " + ("is reproduced" if synapses_ok else "is not reached"))
    measurements = accuracy_measurements(table, final)
    judged = measurements[0]
    below = [name for name, change in (("precision", judged.precision_change), ("recall", judged.recall_change))
             if not score_kept(change)]
    accuracy = (f"precision {judged.precision_change:+.1f} and recall {judged.recall_change:+.1f} points from "
                f"generation 1 ({judged.name}): "
                + (f"reproduced, neither more than {PAPER_TOLERANCE_POINTS:g} points below generation 1" if judged.kept
                   else f"not reproduced, {' and '.join(below)} more than {PAPER_TOLERANCE_POINTS:g} points below "
                        "generation 1"))
    if frame is None:
        speed, speed_ok, measured = "not measured in this build (evosynth bench RUN_DIR measures it)", False, 2
    else:
        speedup = float(frame["speedup_vs_gen1"])
        speed_ok, measured = speed_reached(speedup), 3
        speed = (f"{speedup:.2f}× faster on a whole {int(frame['width'])}×{int(frame['height'])} frame at batch "
                 f"{int(frame['batch_size'])} on {frame['backend']} [{arithmetic}], against the paper's "
                 f"{PAPER_SPEEDUP:.1f}× ({PAPER_FPS[0]:g} → {PAPER_FPS[1]:g} fps on a Jetson TX1): "
                 + ("reproduced" if speed_ok else "not reached"))
    return Verdict(synapses, accuracy, JUDGED_WHY[judged.training], speed,
                   int(synapses_ok) + int(judged.kept) + int(speed_ok), measured, tuple(measurements))


# The paper's regime, as this study tests for it: a network with a sixth of the ancestor's MACs, trained from
# scratch, comes within about a point of it (the ancestor has slack to lose).
SLACK_MAC_FRACTION = 1 / 6
SLACK_POINTS = 1.0


def has_slack(ap50_change: float) -> bool:
    """Whether a dense network near ``SLACK_MAC_FRACTION`` of the ancestor's MACs, from scratch, loses no more than
    ``SLACK_POINTS`` of AP50 (points) against it, judged as stated (to 0.1 point) like ``score_kept``."""
    return round(ap50_change, 1) >= -SLACK_POINTS


def slack_alpha_cluster(curve: pd.DataFrame, generations: int) -> tuple[float, float] | None:
    """The environment a task's slack allows: of a capacity curve (``capacity.curve_table``), the smallest MAC
    fraction whose dense network, from scratch, has slack (``has_slack`` on its mean over seeds), and the cost
    environment's alpha_cluster (the share of its parent's MACs each offspring keeps) that reaches it in the
    ``generations - 1`` offspring of a run; None where no smaller network has slack."""
    smaller = curve[(curve["mac_fraction"] < 1) & curve["ap50_change"].map(has_slack)]
    if smaller.empty:
        return None
    fraction = float(smaller["mac_fraction"].min())
    return fraction, fraction ** (1 / (generations - 1))
