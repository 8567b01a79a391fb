"""What the offline workers share: the batch, the twin critic, the Gaussian actor, the base.

A worker is built from input/action sizes (its input is [observation, goal] on goal-conditioned
data), trained by `update(batch)` one gradient step at a time, and acts with `act(inputs)`.
Inputs are normalized by a `FixedNormalizer` (the dataset's mean/std), held by the worker so
acting needs nothing else. `state_dict()` covers everything to resume or act.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustrl.agents.base import Capabilities
from robustrl.core.checkpoint import load_state, state_of
from robustrl.core.device import torch_device  # noqa: F401 (imported from here)
from robustrl.core.networks import EnsembleMLP, mlp
from robustrl.core.normalizer import FixedNormalizer

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

OFFLINE_CAPABILITIES = Capabilities(agents="single", learning="offline",
                                    action_spaces=(gym.spaces.Box,), ernie=False, relabel=False,
                                    learned_reward=False)
"""What every offline learner (the workers and the IQL-TD-MPC manager) supports: one agent's
continuous actions learned from a fixed dataset, so no env reward to relabel or regularize."""


class Batch(NamedTuple):
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    dones: torch.Tensor
    """1.0 where the transition terminated (timeouts still bootstrap)."""


def env_input(obs: Any, use_goal: bool) -> np.ndarray:
    """A worker's raw input from an env observation: a goal env's Dict observation becomes
    [observation, desired_goal] (just `observation` when the data had no goals)."""
    if isinstance(obs, dict):
        parts = [obs["observation"], obs["desired_goal"]] if use_goal else [obs["observation"]]
        return np.concatenate(parts)
    return obs


class TransitionSampler:
    """Uniform minibatches from a dataset's (inputs, actions, rewards, next inputs, terminals),
    held on `device`; indices come from a CPU generator, so runs match across devices."""

    def __init__(self, inputs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                 next_inputs: np.ndarray, terminals: np.ndarray, seed: int = 0,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.tensors = [torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32,
                                        device=self.device)
                        for x in (inputs, actions, rewards, next_inputs, terminals)]
        self.size = len(rewards)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch_size: int) -> Batch:
        idx = torch.randint(self.size, (batch_size,), generator=self.generator).to(self.device)
        return Batch(*(t[idx] for t in self.tensors))


class TwinQ(nn.Module):
    """Two Q-functions in one batched pass (EnsembleMLP); forward returns (2, B)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], n: int = 2):
        super().__init__()
        self.net = EnsembleMLP(n, obs_dim + act_dim, hidden, 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], -1)
        return self.net(x).squeeze(-1)


class GaussianActor(nn.Module):
    """Normal(tanh(mlp(s)), exp(log_std)) with a state-independent log std (IQL, AWAC).

    Dataset actions lie in [-1, 1], so their log-probability is exact (no squashing).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim, hidden, act_dim)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def forward(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean = torch.tanh(self.net(obs))
        std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        # No argument validation: its checks cost a host sync per call on a GPU and up to 40% of
        # a one-row act on the CPU, and tanh / exp already keep mean and std valid.
        return torch.distributions.Normal(mean, std.expand_as(mean), validate_args=False)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self(obs).log_prob(actions).sum(-1)

    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        dist = self(obs)
        return dist.mean if deterministic else dist.sample().clamp(-1.0, 1.0)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a deep copy that takes no gradients."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


class OfflineWorker:
    """Base of IQL, TD3+BC, AWAC and CQL: normalization, acting, state, the update loop.

    Subclasses build their networks in `_build`, implement `update` (one gradient step on a
    Batch of *normalized* inputs) and `_policy_action` (normalized inputs -> action in
    [-1, 1]), and list their modules, optimizers and other learnable tensors in `modules` /
    `optimizers` / `tensors`.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    capabilities: ClassVar[Capabilities] = OFFLINE_CAPABILITIES

    def __init__(self, obs_dim: int, act_dim: int, config: Any = None, seed: int = 0,
                 normalizer: FixedNormalizer | None = None,
                 action_low: np.ndarray | None = None, action_high: np.ndarray | None = None,
                 device: str | torch.device = "cpu"):
        self.config = config if config is not None else self.Config()
        self.obs_dim, self.act_dim, self.seed = obs_dim, act_dim, seed
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.normalizer = normalizer if normalizer is not None else \
            FixedNormalizer.identity(obs_dim)
        low = -np.ones(act_dim) if action_low is None else np.asarray(action_low)
        high = np.ones(act_dim) if action_high is None else np.asarray(action_high)
        # on the worker's device: every update maps a batch of env actions to [-1, 1]
        self.action_scale, self.action_bias = (
            torch.as_tensor(x, dtype=torch.float32, device=self.device)
            for x in ((high - low) / 2, (high + low) / 2))
        self.num_updates = 0
        self._build()
        for n in self.modules:  # in place: the optimizers built in _build keep their params
            getattr(self, n).to(self.device)

    modules: ClassVar[tuple[str, ...]] = ()
    optimizers: ClassVar[tuple[str, ...]] = ()
    tensors: ClassVar[tuple[str, ...]] = ()
    """Learnable tensors outside the modules (CQL's entropy temperature), also checkpointed."""

    def _build(self) -> None:
        raise NotImplementedError

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step; its metrics as 0-dim tensors (read back only when logged)."""
        raise NotImplementedError

    def _policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        raise NotImplementedError

    # ----------------------------------------------------------------- data in and out
    def to_unit_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Env actions -> [-1, 1] (the networks' action space)."""
        return ((actions - self.action_bias) / self.action_scale).clamp(-1.0, 1.0)

    def prepare(self, batch: Batch) -> Batch:
        """A raw batch as the networks see it: normalized inputs, actions in [-1, 1], rewards
        as `reward_scale * r + reward_bias`."""
        c = self.config
        return batch._replace(obs=self.normalizer(batch.obs),
                              next_obs=self.normalizer(batch.next_obs),
                              actions=self.to_unit_actions(batch.actions),
                              rewards=c.reward_scale * batch.rewards + c.reward_bias)

    def critic_step(self, b: Batch, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the twin critics `q` (optimizer `q_opt`) toward the TD `target` (B,) at
        the data's actions, on the per-critic MSE summed: (Q-values (2, B), the loss)."""
        qs = self.q(b.obs, b.actions)
        q_loss = F.mse_loss(qs, target.expand_as(qs), reduction="none").mean(1).sum()
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        return qs, q_loss

    @torch.no_grad()
    def act(self, inputs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Env action(s) for raw input(s) ([observation, goal] on goal-conditioned data)."""
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=self.device)
        single = x.dim() == 1
        a = self._policy_action(self.normalizer(x.reshape(-1, self.obs_dim)), deterministic)
        a = (a * self.action_scale + self.action_bias).cpu().numpy()
        return a[0] if single else a

    def policy_output(self, inputs: torch.Tensor) -> torch.Tensor:
        """Differentiable deterministic action for raw inputs (for attacks/regularizers)."""
        return self._policy_action(self.normalizer(inputs), True) * self.action_scale \
            + self.action_bias

    # ----------------------------------------------------------------- state
    def _state_names(self) -> tuple[str, ...]:
        return (*self.modules, *self.optimizers, *self.tensors, "normalizer", "action_scale",
                "action_bias", "num_updates")

    def state_dict(self) -> dict[str, Any]:
        return state_of(self, self._state_names())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state(self, state, self._state_names())
