"""Reward factors in `info["reward_factors"]`, for Gymnasium and PettingZoo envs alike.

Families whose simulator already reports the terms in `info` (MuJoCo) declare a `source` key
per factor and get them copied here; families that compute factors themselves (traffic,
particles) put the dict in `info` and pass through; any other env gets its own reward as the
single factor `env_reward`, so downstream code can rely on the key being there.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from pettingzoo import ParallelEnv
from pettingzoo.utils import BaseParallelWrapper

from robustrl.envs.specs import EnvSpec, Factor

KEY = "reward_factors"


def _factors_from_info(sources: tuple[Factor, ...], info: dict[str, Any], reward: float):
    return {f.name: float(info[f.source]) * f.scale if f.source in info else float(reward)
            for f in sources}


def _fill(info: dict[str, Any], reward: float, sourced: tuple[Factor, ...]) -> dict[str, Any]:
    if KEY not in info:
        info[KEY] = (_factors_from_info(sourced, info, reward) if sourced
                     else {"env_reward": float(reward)})
    return info


class RewardFactors(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Guarantees `info["reward_factors"]` on every step of a Gymnasium env."""

    def __init__(self, env: gym.Env, factors: tuple[Factor, ...] = ()):
        gym.utils.RecordConstructorArgs.__init__(self, factors=factors)
        super().__init__(env)
        self.sourced = tuple(f for f in factors if f.source)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, _fill(info, reward, self.sourced)


class ParallelRewardFactors(BaseParallelWrapper):
    """Guarantees `reward_factors` in every agent's step info of a PettingZoo ParallelEnv."""

    def __init__(self, env: ParallelEnv, factors: tuple[Factor, ...] = ()):
        super().__init__(env)
        self.sourced = tuple(f for f in factors if f.source)

    def step(self, actions):
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        for agent, reward in rewards.items():
            _fill(infos.setdefault(agent, {}), reward, self.sourced)
        return obs, rewards, terminations, truncations, infos


def attach_factors(env: Any, spec: EnvSpec) -> RewardFactors | ParallelRewardFactors:
    """The outermost layer of every env `make` returns (the one `specs.mark` labels)."""
    if isinstance(env, ParallelEnv):
        return ParallelRewardFactors(env, spec.factors)
    return RewardFactors(env, spec.factors)


def make_gymnasium(gym_id: str, **kwargs: Any) -> gym.Env:
    """Entry point of the Gymnasium-backed families (`gym/`, `mujoco/`)."""
    return gym.make(gym_id, **kwargs)
