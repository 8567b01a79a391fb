"""SAC and PPO: space checks, determinism, save/load, and learning on small budgets."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.agents import load, make_agent
from robustrl.core.errors import RobustRLError
from robustrl.train import evaluate

SMALL = {"hidden": (32, 32)}


def test_refuses_unsupported_action_space():
    with pytest.raises(RobustRLError, match=r"sac cannot handle action space Discrete\(2\)"):
        make_agent("sac", "gym/CartPole-v1")
    with pytest.raises(RobustRLError, match="unknown agent 'sacc'"):
        make_agent("sacc", "gym/CartPole-v1")
    with pytest.raises(RobustRLError, match="unknown config key 'agent.lrr'"):
        make_agent("ppo", "gym/CartPole-v1", lrr=1.0)


class ActionRecorder(gym.Wrapper):
    actions: list = []

    def step(self, action):
        ActionRecorder.actions.append(np.array(action, copy=True))
        return self.env.step(action)


def _trace(name: str, env_id: str, **config):
    from robustrl.envs import make

    ActionRecorder.actions = []
    losses = []
    agent = make_agent(name, lambda: ActionRecorder(make(env_id)), seed=7, **config)
    agent.learn(1000, lambda a, m: losses.append(
        {k: v for k, v in m.items() if k != "steps_per_second"}))
    return np.array(ActionRecorder.actions[:1000]), losses


@pytest.mark.parametrize("name,env_id,config", [
    ("sac", "gym/Pendulum-v1", {**SMALL, "learning_starts": 700, "log_interval": 100}),
    ("ppo", "gym/CartPole-v1", {**SMALL, "n_envs": 2, "n_steps": 100}),
])
def test_same_seed_same_actions_and_losses(name, env_id, config):
    actions_a, losses_a = _trace(name, env_id, **config)
    actions_b, losses_b = _trace(name, env_id, **config)
    assert len(actions_a) == 1000 and len(losses_a) >= 5
    np.testing.assert_array_equal(actions_a, actions_b)
    assert losses_a == losses_b
    assert any("critic_loss" in m or "value_loss" in m for m in losses_a)


def test_save_load_roundtrip(tmp_path):
    agent = make_agent("sac", "gym/Pendulum-v1", learning_starts=50, **SMALL)
    agent.learn(100)
    agent.save(tmp_path / "agent.pt")
    loaded = load(tmp_path / "agent.pt")
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(agent.act(obs), loaded.act(obs))
    assert loaded.num_steps == 100 and loaded.env_id == "gym/Pendulum-v1"
    assert agent.act(obs[0]).shape == (1,)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RobustRLError, match="corrupt"):
        load(tmp_path / "bad.pt")


def test_ppo_policy_output_is_differentiable():
    agent = make_agent("ppo", "mujoco/Hopper-v5", n_envs=1, n_steps=64, **SMALL)
    agent.learn(64)
    obs = torch.zeros(4, 11, requires_grad=True)
    agent.policy_output(obs).sum().backward()
    assert obs.grad is not None and agent.obs_scale.shape == (11,)


def test_user_env_instance():
    env = gym.make("Pendulum-v1")
    agent = make_agent("sac", env, learning_starts=10, **SMALL)
    agent.learn(20)
    assert agent.num_steps == 20
    with pytest.raises(RobustRLError, match="needs several env copies"):
        make_agent("ppo", gym.make("CartPole-v1"), n_envs=2).learn(10)


@pytest.mark.learning
def test_sac_learns_pendulum():
    agent = make_agent("sac", "gym/Pendulum-v1", seed=0, learning_starts=1000)
    agent.learn(10_000)
    result = evaluate(agent, episodes=10)
    assert result["return_mean"] >= -300, result


@pytest.mark.learning
def test_ppo_learns_cartpole():
    agent = make_agent("ppo", "gym/CartPole-v1", seed=0)
    agent.learn(100_000)
    result = evaluate(agent, episodes=10)
    assert result["return_mean"] >= 400, result
