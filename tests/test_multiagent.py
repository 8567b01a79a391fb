"""Multi-agent learners (IPPO, MAPPO, MADDPG, IDQN): spaces, determinism, save/load/resume,
runs through `robustrl.train`, traffic in-process + evaluation in a subprocess."""

import numpy as np
import pytest
import torch

from robustrl import agents as agents_module
from robustrl.agents import load, make_agent
from robustrl.agents.multiagent import gae
from robustrl.core.errors import RobustRLError
from robustrl.train import build_run, evaluate, train

MULTI = {"mappo": "robustrl.agents.mappo:MAPPO", "ippo": "robustrl.agents.mappo:IPPO",
         "maddpg": "robustrl.agents.maddpg:MADDPG", "idqn": "robustrl.agents.dqn:IDQN"}
SPREAD = {"N": 3, "max_cycles": 25}
SMALL = {"hidden": (32, 32)}
PPO_SMALL = {**SMALL, "n_envs": 2, "n_steps": 25, "n_epochs": 2, "n_minibatches": 2}
OFF_SMALL = {**SMALL, "learning_starts": 100, "batch_size": 32, "log_interval": 50}
CASES = [
    ("mappo", False, PPO_SMALL), ("ippo", True, PPO_SMALL), ("mappo", True, PPO_SMALL),
    ("maddpg", False, OFF_SMALL), ("maddpg", True, OFF_SMALL), ("idqn", False, OFF_SMALL),
]


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    for name, target in MULTI.items():
        monkeypatch.setitem(agents_module.AGENTS, name, target)


def _make(name, continuous, seed=3, **config):
    return make_agent(name, "mpe/simple_spread", seed=seed,
                      env_kwargs={**SPREAD, "continuous_actions": continuous}, **config)


def test_refuses_unsupported_spaces():
    with pytest.raises(RobustRLError, match=r"idqn cannot handle action space Box.*supports "
                                            r"Discrete"):
        _make("idqn", True)
    with pytest.raises(RobustRLError, match="needs a PettingZoo ParallelEnv"):
        make_agent("mappo", "gym/CartPole-v1")
    with pytest.raises(RobustRLError, match="shares one network across agents and needs "
                                            "identical spaces"):
        make_agent("maddpg", "mpe/simple_adversary")


@pytest.mark.parametrize("name,continuous,config", CASES)
def test_same_seed_same_metrics(name, continuous, config):
    def trace():
        logs = []
        agent = _make(name, continuous, **config)
        agent.learn(200, lambda a, m: logs.append(
            {k: v for k, v in m.items() if k != "steps_per_second"}))
        obs = np.random.default_rng(0).normal(size=(4, 3, 18)).astype(np.float32)
        return logs, agent.act_array(obs)

    logs_a, act_a = trace()
    logs_b, act_b = trace()
    assert logs_a and logs_a == logs_b
    np.testing.assert_array_equal(act_a, act_b)
    assert act_a.shape == ((4, 3, 5) if continuous else (4, 3))


@pytest.mark.parametrize("name,continuous,config", CASES)
def test_save_load_resume(tmp_path, name, continuous, config):
    agent = _make(name, continuous, **config)
    agent.learn(150)
    agent.save(tmp_path / "a.pt", include_buffer=True)
    loaded = load(tmp_path / "a.pt")
    obs, _ = loaded.env_fn().reset(seed=0)
    actions = agent.act(obs)
    assert set(actions) == {"agent_0", "agent_1", "agent_2"}
    for key, action in loaded.act(obs).items():
        np.testing.assert_allclose(action, actions[key])
    assert loaded.num_steps == agent.num_steps
    loaded.learn(300)
    assert loaded.num_steps == 300
    x = torch.zeros(2, 3, 18, requires_grad=True)
    loaded.policy_output(x).sum().backward()
    assert x.grad is not None and loaded.obs_scale.shape == (18,)


def test_train_run_and_evaluate(tmp_path):
    cfg = build_run("mappo", "mpe/simple_spread", steps=200, seed=1,
                    overrides={**{f"agent.{k}": v for k, v in PPO_SMALL.items()},
                               "run.tensorboard": False, "env.N": 3})
    agent = train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "agent.pt").exists() and agent.num_steps == 200
    result = evaluate(agent, episodes=2)
    assert set(result["agent_returns"]) == {"agent_0", "agent_1", "agent_2"}
    assert result["length_mean"] == 25
    assert abs(sum(result["agent_returns"].values()) - result["return_mean"]) < 1e-6


def test_gae_matches_loop():
    rng = np.random.default_rng(0)
    r, v, d = rng.normal(size=(5, 2)), rng.normal(size=(6, 2)), rng.random((5, 2)) < 0.3
    adv = gae(r, v, d.astype(float), 0.9, 0.8)
    for j in range(2):
        expected, last = [], 0.0
        for t in reversed(range(5)):
            delta = r[t, j] + 0.9 * v[t + 1, j] * (1 - d[t, j]) - v[t, j]
            last = delta + 0.9 * 0.8 * (1 - d[t, j]) * last
            expected.insert(0, last)
        np.testing.assert_allclose(adv[:, j], expected)


def test_idqn_on_traffic_grid_evaluates_in_a_subprocess():
    agent = make_agent("idqn", "traffic/2x2grid", seed=0, env_kwargs={"num_seconds": 100},
                       learning_starts=20, batch_size=16, log_interval=20, **SMALL)
    try:
        agent.learn(40)
        assert agent.num_steps == 40 and agent.stats.episodes == 2
        result = evaluate(agent, episodes=1)  # this process's simulation is taken: subprocess
        assert result["length_mean"] == 20 and "mean_waiting_time" in result
    finally:
        agent.close()
