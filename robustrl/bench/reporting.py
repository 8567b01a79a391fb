"""Report a results database: robustness curves, reliable aggregates, Markdown/CSV, PNGs.

Statistics follow Agarwal et al. 2021 (robustrl.bench.stats); a *run* is one trained seed,
its score in a cell the mean return of the cell's episodes. Per agent × env × perturbation ×
strength:
- IQM of the runs' scores with a 95% stratified-bootstrap interval [lo, hi];
- normalized score per run, sign-aware: (score − random) / (clean − random), with `clean`
  that run's clean score and `random` the mean score of the uniformly random policy under
  the same perturbation and strength (the suite's `random_baseline = true` adds it), so
  1 = as good as clean, 0 = no better than random on every task (also negative-return ones);
- AUC: the mean of a run's normalized scores over the strength grid (IQM over runs);
- worst case and average of the IQM return over the grid (for `dyn-*` kinds RRLS's worst case
  / average over a dynamics grid); the empirical local Lipschitz constant (mean over runs).
Across envs (tasks = env × strength): IQM of normalized scores per agent and perturbation,
the probability of improvement P(A > B) per condition and pooled, and performance profiles.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from textwrap import fill
from typing import Any

import numpy as np

from robustrl.bench import stats
from robustrl.bench.store import connect, read_table
from robustrl.bench.suite import CLEAN, RANDOM
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_save_figure, atomic_write_text

CI = "[lo, hi] = 95% stratified-bootstrap CI"


def iqm_ci(values: list[float]) -> tuple[float, float, float]:
    """IQM of a task's runs and its 95% bootstrap interval (the point itself for one run)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    return (stats.iqm([values]), *stats.stratified_bootstrap_ci([values]))


def strength_unit(perturbation: str) -> str:
    """The unit of a perturbation's strength axis, for table headers and plot labels."""
    from robustrl.perturb import KINDS

    kind = perturbation.split(",")[0].split(":")[0]
    info = KINDS.get(kind)
    if info is None:
        return "strength"
    if kind.startswith("obs-"):
        return "normalized-observation σ" if kind != "obs-pgd" else \
            "ε, normalized-observation σ"
    if kind == "act-gaussian":
        return "σ, fraction of half the action range"
    return {"prob": "probability", "scale": "× nominal", "count": "agents replaced"}.get(
        info.domain, "strength")


@dataclass
class CurvePoint:
    env: str
    agent: str
    perturbation: str
    strength: float
    unit: str
    seeds: int
    iqm: float
    lo: float
    hi: float
    random: float | None
    """Mean score of the random policy under the same perturbation and strength."""
    normalized: float | None
    """IQM of the runs' normalized scores (1 = clean, 0 = random policy)."""
    normalized_lo: float | None
    normalized_hi: float | None
    seed_ids: list[int]
    scores: list[float]
    """Each run's score (mean episode return), in `seed_ids` order: this point's raw data."""
    normalized_scores: list[float]
    """In `seed_ids` order; empty unless every run could be normalized."""


@dataclass
class Summary:
    env: str
    agent: str
    perturbation: str
    seeds: int
    clean: float
    """IQM of the runs' clean scores."""
    clean_lo: float
    clean_hi: float
    auc: float | None
    """IQM over runs of the mean normalized score over the strength grid."""
    grid: str
    """The strengths the AUC averages over."""
    worst: float
    average: float
    lipschitz: float | None


def _identity(perturbation: str) -> float:
    from robustrl.perturb import KINDS

    kind = perturbation.split(",")[0].split(":")[0]
    return KINDS[kind].identity if kind in KINDS else 0.0


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


def _has_runs(db: Path) -> bool:
    """False for a database rebuilt from a bare episodes export (no runs.csv beside it)."""
    conn = connect(db, must_exist=True)
    try:
        return conn.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is not None
    finally:
        conn.close()


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
    random = {(env, pert, s): float(np.mean(list(v.values())))
              for (env, agent, pert, s), v in per_seed.items() if agent == RANDOM}
    clean = {(env, agent): v for (env, agent, pert, _), v in per_seed.items()
             if pert == CLEAN and agent != RANDOM}
    groups: dict[tuple, list[float]] = defaultdict(list)
    for env, agent, pert, strength in per_seed:
        if pert != CLEAN and agent != RANDOM:
            groups[(env, agent, pert)].append(strength)
    points: list[CurvePoint] = []
    summaries: list[Summary] = []
    for (env, agent, pert), strengths in sorted(groups.items()):
        base = clean.get((env, agent), {})
        unit = strength_unit(pert)
        iqms, per_run = [], defaultdict(list)
        for s in sorted(strengths):
            scores = per_seed[(env, agent, pert, s)]
            seeds = sorted(scores)
            values = [scores[k] for k in seeds]
            rnd = random.get((env, pert, s))
            norms = [n for k in seeds if k in base and rnd is not None
                     and (n := stats.normalized(scores[k], base[k], rnd)) is not None]
            if len(norms) != len(values):  # a run without its clean cell: none normalized
                norms = []
            for k, n in zip(seeds, norms):
                per_run[k].append(n)
            nq = iqm_ci(norms) if norms else (None, None, None)
            q = iqm_ci(values)
            iqms.append(q[0])
            points.append(CurvePoint(env, agent, pert, s, unit, len(values), *q, rnd, *nq,
                                     seeds, values, norms))
        aucs = [float(np.mean(v)) for v in per_run.values() if len(v) == len(strengths)]
        base_values = list(base.values()) or [math.nan]
        lip = lipschitz.get((env, agent))
        summaries.append(Summary(
            env, agent, pert, len(base), *iqm_ci(base_values),
            iqm_ci(aucs)[0] if aucs else None, ";".join(f"{s:g}" for s in sorted(strengths)),
            float(min(iqms)), float(np.mean(iqms)), float(np.mean(lip)) if lip else None))
    for (env, agent), base in sorted(clean.items()):  # agents evaluated clean only
        if not any(s.env == env and s.agent == agent for s in summaries):
            lip = lipschitz.get((env, agent))
            q = iqm_ci(list(base.values()))
            summaries.append(Summary(env, agent, CLEAN, len(base), *q, None, "", q[0], q[0],
                                     float(np.mean(lip)) if lip else None))
    return points, summaries, meta


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(q: float | None, lo: float | None, hi: float | None, digits: int = 2) -> str:
    return "-" if q is None else f"{_fmt(q, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def markdown(points: list[CurvePoint], summaries: list[Summary], meta: dict[str, str],
             aggregates: list | None = None, improvements: list | None = None) -> str:
    normalizable = any(p.random is not None for p in points)
    lines = [f"# Robustness report: suite `{meta.get('suite', '?')}` "
             f"(hash {meta.get('suite_hash', '?')})", "",
             f"Values are the interquartile mean (IQM) over runs (training seeds; a run's score "
             f"is the mean return of its evaluation episodes); {CI} over runs (Agarwal et al. "
             "2021). Normalized score = (score − random) / (clean − random): 1 = as good as "
             "clean, 0 = no better than a uniformly random policy under the same perturbation.",
             ""]
    if not normalizable:
        lines += ["No random-policy rows in this database, so no normalized scores: set "
                  "`random_baseline = true` in the suite and rerun it (only the random cells "
                  "run).", ""]
    lines += ["## Summary", "",
              "| env | agent | perturbation | seeds | clean return IQM [lo, hi] | "
              "AUC (normalized) | grid | worst | average | Lipschitz |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s.env} | {s.agent} | {s.perturbation} | {s.seeds} "
                     f"| {_ci(s.clean, s.clean_lo, s.clean_hi)} | {_fmt(s.auc, 3)} "
                     f"| {s.grid or '-'} | {_fmt(s.worst)} | {_fmt(s.average)} "
                     f"| {_fmt(s.lipschitz, 3)} |")
    lines += ["", "AUC: IQM over runs of each run's mean normalized score over the grid; worst "
              "/ average: of the IQM return over the grid.", "",
              f"## Robustness curves (IQM {CI})", "",
              "| env | agent | perturbation | strength | unit | seeds | return | random "
              "policy | normalized |", "|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.env} | {p.agent} | {p.perturbation} | {p.strength:g} | {p.unit} "
                     f"| {p.seeds} | {_ci(p.iqm, p.lo, p.hi)} | {_fmt(p.random)} "
                     f"| {_ci(p.normalized, p.normalized_lo, p.normalized_hi, 3)} |")
    if aggregates:
        lines += ["", f"## Across envs: normalized score (IQM {CI}; tasks = env × strength, "
                  "resampled within each task)", "",
                  "| agent | perturbation | tasks | runs × tasks | normalized IQM [lo, hi] |",
                  "|---|---|---|---|---|"]
        lines += [f"| {a.agent} | {a.perturbation} | {a.tasks} | {a.runs} "
                  f"| {_ci(a.iqm, a.lo, a.hi, 3)} |" for a in aggregates]
    if improvements:
        lines += ["", "## Probability of improvement P(A > B)", "",
                  "P(a run of A scores above a run of B on the same task; ties ½), averaged "
                  f"over tasks; {CI}. A helps over B where lo > 0.5, hurts where hi < 0.5. "
                  "A is the variant where one label extends the other (ppo+ernie vs ppo).",
                  "", "| A | B | env | perturbation | strength | tasks | P(A > B) [lo, hi] |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {i.a} | {i.b} | {i.env} | {i.perturbation} | {i.strength} | {i.tasks} "
                  f"| {_ci(i.p, i.lo, i.hi, 3)} |" for i in improvements]
    return "\n".join(lines) + "\n"


def _csv(rows: list[Any], cls: type) -> str:
    """Rows of dataclass `cls` as CSV (a header even without rows); lists joined by ";"."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(cls)],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ";".join(map(str, v)) if isinstance(v, list) else v
                      for k, v in asdict(r).items()} for r in rows)
    return buffer.getvalue()


def plot_env(env: str, points: list[CurvePoint], summaries: list[Summary], path: Path) -> Path:
    """One PNG per env: a panel per perturbation, one line per agent (IQM over runs with a 95%
    stratified-bootstrap band), the random policy dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    perts = sorted({p.perturbation for p in points if p.env == env})
    fig, axes = plt.subplots(1, len(perts), figsize=(4.5 * len(perts), 3.8), squeeze=False)
    clean = {s.agent: (s.clean, s.clean_lo, s.clean_hi) for s in summaries if s.env == env}
    for ax, pert in zip(axes[0], perts):
        panel = [p for p in points if p.env == env and p.perturbation == pert]
        for agent in sorted({p.agent for p in panel}):
            pts = [p for p in panel if p.agent == agent]
            rows = [(p.strength, p.iqm, p.lo, p.hi) for p in pts]
            identity = _identity(pert)
            if agent in clean and identity not in [r[0] for r in rows]:
                rows.append((identity, *clean[agent]))
            x, y, lo, hi = (np.asarray(v, dtype=float) for v in zip(*sorted(rows)))
            line, = ax.plot(x, y, marker="o", label=f"{agent} (n={pts[0].seeds} seeds)")
            ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color())
        rnd = sorted({(p.strength, p.random) for p in panel if p.random is not None})
        if rnd:
            ax.plot(*zip(*rnd), "k--x", lw=1, label="random policy (mean)")
        ax.set(title=f"{fill(pert, 40)}\n(IQM; band: 95% stratified-bootstrap CI)",
               xlabel=f"strength ({panel[0].unit})", ylabel="return (raw units)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(env)
    fig.tight_layout()
    return atomic_save_figure(fig, path)


def report(db: str | Path, out: str | Path | None = None, curves: bool = False,
           plots: bool = True) -> dict[str, Any]:
    """Write report.md, curves.csv, summary.csv, aggregates.csv, improvements.csv,
    episodes.csv (+ runs.csv: the runs table), `<env>.png` and profiles.png into `out`
    (default: a `report/` folder beside the database); with `curves`, learning curves of the
    runs too (robustrl.bench.curves). `db` may also be an episodes export (`*.csv`, with its
    runs.csv beside it when there is one: robustrl.bench.from_csv); `plots=False` writes the
    tables only. Returns the paths and the data."""
    import tempfile

    from robustrl.bench import comparisons
    from robustrl.bench.store import export_csv

    db = Path(db)
    out = Path(out) if out is not None else db.parent / "report"
    if db.suffix == ".csv":  # a committed episodes export: rebuild its database first
        from robustrl.bench.from_csv import database_from_episodes

        raw = db.read_text()
        with tempfile.TemporaryDirectory() as tmp:
            result = report(database_from_episodes(db, Path(tmp) / "results.sqlite"), out,
                            plots=plots)
        atomic_write_text(out / "episodes.csv", raw)  # the source rows, byte for byte
        return result
    points, summaries, meta = analyse(db)
    aggregates, improvements = comparisons.aggregates(points), comparisons.improvements(points)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(points, summaries, meta, aggregates, improvements)
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "curves.csv", _csv(points, CurvePoint))
    atomic_write_text(out / "summary.csv", _csv(summaries, Summary))
    atomic_write_text(out / "aggregates.csv", _csv(aggregates, comparisons.Aggregate))
    atomic_write_text(out / "improvements.csv", _csv(improvements, comparisons.Improvement))
    export_csv(db, out / "episodes.csv")
    if _has_runs(db):
        export_csv(db, out / "runs.csv", table="runs")  # the Lipschitz column's raw rows
    pngs = [plot_env(env, points, summaries, out / f"{env.replace('/', '-')}.png")
            for env in sorted({p.env for p in points})] if plots else []
    profile = comparisons.plot_profiles(points, out / "profiles.png") if plots else None
    pngs += [profile] if profile else []
    if curves:
        from robustrl.bench.curves import runs_of_db, write_curves

        pngs += write_curves(runs_of_db(db), out)
    return {"out": out, "markdown": text, "points": points, "summaries": summaries,
            "aggregates": aggregates, "improvements": improvements, "plots": pngs}
