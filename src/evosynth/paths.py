"""Where things are by default, said once: the command line, the library's defaults and the pages read these.

Run folders and the data cache are relative to the working directory (the command line's, or the checkout's where
the study's batch and JupyterLab run the pages); the pages, the book and the sweep files are the checkout's (the
study runs from an editable install).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNS_DIR = Path("runs")  # run folders, <runs>/<run name>, and what is computed beside them
DATA_DIR = Path("data")  # data sets that `evosynth data download` puts in place
CACHE_DIR = DATA_DIR / "cache"  # data sets cached, generated or decoded
NOTEBOOKS = REPO_ROOT / "notebooks"  # the pages, MyST Markdown
BOOK_DIR = REPO_ROOT / "book"  # the book's source folder, its executed pages in generated/
BOOK_CONFIG = REPO_ROOT / "_config.yml"
SWEEPS_DIR = REPO_ROOT / "sweeps"  # sweep files


def in_checkout(path: str | Path) -> Path:
    """A page's path parameter: a relative one is the checkout's, where the batch and JupyterLab run the pages."""
    return REPO_ROOT / path
