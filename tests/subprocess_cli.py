"""Running robustrl in a fresh process from the checkout (the kill and lock tests need a
process of their own): the repository first on PYTHONPATH, one torch thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`robustrl ARGS...` in a fresh process; its output captured as text."""
    return subprocess.run([sys.executable, "-m", "robustrl", *args], capture_output=True,
                          text=True, env=subprocess_env(), timeout=timeout)
