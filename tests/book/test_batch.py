"""The study batch on the smoke preset: Papermill runs the generation notebook per generation and every chapter (a
cell that fails fails the batch), the book builds offline and reads cleanly in Chromium, and the live pages run in
JupyterLab."""

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from conftest import make_pennfudan
from evosynth.book.batch import run_study, study_jobs
from evosynth.book.browser import Browser, move_slider, read_book
from evosynth.book.lab import move_live_slider, open_and_run, running_lab, save
from evosynth.book.notebooks import NotebookFailed, NotebookJob, execute
from evosynth.book.offline import CHART_CLASS, find_network_references
from evosynth.deploy.bench_record import BENCH_FILE, read_bench
from evosynth.deploy.machine import machine_summary
from evosynth.paths import BOOK_DIR, NOTEBOOKS
from evosynth.study.compare import COMPARISONS, FULL_COMPARISON, PEDESTRIANS_COMPARISON
from evosynth.study.config import RunConfig
from evosynth.study.plan import StudyPlan
from evosynth.study.sweep import sweep_configs

SMOKE = RunConfig(preset="smoke", generations=2)
SMOKE_FULL = replace(COMPARISONS[FULL_COMPARISON], reference=SMOKE, seeds=(1,), timed_backends=("torch-eager-fp32",))
# The module fixture runs the whole smoke study (about 2.5 minutes on the AMD EPYC kind, twice that on the Intel
# Xeon kind) inside the first test that asks for it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory, data_dir):
    """The whole study on the smoke preset, into a copy of the book's source tree."""
    root = tmp_path_factory.mktemp("study")
    book = root / "book"
    shutil.copytree(BOOK_DIR, book, ignore=shutil.ignore_patterns("_build", "generated", "_vendor", "_prototype"))
    (book / "_vendor").symlink_to(BOOK_DIR / "_vendor")
    plan = StudyPlan(SMOKE, root / "runs", data_dir, book, sweep_alpha_clusters=(0.6, 0.9), bench_rounds=2,
                     pedestrians_root=make_pennfudan(root / "pennfudan"), comparison="smoke", full=True)
    with pytest.MonkeyPatch.context() as patch:  # `--full` computes the full comparison's shape on the smoke preset
        patch.setitem(COMPARISONS, FULL_COMPARISON, SMOKE_FULL)
        index = run_study(plan)
    return plan, index


def test_study_full_computes_the_full_comparison_and_the_page_shows_it_instead_of_the_stored_one(smoke_study):
    plan, index = smoke_study
    assert (plan.runs_dir / f"comparison-{FULL_COMPARISON}.json").is_file()
    compare_page = _text(index, "generated/compare.html")
    assert "computed in this build's runs folder by evosynth study --full" in compare_page
    assert "seeds 0, 1" in compare_page and "not computed in this build" not in compare_page


def _page(index: Path, name: str) -> str:
    return (index.parent / name).read_text()


def test_book_has_every_page(smoke_study):
    _, index = smoke_study
    assert index.is_file()
    for page in ("generated/intro.html", "generated/dna.html", "generated/gen_01.html", "generated/gen_02.html",
                 "generated/results.html", "generated/bounds.html", "generated/alpha_explorer.html",
                 "generated/pedestrians.html",
                 "generated/compare.html", "scaling.html"):
        assert (index.parent / page).is_file(), page


def test_book_loads_nothing_from_the_network(smoke_study):
    _, index = smoke_study
    assert find_network_references(index.parent) == []
    assert (index.parent / "_static/vendor/vega-bundle.js").is_file()
    assert (index.parent / "_static/vendor/mathjax/tex-mml-chtml.js").is_file()


def test_pages_carry_chart_specs_and_sliders(smoke_study):
    _, index = smoke_study
    results, bounds = _page(index, "generated/results.html"), _page(index, "generated/bounds.html")
    assert "vegaEmbed" in results and "vega-lite" in results
    assert "The network shrinking, layer by layer" in results, "the widths figure is missing"
    assert "frames per second (median, bars: quartiles)" in bounds, "the measured-speed chart is missing"
    assert "640\\u00d7480, batch 1" in bounds, "the speed chart has no panel of whole frames"  # JSON-escaped ×
    for page in ("generated/dna.html", "generated/alpha_explorer.html"):
        html = _page(index, page)
        assert re.search(r'"input":\s*"range"', html), f"no Altair range slider in {page}"
        # the ipywidgets sliders need a kernel: the static page leaves them out and says where they work
        assert "widget-view+json" not in html, f"inert ipywidgets in {page}"
        assert "JupyterLab (<code" in html, f"{page} does not say how to open its live version"


def test_every_page_reads_cleanly_in_a_browser_with_the_network_cut_off(smoke_study):
    """Headless Chromium: no console error or failed load on any page, every chart painted."""
    _, index = smoke_study
    reports = read_book(index.parent, CHART_CLASS)
    assert {Path(r.page).name for r in reports} >= {"dna.html", "results.html", "gen_01.html", "compare.html"}
    assert {r.page: r.problems for r in reports if r.problems} == {}
    assert sum(r.charts for r in reports) >= 20


@pytest.mark.parametrize("page", ["generated/dna.html", "generated/alpha_explorer.html"])
def test_a_static_slider_moved_by_the_mouse_redraws_its_chart(smoke_study, page):
    _, index = smoke_study
    move = move_slider(index.parent, page, CHART_CLASS)
    assert move.before != move.after and move.redrawn, move


def test_generation_notebooks_ran_the_run(smoke_study):
    plan, _ = smoke_study
    run = plan.runs_dir / SMOKE.name
    assert (run / "gen_02" / "metrics.json").is_file()
    executed = json.loads((plan.book_dir / "generated" / "gen_02.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["generation"] == 2


def test_a_failing_notebook_names_the_cell_and_keeps_its_output(smoke_study, tmp_path):
    plan, _ = smoke_study
    job = NotebookJob(NOTEBOOKS / "generation.md", tmp_path / "gen_99.ipynb",
                      {"run_dir": str(plan.runs_dir / SMOKE.name), "generation": 99,
                       "cache_dir": str(plan.cache_dir)})
    with pytest.raises(NotebookFailed, match=r"generation\.md failed in cell .* generation must be between 1 and"):
        execute(job)
    assert job.output.is_file()


def test_the_pedestrians_chapter_shows_its_comparison_computed_here(smoke_study):
    plan, index = smoke_study
    assert (plan.runs_dir / f"comparison-{PEDESTRIANS_COMPARISON}.json").is_file()
    text = _text(index, "generated/pedestrians.html")
    assert "computed in this build's runs folder" in text and "seeds 0, 1, 2" in text
    assert "found no Penn-Fudan folder" not in text
    assert "Does evolution beat L1 filter pruning at equal MACs on these photographs?" in text
    assert "What the first and the last generation see" in text and "What the ancestor needed" in text
    assert _page(index, "generated/pedestrians.html").count("vegaEmbed") >= 2, "the band or detection chart is missing"


def _text(index: Path, name: str) -> str:
    """A built page's visible prose, tags stripped."""
    html = _page(index, name)
    html = re.sub(r"<script.*?</script>", "", html[html.find("<main"):html.find("</main>")], flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("\u2019", "'")


def test_generation_1_reads_as_the_ancestors_page_and_2_as_an_offspring(smoke_study):
    _, index = smoke_study
    ancestor, offspring = _text(index, "generated/gen_01.html"), _text(index, "generated/gen_02.html")
    assert "The ancestor's layers" in ancestor and "How long does the ancestor take" in ancestor
    for offspring_only in ("What it inherited", "recover from the surgery", "Next to its parent", "nan"):
        assert offspring_only not in ancestor, offspring_only
    assert "What it inherited" in offspring and "recover from the surgery" in offspring
    assert "The ancestor's layers" not in offspring


def test_results_and_intro_state_the_verdict_computed(smoke_study):
    plan, index = smoke_study
    results, intro = _text(index, "generated/results.html"), _text(index, "generated/intro.html")
    assert re.search(r"\d of the paper's \d measured claims reproduced", results)
    assert re.search(r"\d of the paper's \d measured claims reproduced", intro), "no headline on the first page"
    assert "fewer synapses after" in results and "points from generation 1" in results and "on a whole" in results
    assert "Limitations" in results and "not measured for this run" not in results
    machine = machine_summary(read_bench(plan.runs_dir / plan.config.name / BENCH_FILE)["machine"])
    assert f"Measured on {machine}" in results, "the verdict does not name the machine the bench measured"
    assert f"Measured on {machine}" in intro
    assert "Judged: the last generation" in results, "the verdict does not say which measurement it judged"
    for other in ("as bred", "fixed 0.5 threshold"):
        assert other in results, f"the accuracy table lacks {other!r}"
    assert "Download the generations table as CSV" in results
    assert "# Parameters" not in results, "the results page shows Papermill's parameters cell"
    for link in ("dna.html", "results.html", "alpha_explorer.html", "compare.html", "gen_01.html"):
        assert f'href="{link}' in _page(index, "generated/intro.html"), f"the intro does not link to {link}"


def _reader_text(html: str) -> str:
    """What a reader sees of a page: its text without scripts, styles and tags."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_no_page_shows_nan_a_literal_backtick_the_parameters_or_the_building_machines_paths(smoke_study):
    plan, index = smoke_study
    for page in sorted(index.parent.glob("**/*.html")):
        text = _reader_text(page.read_text())
        where = page.relative_to(index.parent)
        assert not re.search(r"\bnan\b", text, re.I), f"{where} shows nan"
        assert "`" not in text, f"{where} shows a literal backtick"
        assert "# Parameters" not in text, f"{where} shows Papermill's parameters cell"
        for folder in (plan.runs_dir.parent, plan.cache_dir):  # the build's own paths, on this machine
            assert str(folder.resolve()) not in text, f"{where} shows {folder}, a path of this machine"


def test_a_pedestrians_page_without_the_data_shows_the_stored_measurement(smoke_study, tmp_path):
    """The batch's job for a build without Penn-Fudan: the stored three-seed comparison, named as such, the one
    command that fetches the data said once, and no section that needs the data."""
    plan, _ = smoke_study
    bare = replace(plan, runs_dir=tmp_path / "runs")  # a build whose runs folder holds no pedestrians comparison
    (job,) = [j for j in study_jobs(bare, plan.runs_dir / SMOKE.name, {}, tmp_path, False)
              if j.source.name == "pedestrians.md"]
    execute(job)
    notebook = nbformat.read(job.output, as_version=4)
    shown = [cell for cell in notebook.cells if not {"remove-cell", "parameters", "injected-parameters"}
             & set(cell.metadata.get("tags", []))]
    prose = "\n".join(cell.source for cell in shown if cell.cell_type == "markdown")
    assert prose.count("evosynth data download pennfudan") == 1
    assert "What the first and the last generation see" not in prose
    glued = json.dumps(notebook.cells[2:4]) + json.dumps([cell.get("outputs") for cell in notebook.cells])
    assert "stored in benchmarks/comparison_pedestrians_" in glued and "not computed in this build" in glued


# ------------------------------------------------------------------------------------------- the live pages in Lab


def _page_with_parameters(source: Path, parameters: dict, destination: Path) -> None:
    """The page's MyST source byte for byte, but for its parameters cell, which holds ``parameters``."""
    text = source.read_text()
    cell = re.search(r"```\{code-cell\} ipython3\n:tags: \[parameters[^\]]*\]\n\n(.*?)```", text, re.S)
    assert cell, f"{source.name} has no parameters cell"
    literals = "".join(f"{name} = {value!r}\n" for name, value in parameters.items())
    destination.write_text(text[:cell.start(1)] + literals + text[cell.end(1):])


@pytest.fixture(scope="module")
def live_pages(smoke_study, tmp_path_factory):
    """The DNA page and the alpha explorer on the smoke study's runs, as a reader's checkout would hold them."""
    plan, _ = smoke_study
    pages = tmp_path_factory.mktemp("pages")
    explorer = {"sweep_dirs": [str(plan.runs_dir / config.name)
                               for config in sweep_configs(plan.config, plan.sweep_alpha_clusters)]}
    for job in study_jobs(plan, plan.runs_dir / plan.config.name, explorer, pages / "executed", False):
        if job.source.name in ("dna.md", "alpha_explorer.md"):
            _page_with_parameters(job.source, job.parameters, pages / job.source.name)
    return pages


@pytest.mark.parametrize(("page", "slider", "moves"), [
    ("dna.md", "α cluster", ({"value": 0.5}, {"value": 0.3})),
    ("alpha_explorer.md", "α cluster", ({"option": 0}, {"option": 1})),
])
def test_a_live_page_opens_as_a_notebook_draws_every_chart_and_its_slider_redraws(live_pages, tmp_path, page, slider,
                                                                                  moves):
    """JupyterLab as a reader uses it (`make lab`): the page's URL opens a notebook, Run All draws every chart with
    JupyterLab's own Vega (no JavaScript error), no live slider fires by itself, a moved slider redraws the chart
    under it, and saving the page leaves its file as it was."""
    original = (live_pages / page).read_bytes()
    with running_lab(live_pages, tmp_path / "lab.log") as (base, token), Browser() as browser:
        run = open_and_run(browser, base, token, page)
        assert run.opened_as == "notebook", f"{page} opened in the text editor"
        assert run.errors == [], run.errors
        assert run.charts and run.blank_charts == [], run.blank_charts
        assert run.hints_shown >= 1, "a live slider fired by itself as it rendered"
        first, second = moves
        _, drawn = move_live_slider(browser, page, slider, **first)
        before, redrawn = move_live_slider(browser, page, slider, **second)
        assert before == drawn and redrawn != drawn
        save(browser, page)
    assert (live_pages / page).read_bytes() == original, f"saving {page} in JupyterLab rewrote it"
