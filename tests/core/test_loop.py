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
    parts = list(minibatches(10, 3))
    assert [len(p) for p in parts] == [3, 3, 3]
    assert len(set(torch.cat(parts).tolist())) == 9  # one index left out, none repeated
    torch.manual_seed(0)
    assert torch.equal(torch.cat(parts), torch.randperm(10)[:9])  # same draw as a plain epoch


def test_step_rate_counts_from_the_start_step():
    rate = StepRate(100)
    assert rate(100) == 0.0
    assert rate(150) > 0.0
