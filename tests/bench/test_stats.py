"""robustrl.bench.stats: the Agarwal et al. 2021 estimators against hand-computed values,
scipy, and (where installed) rliable."""

import numpy as np
import pytest

from robustrl.bench import stats
from robustrl.core.errors import RobustRLError


def test_iqm_by_hand_and_against_scipy():
    assert stats.iqm([[1, 2, 3, 4, 5, 6, 7, 8]]) == 4.5  # mean of 3, 4, 5, 6
    assert stats.iqm([[1, 2, 3, 1000]]) == 2.5  # the outlier seed is cut
    assert stats.iqm([[1, 2], [3, 1000]]) == 2.5  # tasks are pooled
    from scipy.stats import trim_mean

    x = np.random.default_rng(0).normal(size=37)
    assert stats.iqm([x[:20], x[20:]]) == pytest.approx(trim_mean(x, 0.25))


def test_stratified_bootstrap_resamples_within_tasks():
    # A task with one run never varies under stratified resampling: the interval is exact.
    lo, hi = stats.stratified_bootstrap_ci([[3.0], [5.0]], stats.mean)
    assert lo == hi == 4.0
    x = np.random.default_rng(1).normal(10, 1, size=10)
    lo, hi = stats.stratified_bootstrap_ci([x])
    assert lo < stats.iqm([x]) < hi and hi - lo < 2
    # More runs, narrower interval; the interval stays inside the data's range (no band past
    # feasible values, unlike a Student t interval at 2 seeds).
    lo2, hi2 = stats.stratified_bootstrap_ci([[0.0, 1.0]])
    assert 0.0 <= lo2 <= hi2 <= 1.0
    with pytest.raises(RobustRLError, match="iqm, mean or median"):
        stats.stratified_bootstrap_ci([x], aggregate=np.max)


def test_probability_of_improvement_by_hand():
    assert stats.probability_of_improvement([[3, 4]], [[1, 3.5]]) == 0.75  # 3 of 4 pairs
    assert stats.probability_of_improvement([[1, 2, 3]], [[2, 2]]) == 0.5  # ties count 1/2
    # averaged over tasks: 1 on the first, 0 on the second
    assert stats.probability_of_improvement([[5], [0]], [[1], [9]]) == 0.5
    with pytest.raises(RobustRLError, match="same tasks"):
        stats.probability_of_improvement([[1]], [[1], [2]])


def test_dominating_method_has_probability_one():
    rng = np.random.default_rng(2)
    a = [rng.uniform(10, 11, 5), rng.uniform(-1, 0, 3)]
    b = [rng.uniform(0, 9, 5), rng.uniform(-9, -2, 3)]
    assert stats.probability_of_improvement(a, b) == 1.0
    assert stats.probability_of_improvement_ci(a, b) == (1.0, 1.0)
    assert stats.probability_of_improvement(b, a) == 0.0


def test_runs_scored_in_several_conditions_are_resampled_together():
    # 4 runs, each scored in 3 conditions; a run's scores move together (one policy)
    rng = np.random.default_rng(4)
    runs = rng.normal(0, 1, size=(4, 1)) + rng.normal(0, 0.05, size=(4, 3))
    joint = stats.stratified_bootstrap_ci([runs])
    independent = stats.stratified_bootstrap_ci(list(runs.T))  # as 3 unrelated tasks
    assert stats.iqm([runs]) == stats.iqm(list(runs.T))  # the same scores pooled
    assert joint[1] - joint[0] > 1.2 * (independent[1] - independent[0])
    # P(X > Y) of runs × conditions = the mean over conditions of each condition's P
    other = rng.normal(0, 1, size=(3, 3))
    assert stats.probability_of_improvement([runs], [other]) == pytest.approx(np.mean(
        [stats.probability_of_improvement([runs[:, j]], [other[:, j]]) for j in range(3)]))
    lo, hi = stats.probability_of_improvement_ci([runs], [other])
    assert 0 <= lo <= stats.probability_of_improvement([runs], [other]) <= hi <= 1
    with pytest.raises(RobustRLError, match="conditions per task"):
        stats.probability_of_improvement([runs], [other[:, :2]])


def test_performance_profile():
    scores = [[0.1, 0.5], [0.9]]
    assert stats.performance_profile(scores, [0.0, 0.5, 1.0]).tolist() == [1.0, 1 / 3, 0.0]
    lo, hi = stats.performance_profile_band(scores, [0.0, 0.5])
    assert lo[0] == hi[0] == 1.0 and 0 <= lo[1] <= 1 / 3 <= hi[1] <= 1


def test_sign_aware_normalization_on_negative_returns():
    # traffic-like: waiting-time returns, clean -10, random -100 (larger is better)
    assert stats.normalized(-10, -10, -100) == 1.0
    assert stats.normalized(-100, -10, -100) == 0.0
    assert stats.normalized(-55, -10, -100) == 0.5
    assert stats.normalized(-150, -10, -100) < 0  # worse than random
    # perturbed ÷ clean would call the worse -55 "5.5": the ratio inverts, this does not
    assert stats.normalized(-20, -10, -100) > stats.normalized(-55, -10, -100)
    assert stats.normalized(5, 3, 3) is None  # clean = random: nothing to normalize by


def test_against_rliable():
    # Checked 2026-12-03 with rliable 1.2.0 + arch 7.2.0 + pandas 2.3.3 (arch 8 rejects the
    # random_state=None rliable passes; pandas 3 breaks arch's import).
    rliable = pytest.importorskip("rliable.library")
    from rliable import metrics

    rng = np.random.default_rng(3)
    x, y = rng.normal(1, 1, size=(5, 4)), rng.normal(0.5, 1, size=(5, 4))  # runs × tasks
    tasks_x, tasks_y = list(x.T), list(y.T)
    assert stats.iqm(tasks_x) == pytest.approx(metrics.aggregate_iqm(x))
    assert stats.probability_of_improvement(tasks_x, tasks_y) == pytest.approx(
        metrics.probability_of_improvement(x, y))
    _, intervals = rliable.get_interval_estimates(
        {"x": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=20000)
    lo, hi = stats.stratified_bootstrap_ci(tasks_x, reps=20000)
    assert (lo, hi) == pytest.approx(tuple(intervals["x"][:, 0]), abs=0.05)
