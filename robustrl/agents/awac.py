"""AWAC: Advantage-Weighted Actor-Critic (Nair, Gupta, Dalal, Levine 2020), CORL-style.

    critic: L_Q = sum_i ( Q_i(s, a) - (r + gamma (1 - d) min_j Qtarget_j(s', a')) )^2,
            a' ~ pi(s')
    actor:  L_pi = E[ -min(exp(A(s, a) / lambda), 100) log pi(a | s) ],
            A(s, a) = min_i Q_i(s, a) - min_i Q_i(s, a~),  a~ ~ pi(s)
Unlike IQL the value baseline queries Q at the policy's own actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustrl.agents.offline import Batch, GaussianActor, OfflineWorker, TwinQ, frozen_copy
from robustrl.core.networks import polyak_update


@dataclass
class AWACConfig:
    lr: float = 3e-4
    """Adam learning rate of the actor and the critics."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor and the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    awac_lambda: float = 1.0
    """Temperature of the advantage weights exp(A / lambda)."""
    max_weight: float = 100.0
    """Clip on the advantage weights."""
    batch_size: int = 256
    """Transitions per gradient step."""
    reward_scale: float = 1.0
    """Rewards are scaled by this..."""
    reward_bias: float = 0.0
    """...then shifted by this."""


class AWAC(OfflineWorker):
    """Advantage-Weighted Actor-Critic: AWR actor, baseline at the policy's own actions."""

    name = "awac"
    Config = AWACConfig
    modules = ("q", "q_target", "actor")
    optimizers = ("q_opt", "actor_opt")

    def _build(self) -> None:
        c = self.config
        self.q = TwinQ(self.obs_dim, self.act_dim, c.hidden)
        self.q_target = frozen_copy(self.q)
        self.actor = GaussianActor(self.obs_dim, self.act_dim, c.hidden)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=c.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        b = self.prepare(batch)

        with torch.no_grad():
            next_actions = self.actor.act(b.next_obs, deterministic=False)
            next_q = self.q_target(b.next_obs, next_actions).min(0).values
            target = b.rewards + c.gamma * (1.0 - b.dones) * next_q
        _, q_loss = self.critic_step(b, target)

        with torch.no_grad():
            pi_actions = self.actor.act(b.obs, deterministic=False)
            both = self.q(torch.cat([b.obs, b.obs]), torch.cat([b.actions, pi_actions]))
            q_data, v = both.min(0).values.chunk(2)
            advantage = q_data - v
            weights = torch.exp(advantage / c.awac_lambda).clamp(max=c.max_weight)
        actor_loss = -(weights * self.actor.log_prob(b.obs, b.actions)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        polyak_update(self.q_target, self.q, c.tau)

        self.num_updates += 1
        return {"q_loss": q_loss.detach(), "actor_loss": actor_loss.detach(),
                "q_mean": q_data.detach().mean(), "advantage_mean": advantage.detach().mean()}

    def _policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.actor.act(obs, deterministic)
