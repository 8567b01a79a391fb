"""Several copies of one Gymnasium env stepped as a batch, for off-policy learners.

Gymnasium's vector envs with same-step autoreset: a copy whose episode ended is reset inside
the same `step`, which returns the new episode's first observation and keeps the last one of
the ended episode in `info["final_obs"]`. `VectorSteps.step` hands back, per copy, the
`next_obs` a replay buffer must store (the final observation where an episode ended, so that
a truncated episode bootstraps from where it stopped, never from the next episode's start)
and the observations to act on next. No transition spans two episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from robustrl.core.errors import RobustRLError

VECTOR_MODES = ("sync", "async")


class SyncEnvs(gym.vector.VectorEnv):
    """Gymnasium's SyncVectorEnv with same-step autoreset, for Box observations, minus its
    per-step info merging and copies (its overhead per step on one HalfCheetah: ~30 -> ~12 us):
    `step`'s info holds only `final_obs` / `_final_obs`, what the learners read; reset's info
    is {}. tests/agents/test_vector.py checks it steps like SyncVectorEnv."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, envs: list[Any]):
        self.envs = envs
        self.num_envs = len(envs)
        self.single_observation_space = envs[0].observation_space
        self.single_action_space = envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs_shape = (self.num_envs, *self.single_observation_space.shape)
        self._obs_dtype = self.single_observation_space.dtype

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None or isinstance(seed, int):  # as SyncVectorEnv: copy i gets seed + i
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        obs = np.empty(self._obs_shape, self._obs_dtype)
        for i, (env, s) in enumerate(zip(self.envs, seeds, strict=True)):
            obs[i] = env.reset(seed=s, options=options)[0]
        return obs, {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        n = self.num_envs
        per_env = actions if isinstance(actions, np.ndarray) else list(
            iterate(self.action_space, actions))
        obs = np.empty(self._obs_shape, self._obs_dtype)
        rewards = np.zeros(n)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        info: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            obs[i], rewards[i], terminated[i], truncated[i], _ = env.step(per_env[i])
            if terminated[i] or truncated[i]:
                if not info:
                    info = {"final_obs": np.empty(n, object), "_final_obs": np.zeros(n, bool)}
                info["final_obs"][i], info["_final_obs"][i] = obs[i].copy(), True
                obs[i] = env.reset()[0]
        return obs, rewards, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()


def make_vector(env_fn: Callable[[], Any], n_envs: int, mode: str = "sync",
                first: Any = None) -> gym.vector.VectorEnv:
    """`n_envs` copies of `env_fn()` in one process (sync: `SyncEnvs` for Box observations,
    else Gymnasium's SyncVectorEnv) or one subprocess each (async); `first`, an env already
    made, is used as the first copy of a sync vector."""
    if mode not in VECTOR_MODES:
        raise RobustRLError(f"vector_mode must be one of {', '.join(VECTOR_MODES)}, got {mode!r}")
    if n_envs < 1:
        raise RobustRLError(f"n_envs must be >= 1, got {n_envs}")
    same_step = gym.vector.AutoresetMode.SAME_STEP
    if mode == "async":
        if first is not None:
            first.close()
        return gym.vector.AsyncVectorEnv([env_fn] * n_envs, autoreset_mode=same_step)
    envs = [env_fn() if first is None else first] + [env_fn() for _ in range(n_envs - 1)]
    if isinstance(envs[0].observation_space, gym.spaces.Box):
        return SyncEnvs(envs)
    return gym.vector.SyncVectorEnv([lambda e=e: e for e in envs], autoreset_mode=same_step)


def step(envs: gym.vector.VectorEnv, actions: Any
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(obs to act on next, next_obs to store, rewards, terminated, episode ended).

    `actions` may be a list of single-env actions (structured spaces: tuples, dicts)."""
    if isinstance(actions, list):
        space = envs.single_action_space
        actions = concatenate(space, actions, create_empty_array(space, len(actions)))
    obs, rewards, terminated, truncated, info = envs.step(actions)
    done = np.logical_or(terminated, truncated)
    stored = obs
    if done.any():
        stored = np.array(obs, copy=True)
        for i in np.flatnonzero(info["_final_obs"]):
            stored[i] = info["final_obs"][i]
    return obs, stored, rewards, terminated, done


__all__ = ["VECTOR_MODES", "SyncEnvs", "make_vector", "step"]
