"""Learning curves across seeds: IQM and a 95% bootstrap band from each run's metrics.csv.

    robustrl bench curves RUN_DIR [RUN_DIR ...] [--out DIR] [--metric episode_return]
    robustrl bench report DB --curves          # the runs of a suite's results database

Runs are grouped by label (the suite's label, else the agent) and env; each run's metric is
interpolated onto a common step grid up to the shortest run of its group, then the IQM over
runs and its stratified-bootstrap 95% interval (robustrl.bench.stats) are taken per step.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustrl.bench import stats
from robustrl.bench.store import connect, read_table
from robustrl.bench.suite import RANDOM
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_save_figure, atomic_write_text

METRICS = ("episode_return", "eval_return")
"""The metric drawn when none is named: the first of these a run logs."""


@dataclass
class RunRef:
    label: str
    env: str
    run_dir: Path


@dataclass
class Curve:
    label: str
    env: str
    metric: str
    runs: int
    steps: np.ndarray
    iqm: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def runs_of_dirs(dirs: list[str | Path]) -> list[RunRef]:
    """Run directories named on the command line, labelled by their agent."""
    from robustrl.train import load_run_config

    refs = []
    for d in dirs:
        if not (Path(d) / "config.toml").is_file():
            raise RobustRLError(f"{d} is not a run directory (no config.toml)")
        cfg = load_run_config(d)
        refs.append(RunRef(cfg.run.agent, cfg.run.env, Path(d)))
    return refs


def runs_of_db(db: str | Path) -> list[RunRef]:
    """The trained runs of a results database (the random baseline has no curve)."""
    conn = connect(db, must_exist=True)
    try:
        runs = read_table(conn, "runs")
    finally:
        conn.close()
    return [RunRef(r["agent"], r["env"], Path(r["run_dir"])) for r in runs
            if r["agent"] != RANDOM]


def _series(run_dir: Path, metric: str | None) -> tuple[str, np.ndarray, np.ndarray]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise RobustRLError(f"{run_dir} has no metrics.csv (was it trained here?)")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0]) if rows else []
    name = metric or next((m for m in METRICS if m in columns), None)
    if name is None or name not in columns:
        raise RobustRLError(f"{path} logs no '{metric or ' or '.join(METRICS)}'; its columns: "
                            f"{', '.join(columns) or 'none'} (pick one with --metric)")
    pairs = [(float(r["step"]), float(r[name])) for r in rows if r.get(name) not in ("", None)]
    if not pairs:
        raise RobustRLError(f"{path} has no value of {name} yet")
    steps, values = (np.asarray(v) for v in zip(*pairs))
    return name, steps, values


def learning_curves(refs: list[RunRef], metric: str | None = None,
                    points: int = 100) -> list[Curve]:
    """One curve per label × env over its runs."""
    if not refs:
        raise RobustRLError("no runs to draw learning curves of")
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for r in refs:
        groups[(r.label, r.env)].append(r.run_dir)
    curves = []
    for (label, env), dirs in sorted(groups.items()):
        series = [_series(d, metric) for d in dirs]
        end = min(s[1][-1] for s in series)
        start = max(s[1][0] for s in series)
        grid = np.linspace(start, end, points) if end > start else np.array([end])
        runs = np.stack([np.interp(grid, steps, values) for _, steps, values in series])
        iqm, lo, hi = [], [], []
        for column in runs.T:
            tasks = [column.tolist()]
            iqm.append(stats.iqm(tasks))
            lo_hi = stats.stratified_bootstrap_ci(tasks) if len(column) > 1 else \
                (column[0], column[0])
            lo.append(lo_hi[0])
            hi.append(lo_hi[1])
        curves.append(Curve(label, env, series[0][0], len(dirs), grid, *map(np.asarray,
                                                                           (iqm, lo, hi))))
    return curves


def write_curves(refs: list[RunRef], out: str | Path, metric: str | None = None) -> list[Path]:
    """learning_curves.csv and learning_curves.png (a panel per env) in `out`."""
    curves = learning_curves(refs, metric)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "env", "metric", "runs", "step", "iqm", "ci95_lo", "ci95_hi"])
    for c in curves:
        for row in zip(c.steps, c.iqm, c.lo, c.hi):
            writer.writerow([c.label, c.env, c.metric, c.runs, *(f"{x:.6g}" for x in row)])
    atomic_write_text(out / "learning_curves.csv", buffer.getvalue())
    return [_plot(curves, out / "learning_curves.png")]


def _plot(curves: list[Curve], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({c.env for c in curves})
    fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.6), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for c in (c for c in curves if c.env == env):
            line, = ax.plot(c.steps, c.iqm, label=f"{c.label} (n={c.runs} runs)")
            ax.fill_between(c.steps, c.lo, c.hi, alpha=0.2, color=line.get_color())
        metric = next(c.metric for c in curves if c.env == env)
        ax.set(title=f"{env}\n(IQM over runs; band: 95% bootstrap CI)",
               xlabel="environment steps", ylabel=f"{metric} (raw units)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return atomic_save_figure(fig, path)
