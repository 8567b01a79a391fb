"""Multi-agent learners (IPPO, MAPPO, MADDPG, IDQN): spaces (observation sizes zero-padded),
determinism, save/load/resume, runs through `robustrl.train`, traffic in-process + evaluation
in a subprocess."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.agents import load, make_agent
from robustrl.core.errors import RobustRLError
from robustrl.train import build_run, evaluate, train

SPREAD = {"N": 3, "max_cycles": 25}
SMALL = {"hidden": (32, 32)}
PPO_SMALL = {**SMALL, "n_envs": 2, "n_steps": 25, "n_epochs": 2, "n_minibatches": 2}
OFF_SMALL = {**SMALL, "learning_starts": 100, "batch_size": 32, "log_interval": 50}
CASES = [
    ("mappo", False, PPO_SMALL), ("ippo", True, PPO_SMALL), ("mappo", True, PPO_SMALL),
    ("maddpg", False, OFF_SMALL), ("maddpg", True, OFF_SMALL), ("idqn", False, OFF_SMALL),
]


def _make(name, continuous, seed=3, **config):
    return make_agent(name, "mpe/simple_spread", seed=seed,
                      env_kwargs={**SPREAD, "continuous_actions": continuous}, **config)


def test_refuses_unsupported_spaces():
    with pytest.raises(RobustRLError, match=r"idqn cannot handle action space Box.*supports "
                                            r"Discrete"):
        _make("idqn", True)
    with pytest.raises(RobustRLError, match="needs a PettingZoo ParallelEnv"):
        make_agent("mappo", "gym/CartPole-v1")
    with pytest.raises(RobustRLError, match="needs the same action space for every agent; "
                                            "agent listener_0 has Discrete"):
        make_agent("maddpg", "mpe/simple_speaker_listener")
    with pytest.raises(RobustRLError, match=r"may differ only as 1-D Boxes.*agent a has Box"):
        make_agent("mappo", TwoDObservations())


class TwoDObservations:
    """A stub ParallelEnv whose agents observe a 2-D and a 1-D Box: padding cannot fix it."""

    possible_agents = ["a", "b"]

    def observation_space(self, agent):
        return gym.spaces.Box(-1, 1, (2, 2) if agent == "a" else (3,))

    def action_space(self, agent):
        return gym.spaces.Discrete(2)


ADVERSARY_OBS = {"adversary_0": 8, "agent_0": 10, "agent_1": 10}  # mpe/simple_adversary


@pytest.mark.parametrize("name,config", [
    ("mappo", {**PPO_SMALL, "robust": {"method": "ernie", "target": "both"}}),
    ("ippo", {**PPO_SMALL, "robust": {"method": "ernie", "stackelberg": True}}),
    ("maddpg", {**OFF_SMALL, "robust": {"method": "ernie", "target": "both",
                                        "perturb_other_actions": True}}),
    ("idqn", {**OFF_SMALL, "robust": {"method": "ernie", "target": "both"}}),
])
def test_different_observation_sizes_are_zero_padded(name, config):
    """simple_adversary: the adversary observes 8 numbers, the good agents 10; the shared
    network sees every observation padded to 10, outside the learner each agent's own size."""
    agent = make_agent(name, "mpe/simple_adversary", seed=0, **config)
    assert (agent.obs_dim, agent.obs_sizes, agent.padded) == (10, [8, 10, 10], True)
    logs = []
    agent.learn(300, lambda a, m: logs.append(m))
    assert agent.num_steps == 300 and logs and any("robust/reg" in m for m in logs)
    env = agent.env_fn()
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        actions = agent.act(obs)
        assert set(actions) == set(ADVERSARY_OBS)
        assert all(env.action_space(a).contains(u) for a, u in actions.items())
        obs, *_ = env.step(actions)
    for a, size in ADVERSARY_OBS.items():
        x = torch.zeros(4, size, requires_grad=True)
        out = agent.policy_fns[a](x)
        assert out.shape == (4, 5)
        out.sum().backward()
        assert x.grad.shape == (4, size)
        assert agent.obs_scale[a].shape == (size,)
    result = evaluate(agent, episodes=1)
    assert set(result["returns_by_agent"]) == set(ADVERSARY_OBS)


def test_ernie_never_perturbs_padding():
    from robustrl.robust.ernie import perturbation

    agent = make_agent("mappo", "mpe/simple_adversary", seed=0, **PPO_SMALL,
                       robust={"method": "ernie", "eps": 0.5})
    obs = np.random.default_rng(0).normal(size=(6, 3, 10)).astype(np.float32)
    x = torch.from_numpy(agent.inputs(obs)).flatten(0, 1)  # rows: adversary, agent_0, agent_1
    delta = perturbation(agent.net.actor, x, agent.config.robust,
                         scale=agent.robust_scale(x, "own")).reshape(6, 3, 13)
    assert (delta[:, 0, 8:] == 0).all() and (delta[:, 1:, 10:] == 0).all()  # padding, ids
    assert (delta[:, 0, :8] != 0).all() and (delta[:, 1:, :10] != 0).all()
    joint = agent.robust_scale(torch.zeros(2, 30 + 3), "joint")
    np.testing.assert_array_equal(joint.numpy(), [1] * 8 + [0] * 2 + [1] * 20 + [0] * 3)


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
