"""Offline rendering for the study book: vendored JavaScript, an Altair renderer and a network check.

The book has to render with no network at all, so nothing may come from a CDN: Altair charts, ipywidgets
and MathJax all default to one. ``fetch_vendor_js`` copies the JavaScript they need from the npm registry
once, at install time; the book serves it as local files. ``enable_offline_altair`` makes notebooks emit charts
that every notebook frontend draws with its own Vega, ``add_book_embeds`` gives the executed copies the book
renders a script that draws them with the local bundle, and ``find_network_references`` proves a built book loads
nothing remote.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatch
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, Final

RENDERER_NAME: Final = "evosynth_offline"
"""Name under which ``enable_offline_altair`` registers the Altair renderer."""

VEGA_BUNDLE: Final = "vega-bundle.js"
"""File name, inside the vendor folder, of the Vega + Vega-Lite + vega-embed bundle."""

MARKER: Final = "VENDOR.json"
"""Written last by ``fetch_vendor_js``: the versions in the folder, so a complete folder is not refetched."""

# JupyterLab 4.6.6 ships only a Vega 5 renderer (vega-lite 5.6.1) for Vega-Lite v3-v5 mime types, so the
# Vega-Lite 6 spec that Altair 6 writes is offered under the v5 type; vega-lite 5.6 compiles it.
VEGALITE_MIME: Final = "application/vnd.vegalite.v5+json"
BOOK_MIME: Final = "application/javascript"  # what MyST-NB renders first in HTML: the book's embed of a chart

CHART_CLASS: Final = "evosynth-chart"
"""Class of every chart's container in the built book (what the browser check looks for)."""

_TEXT_REPR: Final = "<Altair chart: drawn by JupyterLab's Vega extension or the book's local Vega bundle>"

# Runs where the book places it (MyST-NB writes application/javascript as an inline <script>): it puts a
# <div> before itself and draws the chart there with the page-wide vegaEmbed from the local bundle.
_EMBED_JS: Final = """(function () {
  var target = document.createElement("div");
  target.className = "%(chart_class)s";
  document.currentScript.before(target);
  if (typeof window.vegaEmbed !== "function") {
    target.textContent = "This chart needs the book's local Vega bundle (%(bundle)s), which is not loaded.";
    return;
  }
  window.vegaEmbed(target, %(spec)s, %(options)s).catch(function (error) {
    target.textContent = "The chart failed to render: " + error;
  });
})();
"""


@dataclass(frozen=True)
class _NpmAsset:
    """Files to take from one npm package: those under ``source`` (inside the tarball's ``package/``)
    whose relative path matches one of ``patterns``, copied to ``target`` inside the vendor folder."""

    spec: str
    source: str
    patterns: tuple[str, ...]
    target: str


_NPM_ASSETS: Final = (
    _NpmAsset("requirejs@2.3.8", "", ("require.js",), "requirejs"),
    # embed-amd.js carries the widget CSS itself; the fonts are Font Awesome's (icons), in the formats
    # current browsers use (the .eot/.svg copies only serve old IE/iOS).
    _NpmAsset(
        "@jupyter-widgets/html-manager@1.0.6",
        "dist/",
        ("embed-amd.js", "*.woff2", "*.woff", "*.ttf"),
        "html-manager",
    ),
    _NpmAsset("@jupyter-widgets/html-manager@1.0.6", "", ("LICENSE",), "html-manager"),
    # tex-mml-chtml plus what it loads on demand: TeX extensions (autoload), CHTML fonts, the menu and
    # the accessibility/speech components the menu can switch on.
    _NpmAsset(
        "mathjax@3.2.2",
        "es5/",
        (
            "tex-mml-chtml.js",
            "input/*",
            "output/chtml.js",
            "output/chtml/*",
            "a11y/*",
            "sre/*",
            "ui/*",
            "adaptors/*",
        ),
        "mathjax",
    ),
    _NpmAsset("mathjax@3.2.2", "", ("LICENSE",), "mathjax"),
)

WIDGET_SUPPORT: Final = "html-manager/widget-support.js"
"""The book's own script between require.js and embed-amd.js (``_config.yml``: ``nb_ipywidgets_js``)."""

# @jupyter-widgets/html-manager 1.0.6 takes two things from the page that the book does differently: its modules
# load their fonts from beside their AMD names ("@jupyter-widgets/controls", ".../dist/libembed-amd"), which
# require.js resolves against the page's folder (the fonts are in the vendor folder), and it typesets widget labels
# with MathJax 2's MathJax.Hub.Queue while the book loads MathJax 3 (an uncaught TypeError on every widget page).
_WIDGET_SUPPORT_JS: Final = """// Written by evosynth.book.offline.fetch_vendor_js for embed-amd.js (html-manager 1.0.6)
(function () {
  var folder = document.currentScript.src.replace(/[?#].*$/, "").replace(/\\/[^\\/]*$/, "");
  var paths = {"@jupyter-widgets/html-manager/dist": folder};  // each module finds the fonts beside its name
  ["base", "controls", "html-manager"].forEach(function (name) {
    paths["@jupyter-widgets/" + name] = folder + "/" + name;
  });
  require.config({paths: paths});

  function typesetLater(command) {  // MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]) in MathJax 3
    var mathjax = window.MathJax, ready = mathjax && mathjax.startup && mathjax.startup.promise;
    return ready ? ready.then(function () { return mathjax.typesetPromise([command[2]]); }) : undefined;
  }
  function attach(mathjax) {
    if (mathjax && typeof mathjax === "object" && !mathjax.Hub) mathjax.Hub = {Queue: typesetLater};
  }
  var current = window.MathJax;  // the configuration object until MathJax 3 replaces it with itself
  attach(current);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = value; attach(value); }
  });
})();
"""

_LOADING_LINK_RELS: Final = frozenset({"stylesheet", "preload", "modulepreload", "icon", "manifest"})
_REMOTE_URL: Final = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL: Final = re.compile(r"""(?:@import\s+(?:url\()?|url\()\s*["']?([^"')\s;]+)""", re.IGNORECASE)


def fetch_vendor_js(dest: Path) -> None:
    """Place in ``dest`` every JavaScript file (and font) the book loads, so that it needs no CDN.

    An install-time step: it runs ``npm pack`` (the npm registry) and ``vl_convert``; the book build only
    copies the result. ``dest`` then holds ``requirejs/require.js``, ``html-manager/embed-amd.js``,
    ``mathjax/tex-mml-chtml.js`` (with its component tree), ``vega-bundle.js`` and the book's own
    ``html-manager/widget-support.js``. It does nothing if
    ``dest`` is already complete for these versions; it refuses to replace a folder it did not write.
    """
    if vendor_is_complete(dest):
        return
    expected = _expected_versions()
    if dest.exists() and not (dest / MARKER).is_file() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty and was not written by fetch_vendor_js")
    if shutil.which("npm") is None:
        raise RuntimeError("fetch_vendor_js needs npm (Debian: apt-get install npm)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Build beside dest and move it in at the end, so an interrupted fetch never looks complete.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        staging = Path(tmp) / "vendor"
        staging.mkdir()
        integrity: dict[str, str] = {}
        for spec in dict.fromkeys(asset.spec for asset in _NPM_ASSETS):
            tarball, integrity[spec] = _npm_pack(spec, Path(tmp))
            for asset in _NPM_ASSETS:
                if asset.spec == spec:
                    _extract(tarball, asset, staging / asset.target)
        (staging / VEGA_BUNDLE).write_text(_vega_bundle(), encoding="utf-8")
        (staging / WIDGET_SUPPORT).write_text(_WIDGET_SUPPORT_JS, encoding="utf-8")
        (staging / MARKER).write_text(json.dumps({"versions": expected, "integrity": integrity}, indent=2))
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)


def vendor_is_complete(dest: Path) -> bool:
    """True when ``dest`` holds what ``fetch_vendor_js`` writes, for the versions this code expects."""
    marker = dest / MARKER
    return marker.is_file() and json.loads(marker.read_text())["versions"] == _expected_versions()


def enable_offline_altair() -> None:
    """Register and enable the Altair renderer of the study: every chart is sent as Vega-Lite only, and whatever
    shows the notebook draws it with a renderer of its own, offline.

    One decision, made where each frontend's ranking cannot get in its way. A notebook output holds one mime bundle
    and each frontend picks the bundle's entry it ranks first: JupyterLab 4.6 ranks ``application/javascript`` 0
    (its JavaScript extension), ``text/html`` 50 and its Vega extension's Vega-Lite types 57, so a chart that also
    carries a script or HTML is drawn by that copy, which in JupyterLab cannot reach the book's local bundle
    ("Cannot read properties of null"). With Vega-Lite alone, JupyterLab (and Notebook 7, VS Code) draw the chart
    with the Vega they ship, with no network and no trust needed. The static book has no Vega-Lite renderer
    (MyST-NB does not know the type): after a notebook is executed for the book, ``add_book_embeds`` puts beside
    each chart the ``application/javascript`` that MyST-NB ranks first for HTML (priority 20, before text/html's
    30), an inline script that draws the chart with the page's ``vegaEmbed`` from the locally served bundle. The
    book's Sphinx config adds ``mystnb.unknown_mime_type`` to ``suppress_warnings``: MyST-NB warns about the
    Vega-Lite type even though it never selects it.
    """
    import altair as alt  # the study extra; kept local so the network check works without it

    alt.renderers.register(RENDERER_NAME, _render_chart)
    alt.renderers.enable(RENDERER_NAME)
    # The alpha-slider charts carry their whole precomputed grid (a few thousand rows) so that they work without
    # a kernel; Altair's default 5,000-row guard would refuse them.
    alt.data_transformers.disable_max_rows()


def add_book_embeds(notebook: Any) -> int:
    """Give every chart of an executed notebook (an ``nbformat`` node) the script that draws it in the static book
    (see ``enable_offline_altair``); returns how many charts got one. Outputs that have a script keep it."""
    added = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if VEGALITE_MIME in data and BOOK_MIME not in data:
                options = output.get("metadata", {}).get(VEGALITE_MIME, {}).get("embed_options", {})
                data[BOOK_MIME] = _embed_script(data[VEGALITE_MIME], options)
                added += 1
    return added


def find_network_references(html_dir: Path) -> list[str]:
    """List every resource a built book would load from the network: remote scripts, stylesheets,
    preloads, icons, images and frames in the ``.html`` pages, and remote ``url()``/``@import`` in ``.css``.

    Returns readable problems (file, tag, URL); an empty list means the book renders offline.
    """
    problems: list[str] = []
    for page in sorted(html_dir.rglob("*.html")):
        collector = _ResourceCollector()
        collector.feed(page.read_text(encoding="utf-8", errors="replace"))
        remote = [(what, url) for what, url in collector.resources if _REMOTE_URL.match(url)]
        problems += [f"{page.relative_to(html_dir)}: {what} {url}" for what, url in remote]
    for sheet in sorted(html_dir.rglob("*.css")):
        problems += [
            f"{sheet.relative_to(html_dir)}: css url {url}"
            for url in _CSS_URL.findall(sheet.read_text(encoding="utf-8", errors="replace"))
            if _REMOTE_URL.match(url)
        ]
    return problems


def _render_chart(spec: dict[str, Any], **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Altair renderer: the chart as Vega-Lite (see ``enable_offline_altair``), its embed options as metadata."""
    embed_options: dict[str, Any] = options.get("embed_options") or {}
    display_metadata = {VEGALITE_MIME: {"embed_options": embed_options}} if embed_options else {}
    return {VEGALITE_MIME: spec, "text/plain": _TEXT_REPR}, display_metadata


def _embed_script(spec: dict[str, Any], embed_options: dict[str, Any]) -> str:
    return _EMBED_JS % {
        "bundle": VEGA_BUNDLE,
        "chart_class": CHART_CLASS,
        "spec": _script_json(spec),
        "options": _script_json({"mode": "vega-lite", **embed_options}),
    }


def _script_json(value: Any) -> str:
    """JSON that is safe inside an inline ``<script>`` (no ``</script>`` or ``<!--`` can appear)."""
    return json.dumps(value).replace("<", "\\u003c")


def _vl_version() -> str:
    """The Vega-Lite version Altair writes, as ``vMAJOR.MINOR`` (the form ``vl_convert`` takes)."""
    import altair as alt

    return ".".join(alt.SCHEMA_VERSION.split(".")[:2])


def _expected_versions() -> dict[str, str]:
    """What a complete vendor folder holds; stored in the marker file."""
    versions = {spec.rsplit("@", 1)[0]: spec.rsplit("@", 1)[1] for spec in (a.spec for a in _NPM_ASSETS)}
    widget_support = hashlib.sha256(_WIDGET_SUPPORT_JS.encode()).hexdigest()[:16]
    return versions | {"vl-convert-python": metadata.version("vl-convert-python"), "vega-lite": _vl_version(),
                       "widget-support": widget_support}


def _vega_bundle() -> str:
    """vl-convert's Vega/Vega-Lite/vega-embed bundle, in an IIFE.

    The bundle sets ``window.vegaEmbed``; unwrapped, its top-level declarations become page globals and
    clash with Sphinx's own scripts (``_`` from doctools.js).
    """
    import vl_convert

    bundle = vl_convert.javascript_bundle("window.vegaEmbed = vegaEmbed;", vl_version=_vl_version())
    return "(function () {\n" + bundle + "\n})();\n"


NPM_PACK_LIMIT_S = 300  # one tarball of a few MB from the registry: seconds; minutes means the network is stuck


def _npm_pack(spec: str, workdir: Path) -> tuple[Path, str]:
    """Download one package tarball from the npm registry; return its path and npm's integrity hash."""
    result = subprocess.run(
        ["npm", "pack", spec, "--json", "--loglevel=error", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=NPM_PACK_LIMIT_S,
    )
    (info,) = json.loads(result.stdout)
    return workdir / info["filename"], info["integrity"]


def _extract(tarball: Path, asset: _NpmAsset, target: Path) -> None:
    """Copy the files of ``asset`` out of an npm tarball; fail if a pattern matches nothing."""
    prefix = f"package/{asset.source}"
    unmatched = set(asset.patterns)
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            relative = member.name.removeprefix(prefix)
            if not member.isfile() or relative == member.name or ".." in PurePosixPath(relative).parts:
                continue
            matched = {pattern for pattern in asset.patterns if fnmatch(relative, pattern)}
            if matched:
                unmatched -= matched
                out = target / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None  # a regular file always has contents
                out.write_bytes(source.read())
    if unmatched:
        raise FileNotFoundError(f"{asset.spec}: nothing in the package matches {sorted(unmatched)}")


class _ResourceCollector(HTMLParser):
    """Collects (what, url) for every tag in a page that makes the browser fetch something."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.resources: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "link" and _LOADING_LINK_RELS & set(values.get("rel", "").lower().split()):
            self.resources.append((f"<link rel={values['rel']!r}>", values.get("href", "")))
        elif tag in {"script", "img", "iframe", "source", "audio", "video"} and values.get("src"):
            self.resources.append((f"<{tag} src>", values["src"]))
