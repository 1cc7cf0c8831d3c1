"""The browser check itself: it must fail on a page a reader would see broken (the built book's own pages are
read in test_batch.py)."""

from pathlib import Path

import pytest

from evosynth.book.browser import move_slider, read_book
from evosynth.book.offline import CHART_CLASS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BROKEN = f"""<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>
<p>A page with a script error and a chart that never draws.</p>
<div class="{CHART_CLASS}"></div>
<script>undefinedFunctionOfThePage();</script>
<img src="missing.png">
</body></html>"""

PAINTED = f"""<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>
<div class="{CHART_CLASS}"><canvas class="marks" width="40" height="40"></canvas></div>
<script>document.querySelector("canvas").getContext("2d").fillRect(5, 5, 20, 20);</script>
</body></html>"""


def test_a_console_error_a_failed_load_and_a_blank_chart_are_each_reported(tmp_path: Path):
    (tmp_path / "broken.html").write_text(BROKEN)
    (tmp_path / "painted.html").write_text(PAINTED)
    reports = {Path(r.page).name: r for r in read_book(tmp_path, CHART_CLASS, page_limit_s=5)}
    broken, painted = reports["broken.html"], reports["painted.html"]
    assert any("undefinedFunctionOfThePage" in error for error in broken.errors), broken.errors
    assert any("missing.png" in error or "404" in error for error in broken.errors), broken.errors
    assert broken.charts == 1 and len(broken.blank_charts) == 1
    assert painted.problems == [] and painted.charts == 1


def test_a_page_that_loads_from_the_network_is_reported(tmp_path: Path):
    """The network is cut off: a remote script fails to load, and the check says so instead of fetching it."""
    (tmp_path / "remote.html").write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,">'
                                          '<script src="https://cdn.example.org/vega.js"></script></head></html>')
    (report,) = read_book(tmp_path, CHART_CLASS)
    assert report.errors, "a remote script loaded, or its failure went unnoticed"


def test_a_slider_that_redraws_nothing_is_told_apart(tmp_path: Path):
    """A range input whose chart does not change: the move is reported as not redrawn."""
    (tmp_path / "inert.html").write_text(
        f'<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
        f'<div class="{CHART_CLASS}"><canvas class="marks" width="40" height="40"></canvas>'
        f'<input type="range" min="0" max="1" step="0.1" value="0.5" style="width:300px"></div>'
        f'<script>document.querySelector("canvas").getContext("2d").fillRect(5, 5, 20, 20);</script></body></html>')
    move = move_slider(tmp_path, "inert.html", CHART_CLASS, redraw_limit_s=2)
    assert move.before != move.after, "the click did not move the slider"
    assert not move.redrawn


def _drawn(width: int) -> str:
    """A chart container whose drawn canvas is ``width`` CSS pixels wide."""
    return (f'<div class="{CHART_CLASS}"><canvas class="marks" width="{width}" height="40" style="width:{width}px">'
            '</canvas></div><script>const c = document.querySelectorAll("canvas.marks");'
            'c[c.length - 1].getContext("2d").fillRect(0, 0, 10, 10);</script>')


def test_a_chart_wider_than_the_text_column_and_a_page_too_long_are_each_reported(tmp_path: Path):
    column = '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><article class="bd-article" ' \
             'style="width:700px">{}</article></body></html>'
    (tmp_path / "fits.html").write_text(column.format(_drawn(690)))
    (tmp_path / "wide.html").write_text(column.format(_drawn(900)))
    (tmp_path / "long.html").write_text(column.format(_drawn(100) + '<div style="height:9000px"></div>'))
    reports = {Path(r.page).name: r for r in read_book(tmp_path, CHART_CLASS, page_limit_s=10)}
    assert reports["fits.html"].problems == [] and reports["fits.html"].column_px == 700
    assert reports["wide.html"].problems == ["chart wider than the 700-px text column: chart 1 '': 900 px"]
    assert reports["long.html"].height_px > 9000
    assert reports["long.html"].problems == [f"the page is {reports['long.html'].height_px} px long (more than 6000)"]
