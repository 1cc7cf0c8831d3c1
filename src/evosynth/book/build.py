"""The book build: Jupyter Book renders the executed pages offline, with warnings as errors, and the built book
is checked to load nothing from the network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from evosynth.book.offline import find_network_references, vendor_is_complete
from evosynth.errors import EvosynthError
from evosynth.paths import BOOK_CONFIG


def vendor_dir(book_dir: Path) -> Path:
    """Where set-up puts the book's JavaScript (``html_extra_path: _vendor`` serves it as ``_static/vendor``)."""
    return book_dir / "_vendor" / "_static" / "vendor"


BOOK_BUILD_LIMIT_S = 1200  # the default book builds in about a minute here: twenty is a stuck Sphinx


def build_book(book_dir: Path, config_file: Path = BOOK_CONFIG) -> Path:
    """Build the book from the executed notebooks (warnings are errors) and check it loads nothing remote."""
    if not vendor_is_complete(vendor_dir(book_dir)):
        raise EvosynthError(
            f"the book's JavaScript is missing in {vendor_dir(book_dir)}; run `evosynth vendor-js` (set-up, uses the "
            "npm registry once) or `make study`, which does it"
        )
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jupyter_book), "clean", str(book_dir)], check=True, capture_output=True,
                   timeout=BOOK_BUILD_LIMIT_S)
    try:
        build = subprocess.run(
            [str(jupyter_book), "build", str(book_dir), "--config", str(config_file), "--path-output", str(book_dir),
             "-W", "--keep-going"],
            capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=BOOK_BUILD_LIMIT_S,
        )
    except subprocess.TimeoutExpired as error:
        output = error.stdout or b""
        tail = output.decode(errors="replace") if isinstance(output, bytes) else output
        raise EvosynthError(f"the book did not build within {BOOK_BUILD_LIMIT_S} s (jupyter-book was stopped); "
                            f"its last output:\n{tail[-4000:]}") from error
    if build.returncode != 0:
        log = f"{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
        raise EvosynthError(f"the book did not build (warnings are errors):\n{log}")
    html = book_dir / "_build" / "html"
    remote = find_network_references(html)
    if remote:
        raise EvosynthError("the built book loads resources from the network:\n" + "\n".join(remote))
    return html / "index.html"
