"""Episode bookkeeping shared by all agents: running returns for one or many envs (and, for
multi-agent learners, per agent)."""

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


class MultiAgentStats(EpisodeStats):
    """Episode returns summed over agents (the team return), plus each agent's own mean."""

    def __init__(self, n_envs: int, agents: list[str], window: int = 20):
        super().__init__(n_envs, window)
        self.agents = agents
        self.agent_returns = np.zeros((n_envs, len(agents)))
        self.finished_agent: list[np.ndarray] = []
        self.window = window

    def step_agents(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """rewards (n_envs, n_agents); dones (n_envs,)."""
        self.agent_returns += rewards
        for i in np.flatnonzero(dones):
            self.finished_agent = [*self.finished_agent[-(self.window - 1):],
                                   self.agent_returns[i].copy()]
            self.agent_returns[i] = 0.0
        self.step(rewards.sum(1), dones)

    def metrics(self) -> dict[str, float]:
        out = super().metrics()
        if self.finished_agent:
            means = np.mean(self.finished_agent, 0)
            out.update({f"return/{a}": float(m) for a, m in zip(self.agents, means)})
        return out
