"""Plain and Stackelberg ERNIE share one inner ascent: same rule, same step, same random start,
so on the same batch and generator they find the same delta* and the same R; only the leader's
gradient differs, by the Stackelberg term (d delta*/d theta)^T dR/d delta."""

from __future__ import annotations

import pytest
import torch

from robustrl.robust import RobustConfig, perturbation, regularizer


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 3)).double()


def _grads(net: torch.nn.Module, cfg: RobustConfig, x: torch.Tensor, distance: str):
    net.zero_grad()
    reg = regularizer(net, x, cfg, distance, generator=torch.Generator().manual_seed(7))
    reg.backward()
    return reg.item(), torch.cat([p.grad.flatten() for p in net.parameters()])


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("distance", ["kl", "l2"])
def test_plain_and_stackelberg_share_the_ascent(norm, distance):
    net = _net()
    x = torch.randn(32, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    plain = RobustConfig(method="ernie", eps=0.2, norm=norm, steps=3)
    stack = RobustConfig(method="ernie", eps=0.2, norm=norm, steps=3, stackelberg=True)
    assert plain.rule == stack.rule and plain.alpha == stack.alpha

    d_plain = perturbation(net, x, plain, distance, generator=torch.Generator().manual_seed(7))
    d_stack = perturbation(net, x, stack, distance, generator=torch.Generator().manual_seed(7))
    assert d_stack.requires_grad and not d_plain.requires_grad  # only the graph differs
    torch.testing.assert_close(d_stack.detach(), d_plain, rtol=0, atol=1e-12)

    r_plain, g_plain = _grads(net, plain, x, distance)
    r_stack, g_stack = _grads(net, stack, x, distance)
    assert r_plain == pytest.approx(r_stack, rel=1e-12)  # same follower, same R
    # the leader's gradients differ by the (non-zero) Stackelberg term
    assert (g_stack - g_plain).norm() > 1e-6 * g_plain.norm()


def test_stackelberg_term_is_the_only_difference():
    """Plain gradient = the Stackelberg total gradient with delta* cut from the graph."""
    net = _net(3)
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    stack = RobustConfig(method="ernie", eps=0.3, steps=2, stackelberg=True)
    plain = RobustConfig(method="ernie", eps=0.3, steps=2)
    delta = perturbation(net, x, stack, "l2", generator=torch.Generator().manual_seed(9))
    clean = net(x)
    cut = (net(x + delta.detach()) - clean).pow(2).sum(1).mean()
    net.zero_grad()
    cut.backward()
    g_cut = torch.cat([p.grad.flatten() for p in net.parameters()])
    net.zero_grad()
    reg = regularizer(net, x, plain, "l2", generator=torch.Generator().manual_seed(9))
    reg.backward()
    g_plain = torch.cat([p.grad.flatten() for p in net.parameters()])
    torch.testing.assert_close(g_plain, g_cut, rtol=1e-10, atol=1e-12)
