"""Raw timings of the speed scripts, appended to `results/<name>.csv` (one row per timed run).

Every row carries the UTC time and the machine's 1-minute load average at measurement, so a
ratio can be read against the load it was taken under. Rows are appended whole (one write
of complete lines, flushed and fsynced), so an interrupted script loses no finished row.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def load_1min() -> float:
    return os.getloadavg()[0]


def stamp() -> dict[str, object]:
    """The columns every row starts with: when, under what load, on what."""
    return {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_1min": f"{load_1min():.2f}", "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def record(name: str, what: str, side: str, round_: int, steps: int, seconds: float) -> float:
    """Append one timed run to results/<name>.csv and return its steps per second."""
    append(name, {**stamp(), "what": what, "side": side, "round": round_, "steps": steps,
                  "seconds": f"{seconds:.4f}", "steps_per_s": f"{steps / seconds:.2f}"})
    return steps / seconds


def append(name: str, row: dict[str, object]) -> None:
    """Append `row` to results/<name>.csv (header first if the file is new)."""
    path = RESULTS / f"{name}.csv"
    RESULTS.mkdir(exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(row))
    if not path.exists() or path.stat().st_size == 0:
        writer.writeheader()
    writer.writerow(row)
    with path.open("a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
