"""The reward model of RL from preferences and what it learns from: per-step features, an
ensemble of reward networks, and the buffer of labelled-to-be segments.

One :class:`FeatureEncoder` serves the env wrappers (one step at a time) and replay-buffer
relabelling (whole batches), so a step is encoded the same way wherever its reward is computed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.core.networks import NumpyMLP
from robustrl.core.normalizer import FixedNormalizer
from robustrl.core.spaces import ActionCodec
from robustrl.reward.models import RewardNet, RewardNetConfig

__all__ = ["FeatureEncoder", "RewardEnsemble", "SegmentBuffer"]

INPUT_CLIP = 10.0
"""Normalized reward-model inputs are clipped to ±INPUT_CLIP (outliers in a fresh state)."""


class FeatureEncoder:
    """Maps (obs, action, next_obs) to the reward model's input vector; discrete actions are
    one-hot (the shared :class:`~robustrl.core.spaces.ActionCodec`)."""

    def __init__(self, obs_space: gym.Space, action_space: gym.Space,
                 parts: tuple[str, ...]) -> None:
        self.parts = parts
        self.obs_dim = int(np.prod(obs_space.shape))
        self.actions = ActionCodec(action_space, who="a learned reward")
        sizes = {"obs": self.obs_dim, "act": self.actions.dim, "next_obs": self.obs_dim}
        self.dim = sum(sizes[p] for p in parts)

    def __call__(self, obs: Any, act: Any, next_obs: Any) -> np.ndarray:
        """Batched: obs (B, ...) → (B, dim)."""
        obs = np.asarray(obs, np.float32)
        b = obs.shape[0]
        parts = {"obs": lambda: obs.reshape(b, -1),
                 "act": lambda: self.actions.encode(act, b),
                 "next_obs": lambda: np.asarray(next_obs, np.float32).reshape(b, -1)}
        return np.concatenate([parts[p]() for p in self.parts], 1)


class RewardEnsemble:
    """K RewardNets behind one fixed input normalization (refitted to the segment buffer at
    each refresh); rewards come from numpy snapshots, so stepping an env never touches torch."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], k: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.nets = [RewardNet(RewardNetConfig(in_dim=in_dim, hidden=hidden)) for _ in range(k)]
        self.inputs = FixedNormalizer.identity(in_dim, clip=INPUT_CLIP)
        self.out_mean, self.out_std = 0.0, 1.0
        self.trained = False
        self._snap: list[NumpyMLP] = []

    def fit_inputs(self, x: np.ndarray) -> None:
        """Input statistics of the rows of raw features ``x`` (float32, as the nets see them)."""
        self.inputs = FixedNormalizer(x.mean(0), x.std(0) + 1e-6, clip=INPUT_CLIP)

    def members(self, x: np.ndarray) -> np.ndarray:
        """(K, ...) raw per-step rewards of each member for raw features x (..., D)."""
        if not self._snap:
            self._snap = [NumpyMLP(n.mlp) for n in self.nets]
        xn = self.inputs(x)
        return np.stack([m(xn)[..., 0] for m in self._snap])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Normalized ensemble-mean reward of raw features x (B, D); 0 before training."""
        if not self.trained:
            return np.zeros(x.shape[0], np.float32)
        return ((self.members(x).mean(0) - self.out_mean) / self.out_std).astype(np.float32)

    def refreshed(self) -> None:
        """The nets were retrained: take new numpy snapshots at the next prediction."""
        self._snap = []
        self.trained = True

    def state_dict(self) -> dict[str, Any]:
        return {"nets": [n.state_dict() for n in self.nets], "inputs": self.inputs.state_dict(),
                "out": (self.out_mean, self.out_std), "trained": self.trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n, s in zip(self.nets, state["nets"]):
            n.load_state_dict(s)
        self.inputs.load_state_dict(state["inputs"])
        self.out_mean, self.out_std = state["out"]
        self.trained = state["trained"]
        self._snap = []


class SegmentBuffer:
    """FIFO of complete length-L segments: features (N, L, D), env reward (N, L), factors
    (N, L, F) in rank order (raw values; signs are applied by the users)."""

    def __init__(self, capacity: int, length: int, dim: int, n_factors: int) -> None:
        self.capacity, self.length = capacity, length
        self.feats = np.zeros((capacity, length, dim), np.float32)
        self.rewards = np.zeros((capacity, length), np.float32)
        self.factors = np.zeros((capacity, length, n_factors), np.float32)
        self.pos = self.size = self.added = 0

    def add(self, feats: np.ndarray, rewards: np.ndarray, factors: np.ndarray) -> None:
        i = self.pos
        self.feats[i], self.rewards[i], self.factors[i] = feats, rewards, factors
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def __len__(self) -> int:
        return self.size

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"feats": self.feats[:n].copy(), "rewards": self.rewards[:n].copy(),
                "factors": self.factors[:n].copy(), "pos": self.pos, "size": n,
                "added": self.added}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        n = s["size"]
        self.feats[:n], self.rewards[:n], self.factors[:n] = s["feats"], s["rewards"], s["factors"]
        self.pos, self.size, self.added = s["pos"], n, s["added"]
