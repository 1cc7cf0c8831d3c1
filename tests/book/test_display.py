"""How pages display tables and live controls."""

from __future__ import annotations

import base64
import io
import re

import ipywidgets as widgets
import pandas as pd

from conftest import results_table
from evosynth.book import display


def test_for_display():
    frame = pd.DataFrame({"layer": ["conv 1"], "layer_index": [0], "value": [0.123456]})
    shown = display.for_display(frame)
    assert list(shown.columns) == ["value"] and shown.index.name is None
    assert shown.loc["conv 1", "value"] == 0.123
    assert display.for_display(frame, decimals=None).loc["conv 1", "value"] == 0.123456
    readable = display.for_display(results_table(), index="generation").columns
    assert "precision" in readable and "AP50" in readable and "precision_score" not in readable


def test_a_table_downloads_as_the_csv_it_came_from():
    table = results_table()
    link = display.csv_download(table, "generations.csv")._repr_html_()
    encoded = re.search(r'href="data:text/csv;base64,([^"]+)"', link).group(1)
    assert pd.read_csv(io.BytesIO(base64.b64decode(encoded))).equals(table.reset_index(drop=True))
    assert 'download="generations.csv"' in link


def test_live_controls_redraw_on_change():
    calls = []
    slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0)
    box = display.live_controls(lambda alpha: calls.append(alpha), alpha=slider)
    assert calls == []  # nothing is drawn before a slider moves
    slider_, hint, output = box.children
    assert slider_ is slider
    # nothing is captured into the Output widget while the cell runs (the headless hang, nbclient issue 312)
    assert output.outputs == () and output.msg_id == ""
    slider.value = 0.5 + 1e-16 * 2  # the frontend snapping the start onto its step grid: not a move
    assert calls == [] and hint.layout.display != "none"
    slider.value = 0.7
    assert calls == [0.7]
    assert hint.layout.display == "none"
