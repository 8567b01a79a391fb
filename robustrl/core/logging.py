"""Run metrics: `metrics.csv` (wide, one row per log event) and TensorBoard events.

On resume the rows written after the restored checkpoint are dropped (CSV) or purged
(TensorBoard `purge_step`, the first step after the checkpoint's, so the point logged at the
checkpoint step stays), so a resumed run's logs read like an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text


def _kept_rows(path: Path, resume_step: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and the rows up to `resume_step` of an existing metrics.csv; a file that is not
    a metrics table is one clear line (a row cut short by a kill is dropped quietly)."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or ["step"])
            rows = [r for r in reader if None not in r.values() and r.get("step") is not None]
            kept = [r for r in rows if int(float(r["step"])) <= resume_step]
    except (ValueError, UnicodeDecodeError, csv.Error) as e:
        raise RobustRLError(f"{path} is not a readable metrics table ({e}); move it away to "
                            "resume with fresh logs") from None
    if columns[:1] != ["step"]:
        raise RobustRLError(f"{path} has no 'step' column first (got {columns[:3]}); move it "
                            "away to resume with fresh logs")
    return columns, kept


class MetricsLogger:
    def __init__(self, directory: str | Path, resume_step: int | None = None,
                 tensorboard: bool = True, tracker: Any = None):
        self.tracker = tracker  # robustrl.core.tracking: gets the same scalars as TensorBoard
        self.path = Path(directory) / "metrics.csv"
        self.columns: list[str] = ["step"]
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.path.exists():
            self.columns, self.rows = _kept_rows(self.path, resume_step)
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
        if self.tracker is not None:
            self.tracker.log(step, metrics)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.tracker is not None:
            self.tracker.close()


def host_floats(metrics: dict[str, Any]) -> dict[str, float]:
    """An update's metrics as floats. Learners return them as 0-dim tensors and the loops call
    this only when a log line is written, so a GPU run does not sync once per gradient step."""
    return {k: float(v) for k, v in metrics.items()}


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats (empty cells skipped)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]
