"""The one replay buffer: preallocated numpy arrays, uniform sampling, checkpointable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(obs, actions, next_obs) -> rewards, batched over the leading axis."""


class ReplayBuffer:
    """Transitions (obs, action, reward, next_obs, terminated) in a ring of `capacity`.

    `terminated` (not `truncated`) is stored: a time-limit cut must still bootstrap.
    Multi-agent learners store joint transitions: `reward_shape=(n_agents,)` gives rewards and
    terminated an agent axis (obs and actions carry it in their own shapes). `extras` adds
    further per-transition arrays {name: shape} (float32) that `add` takes as keywords and
    `sample` returns under their names (e.g. mean-field Q's neighbours' mean actions).
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 action_dtype: Any = np.float32, reward_shape: tuple[int, ...] = (),
                 extras: Mapping[str, tuple[int, ...]] | None = None):
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), np.float32)
        self.actions = np.zeros((capacity, *action_shape), action_dtype)
        self.rewards = np.zeros((capacity, *reward_shape), np.float32)
        self.terminated = np.zeros((capacity, *reward_shape), np.float32)
        self.extras = {name: np.zeros((capacity, *shape), np.float32)
                       for name, shape in (extras or {}).items()}
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    @property
    def keys(self) -> tuple[str, ...]:
        return ("obs", "actions", "rewards", "next_obs", "terminated", *self.extras)

    def _array(self, key: str) -> np.ndarray:
        return self.extras[key] if key in self.extras else getattr(self, key)

    def add(self, obs, action, reward, next_obs, terminated, **extras: Any) -> None:
        """Add one transition, or a batch when the inputs carry a leading batch axis."""
        obs = np.asarray(obs, np.float32)
        batched = obs.ndim == self.obs.ndim  # a batch of one too
        n = obs.shape[0] if batched else 1
        idx = (self.pos + np.arange(n)) % self.capacity if batched else self.pos
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = action
        self.rewards[idx] = reward
        self.terminated[idx] = terminated
        for name, value in extras.items():
            self.extras[name][idx] = value
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator,
               device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """A uniform batch, moved to `device` once (the learner's, e.g. cuda)."""
        idx = rng.integers(0, self.size, size=batch_size)
        return {k: torch.from_numpy(self._array(k)[idx]).to(device) for k in self.keys}

    def relabel(self, reward_fn: RewardFn) -> None:
        """Recompute every stored reward as `reward_fn(obs, actions, next_obs)` (PEBBLE's
        relabelling after a reward model is refitted). With an agent axis, `reward_fn` gets
        and returns arrays that keep it."""
        n = self.size
        if n:
            self.rewards[:n] = reward_fn(self.obs[:n], self.actions[:n], self.next_obs[:n])

    def state_dict(self) -> dict[str, Any]:
        """Only the filled part is saved, so early checkpoints stay small."""
        n = self.size
        return {"pos": self.pos, "size": n, **{k: self._array(k)[:n].copy() for k in self.keys}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["size"]
        for key in self.keys:
            self._array(key)[:n] = state[key]
        self.pos, self.size = state["pos"], n
