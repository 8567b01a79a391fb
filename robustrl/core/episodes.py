"""Episode bookkeeping shared by all agents: running returns for one or many envs."""

from __future__ import annotations

from collections import deque

import numpy as np


class EpisodeStats:
    """Accumulates per-env returns/lengths; finished episodes go to a window for logging."""

    def __init__(self, n_envs: int = 1, window: int = 20):
        self.returns = np.zeros(n_envs)
        self.lengths = np.zeros(n_envs, dtype=np.int64)
        self.finished_returns: deque[float] = deque(maxlen=window)
        self.finished_lengths: deque[int] = deque(maxlen=window)
        self.episodes = 0

    def step(self, rewards, dones) -> None:
        self.returns += rewards
        self.lengths += 1
        for i in np.flatnonzero(dones):
            self.finished_returns.append(float(self.returns[i]))
            self.finished_lengths.append(int(self.lengths[i]))
            self.returns[i] = 0.0
            self.lengths[i] = 0
            self.episodes += 1

    def metrics(self) -> dict[str, float]:
        if not self.finished_returns:
            return {}
        return {"episode_return": float(np.mean(self.finished_returns)),
                "episode_length": float(np.mean(self.finished_lengths)),
                "episodes": float(self.episodes)}
