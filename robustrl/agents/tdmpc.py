"""IQL-TD-MPC manager (Chitnis et al., ICRA 2024): a TD-MPC latent model trained with IQL's
losses on temporally abstract transitions, whose plan hands an intent to any offline worker.

No public code exists; the choices the paper leaves open are fields of `IQLTDMPCConfig`:
- Abstract step: `k` env steps. The abstract transition from x_t is
  (x_t, a_t, R_t, x_{t+k}) with R_t = sum_{i<k} gamma^i r_{t+i}, inside one episode.
- Abstract action (the "latent subgoal k steps ahead"): a_t = h'(x_{t+k}), the target
  encoder's latent of the state k steps later (tanh-bounded, so pi's Gaussian fits it).
- Model (TD-MPC): encoder z = h(x), latent dynamics z' = d(z, a), reward R(z, a), twin
  Q(z, a), value V(z), policy pi(a | z); x = [observation, goal] on goal-conditioned data.
  Unrolled over `horizon` abstract steps with weights rho^j:
      consistency  || d(z_j, a_j) - h'(x_{j+1}) ||^2
      reward       ( R(z_j, a_j) - R_j )^2
      Q            ( Q_i(z_j, a_j) - (R_j + gamma^k V(h'(x_{j+1}))) )^2
      V (IQL)      L2^tau( min_i Q'_i(z_j, a_j) - V(z_j) ),  L2^tau(u) = |tau - 1(u<0)| u^2
      pi (AWR)     -min(exp(beta (min_i Q'_i(z_j, a_j) - V(z_j))), 100) log pi(a_j | z_j)
  (V and pi see z_j detached; primes are Polyak targets.)
- Planning: MPPI over `horizon` abstract steps with every candidate drawn from pi (no
  random candidates) and a single pass (no iterative refinement): the return
  G = sum_j gamma^(k j) R(z_j, a_j) + gamma^(k H) V(z_H) weights the candidates by
  softmax(temperature * G), and the intent is the weighted mean of their first actions.
- Intent embedding g_t: the first planned abstract action, recomputed every k steps (at
  episode step 0, k, 2k, ...); the worker's input becomes [observation, goal, g_t].
  `relabel` computes g_t for a whole dataset with the trained manager.

Training runs (a run directory, metrics, the dataset) live in `robustrl.train.manager`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from robustrl.agents.base import CHECKPOINT_FORMAT, Capabilities, read_checkpoint
from robustrl.agents.offline import (
    OFFLINE_CAPABILITIES,
    GaussianActor,
    TwinQ,
    env_input,
    frozen_copy,
)
from robustrl.core.checkpoint import load_state, state_of
from robustrl.core.config import from_dict, to_dict
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_torch_save
from robustrl.core.networks import mlp, polyak_update
from robustrl.core.normalizer import FixedNormalizer
from robustrl.core.provenance import provenance


@dataclass
class IQLTDMPCConfig:
    k: int = 25
    """Env steps per abstract step (and between intent refreshes); ablate 10 / 25 / 50."""
    horizon: int = 3
    """Abstract steps unrolled in training and planned over."""
    latent_dim: int = 16
    """Size of the latent state, hence of the abstract action and the intent."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of every network."""
    lr: float = 3e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount per env step (an abstract step discounts by gamma^k)."""
    tau: float = 0.005
    """Polyak rate of the target encoder and target Q."""
    expectile: float = 0.9
    """IQL expectile of the value loss."""
    beta: float = 3.0
    """Inverse temperature of the AWR policy weights."""
    max_weight: float = 100.0
    """Clip on the AWR weights."""
    rho: float = 0.5
    """Weight decay over the unrolled horizon (TD-MPC)."""
    consistency_coef: float = 2.0
    """Weight of the latent consistency loss (TD-MPC: 2)."""
    reward_coef: float = 0.5
    """Weight of the reward loss (TD-MPC: 0.5)."""
    value_coef: float = 0.1
    """Weight of the Q loss (TD-MPC: 0.1)."""
    batch_size: int = 256
    """Abstract sequences per gradient step."""
    num_candidates: int = 64
    """Policy samples per planning call."""
    plan_temperature: float = 0.5
    """MPPI temperature on the candidates' returns."""
    reward_scale: float = 1.0
    """Rewards are scaled by this..."""
    reward_bias: float = 0.0
    """...then shifted by this."""


# ----------------------------------------------------------------------------- data
class AbstractSequences:
    """Starts t whose abstract states x_t, x_{t+k}, ... stay in t's episode, with k-step returns.

    `ends` is True on each episode's last row (`OfflineDataset.episode_ends`).
    `masks[:, j]` says whether abstract step j (from x_{t+jk} to x_{t+(j+1)k}) is inside the
    episode; a sequence needs its first step, later ones are masked out of the losses.
    """

    def __init__(self, inputs: np.ndarray, rewards: np.ndarray, ends: np.ndarray, k: int,
                 horizon: int, gamma: float, seed: int = 0,
                 device: str | torch.device = "cpu"):
        n = len(rewards)
        end_index = np.flatnonzero(ends)
        self.last = end_index[np.searchsorted(end_index, np.arange(n))]  # episode's last row
        rewards = rewards.astype(np.float64)
        returns = np.zeros(n)
        for i in range(k):  # R_t = sum_{i<k} gamma^i r_{t+i} (masked where it crosses an end)
            returns[: n - i] += gamma**i * rewards[i:]
        self.k, self.horizon = k, horizon
        self.starts = np.flatnonzero(np.arange(n) + k <= self.last)
        if len(self.starts) == 0:
            raise RobustRLError(f"no episode of the dataset lasts {k + 1} steps; lower k")
        self.device = torch.device(device)
        self.inputs = torch.as_tensor(inputs, dtype=torch.float32, device=self.device)
        self.returns = torch.as_tensor(returns, dtype=torch.float32, device=self.device)
        self.last_t = torch.as_tensor(self.last)
        self.starts_t = torch.as_tensor(self.starts)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """(states (H+1, B, D), returns (H, B), masks (H, B))."""
        pick = torch.randint(len(self.starts_t), (batch_size,), generator=self.generator)
        t = self.starts_t[pick]
        steps = torch.arange(self.horizon + 1)[:, None] * self.k
        idx = t[None] + steps  # (H+1, B)
        inside = idx <= self.last_t[t][None]
        idx = torch.where(inside, idx, t[None]).to(self.device)
        masks = inside[1:].float().to(self.device)
        return self.inputs[idx], self.returns[idx[:-1]], masks


# ----------------------------------------------------------------------------- manager
class IQLTDMPC:
    """IQL-TD-MPC manager: plans an intent (a latent subgoal) for any offline worker.

    A TD-MPC latent model trained with IQL's losses on abstract transitions, planning by
    policy-only MPPI."""

    name = "tdmpc"
    Config = IQLTDMPCConfig
    capabilities: ClassVar[Capabilities] = OFFLINE_CAPABILITIES

    def __init__(self, in_dim: int, config: IQLTDMPCConfig | None = None, seed: int = 0,
                 normalizer: FixedNormalizer | None = None,
                 device: str | torch.device = "cpu"):
        self.config = c = config if config is not None else IQLTDMPCConfig()
        self.in_dim, self.seed = in_dim, seed
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.normalizer = normalizer if normalizer is not None else \
            FixedNormalizer.identity(in_dim)
        latent = c.latent_dim
        self.encoder = nn.Sequential(mlp(in_dim, c.hidden, latent), nn.Tanh())
        self.dynamics = nn.Sequential(mlp(2 * latent, c.hidden, latent), nn.Tanh())
        self.reward = mlp(2 * latent, c.hidden, 1)
        self.q = TwinQ(latent, latent, c.hidden)
        self.v = mlp(latent, c.hidden, 1)
        self.actor = GaussianActor(latent, latent, c.hidden)
        self.encoder_target, self.q_target = frozen_copy(self.encoder), frozen_copy(self.q)
        model = [*self.encoder.parameters(), *self.dynamics.parameters(),
                 *self.reward.parameters(), *self.q.parameters()]
        self.model_opt = torch.optim.Adam(model, lr=c.lr)
        self.v_opt = torch.optim.Adam(self.v.parameters(), lr=c.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr)
        for n in self.modules:  # in place: the optimizers keep their params
            getattr(self, n).to(self.device)
        self.num_updates = 0

    modules = ("encoder", "dynamics", "reward", "q", "v", "actor", "encoder_target", "q_target")
    optimizers = ("model_opt", "v_opt", "actor_opt")
    _state_names = (*modules, *optimizers, "normalizer", "num_updates")

    def encode(self, x: torch.Tensor, target: bool = False) -> torch.Tensor:
        net = self.encoder_target if target else self.encoder
        return net(self.normalizer(x))

    # ----------------------------------------------------------------- training
    def update(self, states: torch.Tensor, returns: torch.Tensor,
               masks: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        returns = c.reward_scale * returns + c.reward_bias * sum(c.gamma**i for i in range(c.k))
        discount = c.gamma**c.k
        with torch.no_grad():
            targets = self.encode(states[1:], target=True)  # (H, B, L): abstract actions
            next_v = self.v(targets).squeeze(-1)
        z = self.encode(states[0])
        cons = rew = qloss = vloss = ploss = torch.zeros((), device=self.device)
        for j in range(c.horizon):
            a, m, w = targets[j], masks[j], c.rho**j
            norm = m.sum().clamp(min=1.0)
            za = torch.cat([z, a], -1)
            q = self.q(z, a)
            td_target = returns[j] + discount * next_v[j]
            qloss = qloss + w * (((q - td_target) ** 2).sum(0) * m).sum() / norm
            rew = rew + w * (((self.reward(za).squeeze(-1) - returns[j]) ** 2) * m).sum() / norm
            z_next = self.dynamics(za)
            cons = cons + w * (((z_next - a) ** 2).mean(-1) * m).sum() / norm
            zd = z.detach()
            with torch.no_grad():
                q_bar = self.q_target(zd, a).min(0).values
            adv = q_bar - self.v(zd).squeeze(-1)
            vloss = vloss + w * ((torch.abs(c.expectile - (adv < 0).float()) * adv**2)
                                 * m).sum() / norm
            weights = torch.exp(c.beta * adv.detach()).clamp(max=c.max_weight)
            ploss = ploss - w * (weights * self.actor.log_prob(zd, a) * m).sum() / norm
            z = z_next
        model_loss = c.consistency_coef * cons + c.reward_coef * rew + c.value_coef * qloss
        for opt, loss in ((self.model_opt, model_loss), (self.v_opt, vloss),
                          (self.actor_opt, ploss)):
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        polyak_update(self.encoder_target, self.encoder, c.tau)
        polyak_update(self.q_target, self.q, c.tau)
        self.num_updates += 1
        return {"consistency_loss": cons.detach(), "reward_loss": rew.detach(),
                "q_loss": qloss.detach(), "v_loss": vloss.detach(), "actor_loss": ploss.detach()}

    # ----------------------------------------------------------------- planning
    @torch.no_grad()
    def plan(self, x: np.ndarray | torch.Tensor,
             generator: torch.Generator | None = None) -> np.ndarray:
        """Intent(s) for raw input(s) x: MPPI's weighted mean of the first abstract actions."""
        c = self.config
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)
        single = x.dim() == 1
        x = x.reshape(-1, self.in_dim)
        b, n = len(x), c.num_candidates
        z = self.encode(x).repeat_interleave(n, 0)
        value, disc, first = torch.zeros(b * n, device=self.device), 1.0, None
        for j in range(c.horizon):
            dist = self.actor(z)  # noise from the CPU generator: plans match across devices
            noise = torch.randn(dist.mean.shape, generator=generator).to(self.device)
            a = (dist.mean + dist.stddev * noise).clamp(-1.0, 1.0)
            first = a if j == 0 else first
            za = torch.cat([z, a], -1)
            value += disc * self.reward(za).squeeze(-1)
            z = self.dynamics(za)
            disc *= c.gamma**c.k
        value += disc * self.v(z).squeeze(-1)
        value = value.view(b, n)
        weights = torch.softmax(c.plan_temperature * (value - value.max(1, keepdim=True).values),
                                1)
        intent = (weights[..., None] * first.view(b, n, -1)).sum(1).cpu().numpy()
        return intent[0] if single else intent

    def relabel(self, inputs: np.ndarray, ends: np.ndarray, seed: int = 0,
                chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """(intents, next intents) for every row of a dataset (`ends`: True on each episode's
        last row): g_t is planned at the episode's last refresh step (0, k, 2k, ... into the
        episode); the next row's intent is g_{t+1} inside the episode and g_t at its end."""
        n, k = len(inputs), self.config.k
        starts = np.concatenate([[0], np.flatnonzero(ends[:-1]) + 1])
        start_of = starts[np.searchsorted(starts, np.arange(n), side="right") - 1]
        refresh = start_of + (np.arange(n) - start_of) // k * k
        points, which = np.unique(refresh, return_inverse=True)
        generator = torch.Generator().manual_seed(seed)
        planned = np.concatenate([self.plan(inputs[points[i:i + chunk]], generator)
                                  for i in range(0, len(points), chunk)])
        intents = planned[which].astype(np.float32)
        next_intents = intents.copy()
        inside = ~ends[:-1]
        next_intents[:-1][inside] = intents[1:][inside]
        return intents, next_intents

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return state_of(self, self._state_names)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state(self, state, self._state_names)


class IntentPolicy:
    """Env policy of a worker trained on [observation, goal, intent]: replans every k steps."""

    def __init__(self, manager: IQLTDMPC, worker: Any, use_goal: bool, seed: int = 0):
        self.manager, self.worker, self.use_goal = manager, worker, use_goal
        self.generator = torch.Generator().manual_seed(seed)
        self.t, self.intent = 0, None

    def reset(self) -> None:
        self.t, self.intent = 0, None

    def __call__(self, obs: Any) -> np.ndarray:
        obs = env_input(obs, self.use_goal)
        if self.t % self.manager.config.k == 0:
            self.intent = self.manager.plan(obs, self.generator)
        self.t += 1
        return self.worker.act(np.concatenate([obs, self.intent]), deterministic=True)


# ----------------------------------------------------------------------------- checkpoints
def save_manager(manager: IQLTDMPC, path: str | Path) -> None:
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "kind": "offline-manager",
                       "agent": manager.name, "in_dim": manager.in_dim,
                       "config": to_dict(manager.config), "state": manager.state_dict(),
                       "provenance": provenance()}, path)


def load_manager(path: str | Path, device: str | torch.device = "cpu") -> IQLTDMPC:
    """A trained manager from its run directory (manager.pt) or the file itself, on `device`."""
    path = Path(path)
    if path.is_dir():
        path = path / "manager.pt"
    if not path.is_file():
        raise RobustRLError(f"manager checkpoint {path} not found (train one with "
                            "`robustrl train --agent tdmpc --dataset FILE ...`)")
    checkpoint = read_checkpoint(path, kind="offline-manager", what="manager checkpoint")
    manager = IQLTDMPC(checkpoint["in_dim"], from_dict(IQLTDMPCConfig, checkpoint["config"]),
                       device=device)
    manager.load_state_dict(checkpoint["state"])
    return manager
