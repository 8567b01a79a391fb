"""Return estimates shared by the on-policy learners (PPO, IPPO/MAPPO)."""

from __future__ import annotations

import numpy as np


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, gamma: float,
        lam: float) -> np.ndarray:
    """Generalized advantage estimates (Schulman et al. 2016) over a (T, ...) rollout.

    `values` has T + 1 rows (the last bootstraps the step after the rollout); `dones[t]` cuts
    the recursion after step t. The loop runs over time only; every other axis (envs, agents)
    is vectorized.
    """
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * values[t + 1] * not_done - values[t]
        last = delta + gamma * lam * not_done * last
        advantages[t] = last
    return advantages
