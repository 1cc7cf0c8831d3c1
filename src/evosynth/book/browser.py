"""The built book read as a reader's browser reads it: headless Chromium, network cut off, over the DevTools protocol.

``read_book`` loads every page of a built book from a server on the loopback interface and reports, per page, what
a reader would see go wrong: console errors, uncaught exceptions, resources that failed to load, and chart
containers that stayed blank. ``move_slider`` drags an Altair slider with real mouse events and says whether the
chart redrew. Chromium comes from the system's packages (Debian: ``apt-get install chromium``); nothing is
downloaded, and every wait has a limit.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evosynth.errors import EvosynthError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = ("install Chromium from the system's packages (Debian: `apt-get install chromium`; `make test` does "
                "it where it runs as root)")
# Headless, with nothing but the loopback interface: every other host resolves to nothing and goes to a dead proxy,
# so a page that loads a resource from the network logs an error instead of fetching it.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--disable-extensions",
    "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,2000", "--remote-debugging-port=0",
)
START_LIMIT_S = 30  # Chromium opens its DevTools port in about a second here
STOP_LIMIT_S = 10
COMMAND_LIMIT_S = 30  # one DevTools command
PAGE_LIMIT_S = 60  # one page: loaded and every chart painted (a few seconds here)
REDRAW_LIMIT_S = 10  # a chart redraws within milliseconds of its slider
# Sphinx's own, with nothing of the study's, and Jupyter Book's index.html, a redirect to the first page
SKIPPED_PAGES = ("genindex.html", "search.html", "index.html")

# The charts of the book are the containers the offline Altair renderer creates (``offline.CHART_CLASS``); a
# container is painted when vega-embed put a canvas with something drawn on it, or an SVG with marks, inside it.
_CHART_STATE_JS = """(() => Array.from(document.querySelectorAll('.%(chart_class)s')).map((chart, index) => {
  const failed = chart.textContent.startsWith('The chart') ? chart.textContent : null;
  const svg = chart.querySelector('svg.marks');
  const canvas = chart.querySelector('canvas.marks');
  let painted = false, signature = '';
  if (svg) { painted = svg.querySelectorAll('path, rect, line, text, image, circle').length > 0;
             signature = svg.outerHTML; }
  if (canvas && canvas.width > 0 && canvas.height > 0) {
    signature = canvas.toDataURL();
    try {
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 3; i < pixels.length && !painted; i += 4) painted = pixels[i] !== 0;
    } catch (error) { painted = true; }  // a tainted canvas has been drawn on
  }
  const title = (chart.getAttribute('aria-label') || chart.querySelector('[aria-label]')?.getAttribute('aria-label')
                 || '').slice(0, 80);
  const drawn = chart.querySelector('svg.marks, canvas.marks');
  return {index, failed, painted, signature, title,
          sliders: chart.querySelectorAll('input[type=range]').length,
          width: drawn ? Math.round(drawn.getBoundingClientRect().width) : 0};
}))()"""
# The text column of a page (sphinx-book-theme's article) and the page's length, at the window's width.
_LAYOUT_JS = """(() => {
  const column = document.querySelector('article.bd-article') || document.querySelector('main');
  return {column: column ? Math.round(column.getBoundingClientRect().width) : 0,
          height: Math.round(document.documentElement.scrollHeight)};
})()"""
CHART_OVERHANG_PX = 8  # a chart may pass the text column by this much (its padding) before a reader scrolls
PAGE_LENGTH_LIMIT_PX = 6000  # at the window's 1280-px width: a page a reader takes in, its details folded away


@dataclass
class PageReport:
    """What one page showed its reader."""

    page: str
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    charts: int = 0
    blank_charts: list[str] = field(default_factory=list)  # charts with nothing drawn, or that failed to render
    wide_charts: list[str] = field(default_factory=list)  # charts wider than the text column
    column_px: int = 0  # the text column's width
    height_px: int = 0  # the page's length

    @property
    def problems(self) -> list[str]:
        too_long = ([f"the page is {self.height_px} px long (more than {PAGE_LENGTH_LIMIT_PX})"]
                    if self.height_px > PAGE_LENGTH_LIMIT_PX else [])
        return [*self.errors, *(f"blank chart: {chart}" for chart in self.blank_charts),
                *(f"chart wider than the {self.column_px}-px text column: {chart}" for chart in self.wide_charts),
                *too_long]


def stop_process_group(process: subprocess.Popen[Any], limit_s: float) -> bool:
    """End a process started in its own session, with everything it started: TERM to its group, then KILL, each
    waited for up to ``limit_s``. Returns whether it ended."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal_number)
        try:
            process.wait(timeout=limit_s)
            return True
        except subprocess.TimeoutExpired:
            continue
    return False


class BrowserError(EvosynthError):
    """Chromium is missing, did not start, or did not answer within its limit."""


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError(f"no Chromium on this machine ({', '.join(CHROMIUM_NAMES)} not found): {INSTALL_HINT}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on the loopback interface for as long as the block runs; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join(timeout=10)


class Browser:
    """One headless Chromium with a fresh profile and one tab, driven over the DevTools protocol."""

    def __init__(self) -> None:
        import websocket  # websocket-client: the DevTools protocol is JSON over one WebSocket

        self._profile = tempfile.TemporaryDirectory(prefix="evosynth-chromium-", ignore_cleanup_errors=True)
        self._process = subprocess.Popen(
            [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port = self._devtools_port()
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy from the env
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=COMMAND_LIMIT_S) as response:
                targets = json.load(response)
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            self._socket = websocket.create_connection(url, timeout=COMMAND_LIMIT_S, suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def _devtools_port(self) -> int:
        """The port Chromium chose, from the file it writes into its profile once it listens."""
        marker = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + START_LIMIT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserError(f"Chromium exited with code {self._process.returncode} before it listened")
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.1)
        raise BrowserError(f"Chromium did not open its DevTools port within {START_LIMIT_S} s")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; events that arrive meanwhile are kept for ``take_events``."""
        self._next_id += 1
        command_id = self._next_id
        self._socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_LIMIT_S
        while time.monotonic() < deadline:
            message = json.loads(self._socket.recv())
            if message.get("id") == command_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message', message['error'])}")
                return dict(message.get("result", {}))
            if "method" in message:
                self._events.append(message)
        raise BrowserError(f"Chromium did not answer {method} within {COMMAND_LIMIT_S} s")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluating in the page failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def take_events(self) -> list[dict[str, Any]]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        socket = getattr(self, "_socket", None)
        if socket is not None:
            socket.close()
        # Chromium runs as a group of processes (renderers, GPU, network): end them all before the profile goes
        stop_process_group(self._process, STOP_LIMIT_S)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def problems_in(events: list[dict[str, Any]]) -> list[str]:
    """The events of a page load that a reader would see in the console as errors."""
    problems = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            problems.append(f"uncaught exception: {text.splitlines()[0] if text else details}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            problems.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                          for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            problems.append(f"console ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".rstrip())
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(f"failed to load: {params.get('errorText')} (request {params.get('requestId')})")
    return list(dict.fromkeys(problems))


def chart_states(browser: Browser, chart_class: str) -> list[dict[str, Any]]:
    return list(browser.evaluate(_CHART_STATE_JS % {"chart_class": chart_class}) or [])


def open_page(browser: Browser, url: str, chart_class: str, limit_s: float = PAGE_LIMIT_S) -> PageReport:
    """Load ``url`` and wait, up to ``limit_s``, for it to finish loading and for every chart to be painted."""
    browser.take_events()
    browser.send("Page.navigate", url=url)
    deadline = time.monotonic() + limit_s
    loaded = False
    states: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        loaded = loaded or browser.evaluate("document.readyState") == "complete"
        states = chart_states(browser, chart_class) if loaded else []
        if loaded and all(state["painted"] or state["failed"] for state in states):
            break
        time.sleep(0.25)
    time.sleep(0.5)  # late console messages (fonts, deferred scripts)
    browser.evaluate("1")  # collects the events that arrived meanwhile
    report = PageReport(url, problems_in(browser.take_events()), len(states))
    if not loaded:
        report.errors.append(f"the page did not finish loading within {limit_s:g} s")
    report.blank_charts = [f"chart {s['index'] + 1} {s['title']!r}: {s['failed'] or 'nothing drawn'}"
                           for s in states if s["failed"] or not s["painted"]]
    layout = browser.evaluate(_LAYOUT_JS) or {"column": 0, "height": 0}
    report.column_px, report.height_px = int(layout["column"]), int(layout["height"])
    report.wide_charts = [f"chart {s['index'] + 1} {s['title']!r}: {s['width']} px" for s in states
                          if report.column_px and s["width"] > report.column_px + CHART_OVERHANG_PX]
    return report


def book_pages(html_dir: Path) -> list[Path]:
    """Every page of a built book that the study wrote (Sphinx's index and search pages left out)."""
    return sorted(path for path in html_dir.rglob("*.html") if path.name not in SKIPPED_PAGES
                  and not {"_static", "_sources"} & set(path.relative_to(html_dir).parts))


def read_book(html_dir: Path, chart_class: str, page_limit_s: float = PAGE_LIMIT_S) -> list[PageReport]:
    """Open every page of the built book at ``html_dir`` in one headless Chromium, network cut off."""
    pages = book_pages(html_dir)
    if not pages:
        raise BrowserError(f"{html_dir} holds no built page; build the book first (`evosynth study`)")
    with serve(html_dir) as base, Browser() as browser:
        return [open_page(browser, base + page.relative_to(html_dir).as_posix(), chart_class, page_limit_s)
                for page in pages]


@dataclass(frozen=True)
class SliderMove:
    """A slider moved by a click on its track: its value before and after, and whether its chart redrew."""

    before: str
    after: str
    redrawn: bool


def move_slider(html_dir: Path, page: str, chart_class: str, chart_index: int | None = None,
                redraw_limit_s: float = REDRAW_LIMIT_S) -> SliderMove:
    """Click the track of the first range slider of a chart on the built book's ``page`` (the chart
    ``chart_index``, or the first chart that has one) with real mouse events, and compare the chart's pixels
    before and after."""
    with serve(html_dir) as base, Browser() as browser:
        report = open_page(browser, base + page, chart_class)
        if report.problems:
            raise BrowserError(f"{page} did not render cleanly: {report.problems}")
        states = chart_states(browser, chart_class)
        with_sliders = [s["index"] for s in states if s["sliders"]]
        if not with_sliders:
            raise BrowserError(f"{page} has no chart with a slider")
        index = with_sliders[0] if chart_index is None else chart_index
        slider = f"document.querySelectorAll('.{chart_class}')[{index}].querySelector('input[type=range]')"
        box = browser.evaluate(f"""(() => {{ const s = {slider}; s.scrollIntoView({{block: 'center'}});
            const r = s.getBoundingClientRect();
            return {{x: r.left, y: r.top + r.height / 2, width: r.width, value: s.value,
                     share: (s.value - s.min) / (s.max - s.min)}}; }})()""")
        before = states[index]["signature"]
        share = 0.1 if box["share"] > 0.5 else 0.9  # far from where the thumb is
        x, y = box["x"] + share * box["width"], box["y"]
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            browser.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        deadline = time.monotonic() + redraw_limit_s
        after = before
        while time.monotonic() < deadline and after == before:
            time.sleep(0.25)
            after = chart_states(browser, chart_class)[index]["signature"]
        value = browser.evaluate(f"{slider}.value")
        return SliderMove(str(box["value"]), str(value), after != before)
