"""Across-env aggregates of a report: IQM of normalized scores, P(A > B), performance profiles.

Built from the report's curve points (each holds its runs' raw and normalized scores), with
the estimators of robustrl.bench.stats. A *task* is one env × perturbation × strength; tasks
of different envs are only pooled through normalized scores (raw returns do not share a scale),
while P(A > B) compares A and B within each task on raw scores and averages over tasks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from robustrl.bench import stats

ALL = "all"
"""The perturbation / strength of a row pooled over every perturbation or strength."""


@dataclass
class Aggregate:
    agent: str
    perturbation: str
    """A perturbation, or "all" (every perturbed task)."""
    tasks: int
    runs: int
    iqm: float
    lo: float
    hi: float


@dataclass
class Improvement:
    a: str
    b: str
    env: str
    """An env, or "all" (tasks of every env)."""
    perturbation: str
    strength: str
    """A strength, or "all" (every strength of the grid)."""
    tasks: int
    p: float
    """P(a run of A scores above a run of B), ties 1/2, averaged over tasks."""
    lo: float
    hi: float


def _by_task(points: list, normalized: bool) -> dict[str, dict[tuple, list[float]]]:
    """agent -> {(env, perturbation, strength): its runs' scores}."""
    tasks: dict[str, dict[tuple, list[float]]] = defaultdict(dict)
    for p in points:
        values = p.normalized_scores if normalized else p.scores
        if values and (not normalized or len(values) == p.seeds):
            tasks[p.agent][(p.env, p.perturbation, p.strength)] = list(values)
    return tasks


def aggregates(points: list) -> list[Aggregate]:
    """Per agent × perturbation (and over all perturbations): IQM of normalized scores pooled
    over env × strength tasks, with a stratified-bootstrap 95% CI."""
    rows = []
    for agent, tasks in sorted(_by_task(points, normalized=True).items()):
        perts = sorted({k[1] for k in tasks})
        for pert in [*perts, ALL] if len(perts) > 1 else perts:
            chosen = [v for k, v in sorted(tasks.items()) if pert in (ALL, k[1])]
            rows.append(Aggregate(agent, pert, len(chosen), sum(map(len, chosen)),
                                  stats.iqm(chosen), *stats.stratified_bootstrap_ci(chosen)))
    return rows


def _ordered(a: str, b: str) -> tuple[str, str]:
    """(A, B) with A the variant when one label extends the other ("ppo+ernie" vs "ppo"), so
    P(A > B) reads "does the variant beat its base"; else alphabetical."""
    return (b, a) if b.startswith(a) else (a, b)


def improvements(points: list) -> list[Improvement]:
    """P(A > B) with its CI for each pair of agents: per task, per env × perturbation pooled
    over strengths, per perturbation pooled over envs and strengths, and over every task."""
    tasks = _by_task(points, normalized=False)
    rows = []
    for a, b in (_ordered(*pair) for pair in combinations(sorted(tasks), 2)):
        shared = sorted(set(tasks[a]) & set(tasks[b]))
        several_envs = len({k[0] for k in shared}) > 1
        several_perts = len({k[1] for k in shared}) > 1
        scopes: dict[tuple[str, str, str], list[tuple]] = defaultdict(list)
        for key in shared:
            env, pert, strength = key
            scopes[(env, pert, f"{strength:g}")].append(key)
            scopes[(env, pert, ALL)].append(key)
            if several_envs:
                scopes[(ALL, pert, ALL)].append(key)
            if several_perts:
                scopes[(ALL, ALL, ALL)].append(key)
        for (env, pert, strength), keys in sorted(scopes.items()):
            if strength == ALL and len(keys) == 1 and env != ALL:
                continue  # the same as the task's own row
            xs, ys = [tasks[a][k] for k in keys], [tasks[b][k] for k in keys]
            rows.append(Improvement(a, b, env, pert, strength, len(keys),
                                    stats.probability_of_improvement(xs, ys),
                                    *stats.probability_of_improvement_ci(xs, ys)))
    return rows


def profiles(points: list) -> dict[str, dict[str, list[list[float]]]]:
    """perturbation -> agent -> tasks of normalized scores (the input of a profile)."""
    out: dict[str, dict[str, list[list[float]]]] = defaultdict(dict)
    for agent, tasks in _by_task(points, normalized=True).items():
        for pert in sorted({k[1] for k in tasks}):
            out[pert][agent] = [v for k, v in sorted(tasks.items()) if k[1] == pert]
    return out


def taus(data: dict[str, list[list[float]]], n: int = 101) -> np.ndarray:
    """A τ grid covering 0 (random) to 1 (clean) and every score of `data`."""
    values = np.concatenate([np.concatenate([np.asarray(t) for t in ts])
                             for ts in data.values()])
    return np.linspace(min(0.0, float(values.min())), max(1.0, float(values.max())), n)


def plot_profiles(points: list, path: Path) -> Path | None:
    """Performance profiles, a panel per perturbation: the fraction of runs × tasks whose
    normalized score exceeds τ, with a 95% stratified-bootstrap band; None without data."""
    data = profiles(points)
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(data), figsize=(4.5 * len(data), 3.6), squeeze=False)
    for ax, (pert, agents) in zip(axes[0], sorted(data.items())):
        grid = taus(agents)
        for agent, tasks in sorted(agents.items()):
            curve = stats.performance_profile(tasks, grid)
            lo, hi = stats.performance_profile_band(tasks, grid)
            line, = ax.plot(grid, curve,
                            label=f"{agent} ({sum(map(len, tasks))} runs × tasks)")
            ax.fill_between(grid, lo, hi, alpha=0.2, color=line.get_color())
        ax.set(title=f"{pert}\n(band: 95% stratified-bootstrap CI)",
               xlabel="τ, normalized score (1 = clean, 0 = random policy)",
               ylabel="fraction of runs with score > τ")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
