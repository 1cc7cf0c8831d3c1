"""What every page shows with: tables as a reader sees them, values for the prose (MyST-NB glue), live sliders,
PNG images for charts, and the readable names of a network's layers.

Light on purpose (numpy, pandas): the pages' computations are in ``evosynth.book.pages``.
"""

from __future__ import annotations

import base64
import html
import struct
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

# --------------------------------------------------------------------------------------------------- layers


def layer_label(name: str) -> str:
    """A readable name for a prunable layer's state-dict key: ``backbone.0.conv.weight`` -> ``conv 1``."""
    parts = name.split(".")
    if parts[0] == "backbone" and len(parts) > 1 and parts[1].isdigit():
        return f"conv {int(parts[1]) + 1}"
    if parts[0] == "head":
        return "head"
    return name.removesuffix(".weight")


def histogram(values: np.ndarray, bins: int, lo: float, hi: float) -> pd.DataFrame:
    """Counts of ``values`` in ``bins`` equal bins over [lo, hi] (columns start, end, count), ready to draw."""
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return pd.DataFrame({"start": edges[:-1], "end": edges[1:], "count": counts})


# --------------------------------------------------------------------------------------------------- tables and prose


# What a reader reads above a column, for the names the library's tables use (the CSV downloads keep the names).
COLUMN_LABELS = {
    "synapses": "synapses", "clusters": "clusters (backbone filters)", "macs": "MACs per image",
    "MMACs": "MACs per image (millions)", "parameters": "parameters", "bytes_fp16": "FP16 weight bytes",
    "precision_score": "precision", "recall": "recall", "ap50": "AP50", "epochs": "training epochs",
    "train_seconds": "training time (s)", "synapse_reduction": "synapses ÷ (generation 1 ÷ this)",
    "mac_reduction": "MACs ÷ (generation 1 ÷ this)", "alpha_cluster": "α cluster", "alpha_synapse": "α synapse",
    "cluster_fraction": "share of clusters kept", "synapse_fraction": "share of synapses kept",
    "expected_clusters": "expected clusters", "expected_synapses": "expected synapses",
    "median_relative_strength": "median |w| ÷ layer's largest", "median_probability": "median P(s = 1 | w)",
    "largest_weight": "largest |w|", "distinct_values": "distinct values", "subnormal": "subnormal weights",
    "zero": "weights at zero", "max_rounding_error": "largest possible change", "max_relative_error":
    "largest possible relative change", "measured_rounding_error": "largest measured change",
    "channel_multiple": "channel multiple",
    "op_precision": "precision (threshold chosen on validation)",
    "op_recall": "recall (threshold chosen on validation)",
    "op_threshold": "threshold chosen on validation", "mac_fraction": "MACs (÷ the ancestor's)",
    "seeds": "seeds", "ap50_low": "AP50, lowest seed", "ap50_high": "AP50, highest seed",
    "ap50_change": "AP50 change from the ancestor's size (points)", "widths": "widths",
}


def for_display(frame: pd.DataFrame, index: str = "layer", decimals: int | None = 3) -> pd.DataFrame:
    """A table as a reader sees it: indexed by ``index`` (unnamed), without the ordering column, floats rounded
    to ``decimals`` (None: as they are), columns named for a reader (``COLUMN_LABELS``).

    Columns of mixed types (``object``) keep their ints; their floats are rounded too; None reads "not measured".
    """
    return _rounded(frame, index, decimals).rename(columns=COLUMN_LABELS)


def _rounded(frame: pd.DataFrame, index: str, decimals: int | None) -> pd.DataFrame:
    shown = frame.drop(columns=[c for c in ("layer_index",) if c in frame.columns and c != index])
    if index in shown.columns:
        shown = shown.set_index(index).rename_axis(None)
    if decimals is None:
        return shown
    numeric = shown.select_dtypes(include="number").columns
    shown[numeric] = shown[numeric].round(decimals)
    for column in shown.select_dtypes(include="object").columns:
        values = [
            "not measured" if value is None else round(value, decimals) if isinstance(value, float) else value
            for value in shown[column]
        ]
        shown[column] = pd.Series(values, index=shown.index, dtype=object)
    return shown


def csv_download(frame: pd.DataFrame, filename: str, what: str = "this table") -> Any:
    """A link that saves ``frame`` (the library's column names, every digit) as ``filename``: the CSV travels
    inside the page as a ``data:`` URL, so it downloads from the static book with no server and no network."""
    from IPython.display import HTML

    encoded = base64.b64encode(frame.to_csv(index=False).encode()).decode("ascii")
    return HTML(f'<p class="csv-download"><a download="{html.escape(filename)}" '
                f'href="data:text/csv;base64,{encoded}">Download {html.escape(what)} as CSV</a> '
                f'({len(frame)} rows, {html.escape(filename)})</p>')


def glue_values(**values: Any) -> None:
    """Store numbers for the page's prose (MyST-NB ``{glue:text}`key:format```), without displaying them."""
    from myst_nb import glue

    for key, value in values.items():
        glue(key, value, display=False)


def live_controls(render: Callable[..., None], **controls: Any) -> Any:
    """Sliders (ipywidgets) above an output that ``render(**values)`` redraws whenever a slider moves.

    Nothing is written into the output until a slider moves, which only a connected frontend (JupyterLab) does:
    the hint is a separate label. Capturing printed output into an ``Output`` widget while a cell executes is the
    path on which headless execution (Papermill, nbval: nbclient's output-widget hooks) can wait for ever (nbclient
    issue 312), so a headless run only creates the widgets and stores their state. The pages tag these cells
    ``remove-cell``: the static book, where no kernel moves them, leaves them out and keeps its Altair sliders.
    """
    import ipywidgets as widgets

    hint = widgets.Label("Move a slider to redraw (needs a running kernel).")
    output = widgets.Output()

    def redraw(change: dict[str, Any]) -> None:
        if _rounding_echo(change["old"], change["new"]):
            return
        hint.layout.display = "none"
        with output:
            output.clear_output(wait=True)
            render(**{name: control.value for name, control in controls.items()})

    for control in controls.values():
        control.observe(redraw, names="value")
    return widgets.VBox([*controls.values(), hint, output])


def _rounding_echo(old: object, new: object) -> bool:
    """A slider's value moved by float rounding alone: a frontend snaps the starting value onto its step grid
    (0.84 becomes 0.01 + 83 x 0.01 = 0.8400000000000002) as it renders, which is no move of the reader's."""
    return isinstance(old, float) and isinstance(new, float) and abs(new - old) <= 1e-9 * max(1.0, abs(old))


# --------------------------------------------------------------------------------------------------- images


def png_bytes(image: np.ndarray | torch.Tensor) -> bytes:
    """Encode a uint8 image ([C,H,W] or [H,W], C = 1 or 3) as PNG, with no imaging library."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
    if array.ndim == 2:
        color_type, rows = 0, array
    elif array.ndim == 3 and array.shape[2] == 3:
        color_type, rows = 2, array.reshape(array.shape[0], -1)
    else:
        raise ValueError(f"expected a [C,H,W] or [H,W] image with 1 or 3 channels, got shape {array.shape}")
    height, width = array.shape[:2]
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def png_data_url(image: np.ndarray | torch.Tensor) -> str:
    """``png_bytes`` as a ``data:`` URL, which a chart can show without any file or network."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")
