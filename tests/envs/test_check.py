"""Env checking: a broken custom env is refused at register / check time with one line per
problem, instead of failing later deep in a replay buffer."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo import ParallelEnv

from robustrl import envs
from robustrl.cli import main
from robustrl.core.errors import RobustRLError
from robustrl.envs.registry import _REGISTRY


class Walker(gym.Env):
    """A 1-d walk; `obs_dim`, `factor` and `nan_at` break it on purpose."""

    observation_space = gym.spaces.Box(-1.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, obs_dim: int = 1, factor: str = "progress", nan_at: int = -1):
        self.obs_dim, self.factor, self.nan_at = obs_dim, factor, nan_at

    def _obs(self):
        return np.full(self.obs_dim, self.x, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return self._obs(), {}

    def step(self, action):
        move = float(np.clip(action[0], -1, 1))
        self.x, self.t = float(np.clip(self.x + move, -1.0, 10.0)), self.t + 1
        value = float("nan") if self.t == self.nan_at else move
        return self._obs(), move, False, self.t >= 10, {"reward_factors": {self.factor: value}}


@pytest.fixture(autouse=True)
def _forget_test_ids():
    yield
    for env_id in [i for i in _REGISTRY if i.startswith("check/")]:
        del _REGISTRY[env_id]


def test_a_sound_env_registers_and_checks_clean():
    envs.register("check/Walker-v0", Walker, factors={"progress": "higher"})
    result = envs.check_id("check/Walker-v0")
    assert result.problems == []


def test_observation_shape_mismatch_is_refused_at_register_in_one_line():
    with pytest.raises(RobustRLError) as err:
        envs.register("check/Wide-v0", Walker, obs_dim=2, factors={"progress": "higher"})
    message = str(err.value)
    assert "\n" not in message
    assert "reset() observation has shape (2,)" in message and "wants (1,)" in message
    assert "check/Wide-v0" not in envs.list_envs()  # nothing half-registered
    with pytest.raises(RobustRLError, match="unknown env id"):
        envs.make("check/Wide-v0")


def test_check_false_registers_anyway_and_check_id_names_each_problem():
    envs.register("check/Wide-v0", Walker, obs_dim=2, check=False)
    problems = envs.check_id("check/Wide-v0").problems
    assert any("has shape (2,)" in p for p in problems)
    assert all("\n" not in p for p in problems)


def test_missing_and_non_finite_factors_are_problems():
    with pytest.raises(RobustRLError, match=r"declared factor\(s\) \['progress'\] missing"):
        envs.register("check/Other-v0", Walker, factor="speed", factors={"progress": "higher"})
    envs.register("check/Nan-v0", Walker, nan_at=3, factors={"progress": "higher"}, check=False)
    problems = envs.check_id("check/Nan-v0").problems
    assert any("factor 'progress' is not a finite number" in p for p in problems)


class Pair(ParallelEnv):
    """Two agents; `bad_obs` makes walker_1's observation leave its Discrete space."""

    metadata = {"name": "pair_v0"}

    def __init__(self, bad_obs: bool = False):
        self.bad_obs = bad_obs
        self.possible_agents = ["walker_0", "walker_1"]
        self.spaces = {a: (gym.spaces.Discrete(4), gym.spaces.Discrete(2))
                       for a in self.possible_agents}

    def observation_space(self, agent):
        return self.spaces[agent][0]

    def action_space(self, agent):
        return self.spaces[agent][1]

    def _obs(self):
        return {"walker_0": self.t % 4, "walker_1": 7 if self.bad_obs else self.t % 4}

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        done = self.t >= 5
        rewards = {a: float(actions[a]) for a in self.agents}
        infos = {a: {"reward_factors": {"moved": float(actions[a])}} for a in self.agents}
        obs = self._obs()
        if done:
            self.agents = []
        return obs, rewards, dict.fromkeys(rewards, False), dict.fromkeys(rewards, done), infos


def test_parallel_env_runs_pettingzoos_api_test_and_robustrls_checks():
    envs.register("check/Pair-v0", Pair, factors={"moved": "higher"})
    assert envs.check_id("check/Pair-v0").problems == []
    envs.register("check/BadPair-v0", Pair, bad_obs=True, factors={"moved": "higher"},
                  check=False)
    problems = envs.check_id("check/BadPair-v0").problems
    assert any("observation[walker_1] is not in its space Discrete(4)" in p for p in problems)


class Forgetful(Pair):
    """Gives walker_1 no reward."""

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = super().step(actions)
        del rewards["walker_1"]
        return obs, rewards, terminated, truncated, infos


def test_parallel_env_without_a_live_agents_reward_is_refused():
    with pytest.raises(RobustRLError, match=r"step 0 \[walker_1\]: step\(\) returned no reward"):
        envs.register("check/Forgetful-v0", Forgetful, factors={"moved": "higher"})
    envs.register("check/Forgetful-v0", Forgetful, factors={"moved": "higher"}, check=False)
    notes = envs.check_id("check/Forgetful-v0").notes  # PettingZoo's test warns about it too
    assert notes == ["api check: Live agent was not given reward"]


def test_cli_envs_check_prints_one_line_per_problem(capsys):
    assert main(["envs", "check", "mujoco/Hopper-v5"]) == 0
    assert capsys.readouterr().out.strip().endswith("mujoco/Hopper-v5: ok")
    envs.register("check/Wide-v0", Walker, obs_dim=2, check=False)
    assert main(["envs", "check", "check/Wide-v0"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    problems = [line for line in lines if ": problem: " in line]
    assert problems and lines[-1] == f"check/Wide-v0: {len(problems)} problem(s)"
    assert main(["envs", "check"]) == 2  # no id: one-line usage error


SAMPLE = ["mujoco/Hopper-v5", "gym/CartPole-v1", "mpe/simple_spread", "maze/PointMaze_UMaze-v3",
          "hybrid/platform", "hybrid/goal", "traffic/single-intersection"]


@pytest.mark.parametrize("env_id", SAMPLE)
def test_shipped_envs_pass_their_check(env_id):
    assert envs.check_id(env_id).problems == []


@pytest.mark.slow
@pytest.mark.parametrize("env_id", envs.list_envs())
def test_every_shipped_env_passes_its_check(env_id):
    assert envs.check_id(env_id).problems == []


def test_a_missing_extra_is_the_one_line_error_not_a_check_problem(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "mpe2", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "robustrl.envs.mpe", raising=False)
    assert main(["envs", "check", "mpe/simple_spread"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("robustrl: error: mpe/simple_spread needs the missing package "
                            "'mpe2'; pip install 'robustrl[mpe]'\n")
