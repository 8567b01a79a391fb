"""The evaluation attacks (obs-pgd, obs-transfer): more steps or restarts never weaken the attack
on a fixed policy, the budget holds in normalized units, the objective follows the action
space, a transfer attack through the policy itself is the white-box attack, and the bench
links a transfer cell to the surrogate run of the same env and seed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.bench import load_suite, plan_suite, run_suite
from robustrl.core.errors import RobustRLError
from robustrl.perturb import apply, parse
from robustrl.perturb.pgd import distance_per_sample, pgd_attack


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _net(n_in: int = 6, n_out: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 32), torch.nn.Tanh(),
                               torch.nn.Linear(32, 32), torch.nn.Tanh(),
                               torch.nn.Linear(32, n_out)).double()


def _loss(f, obs, delta, distance):
    with torch.no_grad():
        return distance_per_sample(f(obs + delta), f(obs), distance)


@pytest.mark.parametrize("distance", ["nll", "kl", "l2"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_more_steps_or_restarts_never_weaken_the_attack(distance, norm):
    f, eps = _net(), 0.3
    obs = torch.randn(128, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    scale = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)

    def attack(steps, restarts):
        delta = pgd_attack(f, obs, eps, steps, norm, distance, scale, step_size=0.05,
                           restarts=restarts, keep_best=True,
                           generator=torch.Generator().manual_seed(7))
        z = delta / scale
        size = z.abs().amax(1) if norm == "linf" else z.norm(dim=1)
        assert torch.all(size <= eps * (1 + 1e-9))  # the budget, in normalized units
        return _loss(f, obs, delta, distance)

    grid = {(k, r): attack(k, r) for k in (1, 3, 10, 30) for r in (1, 2, 4)}
    for (k, r), loss in grid.items():
        for (k2, r2), loss2 in grid.items():
            if k2 >= k and r2 >= r:  # per sample, never lower (same seed, best-of tracking)
                assert torch.all(loss2 >= loss - 1e-10), ((k, r), (k2, r2))
    assert (grid[(30, 4)] > grid[(1, 1)] + 1e-6).double().mean() > 0.9  # and gets stronger


def test_action_objective_flips_the_greedy_action_more_than_noise():
    f, eps = _net(seed=3), 0.5
    obs = torch.randn(512, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    delta = pgd_attack(f, obs, eps, 10, "linf", "nll", restarts=2, keep_best=True, generator=g)
    noise = (2 * torch.rand(obs.shape, generator=g, dtype=torch.float64) - 1) * eps
    with torch.no_grad():
        clean = f(obs).argmax(1)
        flipped = (f(obs + delta).argmax(1) != clean).double().mean()
        by_noise = (f(obs + noise).argmax(1) != clean).double().mean()
    assert flipped > 2 * by_noise and flipped > 0.2


def test_objective_follows_the_action_space():
    box = apply(gym.make("Pendulum-v1"), "obs-pgd:0.1", policy_fn=torch.nn.Linear(3, 1))
    assert box.perturbation.distances[None] == "l2"
    cart = apply(gym.make("CartPole-v1"), "obs-pgd:0.1", policy_fn=torch.nn.Linear(4, 2))
    assert cart.perturbation.distances[None] == "kl"
    action = apply(gym.make("CartPole-v1"), "obs-pgd:0.1,objective=action",
                   policy_fn=torch.nn.Linear(4, 2))
    assert action.perturbation.distances[None] == "nll"
    box = apply(gym.make("Pendulum-v1"), "obs-pgd:0.1,objective=action",
                policy_fn=torch.nn.Linear(3, 1))
    assert box.perturbation.distances[None] == "l2"
    with pytest.raises(RobustRLError, match="objective=kl needs Discrete actions"):
        apply(gym.make("Pendulum-v1"), "obs-pgd:0.1,objective=kl",
              policy_fn=torch.nn.Linear(3, 1))
    spec = parse("obs-pgd:0.1")
    assert (spec.get("steps"), spec.get("restarts"), spec.get("objective")) == (10, 2, "auto")
    with pytest.raises(RobustRLError, match="restarts=0 must be >= 1"):
        parse("obs-pgd:0.1,restarts=0")


def _rollout(env, steps: int = 30) -> list[np.ndarray]:
    obs, _ = env.reset(seed=0)
    seen = [obs]
    for t in range(steps):
        obs, _, term, trunc, _ = env.step(env.action_space.sample() if t % 2 else
                                          np.zeros(env.action_space.shape, np.float32))
        seen.append(obs)
        if term or trunc:
            break
    return seen


def test_transfer_through_the_policy_itself_is_the_white_box_attack():
    torch.manual_seed(0)
    policy = torch.nn.Sequential(torch.nn.Linear(11, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))
    other = torch.nn.Sequential(torch.nn.Linear(11, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))
    scale, eps = np.linspace(0.5, 2.0, 11), 0.1

    def run(spec, **kw):
        env = apply(gym.make("Hopper-v5"), spec, obs_scale=scale, seed=0, **kw)
        env.action_space.seed(0)
        return _rollout(env)

    white = run(f"obs-pgd:{eps}", policy_fn=policy)
    same = run(f"obs-transfer:{eps}", policy_fn=other, surrogate_fn=policy)
    moved = run(f"obs-transfer:{eps}", policy_fn=policy, surrogate_fn=other)
    clean = _rollout(_seeded(gym.make("Hopper-v5")))
    assert len(white) == len(same) and all(np.array_equal(a, b) for a, b in zip(white, same))
    assert not all(np.array_equal(a, b) for a, b in zip(white, moved))
    for obs, ref in zip(moved[:1], clean[:1]):  # same reset state: the budget, in raw units
        assert np.all(np.abs(obs - ref) <= eps * scale + 1e-6)
    with pytest.raises(RobustRLError, match="obs-transfer needs the surrogate's policy"):
        apply(gym.make("Hopper-v5"), "obs-transfer:0.1", policy_fn=policy)


def _seeded(env):
    env.action_space.seed(0)
    return env


SUITE = """
name = "transfer"
seeds = [0]
episodes = 1
lipschitz_obs = 16

[[train]]
label = "base"
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 128
set = { n_envs = 2, n_steps = 32, n_epochs = 2, hidden = [16], "env.max_episode_steps" = 60 }

[[train]]
label = "ernie"
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 128
set = { n_envs = 2, n_steps = 32, n_epochs = 2, hidden = [16], "robust.method" = "ernie", \
"env.max_episode_steps" = 60 }

[[perturbations]]
spec = "obs-pgd,steps=4,restarts=1"
strengths = [0.5]

[[perturbations]]
spec = "obs-transfer,steps=4,restarts=1,surrogate=base"
strengths = [0.5]
"""


def test_bench_transfer_cells_use_the_surrogate_run(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SUITE)
    plan = plan_suite(load_suite(path), tmp_path / "out")
    by_label = {j.label: j for j in plan.jobs}
    assert by_label["ernie"].surrogates["base"].run_dir == by_label["base"].run_dir
    run_suite(path, out=tmp_path / "out", workers=1)
    conn = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    try:
        rows = conn.execute("SELECT * FROM episodes").fetchall()
        names = [d[0] for d in conn.execute("SELECT * FROM episodes").description]
    finally:
        conn.close()
    rows = [dict(zip(names, r)) for r in rows]
    assert {r["spec"] for r in rows} >= {"obs-pgd:0.5,steps=4,restarts=1",
                                         "obs-transfer:0.5,surrogate=base,steps=4,restarts=1"}

    def ret(label, kind):
        return [r["return"] for r in rows if r["agent"] == label and r["spec"].startswith(kind)]

    # the baseline attacked through itself: the transfer cell is its white-box cell
    assert ret("base", "obs-transfer") == ret("base", "obs-pgd")
    # outside the bench, surrogate=RUN_DIR loads that run (here: the evaluated run itself)
    from robustrl.train import evaluate_run

    base_dir = by_label["base"].run_dir
    white = evaluate_run(base_dir, 2, ["obs-pgd:0.5,steps=4"], seed=3)
    transfer = evaluate_run(base_dir, 2, [f"obs-transfer:0.5,steps=4,surrogate={base_dir}"],
                            seed=3)
    assert transfer["returns"] == white["returns"]
    bad = tmp_path / "bad.toml"
    bad.write_text(SUITE.replace("surrogate=base", "surrogate=nope"))
    with pytest.raises(RobustRLError, match="surrogate=nope names no \\[\\[train\\]\\] label"):
        plan_suite(load_suite(bad), tmp_path / "out2")
    bad.write_text(SUITE.replace(",surrogate=base", ""))
    with pytest.raises(RobustRLError, match="name the surrogate, surrogate=LABEL"):
        plan_suite(load_suite(bad), tmp_path / "out2")
    bad.write_text(SUITE.replace("surrogate=base", f"surrogate={base_dir}"))  # a run directory
    assert not plan_suite(load_suite(bad), tmp_path / "out2").jobs[1].surrogates


def test_surrogate_run_dir_must_exist(tmp_path):
    from robustrl.train.transfer import surrogate_policy

    with pytest.raises(RobustRLError, match="is not a trained run directory"):
        surrogate_policy([parse(f"obs-transfer:0.1,surrogate={Path(tmp_path) / 'none'}")])
    with pytest.raises(RobustRLError, match="needs one surrogate=RUN_DIR"):
        surrogate_policy([parse("obs-transfer:0.1")])
    assert surrogate_policy([parse("obs-pgd:0.1")]) is None
