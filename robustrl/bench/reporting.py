"""Report a results database: robustness curves, summary metrics, Markdown/CSV, PNG per env.

Per agent × env × perturbation, over training seeds (each seed's value is the mean return of
its cell's episodes):
- the curve: mean ± 95% CI (Student t) at each strength, the clean return at the kind's
  identity strength (0 for noise, 1 for scale factors) as its first point;
- normalized robustness = mean perturbed return / mean clean return (as specified; on tasks
  with negative returns, e.g. Pendulum, a ratio above 1 means *worse*);
- area under the normalized curve: trapezoid over strength divided by the strength range
  (1.0 = no degradation anywhere on the range);
- worst case and average of the mean return over the strength grid (for `dyn-*` kinds this is
  RRLS's worst case / average over a dynamics grid);
- the empirical local Lipschitz constant of each trained policy (mean over seeds).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.bench.store import connect, read_table
from robustrl.bench.suite import CLEAN
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom (no scipy dependency).
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def ci95(values: list[float]) -> float:
    """Half-width of the 95% confidence interval of the mean (0 for a single value)."""
    n = len(values)
    if n < 2:
        return 0.0
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
    return float(t * np.std(values, ddof=1) / math.sqrt(n))


@dataclass
class CurvePoint:
    env: str
    agent: str
    perturbation: str
    strength: float
    seeds: int
    mean: float
    ci95: float
    normalized: float | None


@dataclass
class Summary:
    env: str
    agent: str
    perturbation: str
    seeds: int
    clean: float
    clean_ci95: float
    auc: float | None
    """Area under the normalized robustness curve / strength range."""
    worst: float
    average: float
    lipschitz: float | None


def _identity(perturbation: str) -> float:
    from robustrl.perturb import KINDS

    kind = perturbation.split(",")[0].split(":")[0]
    return KINDS[kind].identity if kind in KINDS else 0.0


def _ratio(x: float, clean: float) -> float | None:
    return x / clean if clean != 0 else None


def check_one_config(db: str | Path, cells: list[dict[str, Any]]) -> None:
    """Refuse a database holding two trained runs (configurations) of one agent × env × seed:
    their cells would be averaged as if they were one (databases from before run_configs)."""
    runs: dict[tuple, set[str]] = defaultdict(set)
    for c in cells:
        runs[(c["agent"], c["env"], c["seed"])].add(c["run"])
    for (agent, env, seed), ids in sorted(runs.items()):
        if len(ids) > 1:
            raise RobustRLError(f"{db} holds {len(ids)} configurations of {agent} on {env} seed "
                                f"{seed} (runs {', '.join(sorted(ids))}); a report does not mix "
                                "them: rerun the suite into a fresh --db")


def analyse(db: str | Path) -> tuple[list[CurvePoint], list[Summary], dict[str, str]]:
    """Curves and summaries of every agent × env × perturbation in the database."""
    conn = connect(db, must_exist=True)
    try:
        cells = read_table(conn, "cells")
        runs = read_table(conn, "runs")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()
    if not cells:
        raise RobustRLError(f"{db} holds no finished cells yet; run the suite first")
    check_one_config(db, cells)
    per_seed: dict[tuple, dict[int, float]] = defaultdict(dict)
    for c in cells:
        per_seed[(c["env"], c["agent"], c["perturbation"], c["strength"])][c["seed"]] = \
            c["return_mean"]
    lipschitz: dict[tuple, list[float]] = defaultdict(list)
    for r in runs:
        if r["lipschitz"] is not None:
            lipschitz[(r["env"], r["agent"])].append(r["lipschitz"])
    clean = {(env, agent): list(v.values())
             for (env, agent, pert, _), v in per_seed.items() if pert == CLEAN}
    groups: dict[tuple, list[float]] = defaultdict(list)
    for env, agent, pert, strength in per_seed:
        if pert != CLEAN:
            groups[(env, agent, pert)].append(strength)
    points: list[CurvePoint] = []
    summaries: list[Summary] = []
    for (env, agent, pert), strengths in sorted(groups.items()):
        base = clean.get((env, agent), [])
        base_mean = float(np.mean(base)) if base else math.nan
        curve: list[tuple[float, float]] = []
        means = []
        for s in sorted(strengths):
            values = list(per_seed[(env, agent, pert, s)].values())
            m = float(np.mean(values))
            means.append(m)
            norm = _ratio(m, base_mean) if base else None
            points.append(CurvePoint(env, agent, pert, s, len(values), m, ci95(values), norm))
            if norm is not None:
                curve.append((s, norm))
        identity = _identity(pert)
        if curve and identity not in [s for s, _ in curve]:
            curve.append((identity, 1.0))
        curve.sort()
        auc = None
        if len(curve) >= 2:
            xs, ys = zip(*curve)
            area = sum((x1 - x0) * (y0 + y1) / 2  # trapezoid (np.trapz is gone in numpy 2)
                       for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]))
            auc = float(area / (xs[-1] - xs[0]))
        elif curve:
            auc = curve[0][1]
        lip = lipschitz.get((env, agent))
        summaries.append(Summary(env, agent, pert, len(base), base_mean, ci95(base), auc,
                                 float(min(means)),
                                 float(np.mean(means)), float(np.mean(lip)) if lip else None))
    for (env, agent), base in sorted(clean.items()):  # agents evaluated clean only
        if not any(s.env == env and s.agent == agent for s in summaries):
            lip = lipschitz.get((env, agent))
            m = float(np.mean(base))
            summaries.append(Summary(env, agent, CLEAN, len(base), m, ci95(base), None, m, m,
                                     float(np.mean(lip)) if lip else None))
    return points, summaries, meta


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(points: list[CurvePoint], summaries: list[Summary], meta: dict[str, str]) -> str:
    lines = [f"# Robustness report: suite `{meta.get('suite', '?')}` "
             f"(hash {meta.get('suite_hash', '?')})", "",
             "## Summary", "",
             "| env | agent | perturbation | seeds | clean return | AUC (normalized) | "
             "worst | average | Lipschitz |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s.env} | {s.agent} | {s.perturbation} | {s.seeds} "
                     f"| {_fmt(s.clean)} ± {_fmt(s.clean_ci95)} "
                     f"| {_fmt(s.auc, 3)} | {_fmt(s.worst)} | {_fmt(s.average)} "
                     f"| {_fmt(s.lipschitz, 3)} |")
    lines += ["", "## Robustness curves (mean ± 95% CI over seeds)", "",
              "| env | agent | perturbation | strength | seeds | return | normalized |",
              "|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.env} | {p.agent} | {p.perturbation} | {p.strength:g} | {p.seeds} "
                     f"| {p.mean:.2f} ± {p.ci95:.2f} | {_fmt(p.normalized, 3)} |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[Any]) -> str:
    buffer = io.StringIO()
    dicts = [asdict(r) for r in rows]
    if dicts:
        writer = csv.DictWriter(buffer, fieldnames=list(dicts[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(dicts)
    return buffer.getvalue()


def plot_env(env: str, points: list[CurvePoint], summaries: list[Summary], path: Path) -> Path:
    """One PNG per env: a panel per perturbation, one line per agent (mean ± 95% CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    perts = sorted({p.perturbation for p in points if p.env == env})
    fig, axes = plt.subplots(1, len(perts), figsize=(4.5 * len(perts), 3.6), squeeze=False)
    clean = {s.agent: (s.clean, s.clean_ci95) for s in summaries if s.env == env}
    for ax, pert in zip(axes[0], perts):
        panel = [p for p in points if p.env == env and p.perturbation == pert]
        for agent in sorted({p.agent for p in panel}):
            pts = [p for p in panel if p.agent == agent]
            xs, ys, cs = [p.strength for p in pts], [p.mean for p in pts], [p.ci95 for p in pts]
            identity = _identity(pert)
            if agent in clean and identity not in xs:
                xs, ys, cs = [identity, *xs], [clean[agent][0], *ys], [clean[agent][1], *cs]
            order = np.argsort(xs)
            x, y, c = (np.asarray(v, dtype=float)[order] for v in (xs, ys, cs))
            ax.plot(x, y, marker="o", label=agent)
            ax.fill_between(x, y - c, y + c, alpha=0.2)
        ax.set(title=pert, xlabel="strength", ylabel="return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(env)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def report(db: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write report.md, curves.csv, summary.csv, episodes.csv and `<env>.png` into `out`
    (default: a `report/` folder beside the database); returns the paths and the data."""
    from robustrl.bench.store import export_csv

    db = Path(db)
    points, summaries, meta = analyse(db)
    out = Path(out) if out is not None else db.parent / "report"
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(points, summaries, meta)
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "curves.csv", _csv(points))
    atomic_write_text(out / "summary.csv", _csv(summaries))
    export_csv(db, out / "episodes.csv")
    plots = [plot_env(env, points, summaries, out / f"{env.replace('/', '-')}.png")
             for env in sorted({p.env for p in points})]
    return {"out": out, "markdown": text, "points": points, "summaries": summaries,
            "plots": plots}
