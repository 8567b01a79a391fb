"""Synthetic labelers: statistics of each corruption, spec parsing, the factor-labeler hook."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from robustrl.core.errors import RobustRLError
from robustrl.reward import labelers
from robustrl.reward.labelers import (
    FactorLabeler,
    Flip,
    Irrational,
    Labeler,
    Rational,
    labeler_names,
    parse_labeler,
    register_labeler,
)


def returns(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), rng.normal(size=n)


def test_oracle_is_deterministic_with_ties() -> None:
    a = np.array([1.0, 0.0, 2.0, 3.0])
    b = np.array([0.0, 1.0, 2.0, -1.0])
    labels, corrupted = Rational().label(a, b, np.random.default_rng(0))
    assert labels.tolist() == [1.0, 0.0, 0.5, 1.0]
    assert not corrupted.any()


def test_segments_sum_per_step_rewards() -> None:
    a = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 3.0]])
    b = np.array([[0.0, 0.0, 2.0], [1.0, 1.0, 0.5]])
    assert Rational()(a, b).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_boltzmann_matches_sigmoid(temperature: float) -> None:
    n = 40_000
    gap = np.repeat([-2.0, 0.0, 1.0, 3.0], n // 4)
    labels = Rational(temperature=temperature)(gap, np.zeros_like(gap), rng=1)
    assert set(np.unique(labels)) <= {0.0, 1.0}  # Boltzmann draws no ties
    for g in (-2.0, 0.0, 1.0, 3.0):
        p = 1 / (1 + np.exp(-g / temperature))
        assert labels[gap == g].mean() == pytest.approx(p, abs=0.02)


def test_myopic_weights_recent_steps() -> None:
    # a earns early, b late: undiscounted a wins, a myopic labeler (γ = 0.5) prefers b
    a = np.array([[4.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 2.0]])
    assert Rational()(a, b).tolist() == [1.0]
    assert Rational(discount=0.5)(a, b).tolist() == [0.0]  # 4·0.25 = 1 < 2
    assert parse_labeler("myopic:0.5") == Rational(discount=0.5)


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4])
def test_flip_rate_and_corrupted_mask(rate: float) -> None:
    a, b = returns(20_000)
    clean = Rational()(a, b)
    labels, corrupted = Flip(rate).label(a, b, np.random.default_rng(3))
    assert corrupted.mean() == pytest.approx(rate, abs=0.015)
    assert np.array_equal(corrupted, labels != clean)


def test_flip_leaves_ties_alone() -> None:
    a = np.zeros(1000)
    labels, corrupted = Flip(1.0).label(a, a, np.random.default_rng(0))
    assert (labels == 0.5).all() and not corrupted.any()


@pytest.mark.parametrize(("power", "per_batch"), [(1 / 3, 4), (1 / 2, 8), (2 / 3, 16)])
def test_irrational_flips_top_gaps_per_batch(power: float, per_batch: int) -> None:
    n = 64 * 5 + 25  # five full batches and a partial one of 25
    a, b = returns(n, seed=4)
    labels, corrupted = Irrational(power).label(a, b, np.random.default_rng(0))
    gap = np.abs(a - b)
    for start in range(0, n, 64):
        sl = slice(start, min(start + 64, n))
        size = sl.stop - sl.start
        k = per_batch if size == 64 else int(np.floor(size**power + 1e-9))
        assert corrupted[sl].sum() == k
        top = np.argsort(-gap[sl])[:k]
        assert set(np.flatnonzero(corrupted[sl])) == set(top)
    assert np.array_equal(labels[corrupted], 1 - Rational()(a, b)[corrupted])
    if per_batch == 8:
        assert corrupted[: 64 * 5].mean() == 0.125  # the spec's ≈ 12.5 %


def test_composed_corruptions_track_what_changed() -> None:
    a, b = returns(5000, seed=2)
    lab = parse_labeler("myopic:0.7+irrational:0.5+flip:0.1")
    assert isinstance(lab, Flip) and isinstance(lab.base, Irrational)
    labels, corrupted = lab.label(a, b, np.random.default_rng(0))
    assert np.array_equal(corrupted, labels != Rational()(a, b))


def test_parse_specs() -> None:
    assert parse_labeler("flip:0.2") == Flip(0.2, base=Rational())
    assert parse_labeler("boltzmann:1.0") == Rational(temperature=1.0)
    assert parse_labeler("irrational:0.5") == Irrational(0.5)
    assert parse_labeler("irrational:0.5,batch=32").batch == 32
    assert parse_labeler(" oracle ") == Rational()
    assert parse_labeler("boltzmann:2+flip:0.1").base == Rational(temperature=2)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("flap:0.2", "unknown labeler 'flap'.*choose from: oracle, boltzmann:TEMPERATURE"),
        ("flip", "expected flip:RATE"),
        ("flip:abc", "flip must be a number, got 'abc'"),
        ("flip:1.5", r"rate must be in \[0, 1\]"),
        ("boltzmann:-1", "temperature must be >= 0"),
        ("myopic:0", r"discount must be in \(0, 1\]"),
        ("irrational:0", r"power must be in \(0, 1\]"),
        ("irrational:0.5,bacth=3", "unexpected keyword argument 'bacth'"),
        ("irrational:0.5,batch", "expected key=value"),
        ("flip:0.1+myopic:0.5", "put it first"),
        ("oracle:3", "expected oracle"),
    ],
)
def test_parse_errors_are_one_line(spec: str, match: str) -> None:
    with pytest.raises(RobustRLError, match=match) as e:
        parse_labeler(spec)
    assert "\n" not in str(e.value)


def test_shape_errors() -> None:
    with pytest.raises(RobustRLError, match="must match"):
        Rational()(np.zeros(3), np.zeros(4))
    with pytest.raises(RobustRLError, match="expected"):
        Rational()(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


@dataclass
class Lexicographic(FactorLabeler):
    """A toy hierarchical rule: first factor decides unless within margin, then the next."""

    margin: float = 0.5

    def label(self, rewards_a, rewards_b, rng) -> tuple[np.ndarray, np.ndarray]:
        fa = rewards_a.sum(1) if rewards_a.ndim == 3 else rewards_a
        fb = rewards_b.sum(1) if rewards_b.ndim == 3 else rewards_b
        labels = np.full(fa.shape[0], 0.5)
        undecided = np.ones(fa.shape[0], bool)
        for f in range(fa.shape[1]):
            diff = fa[:, f] - fb[:, f]
            decide = undecided & (np.abs(diff) > self.margin)
            labels[decide] = (diff[decide] > 0).astype(float)
            undecided &= ~decide
        return labels, np.zeros(fa.shape[0], bool)


def test_factor_labeler_hook_plugs_into_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(labelers, "_REGISTRY", dict(labelers._REGISTRY))  # keep it test-local
    register_labeler("lexi", lambda v=0.5, **kw: Lexicographic(margin=v, **kw), help="lexi:M")
    assert "lexi:M" in labeler_names()
    a = np.array([[1.0, 0.0], [0.2, 3.0], [0.0, 0.1]])
    b = np.array([[0.0, 5.0], [0.0, 0.0], [0.1, 0.0]])
    lab = parse_labeler("lexi:0.5")
    assert isinstance(lab, Labeler) and lab.needs_factors
    assert lab(a, b).tolist() == [1.0, 1.0, 0.5]  # ties come through
    segments = np.repeat(a[:, None, :], 4, axis=1) / 4  # (B, L, F) per-step factors
    assert lab(segments, np.repeat(b[:, None, :], 4, axis=1) / 4).tolist() == [1.0, 1.0, 0.5]
    flipped = parse_labeler("lexi:0.5+flip:1.0")
    assert flipped.needs_factors and flipped(a, b).tolist() == [0.0, 0.0, 0.5]
    with pytest.raises(RobustRLError, match="needs a base labeler over scalar rewards"):
        parse_labeler("lexi:0.5+irrational:0.5")
    with pytest.raises(RobustRLError, match="needs reward factors"):
        lab(np.zeros(3), np.zeros(3))
