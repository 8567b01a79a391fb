"""Atomic file writes: a finished result is either fully on disk or not there at all.

Files get the process umask's mode (0644 under the usual 022) like any `open()`, not the
0600 of a temp file. A temp file is named after its target and the writing process
(`.NAME.PID.XXXX.tmp`); one left behind by a killed process is removed by the next write of
the same target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from robustrl.core.errors import RobustRLError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""What `open(path, "w")` would give a new file in this process."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: Path) -> None:
    """Delete temp files of `path` left by writers that no longer run (killed mid-write)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temp file in the same folder, fsync it, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` through a temp file + rename, so a kill mid-write leaves the old file."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a matplotlib figure (PNG) atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def check_writable_dir(directory: str | os.PathLike, what: str = "output directory") -> None:
    """Refuse, in one line and before any work, a directory that cannot be created or written
    (a read-only folder, a path through or onto a regular file)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise RobustRLError(f"{what} {directory} is an existing file; choose a directory path")
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RobustRLError(f"{what} {directory} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RobustRLError(f"{what} {directory} is not writable ({existing} is read-only); "
                            "choose a writable location")
