"""Files that stay whole: atomic writes, and folder locks that clear what a killed writer left behind.

A crash leaves either the old file or the new one, never half of one; the half-written temporary it may leave is
removed by the next process that takes the folder's lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evosynth.errors import CheckpointError, FolderLockedError

LOCK_FILE = ".lock"
_TEMPORARY_SUFFIX = ".tmp"


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Let ``write`` fill a temporary sibling of ``path``, flush it to disk, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMPORARY_SUFFIX, dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes the file private; results and caches are meant to be read
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _remove_stale_temporaries(folder: Path) -> None:
    for path in folder.rglob(f".*{_TEMPORARY_SUFFIX}"):
        path.unlink(missing_ok=True)


@contextmanager
def exclusive(folder: Path, *, wait: bool, advice: str = "") -> Iterator[None]:
    """Hold ``folder``'s write lock, then clear temporaries that a killed writer left in it.

    The lock is ``flock`` on ``folder/.lock``: the kernel drops it when its holder exits or is killed, so a crash
    never leaves a stale lock. Without ``wait`` a locked folder raises FolderLockedError (naming the holder's pid
    and command, plus ``advice``); with it the caller waits its turn.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise FolderLockedError(
                    f"{folder} is being written by {holder}; {advice or 'wait for it to finish'} "
                    "(the lock is released automatically when that process ends)"
                ) from None
            print(f"waiting for {holder} to finish writing {folder}", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} ({' '.join(sys.argv)[:200]})\n")
            handle.flush()
            _remove_stale_temporaries(folder)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as sorted, indented JSON, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def read_json(path: Path) -> Any:
    """Read a JSON file; a missing or corrupt one is a ``CheckpointError`` naming it."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); delete it to redo this step") from error
