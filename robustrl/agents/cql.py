"""CQL: Conservative Q-Learning (Kumar, Zhou, Tucker, Levine 2020), CQL(H) on SAC, CORL-style.

    critic: L_Q = sum_i [ (Q_i(s, a) - (r + gamma (1 - d) min_j Qtarget_j(s', a')))^2
                  + cql_alpha ( logsumexp_k Q_i(s, a_k) - Q_i(s, a) ) ],  a' ~ pi(s')
            where the a_k are `n_actions` uniform actions and the policy's actions at s and
            s', each importance-weighted by its sampling density (log-density subtracted)
    actor:  L_pi = E[ alpha log pi(a~ | s) - min_i Q_i(s, a~) ],  a~ ~ pi(s) (tanh Gaussian),
            alpha tuned to the target entropy -act_dim
The penalty pushes Q down on actions the data does not hold and up on the data's actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustrl.agents.offline import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    Batch,
    OfflineWorker,
    TwinQ,
    frozen_copy,
)
from robustrl.core.distributions import squashed_gaussian_log_prob
from robustrl.core.networks import mlp, polyak_update


@dataclass
class CQLConfig:
    lr: float = 3e-4
    """Adam learning rate of the critics (and of the actor unless `actor_lr` is set)."""
    actor_lr: float | None = 1e-4
    """Adam learning rate of the actor and the entropy temperature (CORL's; None: `lr`).
    On CPU one CQL update costs ~20x an IQL one (3 x n_actions sampled actions per state);
    n_actions = 4 cuts that by 2.5x."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor and the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    cql_alpha: float = 5.0
    """Weight of the conservative penalty (CORL: 5 locomotion, 10 antmaze)."""
    n_actions: int = 10
    """Sampled actions per state and source (uniform, pi(s), pi(s')) in the logsumexp."""
    temperature: float = 1.0
    """Temperature of the logsumexp."""
    bc_steps: int = 0
    """First updates whose actor loss is behaviour cloning (CORL uses it on antmaze)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    reward_scale: float = 1.0
    """Rewards are scaled by this..."""
    reward_bias: float = 0.0
    """...then shifted by this."""


class TanhGaussianActor(nn.Module):
    """SAC's actor: a = tanh(u), u ~ Normal(mu(s), sigma(s)), with the exact log-density."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * act_dim)

    def params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, clamped log std) of u."""
        mean, log_std = self.net(obs).chunk(2, -1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.params(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(u), squashed_gaussian_log_prob(u, mean, log_std)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-density of given actions: clamped inside (-1, 1) so that atanh stays finite."""
        u = torch.atanh(actions.clamp(-1 + 1e-5, 1 - 1e-5))
        return squashed_gaussian_log_prob(u, *self.params(obs))


class CQL(OfflineWorker):
    """Conservative Q-Learning on SAC: Q pushed down off the data's actions."""

    name = "cql"
    Config = CQLConfig
    modules = ("q", "q_target", "actor")
    optimizers = ("q_opt", "actor_opt", "alpha_opt")
    tensors = ("log_alpha",)

    def _build(self) -> None:
        c = self.config
        self.q = TwinQ(self.obs_dim, self.act_dim, c.hidden)
        self.q_target = frozen_copy(self.q)
        self.actor = TanhGaussianActor(self.obs_dim, self.act_dim, c.hidden)
        self.log_alpha = torch.zeros(1, requires_grad=True, device=self.device)
        self.target_entropy = -float(self.act_dim)
        actor_lr = c.actor_lr if c.actor_lr is not None else c.lr
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=c.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=actor_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=actor_lr)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        b = self.prepare(batch)
        bsz, n = len(b.rewards), c.n_actions

        # ---- actor and temperature
        pi, log_pi = self.actor.sample(b.obs)
        alpha_loss = -(self.log_alpha * (log_pi.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        alpha = self.log_alpha.exp().detach()
        if self.num_updates < c.bc_steps:
            actor_loss = (alpha * log_pi - self.actor.log_prob(b.obs, b.actions)).mean()
        else:
            actor_loss = (alpha * log_pi - self.q(b.obs, pi).min(0).values).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        # ---- critics: TD error + conservative penalty
        with torch.no_grad():
            next_actions, _ = self.actor.sample(b.next_obs)
            next_q = self.q_target(b.next_obs, next_actions).min(0).values
            target = b.rewards + c.gamma * (1.0 - b.dones) * next_q
            obs_rep = b.obs.repeat_interleave(n, 0)
            next_rep = b.next_obs.repeat_interleave(n, 0)
            rand_a = torch.empty(bsz * n, self.act_dim, device=self.device).uniform_(-1, 1)
            pi_a, pi_logp = self.actor.sample(obs_rep)
            next_a, next_logp = self.actor.sample(next_rep)
            rand_logp = torch.full((bsz * n,), self.act_dim * math.log(0.5), device=self.device)
        qs = self.q(b.obs, b.actions)
        td_loss = F.mse_loss(qs, target.expand_as(qs), reduction="none").mean(1).sum()
        sampled = self.q(torch.cat([obs_rep, obs_rep, obs_rep]),
                         torch.cat([rand_a, pi_a, next_a]))  # (2, 3 B n)
        densities = torch.cat([rand_logp, pi_logp, next_logp])
        sampled = (sampled - densities).reshape(2, 3, bsz, n).permute(0, 2, 1, 3)
        lse = torch.logsumexp(sampled.reshape(2, bsz, 3 * n) / c.temperature, -1) \
            * c.temperature
        cql_loss = (lse - qs).mean(1).sum()
        q_loss = td_loss + c.cql_alpha * cql_loss
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        polyak_update(self.q_target, self.q, c.tau)

        self.num_updates += 1
        return {"q_loss": td_loss.detach(), "cql_loss": cql_loss.detach(),
                "actor_loss": actor_loss.detach(), "alpha": alpha.detach(),
                "q_mean": qs.detach().mean()}

    def _policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        if deterministic:
            return torch.tanh(self.actor.params(obs)[0])
        return self.actor.sample(obs)[0]
