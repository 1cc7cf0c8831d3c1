"""Downloading a real data set, only when asked (``evosynth data download NAME``): never at import, never by default.

The archive itself has no pinned SHA-256: it could not be computed where this was written (no network), and a
server may re-zip the same files. What is checked instead is the content after unpacking: the SHA-256 of
reference files and how many images and annotations there are. The archive is fetched and unpacked in a
temporary folder next to the destination, and only a folder that passes the check is renamed into place (an
atomic rename on the same file system), so the destination never holds half a data set; the temporary folder is
deleted whatever happens.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from evosynth.errors import DataSetError
from evosynth.paths import DATA_DIR

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """A zip archive of a data set, and what the folder it unpacks to must hold to be accepted."""

    url: str
    folder: str  # the folder the archive unpacks to
    destination: Path  # where it goes unless told otherwise
    digests: dict[str, str]  # SHA-256 (hex) of files inside the folder, by relative path
    counts: dict[str, int]  # how many files each glob pattern must match inside the folder


PENNFUDAN = Archive(
    url="https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
    folder="PennFudanPed",
    destination=DATA_DIR / "pennfudan" / "PennFudanPed",
    digests={"PNGImages/FudanPed00001.png": "130e9f9121b88ab69105f1685ce17625e97d0ef590adb9b9f076f62fc08b3343"},
    counts={"PNGImages/*.png": 170, "Annotation/*.txt": 170},
)
ARCHIVES: dict[str, Archive] = {"pennfudan": PENNFUDAN}


def _fetch(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="downloading", leave=False) as progress:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    progress.update(len(chunk))
    except (urllib.error.URLError, OSError) as error:
        raise DataSetError(f"{url}: download failed ({error})") from error


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(folder: Path, archive: Archive) -> None:
    """Raise DataSetError unless ``folder`` holds the archive's reference files and file counts."""
    if not folder.is_dir():
        raise DataSetError(f"{archive.url}: the archive holds no folder {archive.folder!r}")
    for pattern, expected in archive.counts.items():
        found = sum(1 for _ in folder.glob(pattern))
        if found != expected:
            raise DataSetError(f"{archive.url}: {archive.folder}/{pattern} matches {found} files instead of "
                               f"{expected}; refused")
    for name, expected_digest in archive.digests.items():
        path = folder / name
        actual = _sha256(path) if path.is_file() else "missing"
        if actual != expected_digest:
            raise DataSetError(f"{archive.url}: {archive.folder}/{name} has SHA-256 {actual} instead of "
                               f"{expected_digest}; refused")


def download(archive: Archive, destination: Path | None = None) -> Path:
    """Fetch, unpack and check the archive, then rename its folder to ``destination``; returns that path."""
    destination = Path(destination or archive.destination)
    if destination.exists():
        raise DataSetError(f"{destination} already exists: use it (--data-dir {destination}) or delete it to "
                           "download again")
    destination.parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".download", dir=destination.parent))
    try:
        bundle = workspace / "archive.zip"
        _fetch(archive.url, bundle)
        unpacked = workspace / "unpacked"
        try:
            with zipfile.ZipFile(bundle) as opened:
                opened.extractall(unpacked)  # drops absolute paths and '..' from member names
        except zipfile.BadZipFile as error:
            raise DataSetError(f"{archive.url}: not a zip archive ({error})") from error
        verify(unpacked / archive.folder, archive)
        os.rename(unpacked / archive.folder, destination)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return destination
