"""PGD inner maximisation and the empirical Lipschitz constant on small known functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustrl.perturb import distance_per_sample, empirical_lipschitz, pgd_attack


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # tiny tensors: intra-op threads only contend on a shared 2-core machine (0.9 s vs 3 ms)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _net(n_in=6, n_out=3, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 32), torch.nn.Tanh(),
                               torch.nn.Linear(32, n_out))


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("distance", ["l2", "kl"])
def test_pgd_stays_in_ball_and_beats_random_noise(norm, distance):
    f, eps = _net(), 0.2
    obs = torch.randn(256, 6)
    scale = torch.tensor([0.5, 1.0, 2.0, 1.0, 3.0, 0.1])
    g = torch.Generator().manual_seed(0)
    delta = pgd_attack(f, obs, eps, steps=5, norm=norm, distance=distance, obs_scale=scale,
                       generator=g)
    z = delta / scale
    size = z.abs().amax(1) if norm == "linf" else z.norm(dim=1)
    assert torch.all(size <= eps * (1 + 1e-5))
    # random perturbations of the same radius, on the sphere of the same norm
    rand = torch.randn(256, 6, generator=g)
    rand = rand.sign() * eps if norm == "linf" else rand / rand.norm(dim=1, keepdim=True) * eps
    with torch.no_grad():
        clean = f(obs)
        d_pgd = distance_per_sample(f(obs + delta), clean, distance)
        d_rand = distance_per_sample(f(obs + rand * scale), clean, distance)
    assert d_pgd.mean() > 1.5 * d_rand.mean()
    assert (d_pgd >= d_rand).float().mean() > 0.9


def test_pgd_per_sample_scale_matches_each_sample_attacked_alone():
    """obs_scale of the batch's shape gives every sample its own ball; with restarts the
    batch equals attacking each sample alone with its scale (same random starts)."""
    f, eps = _net(), 0.2
    x = torch.randn(2, 6)
    scale = torch.tensor([[1.0] * 6, [0.01] * 6])
    kw = dict(steps=5, norm="linf", distance="l2", restarts=3, keep_best=True)
    delta = pgd_attack(f, x, eps, obs_scale=scale, **kw,
                       generator=torch.Generator().manual_seed(0))
    assert torch.all(delta.abs() <= eps * scale + 1e-6)
    assert delta[1].abs().max() < 0.1 * delta[0].abs().max()
    alone = pgd_attack(f, x, eps, obs_scale=scale[1], **kw,
                       generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(delta[1], alone[1])


def test_pgd_zero_radius_determinism_and_no_param_grads():
    f = _net()
    obs = torch.randn(8, 6)
    assert torch.equal(pgd_attack(f, obs, 0.0), torch.zeros_like(obs))
    a = pgd_attack(f, obs, 0.1, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # evaluation loops run under no_grad; the attack still works
        b = pgd_attack(f, obs, 0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.abs().max() > 0
    assert all(p.grad is None for p in f.parameters())
    assert not a.requires_grad


def test_pgd_create_graph_is_differentiable_in_parameters():
    f = _net()
    delta = pgd_attack(f, torch.randn(4, 6), 0.1, steps=2, norm="l2", create_graph=True,
                       generator=torch.Generator().manual_seed(0))
    assert delta.requires_grad
    delta.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in f.parameters())


def test_lipschitz_of_linear_map_matches_spectral_norm():
    torch.manual_seed(0)
    w = torch.randn(3, 5)
    f = torch.nn.Linear(5, 3, bias=False)
    f.weight.data.copy_(w)
    obs = np.random.default_rng(0).normal(size=(32, 5))
    est = empirical_lipschitz(f, obs, eps=0.1, steps=30, norm="l2")
    sigma = torch.linalg.matrix_norm(w, ord=2).item()
    assert 0.95 * sigma <= est <= sigma * (1 + 1e-4)


def test_lipschitz_uses_normalized_units():
    scale = np.array([0.5, 4.0, 1.0])
    est = empirical_lipschitz(lambda x: x, np.zeros((4, 3)), eps=0.1, steps=20, norm="l2",
                              obs_scale=scale)
    assert est == pytest.approx(4.0, rel=1e-3)
    # linf input, l2 output: identity map gives ||scale||_2 at a corner of the box
    est_inf = empirical_lipschitz(lambda x: x, np.zeros((4, 3)), eps=0.1, steps=5,
                                  norm="linf", obs_scale=scale)
    assert est_inf == pytest.approx(float(np.linalg.norm(scale)), rel=1e-3)


def test_lipschitz_smooth_policy_is_smaller():
    sharp, smooth = _net(seed=1), _net(seed=1)
    with torch.no_grad():
        for p in smooth.parameters():
            p.mul_(0.1)
    obs = np.random.default_rng(1).normal(size=(64, 6))
    assert empirical_lipschitz(smooth, obs, 0.05) < empirical_lipschitz(sharp, obs, 0.05)
