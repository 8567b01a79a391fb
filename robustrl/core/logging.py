"""Run metrics: `metrics.csv` (wide, one row per log event) and TensorBoard events.

On resume the rows written after the restored checkpoint are dropped (CSV) or purged
(TensorBoard `purge_step`), so a resumed run's logs read like an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from robustrl.core.io import atomic_write_text


class MetricsLogger:
    def __init__(self, directory: str | Path, resume_step: int | None = None,
                 tensorboard: bool = True):
        self.path = Path(directory) / "metrics.csv"
        self.columns: list[str] = ["step"]
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or ["step"])
                # A row cut short by a kill has missing (None) cells: drop it with the rest.
                self.rows = [r for r in reader if None not in r.values()
                             and int(r["step"]) <= resume_step]
            self._rewrite()
        elif resume_step is None:
            self._rewrite()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge what came after the checkpoint's step, keeping the point logged at it
            purge = None if resume_step is None else resume_step + 1
            self.writer = SummaryWriter(str(Path(directory) / "tb"), purge_step=purge)

    def _rewrite(self) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, out.getvalue())

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **{k: v for k, v in metrics.items() if v is not None}}
        self.rows.append(row)
        if any(k not in self.columns for k in row):
            self.columns += [k for k in row if k not in self.columns]
            self._rewrite()  # rare: a new column (e.g. losses once learning starts)
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns).writerow(row)
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not math.isnan(value):
                    self.writer.add_scalar(key, value, step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats (empty cells skipped)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]
