"""NaN/Inf guards: an env emitting NaN, a diverged loss or parameter stops training in one line
naming the step and the source; evaluation refuses a NaN mean."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl import envs
from robustrl.core.guards import NonFiniteError, check_finite, check_logged, guard_env
from robustrl.train import build_run, evaluate, train


class NaNAfter(gym.Env):
    """A 1-d walk that emits NaN in its observation or reward from step `after` on."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, where: str = "obs", after: int = 30):
        self.where, self.after, self.t = where, after, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        bad = self.t >= self.after
        obs = np.array([self.t % 7, np.nan if bad and self.where == "obs" else 0.0], np.float32)
        reward = math.nan if bad and self.where == "reward" else 1.0
        return obs, reward, False, self.t % 20 == 0, {}


@pytest.fixture(scope="module", autouse=True)
def nan_env():
    envs.register("test/NaNAfter-v0", NaNAfter, check=False)  # emits NaN on purpose
    yield
    envs.registry._REGISTRY.pop("test/NaNAfter-v0", None)


FAST = {"n_envs": 1, "n_steps": 16, "hidden": [8], "run.tensorboard": False}
OFF_POLICY = {"hidden": [8], "learning_starts": 8, "batch_size": 8, "run.tensorboard": False}


@pytest.mark.parametrize("where, source", [("obs", "env observation"),
                                           ("reward", "env reward")])
@pytest.mark.parametrize("agent, settings", [("ppo", FAST), ("hybrid_sac", OFF_POLICY)])
def test_nan_from_the_env_stops_training(where, source, agent, settings, tmp_path):
    cfg = build_run(agent, "test/NaNAfter-v0", 200, 0, {**settings, "env.where": where})
    with pytest.raises(NonFiniteError) as info:
        train(cfg, tmp_path / "run", show_progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith("step ") and source in message
    assert int(message.split()[1].rstrip(":")) < 40  # stopped at the first NaN, not the end
    assert "fix the env" in message


def test_diverged_loss_and_parameters_are_named():
    check_logged(10, {"actor_loss": 0.5, "episode_return": math.nan})  # only losses count
    with pytest.raises(NonFiniteError, match=r"step 10: critic_loss is nan; .*learning rate"):
        check_logged(10, {"critic_loss": math.nan})
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight[0, 0] = math.inf
    with pytest.raises(NonFiniteError, match="parameter weight"):
        check_logged(5, {}, [net])


def test_checks_cover_nested_values():
    check_finite({"a": np.ones(3), "b": (1.0, np.int64(2))}, "x")
    check_finite(np.array(["text"]), "x")  # not numbers: nothing to check
    with pytest.raises(NonFiniteError, match="agent_1 obs"):
        check_finite({"agent_0": np.ones(2), "agent_1": np.array([0.0, np.inf])}, "agent_1 obs")


def test_guard_wraps_once_and_keeps_the_identity():
    env = guard_env(envs.make("gym/CartPole-v1"))
    assert guard_env(env) is env
    assert envs.identity(env) == ("gym/CartPole-v1", {})
    env.reset(seed=0)
    env.step(0)


def test_evaluation_refuses_a_nan_mean():
    from robustrl.agents import make_agent

    agent = make_agent("ppo", "test/NaNAfter-v0", n_envs=1, n_steps=16, hidden=(8,),
                       env_kwargs={"where": "reward", "after": 3})
    with pytest.raises(NonFiniteError, match="evaluation return"):
        evaluate(agent, episodes=1)


class TwoWalkers:
    """The smallest PettingZoo-style parallel env: agent_1 observes NaN after one step."""

    possible_agents = ["agent_0", "agent_1"]

    def observation_space(self, agent):
        return gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, seed=None, options=None):
        return {a: np.zeros(1, np.float32) for a in self.possible_agents}, {}

    def step(self, actions):
        obs = {"agent_0": np.zeros(1, np.float32), "agent_1": np.full(1, np.nan, np.float32)}
        rewards = dict.fromkeys(self.possible_agents, 0.0)
        return obs, rewards, rewards, rewards, {}


def test_parallel_env_outputs_are_checked():
    env = guard_env(TwoWalkers())
    assert env.possible_agents == ["agent_0", "agent_1"]  # forwarded
    env.reset(seed=0)
    with pytest.raises(NonFiniteError, match="env observation is NaN"):
        env.step({"agent_0": 0, "agent_1": 0})
