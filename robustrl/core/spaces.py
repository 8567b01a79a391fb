"""Action-space codecs: env actions as flat vectors, one way for every learner and model.

`ActionCodec`: Discrete and MultiDiscrete actions become concatenated one-hot blocks and Box
actions are flattened, so critics, reward models and mean-field averages all read actions one
way. `HybridLayout`: any mix of discrete and bounded continuous parts (Dict/Tuple, parameterized
actions) as one joint discrete index plus a continuous vector in [-1, 1], the form a hybrid
policy and its critics work in.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.core.errors import RobustRLError

HYBRID_SUPPORTED = ("Box, Discrete, MultiDiscrete, a Dict/Tuple of those (independent parts), or "
                    "parameterized Tuple(Discrete(K), Tuple(Box_1, ..., Box_K))")


class ActionCodec:
    """Encodes batches of actions of `space` into float32 rows of width `dim`."""

    def __init__(self, space: gym.Space, who: str = "this learner"):
        if isinstance(space, gym.spaces.Discrete):
            self.sizes: list[int] | None = [int(space.n)]
        elif isinstance(space, gym.spaces.MultiDiscrete):
            self.sizes = [int(n) for n in space.nvec.ravel()]
        elif isinstance(space, gym.spaces.Box):
            self.sizes = None
        else:
            raise RobustRLError(f"{who} supports Box, Discrete and MultiDiscrete actions, "
                                f"not {type(space).__name__}")
        self.dim = sum(self.sizes) if self.sizes is not None else int(np.prod(space.shape))

    @property
    def discrete(self) -> bool:
        return self.sizes is not None

    def encode(self, actions: np.ndarray, batch: int) -> np.ndarray:
        """`batch` actions (any leading shape that holds them) -> (batch, dim) float32."""
        if self.sizes is None:
            return np.asarray(actions, np.float32).reshape(batch, self.dim)
        idx = np.asarray(actions).reshape(batch, len(self.sizes)).astype(np.int64)
        out = np.zeros((batch, self.dim), np.float32)
        offset = 0
        for k, n in enumerate(self.sizes):
            out[np.arange(batch), offset + idx[:, k]] = 1.0
            offset += n
        return out


class HybridLayout:
    """How an env action maps to (joint discrete index, normalized continuous vector) and back.

    Leaves are walked in the space's order; `kind` is 'box', 'discrete', 'hybrid' (independent
    parts) or 'parameterized'.
    """

    def __init__(self, space: gym.Space, who: str = "this learner"):
        self.space = space
        self.who = who
        self.discrete_sizes: list[int] = []  # K_j per discrete component
        self.discrete_starts: list[int] = []
        self.low: list[np.ndarray] = []  # per Box leaf, flattened
        self.high: list[np.ndarray] = []
        self.parameterized = _is_parameterized(space)
        if self.parameterized:
            self._add(space[0])
            for box in space[1]:
                self._add(box)
        elif isinstance(space, (spaces.Dict, spaces.Tuple)):
            subspaces = space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces
            if len(subspaces) == 0:
                raise RobustRLError(f"{who} cannot handle the empty action space {space}")
            for sub in subspaces:
                if not isinstance(sub, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete)):
                    raise _refusal(space, who)
                self._add(sub)
        else:
            self._add(space)
        self.box_dims = [len(low) for low in self.low]
        self.cont_dim = int(sum(self.box_dims))
        self.n_joint = int(np.prod(self.discrete_sizes)) if self.discrete_sizes else 1
        if self.parameterized:
            self.kind = "parameterized"
        elif self.discrete_sizes and self.cont_dim:
            self.kind = "hybrid"
        else:
            self.kind = "discrete" if self.discrete_sizes else "box"
        low = np.concatenate(self.low) if self.low else np.zeros(0)
        high = np.concatenate(self.high) if self.high else np.zeros(0)
        self.center, self.scale = (high + low) / 2, (high - low) / 2
        # P[d, k] = 1 when continuous dim d is a parameter of joint discrete action k.
        P = np.ones((self.cont_dim, self.n_joint), np.float32)
        if self.parameterized:
            P[:] = 0.0
            offsets = np.cumsum([0, *self.box_dims])
            for k in range(self.n_joint):
                P[offsets[k]:offsets[k + 1], k] = 1.0
        self.param_matrix = P
        # joint index k -> value of each discrete component (row-major, as np.ravel_multi_index).
        self.joint_table = (np.stack(np.unravel_index(np.arange(self.n_joint),
                                                      self.discrete_sizes), 1)
                            if self.discrete_sizes else np.zeros((1, 0), np.int64))

    def _add(self, sub: gym.Space) -> None:
        if isinstance(sub, spaces.Discrete):
            self.discrete_sizes.append(int(sub.n))
            self.discrete_starts.append(int(sub.start))
        elif isinstance(sub, spaces.MultiDiscrete):
            if sub.nvec.ndim != 1:
                raise RobustRLError(f"{self.who} needs a 1-D MultiDiscrete, got shape "
                                    f"{sub.nvec.shape}; flatten it")
            start = getattr(sub, "start", np.zeros_like(sub.nvec))
            self.discrete_sizes += [int(n) for n in sub.nvec]
            self.discrete_starts += [int(s) for s in start]
        elif isinstance(sub, spaces.Box):
            low, high = sub.low.ravel().astype(np.float64), sub.high.ravel().astype(np.float64)
            if not (np.isfinite(low).all() and np.isfinite(high).all()):
                raise RobustRLError(f"{self.who} needs bounded Box action parts (finite low/high)")
            self.low.append(low)
            self.high.append(high)
        else:
            raise _refusal(self.space, self.who)

    # ------------------------------------------------------------------ encode / decode
    def encode(self, action: Any) -> np.ndarray:
        """Env action -> [joint discrete index, continuous dims in [-1, 1]] (buffer format)."""
        discrete: list[int] = []
        cont: list[np.ndarray] = []

        def leaf(sub: gym.Space, a: Any) -> None:
            if isinstance(sub, spaces.Box):
                cont.append(np.asarray(a, np.float64).ravel())
            else:
                discrete.extend(int(x) for x in np.atleast_1d(a))

        if self.parameterized:
            leaf(self.space[0], action[0])
            for sub, a in zip(self.space[1], action[1]):
                leaf(sub, a)
        elif isinstance(self.space, spaces.Dict):
            for key, sub in self.space.spaces.items():
                leaf(sub, action[key])
        elif isinstance(self.space, spaces.Tuple):
            for sub, a in zip(self.space.spaces, action):
                leaf(sub, a)
        else:
            leaf(self.space, action)
        joint = (np.ravel_multi_index(np.subtract(discrete, self.discrete_starts),
                                      self.discrete_sizes) if discrete else 0)
        scale = np.where(self.scale > 0, self.scale, 1.0)
        c = (np.concatenate([np.zeros(0), *cont]) - self.center) / scale
        return np.concatenate([[joint], np.clip(c, -1.0, 1.0)]).astype(np.float32)

    def decode(self, joint: int, cont: np.ndarray) -> Any:
        """(joint discrete index, continuous dims in [-1, 1]) -> the env's action structure."""
        values = self.joint_table[joint] + np.asarray(self.discrete_starts, np.int64)
        real = cont.astype(np.float64) * self.scale + self.center
        parts: list[Any] = []
        d = c = 0
        leaves = ([self.space[0], *self.space[1]] if self.parameterized else
                  list(self.space.spaces.values()) if isinstance(self.space, spaces.Dict) else
                  list(self.space.spaces) if isinstance(self.space, spaces.Tuple) else
                  [self.space])
        for sub in leaves:
            if isinstance(sub, spaces.Box):
                n = int(np.prod(sub.shape))
                parts.append(np.clip(real[c:c + n].reshape(sub.shape), sub.low, sub.high)
                             .astype(sub.dtype))
                c += n
            elif isinstance(sub, spaces.Discrete):
                parts.append(int(values[d]))
                d += 1
            else:
                n = len(sub.nvec)
                parts.append(values[d:d + n].astype(sub.dtype))
                d += n
        if self.parameterized:
            return (parts[0], tuple(parts[1:]))
        if isinstance(self.space, spaces.Dict):
            return dict(zip(self.space.spaces.keys(), parts))
        if isinstance(self.space, spaces.Tuple):
            return tuple(parts)
        return parts[0]


def _is_parameterized(space: gym.Space) -> bool:
    return (isinstance(space, spaces.Tuple) and len(space) == 2
            and isinstance(space[0], spaces.Discrete) and isinstance(space[1], spaces.Tuple)
            and len(space[1]) == space[0].n
            and all(isinstance(b, spaces.Box) for b in space[1]))


def _refusal(space: gym.Space, who: str) -> RobustRLError:
    return RobustRLError(f"{who} cannot handle action space {space}; it supports "
                         f"{HYBRID_SUPPORTED}")
