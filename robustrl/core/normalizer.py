"""Running mean/std normalization (observations and returns), checkpointable."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


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

    def normalize(self, x: Any) -> Any:
        """Normalized and clipped: numpy in, float32 numpy out; a torch tensor stays a tensor
        of its dtype, differentiable (perturbation attacks and ERNIE take gradients through
        the learners' normalizer)."""
        if isinstance(x, torch.Tensor):
            mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)
            std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device)
            return ((x - mean) / std).clamp(-self.clip, self.clip)
        return np.clip((x - self.mean) / self.std, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


class FixedNormalizer:
    """(x - mean) / std with statistics fixed once — a dataset's, or the inputs a reward model
    was last fitted on — instead of updated online like `RunningMeanStd`.

    Works on numpy arrays (returns float32) and on torch tensors (statistics moved to the
    tensor's device on first use, so a network on a GPU normalizes without host copies).
    `clip` bounds the result (None: unbounded).
    """

    def __init__(self, mean: Any, std: Any, clip: float | None = None):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.clip = clip
        self._torch: dict[Any, tuple[Any, Any]] = {}

    @classmethod
    def identity(cls, dim: int, clip: float | None = None) -> FixedNormalizer:
        return cls(np.zeros(dim), np.ones(dim), clip)

    @classmethod
    def fit(cls, x: np.ndarray, eps: float = 1e-3, clip: float | None = None) -> FixedNormalizer:
        """Statistics of the rows of `x`; `eps` keeps constant features from dividing by 0."""
        x = np.asarray(x, np.float64)
        return cls(x.mean(0), x.std(0) + eps, clip)

    def __call__(self, x: Any) -> Any:
        if isinstance(x, np.ndarray):
            out = (x - self.mean) / self.std
            if self.clip is not None:
                out = np.clip(out, -self.clip, self.clip)
            return out.astype(np.float32)
        if x.device not in self._torch:
            self._torch[x.device] = (torch.as_tensor(self.mean, device=x.device),
                                     torch.as_tensor(self.std, device=x.device))
        mean, std = self._torch[x.device]
        out = (x - mean) / std
        return out.clamp(-self.clip, self.clip) if self.clip is not None else out

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "std": self.std.copy(), "clip": self.clip}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mean, std = (np.asarray(state[k].cpu() if hasattr(state[k], "cpu") else state[k],
                                np.float32) for k in ("mean", "std"))
        self.__init__(mean, std, state.get("clip", self.clip))
