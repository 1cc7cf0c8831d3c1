"""The results page's computations: the tables and the speed it reports are the measurements'."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from conftest import bench_rows, capacity_rows, ceiling_rows, curve_rows, results_table
from evosynth.book import charts, display
from evosynth.book.pages import results as results_page
from evosynth.study.capacity import AS_EVOLVED
from evosynth.study.evolution import evolve, load_run
from evosynth.study.report import generations_table


def test_the_curve_table_averages_seeds_and_measures_change_against_the_ancestors_size():
    table = curve_rows().set_index("scale")
    assert list(table.index) == [0.5, 1.0, 2.0] and (table["seeds"] == 2).all()
    assert table.at[0.5, "ap50"] == pytest.approx(0.665) and table.at[0.5, "ap50_high"] == pytest.approx(0.67)
    assert table.at[0.5, "ap50_change"] == pytest.approx(-4.0)  # each seed against the same seed's x1
    assert table.at[2.0, "mac_fraction"] == 4.0
    spec = charts.capacity_curve_chart(curve_rows(), results_table()).to_dict()
    assert spec["layer"][1]["encoding"]["x"]["scale"]["type"] == "log"
    assert len(spec["layer"]) == 4  # band, dense networks, the ancestor's AP50 less the tolerance, the lineage


def test_capacity_table_and_chart_compare_each_network_with_generation_1():
    rows = capacity_rows()
    assert list(rows["network"]) == ["as evolved", "trained on", "from scratch"] * 2
    assert rows["ap50_change"].tolist() == pytest.approx([-2.0, -1.0, -3.0, -10.0, -6.0, -8.0])
    assert rows["op_recall_change"].tolist() == pytest.approx([-2.0, -1.0, -3.0, -10.0, -6.0, -8.0])
    assert rows["synapse_reduction"].tolist() == pytest.approx([4.0, 4.0, 1000 / 320, 10.0, 10.0, 1000 / 130])
    panels = charts.capacity_chart(rows, evolved_label=AS_EVOLVED).to_dict()["datasets"]
    labels = {row["panel"] for data in panels.values() for row in data}
    # a panel is named by its generation as evolved, not by each network's own size
    assert labels == {"gen 5 as evolved: 4.0× fewer synapses, 2.5× fewer MACs",
                      "gen 9 as evolved: 10.0× fewer synapses, 6.2× fewer MACs"}


def test_paper_comparison():
    comparison = results_page.paper_comparison(results_table()).set_index("quantity")["this run"]
    assert comparison["generations"] == 3
    assert comparison["synapse reduction, generation 1 ÷ last"] == 10.0
    validated = "change, last − generation 1 (threshold chosen on validation)"
    assert comparison[f"precision {validated}"] == pytest.approx(2.0)  # at each generation's own threshold
    assert comparison[f"recall {validated}"] == pytest.approx(-2.0)
    assert comparison["precision change at the fixed 0.5 threshold"] == pytest.approx(3.0)
    assert comparison["recall change at the fixed 0.5 threshold"] == pytest.approx(-3.0)
    speed = "inference speed-up (measured, whole frames, batch 1), last ÷ generation 1"
    assert comparison[speed] is None and comparison["frames per second, generation 1"] is None  # not benchmarked
    measured = results_page.paper_comparison(results_table(), (10.0, 25.0)).set_index("quantity")
    assert measured.loc[speed, "this run"] == 2.5 and measured.loc[speed, "paper (reported)"] == pytest.approx(37 / 7)
    assert measured.loc["frames per second, last generation", ["paper (reported)", "this run"]].tolist() == [37, 25]
    shown = display.for_display(results_page.paper_comparison(results_table()), index="quantity")
    assert shown.loc[speed, "this run"] == "not measured"
    assert shown.loc["generations", "paper (reported)"] == 13




def test_the_speed_reported_is_the_deployers_choice_the_backend_fastest_on_the_last_generation():
    chosen = results_page.deployed_speedup(bench_rows(), "frame")
    assert chosen["backend"] == "fast" and chosen["speedup_vs_gen1"] == pytest.approx(2.5)
    first = results_page.first_generation_row(bench_rows(), "fast", "frame")
    assert first["throughput_fps"] == pytest.approx(100.0)
    spec = charts.speed_chart(bench_rows(), "a CPU").to_dict()
    assert spec["title"]["subtitle"][0] == "640×480, batch 1, every backend measured"
    assert {row["workload"] for row in next(iter(spec["datasets"].values()))} == {"frame"}
    line = spec["layer"][1]
    assert line["encoding"]["y"]["title"] == "frames per second (median, bars: quartiles)"
    assert spec["layer"][0]["encoding"]["y2"]["field"] == "fps_fast"  # the spread is drawn


def test_the_ceiling_is_read_on_the_deployers_backend_against_its_floor():
    speed = results_page.MeasuredSpeed(bench_rows(), ceiling_rows(), "a CPU", "none", {}, {})
    summary = results_page.ceiling_summary(speed, "fast")
    # on "fast": the floor runs in 2 ms against generation 1's 10 (5x); generation 2 reaches 2.5x, half of it
    assert summary["floor_speedup"] == pytest.approx(5.0) and summary["floor_fps"] == pytest.approx(500.0)
    assert summary["share_of_floor"] == pytest.approx(0.5) and summary["floor_mac_reduction"] == pytest.approx(10.0)
    assert summary["floor_channels"] == 4  # the floor row's own widths
    spec = charts.ceiling_chart(speed.ceiling, speed.rows, "fast", "a CPU").to_dict()
    shown = next(iter(spec["datasets"].values()))
    assert {row["backend"] for row in shown} == {"fast"} and len(shown) == 2 + 2  # two dense networks, two generations
    words = results_page.ceiling_words(speed)
    assert "every group at 4 channels (the synthesis keeps filters in multiples of 4)" in words and "50%" in words


def test_slack_is_judged_at_the_curve_point_nearest_a_sixth_of_the_macs():
    rows = curve_rows()  # x0.5 holds a quarter of the MACs and loses 4 points
    assert "changes AP50 by -4.0 points" in results_page.slack_explanation(rows)
    assert "little slack" in results_page.slack_explanation(rows)
    flat = rows.assign(ap50_change=[-0.5, 0.0, 0.3])
    assert "the ancestor has slack" in results_page.slack_explanation(flat)
    assert "not measured" in results_page.slack_explanation(None)


def test_without_a_bench_the_speed_and_the_ceiling_are_said_in_words_with_the_command():
    for words in (results_page.speed_words(None), results_page.ceiling_words(None)):
        assert "evosynth bench RUN_DIR" in words and "nan" not in words and "`" not in words
    assert results_page.frame_speed(None) is None


def test_the_widths_figure_names_each_dependency_group_and_its_share_of_generation_1(smoke_run):
    config, run = smoke_run
    _, generations = load_run(run)
    rows = results_page.width_rows(generations)
    groups = rows["group"].drop_duplicates().tolist()
    assert len(groups) == len(generations[0].metrics["widths"]) and groups[0].startswith("1. ")
    last = rows[rows["generation"] == generations[-1].number]
    assert last["filters"].tolist() == list(generations[-1].metrics["widths"])
    assert (rows.loc[rows["generation"] == 1, "fraction"] == 1).all() and (rows["fraction"] <= 1).all()
    assert charts.widths_chart(rows).to_dict()["title"]["text"] == "The network shrinking, layer by layer"


def test_figures_2_and_3_band_the_runs_that_differ_in_the_seed_only(smoke_run, data_dir, tmp_path):
    config, run = smoke_run
    runs = tmp_path / "runs"
    shutil.copytree(run, runs / config.name)
    alone = results_page.seed_runs(runs / config.name, config)
    assert results_page.seed_band(alone) is None and "one seed" in results_page.seeds_words(alone)
    other_seed = replace(config, seed=1)
    evolve(other_seed, runs / other_seed.name, data_dir)
    evolve(replace(config, alpha_cluster=0.5), runs / "another-alpha", data_dir)  # not a seed sibling
    siblings = results_page.seed_runs(runs / config.name, config)
    assert [path.name for path in siblings] == [config.name, other_seed.name]
    band = results_page.seed_band(siblings)
    assert band is not None and (band["seeds"] == 2).all() and len(band) == config.generations
    assert (band["synapses_min"] <= band["synapses_max"]).all()
    assert (band.loc[band["generation"] == 1, ["ap50_change_min", "ap50_change_max"]] == 0).all().all()
    assert "seeds 0, 1" in results_page.seeds_words(siblings)
    table = generations_table(load_run(run)[1])
    for chart in (charts.efficiency_chart(table, band=band), charts.quality_chart(table, band=band)):
        assert "seeds" in str(chart.to_dict()["title"]["subtitle"])


def test_generation_1_and_the_last_are_shown_on_the_same_images_at_their_own_thresholds(smoke_run, data):
    _, run = smoke_run
    _, generations = load_run(run)
    frame = results_page.detections_then_and_now(generations[0], generations[-1], data.test, range(2))
    images = frame.loc[frame["kind"] == "image", "image"].tolist()
    assert images == ["generation 1, test image 0", "generation 1, test image 1",
                      f"generation {generations[-1].number}, test image 0",
                      f"generation {generations[-1].number}, test image 1"]
    last = frame[frame["image"].str.startswith(f"generation {generations[-1].number}") & (frame["kind"] == "detection")]
    assert (last["score"] >= generations[-1].metrics["operating_point"]["threshold"]).all()
