"""Raw timings of the speed scripts, appended to `results/<name>.csv` (one row per timed run).

Every row carries the UTC time and the machine's 1-minute load average at measurement, so a
ratio can be read against the load it was taken under. Rows are appended whole (one write
of complete lines, flushed and fsynced), so an interrupted script loses no finished row.
Scripts that publish a row of `results/speed.md` tag their rows with the run they belong to
(`run`, the UTC start of the invocation) and rebuild that row's result cell from the CSV alone
(`speed_cell` / `set_speed_cell`), so `experiments/check_results.py` can recompute it.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
SPEED_MD = RESULTS / "speed.md"
SPEED_HEADER = "| what | command | result |"


def load_1min() -> float:
    return os.getloadavg()[0]


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def stamp() -> dict[str, object]:
    """The columns every row starts with: when, under what load, on what."""
    return {"date_utc": now_utc(), "load_1min": f"{load_1min():.2f}",
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def record(name: str, what: str, side: str, round_: int, steps: int, seconds: float,
           **extra: object) -> float:
    """Append one timed run to results/<name>.csv (`extra` columns last) and return its steps
    per second."""
    append(name, {**stamp(), "what": what, "side": side, "round": round_, "steps": steps,
                  "seconds": f"{seconds:.4f}", "steps_per_s": f"{steps / seconds:.2f}",
                  **extra})
    return steps / seconds


def append(name: str, row: dict[str, object]) -> None:
    """Append `row` to results/<name>.csv (header first if the file is new)."""
    path = RESULTS / f"{name}.csv"
    RESULTS.mkdir(exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(row))
    if not path.exists() or path.stat().st_size == 0:
        writer.writeheader()
    else:  # values are written in `row`'s order: a different header would misfile them
        with path.open(newline="") as f:
            header = next(csv.reader(f))
        if header != list(row):
            raise SystemExit(f"{path}: columns {header} differ from this row's {list(row)}")
    writer.writerow(row)
    with path.open("a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def read(name: str) -> list[dict[str, str]]:
    """The rows of results/<name>.csv ([] before the first run)."""
    path = RESULTS / f"{name}.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def of_run(rows: list[dict[str, str]], run: str | None = None) -> list[dict[str, str]]:
    """The rows of `run` (default: the latest run in `rows`)."""
    if not rows:
        return []
    run = run or max(r["run"] for r in rows)
    picked = [r for r in rows if r["run"] == run]
    if not picked:
        raise SystemExit(f"no rows of run {run}; runs: {sorted({r['run'] for r in rows})}")
    return picked


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def load_range(rows: list[dict[str, str]]) -> str:
    loads = [float(r["load_1min"]) for r in rows]
    return f"{min(loads):.2f}–{max(loads):.2f}"


def _speed_line(lines: list[str], script: str) -> int:
    """Index of the results/speed.md table line whose command runs `script`."""
    command = f"| `python experiments/perf/{script}.py"
    hits = [i for i, line in enumerate(lines) if f" {command}" in line]
    if len(hits) != 1:
        raise SystemExit(f"{SPEED_MD}: {len(hits)} table rows run {script}.py, expected 1")
    return hits[0]


def speed_cell(script: str, text: str | None = None) -> str:
    """The result cell of `script`'s row in results/speed.md (or in `text`)."""
    lines = (SPEED_MD.read_text() if text is None else text).splitlines()
    return re.split(r"(?<!\\)\|", lines[_speed_line(lines, script)].strip()[1:-1])[-1].strip()


def set_speed_cell(script: str, cell: str) -> None:
    """Rewrite the result cell of `script`'s row in results/speed.md."""
    from robustrl.core.io import atomic_write_text

    lines = SPEED_MD.read_text().splitlines()
    i = _speed_line(lines, script)
    head = re.split(r"(?<!\\)\|", lines[i].strip()[1:-1])[:-1]
    lines[i] = "|" + "|".join(head) + f"| {cell} |"
    atomic_write_text(SPEED_MD, "\n".join(lines) + "\n")


def add_run_arguments(parser: Any) -> None:
    """`--from-csv` / `--run`: rebuild a speed.md cell from recorded rows instead of timing."""
    parser.add_argument("--from-csv", action="store_true",
                        help="only rebuild the speed.md cell from the CSV (no timing)")
    parser.add_argument("--run", help="with --from-csv: the run to tabulate (default: latest)")


def time_and_publish(name: str, args: Any, measure: Callable[[str], None],
                     cell: Callable[[list[dict[str, str]]], str]) -> None:
    """Unless `--from-csv`: `measure(run)` a new run tagged with the current UTC time. Then
    write `name`'s speed.md cell from the rows of that run (or of `--run`, default: latest)."""
    if not args.from_csv:
        args.run = now_utc()
        measure(args.run)
    text = cell(of_run(read(name), args.run))
    print(text)
    set_speed_cell(name, text)
