"""Soft Actor-Critic (Haarnoja et al. 2018) for continuous (Box) actions.

Read top to bottom: config, networks, acting, the update, the loop (`Agent.off_policy_learn`
with SAC's exploration). The twin critics are one `EnsembleMLP` (both evaluated in a single
batched matmul), the target update is one fused lerp, and the actor's backward pass skips the
critics' weight gradients.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robustrl.agents.base import Agent, Callback, Capabilities
from robustrl.core.buffer import ReplayBuffer
from robustrl.core.distributions import squashed_gaussian_log_prob
from robustrl.core.episodes import EpisodeStats
from robustrl.core.errors import RobustRLError
from robustrl.core.networks import EnsembleMLP, mlp, polyak_update
from robustrl.robust import RobustConfig, attach

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass
class SACConfig:
    lr: float = 3e-4
    """Adam learning rate of actor, critics and temperature."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak coefficient of the target critics."""
    batch_size: int = 256
    buffer_size: int = 1_000_000
    learning_starts: int = 5000
    """Uniform-random actions before this many steps; updates start afterwards."""
    train_freq: int = 1
    """Env steps between update rounds."""
    gradient_steps: int = 1
    """Gradient steps per update round."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of actor and critics."""
    n_critics: int = 2
    alpha: float | None = None
    """Fixed entropy temperature; None tunes it automatically toward `target_entropy`."""
    alpha_init: float = 1.0
    target_entropy: float | None = None
    """Entropy target of the auto-tuned temperature; None means -dim(action)."""
    log_interval: int = 1000
    """Env steps between metrics reported to the callback."""
    n_envs: int = field(default=1, metadata={"range": ">= 1"})
    """Env copies stepped together (> 1: Agent._vector_off_policy_learn)."""
    vector_mode: str = "sync"
    """With n_envs > 1: sync (one process) or async (a subprocess per copy)."""
    updates_per_step: float | None = field(default=None, metadata={"range": "> 0"})
    """With n_envs > 1: gradient updates per env step (n_envs x it per vector step); None:
    gradient_steps / train_freq, the single-env ratio."""
    robust: RobustConfig = field(default_factory=RobustConfig)
    """ERNIE's adversarial Lipschitz regularizer on the actor's mean action and/or the critics
    (robustrl.robust); sac has no observation normalizer, so eps is in raw units."""


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy, rescaled to the action bounds."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...],
                 low: np.ndarray, high: np.ndarray):
        super().__init__()
        self.torso = mlp(obs_dim, hidden[:-1], hidden[-1])
        self.head = nn.Linear(hidden[-1], 2 * act_dim)
        self.register_buffer("scale", torch.as_tensor((high - low) / 2, dtype=torch.float32))
        self.register_buffer("center", torch.as_tensor((high + low) / 2, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.head(torch.relu(self.torso(obs))).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized action and its log-probability (with the tanh correction)."""
        mean, log_std = self(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)
        log_prob = squashed_gaussian_log_prob(u, mean, log_std)
        # The density is taken in the normalized [-1, 1] action space (as SB3 does), so the
        # default target entropy -dim(a) means the same thing whatever the bounds.
        return torch.tanh(u) * self.scale + self.center, log_prob

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(obs)[0]) * self.scale + self.center


class SAC(Agent):
    """Soft Actor-Critic: off-policy maximum-entropy actor-critic for bounded Box actions."""

    name = "sac"
    Config = SACConfig
    capabilities = Capabilities(agents="single", learning="off-policy",
                                action_spaces=(gym.spaces.Box,), ernie=True, relabel=True,
                                learned_reward=True)
    batched_act = True
    STATE = ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "log_alpha",
             "alpha_opt", "stats.episodes")
    """What a checkpoint holds (the replay buffer too, when saved for resuming)."""

    def _build(self) -> None:
        cfg = self.config
        self.obs_dim = obs_dim = int(np.prod(self.observation_space.shape))
        act_dim = int(np.prod(self.action_space.shape))
        low, high = self.action_space.low.ravel(), self.action_space.high.ravel()
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise RobustRLError("sac needs a bounded Box action space (finite low/high)")
        self.actor = Actor(obs_dim, act_dim, cfg.hidden, low, high).to(self.device)
        self.unit_bounds = bool((low == -1).all() and (high == 1).all())
        self.critic = EnsembleMLP(cfg.n_critics, obs_dim + act_dim, cfg.hidden, 1).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, fused=True)
        self.log_alpha = torch.tensor(np.log(cfg.alpha or cfg.alpha_init), requires_grad=True,
                                      device=self.device)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        self.ernie = attach(cfg.robust, self.name, logits=False)
        self.target_entropy = (cfg.target_entropy if cfg.target_entropy is not None
                               else -float(act_dim))
        self.buffer = ReplayBuffer(cfg.buffer_size, (obs_dim,), (act_dim,))
        self.action_space.seed(self.seed)
        self.env: gym.Env | None = None
        self.obs: np.ndarray | None = None
        self.stats = EpisodeStats()

    # ----------------------------------------------------------------- acting
    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.mode(obs)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(-1, self.obs_dim)
        a = self.actor.mode(x) if deterministic else self.actor.sample(x)[0]
        return a.cpu().numpy().reshape(np.shape(obs)[:-1] + self.action_space.shape)

    # ----------------------------------------------------------------- update
    def q_values(self, critic: nn.Module, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """(n_critics, B) values of env-unit actions, which the critics see rescaled to
        [-1, 1] as SB3's do, so their inputs are of one size whatever the bounds."""
        if not self.unit_bounds:
            act = (act - self.actor.center) / self.actor.scale
        return critic(torch.cat([obs, act], -1)).squeeze(-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, actions = batch["obs"], batch["actions"]
        alpha = self.log_alpha.exp().detach()

        with torch.no_grad():
            next_a, next_logp = self.actor.sample(batch["next_obs"])
            next_q = self.q_values(self.critic_target, batch["next_obs"], next_a).min(0).values
            target = batch["rewards"] + cfg.gamma * (1 - batch["terminated"]) * (
                next_q - alpha * next_logp)
        q = self.q_values(self.critic, obs, actions)
        critic_loss = 0.5 * ((q - target) ** 2).mean(1).sum()
        if self.ernie:  # lam * R(theta) of the critics at the stored actions (robustrl.robust)
            critic_loss = critic_loss + self.ernie.penalty(
                "critic", lambda o: self.q_values(self.critic, o, actions).T, obs, clean=q.T)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        new_a, logp = self.actor.sample(obs)
        q_pi = self.q_values(self.critic, obs, new_a).min(0).values
        actor_loss = (alpha * logp - q_pi).mean()
        if self.ernie:  # ... and of the mean action, tanh-squashed to [-1, 1]
            actor_loss = actor_loss + self.ernie.penalty(
                "actor", lambda o: torch.tanh(self.actor(o)[0]), obs)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=list(self.actor.parameters()))
        self.actor_opt.step()

        if cfg.alpha is None:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        polyak_update(self.critic_target, self.critic, cfg.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "alpha": alpha, "entropy": -logp.detach().mean(), **self.ernie.metrics()}

    # ----------------------------------------------------------------- loop
    def learn(self, total_steps: int, callback: Callback | None = None) -> SAC:
        self.off_policy_learn(total_steps, callback, self.explore)
        return self

    def explore(self, random: bool) -> tuple[np.ndarray, np.ndarray]:
        """This step's env action, also the one stored: uniform at first, then sampled."""
        if not random:
            action = self.act(self.obs, deterministic=False)
        elif np.ndim(self.obs) == 1:
            action = self.action_space.sample()
        else:  # one per env copy
            action = np.stack([self.action_space.sample() for _ in self.obs])
        return action, action
