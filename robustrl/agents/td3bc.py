"""TD3+BC (Fujimoto & Gu 2021): TD3 whose actor loss adds behaviour cloning.

    critic: L_Q = sum_i ( Q_i(s, a) - (r + gamma (1 - d) min_j Qtarget_j(s', a~')) )^2,
            a~' = clip(pi_target(s') + clip(N(0, policy_noise^2), +-noise_clip), -1, 1)
    actor (every `policy_freq` steps):
            L_pi = -lambda Q_1(s, pi(s)) + (pi(s) - a)^2,   lambda = alpha / mean |Q_1(s, pi(s))|
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustrl.agents.offline import Batch, OfflineWorker, TwinQ, frozen_copy
from robustrl.core.networks import mlp, polyak_update


@dataclass
class TD3BCConfig:
    lr: float = 3e-4
    """Adam learning rate of the actor and the critics."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor and the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    alpha: float = 2.5
    """Weight of the Q term against behaviour cloning (through lambda)."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise."""
    policy_freq: int = 2
    """Critic steps per actor (and target) step."""
    batch_size: int = 256
    """Transitions per gradient step."""
    reward_scale: float = 1.0
    """Rewards are scaled by this..."""
    reward_bias: float = 0.0
    """...then shifted by this."""


class TD3BC(OfflineWorker):
    """TD3+BC: TD3 whose deterministic actor also regresses to the dataset's actions."""

    name = "td3bc"
    Config = TD3BCConfig
    modules = ("q", "q_target", "actor", "actor_target")
    optimizers = ("q_opt", "actor_opt")

    def _build(self) -> None:
        c = self.config
        self.q = TwinQ(self.obs_dim, self.act_dim, c.hidden)
        self.q_target = frozen_copy(self.q)
        self.actor = nn.Sequential(mlp(self.obs_dim, c.hidden, self.act_dim), nn.Tanh())
        self.actor_target = frozen_copy(self.actor)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=c.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr)
        self._last_actor: dict[str, torch.Tensor] = {}

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        b = self.prepare(batch)

        with torch.no_grad():
            noise = (torch.randn_like(b.actions) * c.policy_noise).clamp(-c.noise_clip,
                                                                         c.noise_clip)
            next_actions = (self.actor_target(b.next_obs) + noise).clamp(-1.0, 1.0)
            next_q = self.q_target(b.next_obs, next_actions).min(0).values
            target = b.rewards + c.gamma * (1.0 - b.dones) * next_q
        qs, q_loss = self.critic_step(b, target)

        self.num_updates += 1
        if self.num_updates % c.policy_freq == 0:
            pi = self.actor(b.obs)
            q_pi = self.q(b.obs, pi)[0]
            lam = c.alpha / q_pi.abs().mean().detach().clamp(min=1e-6)
            bc_loss = F.mse_loss(pi, b.actions)
            actor_loss = -lam * q_pi.mean() + bc_loss
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            polyak_update(self.q_target, self.q, c.tau)
            polyak_update(self.actor_target, self.actor, c.tau)
            self._last_actor = {"actor_loss": actor_loss.detach(), "bc_loss": bc_loss.detach()}
        return {"q_loss": q_loss.detach(), "q_mean": qs.detach().mean(), **self._last_actor}

    def _policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.actor(obs)
