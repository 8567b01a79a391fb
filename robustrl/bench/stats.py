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

Beyond rliable: a task may also be a 2-D array, runs × conditions, when the same runs are
scored in several conditions (one trained policy under several perturbations or strengths).
Its rows are resampled together, so the interval keeps the conditions' correlation instead
of treating them as independent tasks (which would make it too narrow); every (run,
condition) score counts in the IQM, and probability of improvement compares the runs within
each condition and averages over all conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from robustrl.core.errors import RobustRLError

Tasks = Sequence[Sequence[float]]
REPS = 2000
"""Bootstrap resamples (the protocol asks for at least 2,000)."""


def _tasks(scores: Tasks) -> list[np.ndarray]:
    """Each task as a (runs, conditions) array (a list of run scores: one condition)."""
    tasks = [np.asarray(t, dtype=float) for t in scores]
    tasks = [t.reshape(-1, 1) if t.ndim <= 1 else t for t in tasks]
    if not tasks or any(t.size == 0 or t.ndim != 2 for t in tasks):
        raise RobustRLError("aggregate of no scores: every task needs at least one run "
                            "(a list of scores, or runs × conditions)")
    return tasks


def _pooled(scores: Tasks) -> np.ndarray:
    return np.concatenate([t.ravel() for t in _tasks(scores)])


def iqm(scores: Tasks) -> float:
    """Interquartile mean of all scores of all tasks pooled."""
    x = np.sort(_pooled(scores))
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean())


def mean(scores: Tasks) -> float:
    return float(_pooled(scores).mean())


def median(scores: Tasks) -> float:
    return float(np.median(_pooled(scores)))


def _rows(t: np.ndarray, rng: np.random.Generator, reps: int) -> np.ndarray:
    """(reps, runs, conditions): the task's runs (rows) resampled with replacement."""
    return t[rng.integers(0, t.shape[0], (reps, t.shape[0]))]


def _resample(tasks: list[np.ndarray], rng: np.random.Generator, reps: int) -> np.ndarray:
    """(reps, all scores): each row resamples every task's runs with replacement."""
    return np.concatenate([_rows(t, rng, reps).reshape(reps, -1) for t in tasks], axis=1)


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
    if len(xs) != len(ys) or any(a.shape[1] != b.shape[1] for a, b in zip(xs, ys)):
        raise RobustRLError(f"probability of improvement compares the same tasks; got "
                            f"{[a.shape[1] for a in xs]} and {[b.shape[1] for b in ys]} "
                            "conditions per task")
    return xs, ys


def _beats(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per condition, P(a run of a > a run of b), ties 1/2: (..., runs, conditions) arrays
    give (..., conditions)."""
    a, b = a[..., :, None, :], b[..., None, :, :]
    return ((a > b) + 0.5 * (a == b)).mean(axis=(-3, -2))


def probability_of_improvement(x: Tasks, y: Tasks) -> float:
    """P(X > Y): mean over tasks (and their conditions) of P(a run of X scores above a run of
    Y), ties count 1/2."""
    xs, ys = _pairs(x, y)
    return float(np.concatenate([_beats(a, b) for a, b in zip(xs, ys)]).mean())


def probability_of_improvement_ci(x: Tasks, y: Tasks, reps: int = REPS, level: float = 0.95,
                                  seed: int = 0) -> tuple[float, float]:
    """Stratified bootstrap interval of P(X > Y): X's and Y's runs resampled independently
    within each task."""
    xs, ys = _pairs(x, y)
    rng = np.random.default_rng(seed)
    per_task = [_beats(_rows(a, rng, reps), _rows(b, rng, reps)) for a, b in zip(xs, ys)]
    return _interval(np.concatenate(per_task, axis=1).mean(axis=1), level)


def performance_profile(scores: Tasks, taus: Sequence[float]) -> np.ndarray:
    """Fraction of all scores (run × task) above each τ."""
    x = _pooled(scores)
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
