"""The validated operating point: a threshold chosen on one split (highest F1) and reported on another."""

from __future__ import annotations

import torch

from evosynth.task.metrics import SCORE_THRESHOLD, ScoredHits, best_f1_threshold


def scored(scores: list[float], hits: list[bool], n_truth: int) -> ScoredHits:
    return ScoredHits(torch.tensor(scores), torch.tensor(hits), n_truth)


def test_threshold_is_the_score_of_highest_f1() -> None:
    # thresholds 0.9 / 0.8 / 0.7 / 0.3 keep 1 / 2 / 3 / 4 detections: F1 = 2/5, 4/6, 4/7, 6/8 with 4 true boxes
    detections = scored([0.9, 0.8, 0.7, 0.3], [True, True, False, True], n_truth=4)
    assert best_f1_threshold(detections) == torch.tensor(0.3).item()
    precision, recall = detections.at(best_f1_threshold(detections))
    assert (precision, recall) == (3 / 4, 3 / 4)


def test_a_tie_keeps_the_higher_threshold_and_equal_scores_go_together() -> None:
    # 0.9 keeps one hit (F1 2/3 with 2 true boxes); 0.5 keeps two hits and two misses (F1 4/6): a tie
    tie = scored([0.9, 0.5, 0.5, 0.5], [True, True, False, False], n_truth=2)
    assert best_f1_threshold(tie) == torch.tensor(0.9).item()
    # the hit at 0.6 shares its score with four misses: keeping it keeps them, so 0.8 (F1 2/3) wins over 0.6
    # (F1 4/8), although the hit alone would have given F1 1
    shared = scored([0.8, 0.6, 0.6, 0.6, 0.6, 0.6], [True, True, False, False, False, False], n_truth=2)
    assert best_f1_threshold(shared) == torch.tensor(0.8).item()


def test_no_detection_falls_back_to_the_fixed_threshold() -> None:
    assert best_f1_threshold(scored([], [], n_truth=3)) == SCORE_THRESHOLD
    assert scored([], [], n_truth=3).at(0.2) == (0.0, 0.0)
