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
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evosynth.errors import EvosynthError

JUPYTEXT_NOTEBOOK = "Jupytext Notebook"  # the document widget jupytext's JupyterLab extension registers
# JupyterLab reads these over its defaults from <environment>/share/jupyter/lab/settings/overrides.json
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # a page double-clicked, or opened from its URL, opens as a notebook (Markdown files here are all pages)
    "@jupyterlab/docmanager-extension:plugin": {
        "defaultViewers": {"markdown": JUPYTEXT_NOTEBOOK, "myst": JUPYTEXT_NOTEBOOK},
    },
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


def lab_command(root_dir: Path, port: int, token: str, *, open_browser: bool = True,
                expose_app: bool = False) -> list[str]:
    """The ``jupyter lab`` command line for the pages in ``root_dir`` on 127.0.0.1:``port``. ``expose_app`` makes
    the application reachable from the page's scripts (``window.jupyterapp``), for the browser test."""
    jupyter = Path(sys.executable).with_name("jupyter")
    command = [str(jupyter), "lab", f"--ServerApp.root_dir={root_dir}", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.open_browser={open_browser}"]
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
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal_number)
        try:
            process.wait(timeout=STOP_LIMIT_S)
            return
        except subprocess.TimeoutExpired:
            continue
    raise LabError(f"JupyterLab (pid {process.pid}) did not stop")


@contextlib.contextmanager
def running_lab(root_dir: Path, log: Path, *, start_limit_s: float = START_LIMIT_S) -> Iterator[tuple[str, str]]:
    """JupyterLab on the pages in ``root_dir``, on a free loopback port, for as long as the block runs: yields
    its base URL and token. Its output goes to ``log``; it is stopped by process group, kernels included."""
    write_lab_settings()
    port, token = free_port(), secrets.token_hex(16)
    with log.open("wb") as output:
        process = subprocess.Popen(lab_command(root_dir, port, token, open_browser=False, expose_app=True),
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
    return subprocess.call(lab_command(root_dir, port, token, open_browser=False))
