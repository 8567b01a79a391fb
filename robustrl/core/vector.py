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
from gymnasium.vector.utils import concatenate, create_empty_array

from robustrl.core.errors import RobustRLError

VECTOR_MODES = ("sync", "async")


def make_vector(env_fn: Callable[[], Any], n_envs: int, mode: str = "sync",
                first: Any = None) -> gym.vector.VectorEnv:
    """`n_envs` copies of `env_fn()` in one process (sync) or one subprocess each (async);
    `first`, an env already made, is used as the first copy of a sync vector."""
    if mode not in VECTOR_MODES:
        raise RobustRLError(f"vector_mode must be one of {', '.join(VECTOR_MODES)}, got {mode!r}")
    if n_envs < 1:
        raise RobustRLError(f"n_envs must be >= 1, got {n_envs}")
    same_step = gym.vector.AutoresetMode.SAME_STEP
    if mode == "async":
        if first is not None:
            first.close()
        return gym.vector.AsyncVectorEnv([env_fn] * n_envs, autoreset_mode=same_step)
    fns = [env_fn] * n_envs if first is None else [lambda: first] + [env_fn] * (n_envs - 1)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=same_step)


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


__all__ = ["VECTOR_MODES", "make_vector", "step"]
