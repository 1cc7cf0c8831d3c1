"""Downloads happen only on the explicit command, are checked, and never leave half a data set."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import PHOTOS
from evosynth import cli
from evosynth.errors import DataSetError
from evosynth.task import download
from evosynth.task.download import PENNFUDAN, Archive
from evosynth.task.pennfudan import read_pennfudan

# --------------------------------------------------------------------------------------------------- download


def zipped(folder: Path, archive: Path) -> str:
    """The folder as a zip archive, as the official one is laid out (the folder at the top); its file:// URL."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, path.relative_to(folder.parent).as_posix())
    return archive.as_uri()


@pytest.fixture
def fake_archive(pennfudan_root: Path, tmp_path: Path) -> Archive:
    """PENNFUDAN's archive, but the fake folder served from a file:// URL and its own reference digest."""
    first = pennfudan_root / "PNGImages" / "FakePed00000.png"
    return replace(PENNFUDAN, url=zipped(pennfudan_root, tmp_path / "PennFudanPed.zip"),
                   digests={"PNGImages/FakePed00000.png": download._sha256(first)},
                   counts={"PNGImages/*.png": len(PHOTOS), "Annotation/*.txt": len(PHOTOS)})


def test_download_unpacks_checks_and_moves_into_place(fake_archive: Archive, pennfudan_root: Path,
                                                      tmp_path: Path) -> None:
    destination = tmp_path / "data" / "pennfudan" / "PennFudanPed"
    assert download.download(fake_archive, destination) == destination
    for original in pennfudan_root.rglob("*.*"):
        assert (destination / original.relative_to(pennfudan_root)).read_bytes() == original.read_bytes()
    assert [p.name for p in destination.parent.iterdir()] == ["PennFudanPed"]  # no temporary folder left
    assert len(read_pennfudan(destination)) == len(PHOTOS)
    with pytest.raises(DataSetError, match="already exists"):
        download.download(fake_archive, destination)


@pytest.mark.parametrize("check", ["digest", "count"])
def test_download_refuses_a_wrong_archive_and_leaves_nothing(fake_archive: Archive, tmp_path: Path,
                                                             check: str) -> None:
    wrong = (replace(fake_archive, digests={"PNGImages/FakePed00000.png": "0" * 64}) if check == "digest"
             else replace(fake_archive, counts={"PNGImages/*.png": 170}))
    destination = tmp_path / "data" / "PennFudanPed"
    message = "SHA-256 [0-9a-f]{64} instead of 0{64}; refused" if check == "digest" else "12 files instead of 170"
    with pytest.raises(DataSetError, match=message):
        download.download(wrong, destination)
    assert list(destination.parent.iterdir()) == []
    with pytest.raises(DataSetError, match="download failed"):
        download.download(replace(fake_archive, url=(tmp_path / "absent.zip").as_uri()), destination)
    assert list(destination.parent.iterdir()) == []


def test_cli_downloads_only_on_the_explicit_command(fake_archive: Archive, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    destination = tmp_path / "PennFudanPed"
    monkeypatch.setitem(download.ARCHIVES, "pennfudan", replace(fake_archive, counts={"PNGImages/*.png": 170}))
    assert cli.main(["data", "download", "pennfudan", "--to", str(destination)]) == 2
    assert "12 files instead of 170" in capsys.readouterr().err and not destination.exists()
    monkeypatch.setitem(download.ARCHIVES, "pennfudan", fake_archive)
    assert cli.main(["data", "download", "pennfudan", "--to", str(destination)]) == 0
    assert f"--data pennfudan --data-dir {destination}" in capsys.readouterr().out
    assert len(list((destination / "Annotation").glob("*.txt"))) == len(PHOTOS)
