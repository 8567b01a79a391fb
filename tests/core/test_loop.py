"""The learn loops' bookkeeping: interval checks, epoch minibatches, step rate."""

import torch

from robustrl.core.loop import StepRate, crossed, minibatches


def test_crossed_sees_a_multiple_jumped_over():
    assert crossed(7, 9, 4)  # 8 lies between: a learner stepping 2 env copies at once
    assert crossed(3, 4, 4)
    assert not crossed(4, 7, 4)
    assert [n for n in range(1, 13) if crossed(n - 1, n, 3)] == [3, 6, 9, 12]


def test_minibatches_cover_one_permutation_in_equal_slices():
    torch.manual_seed(0)
    batch = {"i": torch.arange(10), "x": torch.arange(10.0)[:, None] * 2}
    parts = minibatches(batch, 3)
    assert parts["i"].shape == (3, 3) and parts["x"].shape == (3, 3, 1)
    index = parts["i"].reshape(-1)
    assert len(set(index.tolist())) == 9  # one sample left out, none repeated
    assert torch.equal(parts["x"][..., 0], parts["i"] * 2.0)  # rows stay together
    torch.manual_seed(0)
    assert torch.equal(index, torch.randperm(10)[:9])  # same draw as a plain epoch


def test_step_rate_counts_from_the_start_step():
    rate = StepRate(100)
    assert rate(100) == 0.0
    assert rate(150) > 0.0
