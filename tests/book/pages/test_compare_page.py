"""The comparison page's computations: the full comparison is read from the runs where it was computed, else from
the records stored in benchmarks/ (every one of which renders), and its answer is said in words with no nan."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from evosynth.book import compare_charts
from evosynth.book.pages import compare as page
from evosynth.errors import EvosynthError
from evosynth.study import compare
from evosynth.study.compare import COMPARISONS, FULL_COMPARISON, run_comparison

# the full comparison's shape on the tiny preset: the evolution and two baselines on two seeds, trained on and timed
TINY_FULL = replace(COMPARISONS[FULL_COMPARISON], reference=COMPARISONS["smoke"].reference.with_generations(2),
                    seeds=(1,), timed_backends=("torch-eager-fp32",))


@pytest.fixture(scope="module")
def tiny_full(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    runs = tmp_path_factory.mktemp("full")
    run_comparison(TINY_FULL, runs, data_dir)
    return runs


def _words_are_clean(words: dict) -> None:
    for key, value in words.items():
        assert "nan" not in str(value).lower().split(), (key, value)


def _renders(record: compare.StoredComparison) -> dict:
    words = page.methods_words(page.Evidence(record, computed_here=False))
    _words_are_clean(words)
    assert words["methods_answer"].startswith(("Yes, on these seeds", "No, on these seeds"))
    summary = page.method_summary(record)
    assert set(summary["method"]) >= {"evolution", "l1-filter"}
    assert (summary["seeds"] == len(record.seeds)).all(), "a quantity is missing for a seed"
    table = page.summary_table(summary)
    assert list(table.index)[0] == "evolution" and "[" in table.iloc[0, 0]
    assert not table.isna().any().any()
    band = page.band(record)
    chart = compare_charts.method_band_chart(band, record.seeds).to_dict()
    assert chart["title"]["text"] and "generation 1" in json.dumps(chart["layer"][1]["encoding"]["y"])
    assert band["generation"].max() == record.generations
    return words


def test_every_stored_full_comparison_renders_with_its_machine_date_and_commit():
    stored = page.stored_records()
    assert stored, f"no {page.STORED_PATTERN} in benchmarks/: the comparison page has nothing to show by default"
    for record in stored:
        path = record.path
        assert record.comparison == FULL_COMPARISON and len(record.seeds) == 3 and record.generations == 13, path
        words = _renders(record)
        source = page.Evidence(record, computed_here=False).source_words()
        assert path.name in source and record.commit in source and record.created[:10] in source
        assert record.machine["cpu"] in source and "not computed in this build" in source
        assert words["methods_seeds"] == "0, 1, 2"


def test_a_computed_full_comparison_replaces_the_stored_one(tiny_full, tmp_path, monkeypatch):
    monkeypatch.setitem(COMPARISONS, FULL_COMPARISON, TINY_FULL)
    found = page.evidence(tiny_full)
    assert found.computed_here and "computed in this build's runs folder by evosynth study --full" in (
        found.source_words())
    words = _renders(found.record)
    assert words["methods_seeds"] == "0, 1"
    empty = tmp_path / "runs"
    empty.mkdir()
    assert not page.evidence(empty).computed_here  # not computed here: the stored record
    with pytest.raises(EvosynthError, match="evosynth study --full"):
        page.evidence(empty, folder=tmp_path)


def test_the_summary_says_each_seeds_range_and_the_fastest_backend(tiny_full, monkeypatch):
    monkeypatch.setitem(COMPARISONS, FULL_COMPARISON, TINY_FULL)
    record = page.evidence(tiny_full).record
    changes = page.seed_changes(record)
    last = changes[(changes["generation"] == 2) & (changes["method"] == "evolution")]
    summary = page.method_summary(record).set_index(["method", "quantity"])
    ap50 = summary.loc[("evolution", "ΔAP50 as bred")]
    assert ap50["mean"] == pytest.approx(last["ap50_change"].mean())
    assert (ap50["min"], ap50["max"]) == (last["ap50_change"].min(), last["ap50_change"].max())
    assert ("l1-filter", "frame speed-up (torch-eager-fp32)") in summary.index
    assert ("matched", "ΔAP50 after final training") in summary.index
    assert (changes.loc[changes["generation"] == 1, "ap50_change"] == 0).all()


def test_a_stored_record_of_another_format_is_refused(tmp_path):
    stored = page.stored_records()[0].path
    other = tmp_path / stored.name
    shutil.copy(stored, other)
    record = json.loads(other.read_text())
    other.write_text(json.dumps({**record, "format": 99}))
    with pytest.raises(EvosynthError, match="format 99"):
        page.stored_records(tmp_path)
    assert isinstance(compare.read_record(stored).table, pd.DataFrame)


def test_the_speed_up_is_read_on_a_backend_that_timed_every_lineage(tiny_full, monkeypatch):
    monkeypatch.setitem(COMPARISONS, FULL_COMPARISON, TINY_FULL)
    record = page.evidence(tiny_full).record
    only_the_evolution = record.speeds[record.speeds["method"] == "evolution"].assign(backend="a faster one",
                                                                                      fps=1e9)
    widened = replace(record, speeds=pd.concat([record.speeds, only_the_evolution], ignore_index=True))
    assert page.fastest_backend(widened) == "torch-eager-fp32"
    assert not page.summary_table(page.method_summary(widened)).isna().any().any()
