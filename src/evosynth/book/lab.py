"""The study's pages as live notebooks: JupyterLab on ``notebooks/``, set up so that a page opens as a notebook.

The pages are MyST Markdown (``.md``) paired with Jupytext. JupyterLab opens a ``.md`` file in its text editor
unless told otherwise; ``write_lab_settings`` tells it, in the environment's own settings overrides (not the
user's home), to open Markdown with Jupytext's notebook view, and ``lab_command`` starts JupyterLab on the pages
with the flags this kind of machine needs (``--allow-root`` where it runs as root, as the study's machines do).
``running_lab`` starts one on a loopback port for as long as a block runs, with limits on every wait (the
browser test of the live study uses it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evosynth.book.browser import Browser, chart_states, problems_in, stop_process_group
from evosynth.errors import EvosynthError

JUPYTEXT_NOTEBOOK = "Jupytext Notebook"  # the document widget jupytext's JupyterLab extension registers
# JupyterLab reads these over its defaults from <environment>/share/jupyter/lab/settings/overrides.json
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # a page double-clicked, or opened from its URL, opens as a notebook (Markdown files here are all pages)
    "@jupyterlab/docmanager-extension:plugin": {
        "defaultViewers": {"markdown": JUPYTEXT_NOTEBOOK, "myst": JUPYTEXT_NOTEBOOK},
    },
    # the study runs offline: no prompt to fetch Jupyter's news or to check for updates from the internet
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}
DEFAULT_PORT = 8888
START_LIMIT_S = 120  # JupyterLab answers in 5-15 s here; two minutes is a server that will not start
STOP_LIMIT_S = 20


class LabError(EvosynthError):
    """JupyterLab did not start, or stopped, within its limit."""


def settings_overrides(prefix: Path = Path(sys.prefix)) -> Path:
    return prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def write_lab_settings(prefix: Path = Path(sys.prefix)) -> Path:
    """Merge ``LAB_SETTINGS`` into the environment's JupyterLab overrides (other plugins' entries are kept)."""
    path = settings_overrides(prefix)
    current = json.loads(path.read_text()) if path.is_file() else {}
    for plugin, values in LAB_SETTINGS.items():
        current[plugin] = {**current.get(plugin, {}), **values}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n")
    return path


def lab_command(root_dir: Path, port: int, token: str, *, expose_app: bool = False) -> list[str]:
    """The ``jupyter lab`` command line for the pages in ``root_dir`` on 127.0.0.1:``port``, opening no browser
    (the caller prints or opens the URL). ``expose_app`` makes the application reachable from the page's scripts
    (``window.jupyterapp``), for the browser test."""
    jupyter = Path(sys.executable).with_name("jupyter")
    command = [str(jupyter), "lab", f"--ServerApp.root_dir={root_dir}", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               "--ServerApp.open_browser=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root without it; the study's machines run as root
    if expose_app:
        command.append("--LabApp.expose_app_in_browser=True")
    return command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(process: subprocess.Popen[bytes], base: str, token: str, limit_s: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(f"JupyterLab exited with code {process.returncode} before it answered")
        with contextlib.suppress(OSError):
            with opener.open(f"{base}api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise LabError(f"JupyterLab did not answer within {limit_s:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session, and its kernels, by process group: TERM, then KILL."""
    if not stop_process_group(process, STOP_LIMIT_S):
        raise LabError(f"JupyterLab (pid {process.pid}) did not stop")


@contextlib.contextmanager
def running_lab(root_dir: Path, log: Path, *, start_limit_s: float = START_LIMIT_S) -> Iterator[tuple[str, str]]:
    """JupyterLab on the pages in ``root_dir``, on a free loopback port, for as long as the block runs: yields
    its base URL and token. Its output goes to ``log``; it is stopped by process group, kernels included."""
    write_lab_settings()
    port, token = free_port(), secrets.token_hex(16)
    with log.open("wb") as output:
        process = subprocess.Popen(lab_command(root_dir, port, token, expose_app=True),
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(process, base, token, start_limit_s)
        yield base, token
    finally:
        stop(process)


def run_lab(root_dir: Path, port: int = DEFAULT_PORT) -> int:
    """Start JupyterLab on the pages for a reader, print where it is, and wait until the reader stops it."""
    settings = write_lab_settings()
    token = secrets.token_hex(16)
    print(f"JupyterLab on {root_dir}; pages open as notebooks (settings: {settings})\n"
          f"open http://127.0.0.1:{port}/lab/tree/dna.md?token={token}\nstop it with Ctrl-C", flush=True)
    return subprocess.call(lab_command(root_dir, port, token))


# --------------------------------------------------------------------------------------------------- in a browser
# What a reader of the live pages sees, read over the DevTools protocol from a page of a JupyterLab started with
# ``expose_app`` (``running_lab``): the document it opened, the cells Run All executed, the charts JupyterLab's own
# Vega extension drew (its containers: ``LAB_CHART_CLASS``), and what a moved slider redrew.

LAB_CHART_CLASS = "jp-RenderedVegaCommon5"  # JupyterLab 4's Vega 5 / Vega-Lite 5 renderer
OPEN_LIMIT_S = 60
RUN_ALL_LIMIT_S = 300  # the DNA page runs in about 15 s on the smoke preset here
REDRAW_LIMIT_S = 30

# the document widget open on a path, in the main area (the shell's current widget is null until it has focus)
_WIDGET_JS = """Array.from(window.jupyterapp.shell.widgets('main'))
  .find(widget => widget.context && widget.context.path === %(path)s)"""
_DOCUMENT_JS = """(() => {
  const widget = window.jupyterapp && %(widget)s;
  if (!widget) return null;
  window.jupyterapp.shell.activateById(widget.id);
  const cells = widget.content && widget.content.widgets;
  return {kind: cells ? 'notebook' : 'editor', dirty: widget.context.model.dirty,
          // the notebook commands act on the current widget: Run All only once this one is current and has a kernel
          ready: !!cells && window.jupyterapp.shell.currentWidget === widget
                 && widget.sessionContext.session?.kernel?.status === 'idle'};
})()"""
_RUN_STATE_JS = """(() => {
  const widget = %(widget)s;
  const code = widget.content.widgets.filter(cell => cell.model.type === 'code');
  const errors = [];
  for (const cell of code) {
    for (let i = 0; i < cell.model.outputs.length; i++) {
      const output = cell.model.outputs.get(i).toJSON();
      if (output.output_type === 'error') errors.push(output.ename + ': ' + output.evalue);
    }
  }
  document.querySelectorAll('.jp-OutputArea-output').forEach(node => {
    if (node.textContent.includes('Javascript Error')) errors.push(node.textContent.trim().slice(0, 200));
  });
  return {cells: code.length, done: code.filter(cell => cell.model.executionCount !== null).length,
          kernel: widget.sessionContext.session.kernel.status, errors: errors};
})()"""
_SET_WIDGET_JS = """(async () => {
  const kernel = (%(widget)s).sessionContext.session.kernel;
  const future = kernel.requestExecute({code: %(code)s, silent: true, store_history: false});
  await future.done;
  return true;
})()"""
_SET_WIDGET_PY = """from ipywidgets.widgets.widget import _instances as __instances
__sliders = [w for w in list(__instances.values()) if getattr(w, "description", None) == %(description)r]
__sliders[-1].value = %(target)s
"""
_OUTPUT_CHARTS_JS = """Array.from(document.querySelectorAll('.widget-output .%(chart_class)s')).map(chart => {
  const canvas = chart.querySelector('canvas.marks'), svg = chart.querySelector('svg.marks');
  return canvas ? canvas.toDataURL() : svg ? svg.outerHTML : '';
})"""
_HINTS_JS = """Array.from(document.querySelectorAll('.widget-label')).filter(label =>
  label.textContent.startsWith('Move a slider') && label.offsetParent !== null).length"""


@dataclass
class LiveRun:
    """One page opened in JupyterLab and run: how it opened, its cells, the errors a reader would see (error
    outputs, "Javascript Error" in an output, uncaught exceptions) and its charts' states."""

    path: str
    opened_as: str
    cells: int = 0
    errors: list[str] = field(default_factory=list)
    charts: list[dict[str, Any]] = field(default_factory=list)
    hints_shown: int = 0  # live controls still saying "Move a slider": none fired by itself

    @property
    def blank_charts(self) -> list[str]:
        return [f"chart {c['index'] + 1} {c['title']!r}" for c in self.charts if not c["painted"]]


def _poll(browser: Browser, expression: str, ready: Callable[[Any], bool], limit_s: float, what: str) -> Any:
    deadline = time.monotonic() + limit_s
    value = None
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if ready(value):
            return value
        time.sleep(0.25)
    raise LabError(f"{what} within {limit_s:g} s (last seen: {value!r})")


def _widget(path: str) -> str:
    return _WIDGET_JS % {"path": json.dumps(path)}


def open_and_run(browser: Browser, base: str, token: str, path: str, *, run_limit_s: float = RUN_ALL_LIMIT_S
                 ) -> LiveRun:
    """Open ``path`` the way a reader does (its URL, as a double-click would), run all its cells and wait for
    every chart to be drawn."""
    browser.take_events()
    # a headless page has no focus, and JupyterLab's current widget (what its commands act on) follows focus
    browser.send("Emulation.setFocusEmulationEnabled", enabled=True)
    browser.send("Page.navigate", url=f"{base}lab/tree/{path}?token={token}")
    document_js = _DOCUMENT_JS % {"widget": _widget(path)}
    document = _poll(browser, document_js, lambda d: bool(d), OPEN_LIMIT_S, f"JupyterLab did not open {path}")
    run = LiveRun(path, document["kind"])
    if run.opened_as != "notebook":
        return run
    _poll(browser, document_js, lambda d: bool(d and d["ready"]), OPEN_LIMIT_S,
          f"{path} did not become the current notebook with an idle kernel")
    browser.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells'), true")
    state = _poll(browser, _RUN_STATE_JS % {"widget": _widget(path)},
                  lambda s: bool(s["errors"]) or (s["done"] == s["cells"] and s["kernel"] == "idle"),
                  run_limit_s, f"Run All of {path} did not finish")
    run.cells, run.errors = state["cells"], list(state["errors"])
    deadline = time.monotonic() + REDRAW_LIMIT_S
    while time.monotonic() < deadline:
        run.charts = chart_states(browser, LAB_CHART_CLASS)
        if all(chart["painted"] for chart in run.charts):
            break
        time.sleep(0.25)
    run.hints_shown = int(browser.evaluate(_HINTS_JS))
    browser.evaluate("1")  # collects the events that arrived meanwhile
    run.errors += [problem for problem in problems_in(browser.take_events()) if "uncaught" in problem]
    return run


def move_live_slider(browser: Browser, path: str, description: str, value: float | None = None, option: int = 0,
                     limit_s: float = REDRAW_LIMIT_S) -> tuple[list[str], list[str]]:
    """Move the live slider labelled ``description`` of the notebook open on ``path`` from the kernel's side (to
    ``value``, or to its ``option``-th option for a selection slider), as dragging it would, and return the charts
    drawn under the live controls before and after (their pixels); waits until they change."""
    charts_js = _OUTPUT_CHARTS_JS % {"chart_class": LAB_CHART_CLASS}
    before = list(browser.evaluate(charts_js))
    target = repr(value) if value is not None else f"__sliders[-1].options[{option!r}]"
    code = _SET_WIDGET_PY % {"description": description, "target": target}
    browser.evaluate(_SET_WIDGET_JS % {"widget": _widget(path), "code": json.dumps(code)})
    after = _poll(browser, charts_js, lambda charts: bool(charts) and all(charts) and charts != before, limit_s,
                  f"no chart under the live controls redrew after {description!r} moved")
    return before, list(after)


def save(browser: Browser, path: str) -> None:
    """Save the notebook open on ``path`` as a reader's Ctrl-S does, and wait until it is clean."""
    widget = _widget(path)
    browser.evaluate(f"({widget}).context.save(), true")
    _poll(browser, f"({widget}).context.model.dirty", lambda dirty: dirty is False, OPEN_LIMIT_S,
          f"{path} was not saved")
