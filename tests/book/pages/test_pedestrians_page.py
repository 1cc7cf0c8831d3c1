"""The pedestrians page: the stored three-seed measurement renders, and a comparison computed on the local copy of
Penn-Fudan replaces it, its verdict following the paper's one-sided rule."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import REAL_PENNFUDAN
from evosynth.book.pages import compare as compare_page
from evosynth.book.pages import pedestrians as page
from evosynth.errors import EvosynthError
from evosynth.study.compare import PEDESTRIANS_COMPARISON, pedestrians_comparison, run_comparison
from evosynth.study.evolution import load_task_data
from evosynth.study.presets import BUILT_IN_PRESETS, extra_presets
from evosynth.task.training import TrainingBudget

# The pedestrians preset with budgets of a test: the same network, augmentation and environment
TINY = replace(BUILT_IN_PRESETS["pedestrians"], name="tiny-pedestrians",
               ancestor=TrainingBudget(max_epochs=2, batch_size=16, patience=1, augmentation="copy-paste"),
               offspring=TrainingBudget(max_epochs=1, batch_size=16, augmentation="copy-paste"))


def test_every_stored_pedestrians_comparison_renders(tmp_path: Path) -> None:
    stored = compare_page.stored_records(comparison=PEDESTRIANS_COMPARISON)
    assert stored, "no stored pedestrians comparison in benchmarks/: the page has nothing to show by default"
    for record in stored:
        found = compare_page.Evidence(record, computed_here=False, command=page.COMMAND)
        words = page.verdict_words(found)
        assert record.seeds == [0, 1, 2] and words["ped_seeds"] == "0, 1, 2" and words["ped_generations"] == 13
        assert record.path.name in words["ped_source"] and record.commit in words["ped_source"]
        assert "evosynth data download pennfudan" in words["ped_source"]
        assert "nan" not in " ".join(map(str, words.values())).lower()
        assert "L1 filter pruning" in compare_page.methods_words(found)["methods_answer"]
    assert not page.pedestrians_evidence(tmp_path).computed_here
    with pytest.raises(EvosynthError, match="evosynth data download pennfudan"):
        page.pedestrians_evidence(tmp_path, folder=tmp_path)


def test_the_ancestors_levers_render_with_their_source() -> None:
    record = page.lever_record()
    table = page.lever_table(record)
    assert list(table.index[:2]) == ["grid-shift", "flip-scale"] and table["AP50, mean [low, high]"].str.match(
        r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]").all()
    words = page.lever_words(record)
    assert "benchmarks/pedestrian_levers_" in words["lever_source"] and "budget" in words["lever_kept"]


def _changed(record: compare_page.StoredComparison, points: dict[str, float]) -> compare_page.StoredComparison:
    """The record with the evolution's last generation moved by ``points`` (AP50, precision, recall) on every seed."""
    table = record.table.copy()
    last = (table["method"] == "evolution") & (table["generation"] == record.generations)
    for column, change in points.items():
        first = table[(table["method"] == "evolution") & (table["generation"] == 1)].set_index("seed")[column]
        table.loc[last, column] = table.loc[last, "seed"].map(first) + change / 100
    return replace(record, table=table)


def test_the_verdict_is_one_sided(tmp_path: Path) -> None:
    record = compare_page.stored_records(comparison=PEDESTRIANS_COMPARISON)[0]
    gain = _changed(record, {"ap50": 3.0, "op_precision": 5.0, "op_recall": -1.9})
    assert page.verdict_words(compare_page.Evidence(gain, False))["ped_kept"].startswith("**kept**")
    loss = _changed(record, {"ap50": 0.0, "op_precision": -2.6, "op_recall": 0.0})
    assert "**not kept**: precision -2.6 points" in page.verdict_words(compare_page.Evidence(loss, False))["ped_kept"]


@pytest.mark.skipif(not REAL_PENNFUDAN.is_dir(), reason=f"no local copy of Penn-Fudan at {REAL_PENNFUDAN}")
@pytest.mark.timeout(600)
def test_a_comparison_computed_on_the_local_copy_replaces_the_stored_one(tmp_path: Path, data_dir: Path) -> None:
    runs = tmp_path / "runs"
    with extra_presets(TINY):
        # the final training is the smoke study's to test: here it would double the training
        plan = replace(pedestrians_comparison(REAL_PENNFUDAN, generations=2, preset=TINY.name), final_training=False)
        table = run_comparison(plan, runs, data_dir)
        found = page.pedestrians_evidence(runs)
        detections = page.first_and_last_detections(found, runs, data_dir)
    assert found.computed_here and "computed in this build's runs folder" in found.source_words()
    assert sorted(table["seed"].unique()) == [0, 1, 2] and set(table["method"]) == {"evolution", "l1-filter"}
    words = page.verdict_words(found)
    ancestors = table[(table["method"] == "evolution") & (table["generation"] == 1)]["ap50"]
    assert words["ped_fold_spread"] == pytest.approx(100 * (ancestors.max() - ancestors.min()))
    # three seeds, three test folds: no photograph is tested twice
    with extra_presets(TINY):
        tests = [load_task_data(config, data_dir).test.images for config in plan.seeded_references()]
    assert [len(images) for images in tests] == [34, 34, 34]
    flat = torch.cat(tests).flatten(1)
    assert len(torch.unique(flat, dim=0)) == len(flat)
    images = detections[detections["kind"] == "image"]["image"]
    assert isinstance(detections, pd.DataFrame) and images.str.startswith("generation 1, ").sum() == 4
    assert images.str.startswith("generation 2, ").sum() == 4
