"""Aggregate statistics for few-seed RL results (Agarwal et al., NeurIPS 2021, "Deep RL at
the edge of the statistical precipice"), numpy only.

The same estimators as the `rliable` package (tests/bench/test_stats.py checks them against
it where it is installed), without its dependencies (`arch`, and a pandas pin):

- `iqm`: interquartile mean, the mean of the middle 50% of the pooled scores (scipy's
  `trim_mean(x, 0.25)`: floor(n/4) scores cut from each end);
- `stratified_bootstrap_ci`: resample runs *within each task* with replacement, recompute the
  aggregate, take the 2.5/97.5 percentiles (a percentile interval);
- `probability_of_improvement`: per task the Mann-Whitney probability that a run of X scores
  above a run of Y (ties count 1/2), averaged over tasks;
- `performance_profile`: the fraction of all runs (run × task) scoring above each τ.

A *task* is a list of per-run scores (one per training seed); tasks may have different numbers
of runs. `scores` arguments are sequences of tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from robustrl.core.errors import RobustRLError

Tasks = Sequence[Sequence[float]]
REPS = 2000
"""Bootstrap resamples (the protocol asks for at least 2,000)."""


def _tasks(scores: Tasks) -> list[np.ndarray]:
    tasks = [np.asarray(t, dtype=float).ravel() for t in scores]
    if not tasks or any(t.size == 0 for t in tasks):
        raise RobustRLError("aggregate of no scores: every task needs at least one run")
    return tasks


def iqm(scores: Tasks) -> float:
    """Interquartile mean of all runs of all tasks pooled."""
    x = np.sort(np.concatenate(_tasks(scores)))
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean())


def mean(scores: Tasks) -> float:
    return float(np.concatenate(_tasks(scores)).mean())


def median(scores: Tasks) -> float:
    return float(np.median(np.concatenate(_tasks(scores))))


def _resample(tasks: list[np.ndarray], rng: np.random.Generator, reps: int) -> np.ndarray:
    """(reps, runs of all tasks): each row resamples every task's runs with replacement."""
    return np.concatenate([t[rng.integers(0, t.size, (reps, t.size))] for t in tasks], axis=1)


def _iqm_rows(m: np.ndarray) -> np.ndarray:
    m = np.sort(m, axis=1)
    cut = int(0.25 * m.shape[1])
    return m[:, cut:m.shape[1] - cut].mean(axis=1)


_ROWS: dict[Callable[[Tasks], float], Callable[[np.ndarray], np.ndarray]] = {
    iqm: _iqm_rows, mean: lambda m: m.mean(axis=1), median: lambda m: np.median(m, axis=1)}


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def stratified_bootstrap_ci(scores: Tasks, aggregate: Callable[[Tasks], float] = iqm,
                            reps: int = REPS, level: float = 0.95,
                            seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `aggregate` (iqm, mean or median: they pool the runs) under
    resampling of runs within each task."""
    if aggregate not in _ROWS:
        raise RobustRLError("stratified_bootstrap_ci aggregates with iqm, mean or median")
    rows = _resample(_tasks(scores), np.random.default_rng(seed), reps)
    return _interval(_ROWS[aggregate](rows), level)


def _pairs(x: Tasks, y: Tasks) -> tuple[list[np.ndarray], list[np.ndarray]]:
    xs, ys = _tasks(x), _tasks(y)
    if len(xs) != len(ys):
        raise RobustRLError(f"probability of improvement compares the same tasks; got "
                            f"{len(xs)} and {len(ys)}")
    return xs, ys


def _beats(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a run of a > a run of b), ties 1/2, over the last two axes' pairs."""
    a, b = a[..., :, None], b[..., None, :]
    return ((a > b) + 0.5 * (a == b)).mean(axis=(-2, -1))


def probability_of_improvement(x: Tasks, y: Tasks) -> float:
    """P(X > Y): mean over tasks of P(a run of X scores above a run of Y), ties count 1/2."""
    xs, ys = _pairs(x, y)
    return float(np.mean([_beats(a, b) for a, b in zip(xs, ys)]))


def probability_of_improvement_ci(x: Tasks, y: Tasks, reps: int = REPS, level: float = 0.95,
                                  seed: int = 0) -> tuple[float, float]:
    """Stratified bootstrap interval of P(X > Y): X's and Y's runs resampled independently
    within each task."""
    xs, ys = _pairs(x, y)
    rng = np.random.default_rng(seed)
    per_task = [_beats(_resample([a], rng, reps), _resample([b], rng, reps))
                for a, b in zip(xs, ys)]
    return _interval(np.mean(per_task, axis=0), level)


def performance_profile(scores: Tasks, taus: Sequence[float]) -> np.ndarray:
    """Fraction of all runs (run × task) with a score above each τ."""
    x = np.concatenate(_tasks(scores))
    return (x[None, :] > np.asarray(taus, dtype=float)[:, None]).mean(axis=1)


def performance_profile_band(scores: Tasks, taus: Sequence[float], reps: int = REPS,
                             level: float = 0.95, seed: int = 0
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise stratified bootstrap band (lower, upper) of `performance_profile`."""
    rows = _resample(_tasks(scores), np.random.default_rng(seed), reps)
    values = (rows[:, None, :] > np.asarray(taus, dtype=float)[None, :, None]).mean(axis=2)
    tail = 100 * (1 - level) / 2
    return np.percentile(values, tail, axis=0), np.percentile(values, 100 - tail, axis=0)


def normalized(score: float, clean: float, random: float) -> float | None:
    """(score − random) / (clean − random): 1 = as good as clean, 0 = no better than a random
    policy under the same perturbation, < 0 = worse; sign-aware, so it reads the same on
    negative-return tasks. None when clean and random do not differ (nothing to normalize by)."""
    gap = clean - random
    if not np.isfinite(gap) or abs(gap) <= 1e-9 * max(abs(clean), abs(random), 1.0):
        return None
    return float((score - random) / gap)


__all__ = ["REPS", "iqm", "mean", "median", "normalized", "performance_profile",
           "performance_profile_band", "probability_of_improvement",
           "probability_of_improvement_ci", "stratified_bootstrap_ci"]
