"""One renderer decision: a notebook sends each chart as Vega-Lite alone (what JupyterLab draws itself), and the
book's executed copies get the script that draws it with the local bundle (what MyST-NB renders)."""

from __future__ import annotations

import altair as alt
import nbformat
import pandas as pd

from evosynth.book.offline import BOOK_MIME, CHART_CLASS, VEGALITE_MIME, add_book_embeds, enable_offline_altair


def chart() -> alt.Chart:
    return alt.Chart(pd.DataFrame({"x": [1, 2], "y": [3, 4]})).mark_line().encode(x="x:Q", y="y:Q").properties(
        title="a line")


def test_a_chart_reaches_a_notebook_frontend_as_vega_lite_alone():
    enable_offline_altair()
    bundle = chart()._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    # JupyterLab ranks application/javascript 0 and text/html 50 before its Vega extension's 57: either would win
    assert set(data) == {VEGALITE_MIME, "text/plain"}
    assert data[VEGALITE_MIME]["title"] == "a line"


def test_the_books_copy_gets_a_script_beside_each_chart_once():
    enable_offline_altair()
    data, metadata = chart()._repr_mimebundle_()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("display_data", data=data, metadata=metadata)]),
        nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("stream", name="stdout", text="no chart")]),
    ])
    assert add_book_embeds(notebook) == 1
    output = notebook.cells[0].outputs[0]
    assert VEGALITE_MIME in output.data, "the Vega-Lite copy stays for JupyterLab"
    script = output.data[BOOK_MIME]
    assert "window.vegaEmbed" in script and CHART_CLASS in script and '"a line"' in script
    assert add_book_embeds(notebook) == 0, "a second pass adds nothing"
