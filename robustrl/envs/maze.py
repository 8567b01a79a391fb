"""Mazes from gymnasium-robotics (PointMaze v3, AntMaze v5) with goal factors and flattening.

The maze envs observe a Dict (`observation`, `achieved_goal`, `desired_goal`), which suits
goal-relabelling agents; `flatten=True` turns it into one Box for everything else, in the
order [observation, achieved_goal, desired_goal] (AntMaze's `observation` leaves out the
ant's x-y, which only `achieved_goal` carries, so all three parts are kept).

Factors, on every step: `goal_distance` (Euclidean distance from the agent to the goal the
step was rewarded against) and `success` (1.0 within the 0.45 goal radius, else 0.0).
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import gymnasium as gym
import numpy as np

with contextlib.redirect_stderr(io.StringIO()):
    # gymnasium-robotics prints a notice about its Adroit hand envs to stderr at import.
    import gymnasium_robotics

from robustrl.envs.factors import KEY

gym.register_envs(gymnasium_robotics)

_PARTS = ("observation", "achieved_goal", "desired_goal")


class MazeAdapter(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds `reward_factors` to the step info and, if asked, flattens the Dict observation.

    Records its arguments, so `env.spec` can rebuild the stack (Gymnasium's convention).
    """

    def __init__(self, env: gym.Env, flatten: bool = False):
        gym.utils.RecordConstructorArgs.__init__(self, flatten=flatten)
        super().__init__(env)
        self.flatten = flatten
        if flatten:
            parts = [env.observation_space[k] for k in _PARTS]
            size = sum(int(np.prod(p.shape)) for p in parts)
            low = np.concatenate([p.low.ravel() for p in parts])
            high = np.concatenate([p.high.ravel() for p in parts])
            self.observation_space = gym.spaces.Box(low, high, (size,), np.float64)

    def _obs(self, obs: dict[str, np.ndarray]) -> Any:
        if not self.flatten:
            return obs
        return np.concatenate((obs["observation"], obs["achieved_goal"], obs["desired_goal"]))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._obs(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        distance = math.dist(obs["achieved_goal"].tolist(), obs["desired_goal"].tolist())
        info[KEY] = {"goal_distance": distance, "success": 1.0 if info["success"] else 0.0}
        return self._obs(obs), reward, terminated, truncated, info


def make_maze(gym_id: str, flatten: bool = False, **kwargs: Any) -> gym.Env:
    """Make gymnasium-robotics maze `gym_id` (e.g. "PointMaze_UMaze-v3").

    `flatten`: observe one Box [observation, achieved_goal, desired_goal] instead of the Dict.
    Other keyword arguments go to the maze: `continuing_task`, `reset_target`, `maze_map`,
    `max_episode_steps`, `render_mode`, ...
    """
    return MazeAdapter(gym.make(gym_id, **kwargs), flatten=flatten)
