"""IQL: Implicit Q-Learning (Kostrikov, Nair, Levine 2022), CORL-style in one file.

Never queries Q at actions outside the dataset:
    L_V  = E[ L2^tau( min_i Qtarget_i(s, a) - V(s) ) ],   L2^tau(u) = |tau - 1(u < 0)| u^2
    L_Q  = E[ sum_i ( Q_i(s, a) - (r + gamma (1 - d) V(s')) )^2 ]
    L_pi = E[ -min(exp(beta (Qtarget(s, a) - V(s))), 100) log pi(a | s) ]   (advantage-weighted
           regression)
Rewards enter as `reward_scale * r + reward_bias` (the antmaze recipe uses r - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustrl.agents.offline import Batch, GaussianActor, OfflineWorker, TwinQ, frozen_copy
from robustrl.core.networks import mlp, polyak_update


@dataclass
class IQLConfig:
    lr: float = 3e-4
    """Adam learning rate of every network."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the critics, the value net and the actor."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    expectile: float = 0.9
    """Expectile of the value loss (0.5 = mean; near 1 = max over the data's actions)."""
    beta: float = 10.0
    """Inverse temperature of the advantage weights."""
    max_weight: float = 100.0
    """Clip on the advantage weights exp(beta * A)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    reward_scale: float = 1.0
    """Rewards are scaled by this..."""
    reward_bias: float = 0.0
    """...then shifted by this (antmaze IQL: -1)."""


class IQL(OfflineWorker):
    """Implicit Q-Learning: expectile value, advantage-weighted actor; no out-of-data Q."""

    name = "iql"
    Config = IQLConfig
    modules = ("q", "q_target", "v", "actor")
    optimizers = ("q_opt", "v_opt", "actor_opt")

    def _build(self) -> None:
        c = self.config
        self.q = TwinQ(self.obs_dim, self.act_dim, c.hidden)
        self.q_target = frozen_copy(self.q)
        self.v = mlp(self.obs_dim, c.hidden, 1)
        self.actor = GaussianActor(self.obs_dim, self.act_dim, c.hidden)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=c.lr)
        self.v_opt = torch.optim.Adam(self.v.parameters(), lr=c.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        b = self.prepare(batch)

        with torch.no_grad():
            target_q = self.q_target(b.obs, b.actions).min(0).values
        v = self.v(b.obs).squeeze(-1)
        advantage = target_q - v
        v_loss = (torch.abs(c.expectile - (advantage < 0).float()) * advantage.pow(2)).mean()
        self.v_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        self.v_opt.step()

        with torch.no_grad():
            next_v = self.v(b.next_obs).squeeze(-1)
            target = b.rewards + c.gamma * (1.0 - b.dones) * next_v
        _, q_loss = self.critic_step(b, target)
        polyak_update(self.q_target, self.q, c.tau)

        weights = torch.exp(c.beta * advantage.detach()).clamp(max=c.max_weight)
        actor_loss = -(weights * self.actor.log_prob(b.obs, b.actions)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        self.num_updates += 1
        return {"v_loss": v_loss.detach(), "q_loss": q_loss.detach(),
                "actor_loss": actor_loss.detach(), "q_mean": target_q.detach().mean(),
                "advantage_mean": advantage.detach().mean()}

    def _policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.actor.act(obs, deterministic)
