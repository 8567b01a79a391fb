"""HERON's hierarchical comparison rule: each branch on hand-built factor tables."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.core.errors import RobustRLError
from robustrl.reward.heron import (
    TIE,
    HeronConfig,
    HeronLabeler,
    LevelStats,
    aggregate,
    hierarchical_compare,
)
from robustrl.reward.labelers import parse_labeler

RNG = np.random.default_rng(0)


def test_first_level_decides_both_ways() -> None:
    a = np.array([[3.0, 0.0], [1.0, 9.0]])
    b = np.array([[1.0, 9.0], [3.0, 0.0]])
    labels, level = hierarchical_compare(a, b, margins=np.array([0.5, 0.5]))
    assert labels.tolist() == [1.0, 0.0]  # level 1 wins although level 2 says the opposite
    assert level.tolist() == [0, 0]


def test_margin_passes_to_next_level() -> None:
    # level-1 gap 0.4 is within its margin 0.5: level 2 decides; gap 0.6 exceeds it
    a = np.array([[1.4, 0.0], [1.6, 0.0]])
    b = np.array([[1.0, 2.0], [1.0, 2.0]])
    labels, level = hierarchical_compare(a, b, margins=np.array([0.5, 0.5]))
    assert labels.tolist() == [0.0, 1.0]
    assert level.tolist() == [1, 0]


def test_all_within_margins_is_a_tie() -> None:
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[1.1, 1.9, 3.2]])
    labels, level = hierarchical_compare(a, b, margins=np.array([0.2, 0.2, 0.3]))
    assert labels.tolist() == [0.5] and level.tolist() == [TIE]


def test_zero_first_margin_any_difference_decides() -> None:
    a, b = np.array([[1.0001, -5.0]]), np.array([[1.0, 5.0]])
    assert hierarchical_compare(a, b, np.array([0.0, 0.0]))[0].tolist() == [1.0]
    # an exact tie at level 1 (with m_1 = 0) passes to level 2
    assert hierarchical_compare(b, b + [0, 1], np.array([0.0, 0.0]))[0].tolist() == [0.0]


def test_direction_lower_is_better() -> None:
    # factor 1 is a cost (queue): the sample with the smaller queue wins
    a, b = np.array([[2.0, 0.0]]), np.array([[5.0, 0.0]])
    labels, _ = hierarchical_compare(a, b, np.zeros(2), signs=np.array([-1.0, 1.0]))
    assert labels.tolist() == [1.0]
    labeler = HeronLabeler(HeronConfig(sigmas=(0.0,)), signs=(-1.0, 1.0))
    assert labeler.label(a, b, RNG)[0].tolist() == [1.0]


def test_segments_sum_or_mean() -> None:
    # per-step factors (B=1, L=3, F=1) vs (B=1, L=3, F=1)
    a = np.array([[[1.0], [1.0], [1.0]]])
    b = np.array([[[2.5], [0.0], [0.0]]])
    assert aggregate(a, "sum").tolist() == [[3.0]]
    assert aggregate(a, "mean").tolist() == [[1.0]]
    summed = HeronLabeler(HeronConfig(sigmas=(0.0,), aggregate="sum"))
    meaned = HeronLabeler(HeronConfig(sigmas=(0.0,), aggregate="mean"))
    assert summed.label(a, b, RNG)[0].tolist() == [1.0]  # 3 > 2.5
    assert meaned.label(a, b, RNG)[0].tolist() == [1.0]  # 1 > 0.833
    # steps (L = 1) and trajectories are the same rule on (B, F) tables
    assert summed.label(a[:, 0], b[:, 0], RNG)[0].tolist() == [0.0]  # 1 < 2.5


def test_margin_is_sigma_times_batch_std() -> None:
    # batch of both sides on factor 1: values 0, 2, 2, 0 -> std 1, so m_1 = sigma_1
    a = np.array([[0.0, 1.0], [2.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, 1.0]])
    wide = HeronLabeler(HeronConfig(sigmas=(2.5, 0.0)))  # m_1 = 2.5 > gap 2: level 2 decides
    assert wide.margins(a, b) == pytest.approx([2.5, 0.0])
    assert wide.label(a, b, RNG)[0].tolist() == [1.0, 0.0]
    assert wide.stats.decided.tolist() == [0, 2]
    narrow = HeronLabeler(HeronConfig(sigmas=(1.5, 0.0)))  # m_1 = 1.5 < gap 2: level 1 decides
    assert narrow.label(a, b, RNG)[0].tolist() == [0.0, 1.0]
    assert narrow.stats.decided.tolist() == [2, 0]


def test_margin_from_buffer_scale_and_first_margin() -> None:
    a = np.array([[1.0, 1.0]])
    b = np.array([[0.0, 0.0]])
    lab = HeronLabeler(HeronConfig(sigmas=(0.5,), scale="buffer"))
    lab.set_scale(np.array([4.0, 1.0]))  # margins 2 and 0.5: level 1 ties, level 2 decides
    assert lab.margins(a, b) == pytest.approx([2.0, 0.5])
    assert lab.label(a, b, RNG)[0].tolist() == [1.0]
    assert lab.stats.decided.tolist() == [0, 1]
    lab2 = HeronLabeler(HeronConfig(sigmas=(0.5,), scale="buffer", first_margin=0.0))
    lab2.set_scale(np.array([4.0, 1.0]))
    assert lab2.margins(a, b) == pytest.approx([0.0, 0.5])
    assert lab2.label(a, b, RNG)[0].tolist() == [1.0]
    assert lab2.stats.decided.tolist() == [1, 0]


def test_level_statistics() -> None:
    stats = LevelStats(("queue", "wait"))
    stats.add(np.array([0, 0, 1, TIE]))
    stats.add(np.array([0]))
    assert stats.decided.tolist() == [3, 1] and stats.ties == 1 and stats.total == 5
    f = stats.fractions()
    assert f == {"level1_queue": 0.6, "level2_wait": 0.2, "ties": 0.2}
    assert "| 1 | queue | 3 | 0.600 |" in stats.table()


def test_config_sigmas_repeat_and_validation() -> None:
    cfg = HeronConfig(sigmas=(0.5, 0.1))
    assert cfg.level_sigmas(4).tolist() == [0.5, 0.1, 0.1, 0.1]
    assert HeronConfig(sigmas=(0.5,), first_margin=0.0).level_sigmas(2).tolist() == [0.0, 0.5]
    with pytest.raises(RobustRLError, match="sigmas"):
        HeronConfig(sigmas=(-1.0,))
    with pytest.raises(RobustRLError, match="ties"):
        HeronConfig(ties="drop")  # type: ignore[arg-type]


def test_registered_as_labeler_spec() -> None:
    lab = parse_labeler("heron:0.3")
    assert isinstance(lab, HeronLabeler) and lab.needs_factors
    assert lab.config.sigmas == (0.3,)
    lab = parse_labeler("heron:0.3,first_margin=0,mean=1")
    assert lab.config.first_margin == 0.0 and lab.config.aggregate == "mean"
    # a corruption stacks on HERON's labels too
    flipped = parse_labeler("heron:0+flip:1.0")
    a, b = np.array([[2.0, 0.0]]), np.array([[1.0, 0.0]])
    assert flipped(a, b, rng=0).tolist() == [0.0]
    with pytest.raises(RobustRLError, match="heron"):
        parse_labeler("heron:0.3,bogus=1")
    with pytest.raises(RobustRLError, match="factors"):
        lab(np.zeros(3), np.zeros(3))  # scalar rewards: HERON needs factor tables


def test_stats_names_for_spec_labelers() -> None:
    lab = parse_labeler("heron:0")
    lab(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 0.0]]))
    assert lab.stats.names == ("f1", "f2") and lab.stats.decided.tolist() == [1, 0]
    assert lab.stats.ties == 1
