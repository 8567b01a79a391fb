"""Provenance: which code and packages produced a result, computed once per process.

Written into every run's config.toml (`[provenance]`), every checkpoint and the results
database, so a number can always be traced to the robustrl version, the git commit it ran
from (with a dirty flag when the checkout had uncommitted changes) and the versions of the
simulators and libraries behind it.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("robustrl", "torch", "gymnasium", "pettingzoo", "mujoco", "eclipse-sumo",
            "libsumo", "sumo-rl", "numpy")
"""Distributions whose versions are recorded ("-" when not installed)."""


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_commit(root: Path | None = None) -> str:
    """`<sha>` of the checkout robustrl runs from, `<sha>-dirty` with uncommitted changes to
    tracked files, "-" when it is not a git checkout (an installed wheel)."""
    root = root or Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return "-"
    sha = _git(root, "rev-parse", "HEAD")
    if not sha:
        return "-"
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    return f"{sha}-dirty" if dirty else sha


@functools.cache
def provenance() -> dict[str, str]:
    """{"robustrl": version, "git_commit": ..., "python": ..., "torch": ..., ...}."""
    out = {"python": platform.python_version(), "git_commit": git_commit()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return dict(sorted(out.items()))


def provenance_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`["torch 2.12.0 -> 2.13.0", ...]`: the entries that differ between two provenances."""
    return [f"{k} {old.get(k, '-')} -> {new.get(k, '-')}"
            for k in sorted(set(old) | set(new)) if old.get(k, "-") != new.get(k, "-")]
