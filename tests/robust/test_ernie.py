"""ERNIE's adversarial Lipschitz regularizer (robustrl.robust): the Stackelberg gradient on
functions with known best responses, the regularizer on constant and linear policies, config
validation, and one update with the regularizer on every learner."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from robustrl.agents import make_agent, resolve_config
from robustrl.core.config import from_dict, to_dict
from robustrl.core.errors import RobustRLError
from robustrl.robust import RobustConfig, attach, kl_worst_case, perturbation, regularizer


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ernie(**kw) -> RobustConfig:
    return RobustConfig(method="ernie", **kw)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------- the Stackelberg gradient
# f_theta(x) = (theta * x, x) and D(out, target) = (out_1 - target_1) - (out_2 - target_2)^2 / 2
# give the follower's objective  phi(delta) = theta * delta - delta^2 / 2  (concave), whose best
# response is delta*(theta) = theta with value R*(theta) = theta^2 / 2, dR*/dtheta = theta.
# One raw-gradient ascent step of size alpha from delta_0 gives
# delta_1 = delta_0 + alpha * (theta - delta_0): the exact best response for alpha = 1.

def _toy(theta: torch.Tensor):
    def f(x):
        return torch.cat([theta * x, x], -1)

    def distance(out, target):
        d = out - target
        return d[:, 0] - 0.5 * d[:, 1] ** 2

    return f, distance


def _toy_reg(theta: float, alpha: float, stackelberg: bool, seed: int = 0):
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    f, distance = _toy(t)
    x = torch.linspace(-1, 1, 16, dtype=torch.float64)[:, None]
    cfg = ernie(eps=100.0, ascent="gradient", step_size=alpha, stackelberg=stackelberg)
    reg = regularizer(f, x, cfg, distance, generator=gen(seed))
    (grad,) = torch.autograd.grad(reg, t)
    return reg.item(), grad.item()


def _finite_difference(theta: float, alpha: float, h: float = 1e-5) -> float:
    # the random start is the same on both sides (same generator seed): R is a function of theta
    return (_toy_reg(theta + h, alpha, True)[0] - _toy_reg(theta - h, alpha, True)[0]) / (2 * h)


@pytest.mark.parametrize("theta", [-0.7, 0.3, 1.5])
def test_stackelberg_gradient_at_closed_form_best_response(theta):
    reg, grad = _toy_reg(theta, alpha=1.0, stackelberg=True)
    assert reg == pytest.approx(theta**2 / 2)
    assert grad == pytest.approx(theta, abs=1e-10)  # analytic dR*/dtheta
    assert grad == pytest.approx(_finite_difference(theta, 1.0), abs=1e-7)
    # at the exact best response dR/d delta = 0 (envelope theorem): plain gives the same
    assert _toy_reg(theta, alpha=1.0, stackelberg=False)[1] == pytest.approx(grad, abs=1e-10)


@pytest.mark.parametrize("theta", [-0.7, 1.5])
def test_stackelberg_gradient_through_inexact_unrolled_step(theta):
    alpha = 0.5
    t = torch.tensor(theta, dtype=torch.float64)
    f, distance = _toy(t)
    x = torch.linspace(-1, 1, 16, dtype=torch.float64)[:, None]
    cfg = ernie(eps=100.0, ascent="gradient", step_size=alpha, stackelberg=False)
    d1 = perturbation(f, x, cfg, distance, generator=gen(0))[:, 0]  # delta_1 per sample
    # R = mean(theta d1 - d1^2 / 2), d1 = d0 + alpha (theta - d0), d d1 / d theta = alpha
    partial = d1.mean().item()
    total = (d1 + alpha * (theta - d1)).mean().item()
    reg, stackelberg = _toy_reg(theta, alpha, True)
    assert stackelberg == pytest.approx(total, abs=1e-10)
    assert stackelberg == pytest.approx(_finite_difference(theta, alpha), abs=1e-7)
    assert _toy_reg(theta, alpha, False)[1] == pytest.approx(partial, abs=1e-10)
    assert abs(total - partial) > 0.05  # the follower's response term is really there


def _mlp(seed=0, n_in=5, n_out=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, n_out)).double()


@pytest.mark.parametrize("norm,distance", [("l2", "l2"), ("linf", "kl")])
def test_stackelberg_gradient_of_mlp_matches_finite_differences(norm, distance):
    net = _mlp()
    x = torch.randn(32, 5, generator=gen(1), dtype=torch.float64)
    cfg = ernie(eps=0.3, norm=norm, steps=2, stackelberg=True, step_size=0.1)
    reg = regularizer(net, x, cfg, distance, generator=gen(2))
    weight = net[0].weight
    (grad,) = torch.autograd.grad(reg, weight)
    plain_cfg = dataclasses.replace(cfg, stackelberg=False)
    (plain,) = torch.autograd.grad(regularizer(net, x, plain_cfg, distance, generator=gen(2)),
                                   weight)
    h, rng = 1e-6, np.random.default_rng(0)
    for _ in range(4):  # directional derivatives along random directions
        v = torch.as_tensor(rng.normal(size=weight.shape))
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                weight += sign * h * v
            values.append(regularizer(net, x, cfg, distance, generator=gen(2)).item())
            with torch.no_grad():
                weight -= sign * h * v
        fd = (values[0] - values[1]) / (2 * h)
        assert (grad * v).sum().item() == pytest.approx(fd, rel=1e-4, abs=1e-9)
    assert not torch.allclose(grad, plain, rtol=1e-3)  # plain drops the follower's term


@pytest.mark.parametrize("stackelberg", [False, True])
def test_reusing_the_clean_output_gives_the_same_gradient(stackelberg):
    net = _mlp()
    x = torch.randn(16, 5, dtype=torch.float64)
    cfg = ernie(eps=0.3, stackelberg=stackelberg)
    grads = []
    for clean in (None, net(x)):
        reg = regularizer(net, x, cfg, "kl", clean=clean, generator=gen(4))
        grads.append(torch.autograd.grad(reg, list(net.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="clean output has shape"):
        regularizer(net, x, cfg, clean=net(x)[:, 0])


# ----------------------------------------------------------------- constant and linear policies
@pytest.mark.parametrize("stackelberg", [False, True])
@pytest.mark.parametrize("distance", ["l2", "kl"])
def test_regularizer_is_zero_for_a_constant_policy(stackelberg, distance):
    net = torch.nn.Linear(4, 3)
    with torch.no_grad():
        net.weight.zero_()
    cfg = ernie(eps=0.5, steps=2, stackelberg=stackelberg)
    reg = regularizer(net, torch.randn(64, 4), cfg, distance)
    reg.backward()
    assert reg.item() == 0.0
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def _linear(weight: torch.Tensor) -> torch.nn.Linear:
    net = torch.nn.Linear(weight.shape[1], weight.shape[0]).double()
    with torch.no_grad():
        net.weight.copy_(weight)
    return net


def test_regularizer_grows_with_lipschitz_constant_of_linear_policy():
    x = torch.randn(64, 3, generator=gen(0), dtype=torch.float64)
    # l2 ball: R = eps^2 * sigma_max(W)^2 once the ascent has found the top singular vector
    u, _, v = torch.linalg.svd(torch.randn(3, 3, generator=gen(1), dtype=torch.float64))
    w = u @ torch.diag(torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64)) @ v.T
    cfg = ernie(eps=0.2, norm="l2", steps=20, step_size=10.0)
    values = [regularizer(_linear(c * w), x, cfg, generator=gen(2)).item() for c in (0.5, 1, 2)]
    for c, value in zip((0.5, 1, 2), values):
        assert value == pytest.approx(0.2**2 * (3.0 * c) ** 2, rel=1e-6)
    # linf ball, one output: one sign step reaches delta = eps * sign(w), R = eps^2 ||w||_1^2
    w1 = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    cfg = ernie(eps=0.1, steps=1, ascent="sign")
    for c in (0.5, 1.0, 3.0):
        value = regularizer(_linear(c * w1), x, cfg, generator=gen(3)).item()
        assert value == pytest.approx(0.1**2 * (3.5 * c) ** 2, rel=1e-9)


def test_held_dimensions_and_ball():
    """scale 0 holds a dimension fixed (agent ids); delta stays in the ball."""
    net = _mlp(n_in=4).float()
    x = torch.randn(128, 4)
    scale = torch.tensor([1.0, 2.0, 0.0, 0.0])
    for norm in ("linf", "l2"):
        delta = perturbation(net, x, ernie(eps=0.3, norm=norm, steps=3), scale=scale)
        assert torch.all(delta[:, 2:] == 0)
        z = delta[:, :2] / scale[:2]
        size = z.abs().amax(1) if norm == "linf" else z.norm(dim=1)
        assert torch.all(size <= 0.3 * (1 + 1e-5)) and size.max() > 0.29


# ----------------------------------------------------------------- config
def test_config_validation():
    for kw, msg in [({"lam": -1.0}, "robust.lam must be >= 0"),
                    ({"eps": 0.0}, "robust.eps must be > 0"),
                    ({"steps": 0}, "robust.steps must be >= 1"),
                    ({"step_size": -0.1}, "robust.step_size must be > 0"),
                    ({"ascent": "sign", "stackelberg": True}, "zero derivative")]:
        with pytest.raises(RobustRLError, match=msg):
            ernie(**kw)
    with pytest.raises(RobustRLError, match="'ernei' is not one of"):
        from_dict(RobustConfig, {"method": "ernei"}, prefix="robust.")
    for kw, kind, msg in [
            ({"target": "critic"}, {"logits": True, "critic": False}, "has no critic"),
            ({"distance": "kl"}, {"logits": False}, "needs a categorical policy"),
            ({"perturb_other_actions": True, "target": "critic"}, {"logits": True},
             "takes the agents' actions"),
            ({"perturb_other_actions": True}, {"logits": True, "critic_actions": True},
             "set robust.target=critic")]:
        with pytest.raises(RobustRLError, match=msg):
            attach(ernie(**kw), "agent", **kind)
    assert not attach(RobustConfig(distance="kl", target="critic"), "x", logits=False,
                      critic=False)  # method none: nothing is checked, nothing runs
    assert ernie().rule == ernie(stackelberg=True).rule == "normalized"


def test_config_routes_through_agent_section():
    cfg = resolve_config("mappo", "mpe/simple_spread", {
        "robust.method": "ernie", "robust.lam": 1, "robust.eps": 0.1,
        "robust.stackelberg": True})
    assert cfg.robust == ernie(lam=1.0, eps=0.1, stackelberg=True)
    assert from_dict(type(cfg), to_dict(cfg)) == cfg  # checkpoints and config.toml round-trip
    with pytest.raises(RobustRLError, match="unknown config key 'agent.robust.lamb'; did you "
                                            "mean 'lam'"):
        resolve_config("ppo", None, {"robust.lamb": 1})
    with pytest.raises(RobustRLError, match="robust.eps must be > 0"):
        resolve_config("sac", None, {"robust.eps": 0})


# ----------------------------------------------------------------- mean-field DRO target
def test_kl_worst_case_against_brute_force():
    g = gen(5)
    values = torch.randn(6, 4, generator=g, dtype=torch.float64)
    probs = torch.distributions.Dirichlet(torch.ones(4)).sample((6,)).double()
    probs[0] = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)  # partial support
    expected = (values * probs).sum(-1)
    lowest = torch.where(probs > 0, values, torch.inf).amin(-1)
    v0, q0 = kl_worst_case(values, probs, 0.0)
    torch.testing.assert_close(v0, expected)
    torch.testing.assert_close(kl_worst_case(values, probs, 50.0)[0], lowest)
    candidates = torch.distributions.Dirichlet(torch.ones(4) * 0.5).sample((20000,)).double()
    previous = expected
    for rho in (0.05, 0.3, 1.0):
        v, q = kl_worst_case(values, probs, rho)
        kl = (q * (q.clamp_min(1e-30).log() - probs.clamp_min(1e-300).log())).sum(-1)
        assert torch.all(kl <= rho + 1e-6) and torch.all(q[0, 2:] == 0)
        torch.testing.assert_close(v, (q * values).sum(-1))
        assert torch.all(v <= previous + 1e-12) and torch.all(v >= lowest - 1e-12)
        previous = v
        for i in range(1, 6):  # no feasible candidate does better (up to sampling)
            c_kl = (candidates * (candidates.log() - probs[i].log())).sum(-1)
            feasible = candidates[c_kl <= rho]
            assert (feasible @ values[i]).min() >= v[i] - 1e-9


# ----------------------------------------------------------------- every learner
SMALL = {"hidden": (16, 16)}
PPO_SMALL = {**SMALL, "n_envs": 2, "n_steps": 16, "n_epochs": 1, "n_minibatches": 2}
OFF_SMALL = {**SMALL, "learning_starts": 32, "batch_size": 16, "log_interval": 40}
SPREAD = {"N": 2, "max_cycles": 10}
CASES = [
    ("ppo", "gym/CartPole-v1", {}, PPO_SMALL, {"target": "both"}),
    ("ppo", "gym/Pendulum-v1", {}, PPO_SMALL, {"stackelberg": True, "norm": "l2"}),
    ("sac", "gym/Pendulum-v1", {}, OFF_SMALL, {"target": "both", "stackelberg": True}),
    ("mappo", "mpe/simple_spread", SPREAD, PPO_SMALL, {"target": "both", "stackelberg": True}),
    ("ippo", "mpe/simple_spread", {**SPREAD, "continuous_actions": True}, PPO_SMALL,
     {"target": "both"}),
    ("maddpg", "mpe/simple_spread", SPREAD, OFF_SMALL,
     {"target": "both", "perturb_other_actions": True, "stackelberg": True}),
    ("maddpg", "mpe/simple_spread", {**SPREAD, "continuous_actions": True}, OFF_SMALL,
     {"target": "critic", "perturb_other_actions": True, "action_eps": 0.2}),
    ("idqn", "mpe/simple_spread", SPREAD, OFF_SMALL,
     {"target": "both", "perturb_other_actions": True, "steps": 2}),
]


@pytest.mark.parametrize("name,env_id,env_kwargs,config,robust", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_one_update_with_ernie_logs_reg(name, env_id, env_kwargs, config, robust):
    overrides = {**config, **{f"robust.{k}": v for k, v in {"method": "ernie", **robust}.items()}}
    agent = make_agent(name, env_id, seed=1, env_kwargs=env_kwargs, **overrides)
    logs = []
    agent.learn(64, lambda a, m: logs.append(m))
    metrics = logs[-1]
    assert isinstance(metrics["robust/reg"], float)  # read back when logged
    assert metrics["robust/reg"] >= 0 and np.isfinite(metrics["robust/reg"])
    targets = ("actor", "critic") if robust.get("target") == "both" else (
        robust.get("target", "actor"),)
    assert {f"robust/reg_{t}" for t in targets} <= set(metrics)
    # lam = 0 draws the same random starts: any difference is the term's gradient
    silent = make_agent(name, env_id, seed=1, env_kwargs=env_kwargs,
                        **{**overrides, "robust.lam": 0.0})
    silent.learn(64)
    assert not torch.equal(_params(agent), _params(silent))
    plain = make_agent(name, env_id, seed=1, env_kwargs=env_kwargs, **config)
    plain.learn(64, lambda a, m: logs.append(m))
    assert not any(k.startswith("robust/") for k in logs[-1])


def _params(agent) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in vars(agent).values()
                      if isinstance(m, torch.nn.Module) for p in m.parameters()])
