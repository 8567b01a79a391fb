"""Across-env aggregates of a report: IQM of normalized scores, P(A > B), performance profiles.

Built from the report's curve points (each holds its runs' raw and normalized scores), with
the estimators of robustrl.bench.stats. A *task* is one env × perturbation × strength; tasks
of different envs are only pooled through normalized scores (raw returns do not share a scale),
while P(A > B) compares A and B within each task on raw scores and averages over tasks.
The tasks of one env are scored by the same trained runs, so when several are pooled the
bootstrap resamples those runs together (one stratum per env: runs × tasks), not each task
on its own, which would treat correlated scores as independent and narrow the interval.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from textwrap import fill

import numpy as np

from robustrl.bench import stats
from robustrl.core.io import atomic_save_figure

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


Scores = dict[int, float]
"""A task's scores by training seed."""


def _by_task(points: list, normalized: bool) -> dict[str, dict[tuple, Scores]]:
    """agent -> {(env, perturbation, strength): its runs' scores by seed}."""
    tasks: dict[str, dict[tuple, Scores]] = defaultdict(dict)
    for p in points:
        values = p.normalized_scores if normalized else p.scores
        if values:
            tasks[p.agent][(p.env, p.perturbation, p.strength)] = dict(zip(p.seed_ids, values))
    return tasks


def strata(tasks: dict[tuple, Scores], keys: list[tuple]) -> list[np.ndarray]:
    """The scores of `keys` as one (runs × tasks) array per env: its seeds that every task
    has, in seed order, × the env's tasks in `keys` order."""
    by_env: dict[str, list[tuple]] = defaultdict(list)
    for key in keys:
        by_env[key[0]].append(key)
    out = []
    for _, env_keys in sorted(by_env.items()):
        seeds = sorted(set.intersection(*(set(tasks[k]) for k in env_keys)))
        if seeds:
            out.append(np.array([[tasks[k][s] for k in env_keys] for s in seeds]))
    return out


def aggregates(points: list) -> list[Aggregate]:
    """Per agent × perturbation (and over all perturbations): IQM of normalized scores pooled
    over env × strength tasks, with a stratified-bootstrap 95% CI."""
    rows = []
    for agent, tasks in sorted(_by_task(points, normalized=True).items()):
        perts = sorted({k[1] for k in tasks})
        for pert in [*perts, ALL] if len(perts) > 1 else perts:
            chosen = strata(tasks, [k for k in sorted(tasks) if pert in (ALL, k[1])])
            if not chosen:  # no seed scored in every task of any env
                continue
            rows.append(Aggregate(agent, pert, sum(s.shape[1] for s in chosen),
                                  sum(s.size for s in chosen), stats.iqm(chosen),
                                  *stats.stratified_bootstrap_ci(chosen)))
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
            xs, ys = strata(tasks[a], keys), strata(tasks[b], keys)
            if [x.shape[1] for x in xs] != [y.shape[1] for y in ys]:
                continue  # an env where one of them has no seed common to every task
            rows.append(Improvement(a, b, env, pert, strength, len(keys),
                                    stats.probability_of_improvement(xs, ys),
                                    *stats.probability_of_improvement_ci(xs, ys)))
    return rows


def profiles(points: list) -> dict[str, dict[str, list[np.ndarray]]]:
    """perturbation -> agent -> strata of normalized scores (the input of a profile)."""
    out: dict[str, dict[str, list[np.ndarray]]] = defaultdict(dict)
    for agent, tasks in _by_task(points, normalized=True).items():
        for pert in sorted({k[1] for k in tasks}):
            out[pert][agent] = strata(tasks, [k for k in sorted(tasks) if k[1] == pert])
    return out


def taus(data: dict[str, list[np.ndarray]], n: int = 101) -> np.ndarray:
    """A τ grid covering 0 (random) to 1 (clean) and every score of `data`."""
    values = np.concatenate([t.ravel() for ts in data.values() for t in ts])
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
                            label=f"{agent} ({sum(t.size for t in tasks)} runs × tasks)")
            ax.fill_between(grid, lo, hi, alpha=0.2, color=line.get_color())
        ax.set(title=f"{fill(pert, 40)}\n(band: 95% stratified-bootstrap CI)",
               xlabel="τ, normalized score (1 = clean, 0 = random policy)",
               ylabel="fraction of runs with score > τ")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return atomic_save_figure(fig, path)
