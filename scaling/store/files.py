"""Writing files so that readers never see half of one, and locks shared by the processes of a machine."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout


def atomic_write(path: Path, write: Callable, binary: bool = False) -> None:
    """``write(file)`` into a temporary file in the same folder, then rename it to ``path``:
    readers never see half a file, and a kill mid-write leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; results are for everyone who reads
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once, at import: setting and restoring it later would race with threads writing files
UMASK = _umask()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path):
    """A JSON file's content, or None when it is missing or torn."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def lock(path: Path, timeout: float = -1) -> FileLock:
    """A lock file shared by the processes of one machine (``with lock(p): …``); released if
    its holder dies. ``timeout=0`` makes ``acquire()`` raise ``Timeout`` when it is held."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout)


def try_lock(path: Path) -> FileLock | None:
    """The lock at ``path``, held, or None when another process holds it."""
    held = lock(path, timeout=0)
    try:
        held.acquire()
    except Timeout:
        return None
    return held
