"""Running mean/std normalization (observations and returns), checkpointable."""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningMeanStd:
    """Parallel-variance (Chan et al.) running moments over a leading batch axis."""

    def __init__(self, shape: tuple[int, ...] = (), clip: float = 10.0, eps: float = 1e-8):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4
        self.clip = clip
        self.eps = eps

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64).reshape(-1, *self.mean.shape)
        b_count = batch.shape[0]
        if b_count == 1:  # one env stepping: skip numpy's (comparatively slow) reductions
            b_mean, b_var = batch[0], 0.0
        else:
            b_mean, b_var = batch.mean(0), batch.var(0)
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var + self.eps)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / self.std, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]
