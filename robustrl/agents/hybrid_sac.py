"""Hybrid Soft Actor-Critic (Delalleau et al. 2019) for discrete, continuous and mixed actions.

One agent for `Box`, `Discrete`, `MultiDiscrete`, independent discrete + continuous parts
(`Dict`/`Tuple` of those) and parameterized `Tuple(Discrete(K), Tuple(Box_1, ..., Box_K))`
actions; it reads which case it is from the action space. Everything reduces to one shape:

* **discrete**: N joint discrete actions. Several discrete components (MultiDiscrete, several
  Discrete parts) get one softmax head each, so the policy factorizes,
  pi_d(a_1..a_J) = prod_j pi_j(a_j), while the critics output one value per *joint* action
  (N = prod K_j, refused above `max_joint_actions`). The expectation over discrete actions is
  then an exact sum over N, never a sample. No discrete part: N = 1, pi_d = 1.
* **continuous**: one tanh-squashed Gaussian vector of D dims in [-1, 1] (rescaled to the
  bounds only when acting); log-densities are taken in that normalized space, as in `sac.py`.
  A 0/1 matrix P (D x N) says which dims belong to joint action k: all of them for
  independent parts, only Box_k's for a parameterized action. So log pi_c(a^c_k | s, k) =
  per-dim log-density @ P for every k in one matmul, and H_c's target is -dim per choice.

Losses (alpha_d, alpha_c: two auto-tuned temperatures; Q-bar: target critics)

    V(s')  = sum_k pi_d(k|s') [min_i Q-bar_i(s', a'^c)_k - alpha_c log pi_c(a'^c_k|s',k)
                               - alpha_d log pi_d(k|s')]
    L_Q    = 1/2 sum_i mean (Q_i(s, a^c)[a^d] - r - gamma (1 - terminated) V(s'))^2
    L_pi   = mean sum_k pi_d(k|s) [alpha_d log pi_d(k|s) + alpha_c log pi_c(a^c_k|s,k)
                                   - min_i Q_i(s, a^c)_k]
    L_alpha = log alpha * (H - H_target)      (SAC's sign: alpha falls while H > target)

The continuous log-density is weighted by pi_d(k) exactly once (a widely copied version
multiplies it by pi_d twice). The critics see all D continuous dims (a parameterized action's
unchosen parameters included, sampled like the chosen one), so one critic pass scores all N.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from robustrl.agents.base import Agent, Callback, Capabilities
from robustrl.core.buffer import ReplayBuffer
from robustrl.core.distributions import squashed_gaussian_log_prob
from robustrl.core.episodes import EpisodeStats
from robustrl.core.errors import RobustRLError
from robustrl.core.networks import EnsembleMLP, mlp, polyak_update
from robustrl.core.spaces import HybridLayout


@dataclass
class HybridSACConfig:
    lr: float = 3e-4
    """Adam learning rate of policy, critics and temperatures (unless overridden below)."""
    actor_lr: float | None = None
    """The policy's own learning rate (discrete and continuous heads share a torso); None: lr."""
    critic_lr: float | None = None
    """The twin critics' own learning rate; None: lr."""
    alpha_lr: float | None = None
    """Both log-temperatures' own learning rate; None: lr."""
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
    """Hidden layer sizes of the policy torso and of the critics."""
    n_critics: int = 2
    log_std_min: float = -5.0
    """Lower clamp of the continuous log-std (the third-party Platform setting is -3)."""
    log_std_max: float = 2.0
    """Upper clamp of the continuous log-std (the third-party Platform setting is 0)."""
    alpha_discrete: float | None = None
    """Fixed discrete temperature; None tunes it toward `target_entropy_discrete`."""
    alpha_continuous: float | None = None
    """Fixed continuous temperature; None tunes it toward `target_entropy_continuous`."""
    alpha_init: float = 1.0
    """Initial value of the tuned temperatures."""
    target_entropy_discrete: float | None = None
    """Entropy target of pi_d (nats); None means `discrete_entropy_fraction` * log N."""
    discrete_entropy_fraction: float = 0.6
    """Fraction of the maximal entropy log N used as default discrete target (0.98, common
    for Atari, never converges on small N such as Platform's 3)."""
    target_entropy_continuous: float | None = None
    """Entropy target of pi_c for every discrete choice; None means -dim(parameters of it)."""
    max_joint_actions: int = 1024
    """Cap on N = prod K_j, the critics' output width for several discrete components."""
    log_interval: int = 1000
    """Env steps between metrics reported to the callback."""
    n_envs: int = field(default=1, metadata={"range": ">= 1"})
    """Env copies stepped together (> 1: Agent._vector_off_policy_learn)."""
    vector_mode: str = "sync"
    """With n_envs > 1: sync (one process) or async (a subprocess per copy)."""
    updates_per_step: float | None = field(default=None, metadata={"range": "> 0"})
    """With n_envs > 1: gradient updates per env step (n_envs x it per vector step); None:
    gradient_steps / train_freq, the single-env ratio."""


# --------------------------------------------------------------------------- networks
class HybridActor(nn.Module):
    """Shared torso -> one softmax head per discrete component + one squashed-Gaussian head."""

    def __init__(self, obs_dim: int, layout: HybridLayout, hidden: tuple[int, ...],
                 log_std_min: float, log_std_max: float):
        super().__init__()
        self.sizes = list(layout.discrete_sizes)
        self.cont_dim = layout.cont_dim
        self.n_joint = layout.n_joint
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.torso = mlp(obs_dim, hidden[:-1], hidden[-1])
        self.head = nn.Linear(hidden[-1], sum(self.sizes) + 2 * self.cont_dim)
        self.register_buffer("joint_table", torch.as_tensor(layout.joint_table, dtype=torch.long))
        self.register_buffer("param_matrix", torch.as_tensor(layout.param_matrix))
        strides = np.cumprod([1, *self.sizes[::-1]])[-2::-1] if self.sizes else np.zeros(0)
        self.register_buffer("strides", torch.as_tensor(strides.copy(), dtype=torch.long))

    def forward(self, obs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Per-component logits, continuous mean and clamped log-std."""
        out = self.head(torch.relu(self.torso(obs)))
        n = sum(self.sizes)
        logits = list(out[..., :n].split(self.sizes, -1)) if self.sizes else []
        mean, log_std = out[..., n:].chunk(2, -1) if self.cont_dim else (out[..., n:],) * 2
        return logits, mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def joint_log_probs(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """log pi_d over the N joint actions, (B, N): sum of the factors' log-probs."""
        if len(logits) == 1:
            return torch.log_softmax(logits[0], -1)
        return sum(torch.log_softmax(lg, -1)[:, self.joint_table[:, j]]
                   for j, lg in enumerate(logits))

    def evaluate(self, obs: torch.Tensor, noise: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Everything the losses need: log pi_d (B, N), a^c in [-1, 1] (B, D) reparameterized,
        and log pi_c(a^c_k | s, k) (B, N) with the tanh correction. `noise` fixes the draw."""
        logits, mean, log_std = self(obs)
        logp_d = (self.joint_log_probs(logits) if logits
                  else obs.new_zeros(obs.shape[0], 1))
        if not self.cont_dim:
            return logp_d, mean, obs.new_zeros(obs.shape[0], self.n_joint)
        eps = torch.randn_like(mean) if noise is None else noise
        u = mean + log_std.exp() * eps
        logp = squashed_gaussian_log_prob(u, mean, log_std, reduce=False)  # per dim
        return logp_d, torch.tanh(u), logp @ self.param_matrix

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled joint discrete index (B,) and continuous action in [-1, 1] (B, D)."""
        logits, mean, log_std = self(obs)
        cont = torch.tanh(mean + log_std.exp() * torch.randn_like(mean))
        return self._joint(torch.stack([torch.multinomial(lg.softmax(-1), 1).squeeze(-1)
                                        for lg in logits], -1) if logits else None, obs), cont

    def mode(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, mean, _ = self(obs)
        return self._joint(torch.stack([lg.argmax(-1) for lg in logits], -1)
                           if logits else None, obs), torch.tanh(mean)

    def _joint(self, values: torch.Tensor | None, obs: torch.Tensor) -> torch.Tensor:
        if values is None:
            return torch.zeros(obs.shape[0], dtype=torch.long, device=obs.device)
        return (values * self.strides).sum(-1)


# --------------------------------------------------------------------------- agent
class HybridSAC(Agent):
    """Hybrid SAC: off-policy SAC for discrete, continuous and parameterized actions."""

    name = "hybrid_sac"
    Config = HybridSACConfig
    capabilities = Capabilities(agents="single", learning="off-policy",
                                action_spaces=(spaces.Box, spaces.Discrete, spaces.MultiDiscrete,
                                               spaces.Dict, spaces.Tuple),
                                ernie=False, relabel=False, learned_reward=False)
    """relabel / learned_reward: the buffer holds (joint index, normalized parameters), not the
    env's actions, so a reward model cannot rescore it."""
    batched_act = True
    STATE = ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "log_alpha_d",
             "log_alpha_c", "alpha_opt", "stats.episodes")

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        HybridLayout(action_space, cls.name)  # the one-line refusal naming what is supported
        super().check_spaces(observation_space, action_space)

    def _build(self) -> None:
        cfg = self.config
        self.layout = layout = HybridLayout(self.action_space, self.name)
        if layout.n_joint > cfg.max_joint_actions:
            raise RobustRLError(
                f"hybrid_sac: {layout.n_joint} joint discrete actions exceed max_joint_actions="
                f"{cfg.max_joint_actions} (the critics output one value per joint action); "
                "raise it or use fewer/smaller discrete parts")
        self.obs_dim = obs_dim = int(np.prod(self.observation_space.shape))
        self.actor = HybridActor(obs_dim, layout, cfg.hidden, cfg.log_std_min,
                                 cfg.log_std_max).to(self.device)
        self.critic = EnsembleMLP(cfg.n_critics, obs_dim + layout.cont_dim, cfg.hidden,
                                  layout.n_joint).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        lr = {k: cfg.lr if getattr(cfg, k) is None else getattr(cfg, k)
              for k in ("actor_lr", "critic_lr", "alpha_lr")}
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr["actor_lr"], fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr["critic_lr"],
                                           fused=True)
        self.log_alpha_d = torch.tensor(math.log(cfg.alpha_discrete or cfg.alpha_init),
                                        requires_grad=True, device=self.device)
        self.log_alpha_c = torch.tensor(math.log(cfg.alpha_continuous or cfg.alpha_init),
                                        requires_grad=True, device=self.device)
        self.alpha_opt = torch.optim.Adam([self.log_alpha_d, self.log_alpha_c], lr=lr["alpha_lr"])
        self.has_discrete = bool(layout.discrete_sizes)
        self.has_continuous = layout.cont_dim > 0
        self.target_entropy_d = (cfg.target_entropy_discrete
                                 if cfg.target_entropy_discrete is not None
                                 else cfg.discrete_entropy_fraction * math.log(layout.n_joint))
        # (N,) continuous dims per choice
        dims = torch.as_tensor(layout.param_matrix.sum(0), device=self.device)
        self.target_entropy_c = (torch.full_like(dims, cfg.target_entropy_continuous)
                                 if cfg.target_entropy_continuous is not None else -dims)
        self.buffer = ReplayBuffer(cfg.buffer_size, (obs_dim,), (1 + layout.cont_dim,))
        self.action_space.seed(self.seed)
        self.env: gym.Env | None = None
        self.obs: np.ndarray | None = None
        self.stats = EpisodeStats()

    # ----------------------------------------------------------------- acting
    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        """Concat of every discrete component's log-probs and the squashed continuous means
        (in [-1, 1], so all dims weigh alike), differentiable in `obs`."""
        logits, mean, _ = self.actor(obs)
        return torch.cat([*(torch.log_softmax(lg, -1) for lg in logits), torch.tanh(mean)], -1)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> Any:
        """The env's action for one observation; a batch of observations gives a list (a
        stacked array for Box/Discrete/MultiDiscrete spaces)."""
        batched = np.ndim(obs) > 1
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(-1, self.obs_dim)
        joint, cont = self.actor.mode(x) if deterministic else self.actor.sample(x)
        joint, cont = joint.cpu().numpy(), cont.cpu().numpy()
        actions = [self.layout.decode(int(k), c) for k, c in zip(joint, cont)]
        if not batched:
            return actions[0]
        if isinstance(self.action_space, (spaces.Dict, spaces.Tuple)):
            return actions
        return np.stack([np.asarray(a) for a in actions])

    # ----------------------------------------------------------------- update
    def alphas(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.log_alpha_d.exp().detach(), self.log_alpha_c.exp().detach()

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L_Q with the exact expectation over the N discrete actions in the target."""
        alpha_d, alpha_c = self.alphas()
        joint = batch["actions"][:, 0].long()
        cont = batch["actions"][:, 1:]
        next_obs = batch["next_obs"]
        with torch.no_grad():
            logp_d, next_c, logp_c = self.actor.evaluate(next_obs)
            next_q = self.critic_target(torch.cat([next_obs, next_c], -1)).min(0).values
            v = (logp_d.exp() * (next_q - alpha_c * logp_c - alpha_d * logp_d)).sum(-1)
            target = batch["rewards"] + self.config.gamma * (1 - batch["terminated"]) * v
        q = self.critic(torch.cat([batch["obs"], cont], -1))  # (n_critics, B, N)
        q = q.gather(2, joint.view(1, -1, 1).expand(q.shape[0], -1, 1)).squeeze(-1)
        return 0.5 * ((q - target) ** 2).mean(1).sum()

    def actor_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """L_pi, and per state H_d, H_c and H_c's target (both weighted by pi_d once)."""
        alpha_d, alpha_c = self.alphas()
        logp_d, cont, logp_c = self.actor.evaluate(obs)
        q = self.critic(torch.cat([obs, cont], -1)).min(0).values
        probs = logp_d.exp()
        loss = (probs * (alpha_d * logp_d + alpha_c * logp_c - q)).sum(-1).mean()
        with torch.no_grad():
            entropy_d = -(probs * logp_d).sum(-1)
            entropy_c = -(probs * logp_c).sum(-1)
            target_c = (probs * self.target_entropy_c).sum(-1)
        return loss, entropy_d, entropy_c, target_c

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        critic_loss = self.critic_loss(batch)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        actor_loss, entropy_d, entropy_c, target_c = self.actor_loss(batch["obs"])
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=list(self.actor.parameters()))
        self.actor_opt.step()

        alpha_loss = torch.zeros((), device=self.device)
        if self.has_discrete and cfg.alpha_discrete is None:
            alpha_loss = alpha_loss + self.log_alpha_d * (entropy_d - self.target_entropy_d).mean()
        if self.has_continuous and cfg.alpha_continuous is None:
            alpha_loss = alpha_loss + self.log_alpha_c * (entropy_c - target_c).mean()
        if alpha_loss.requires_grad:
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        polyak_update(self.critic_target, self.critic, cfg.tau)
        alpha_d, alpha_c = self.alphas()
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "alpha_discrete": alpha_d, "alpha_continuous": alpha_c,
                "entropy_discrete": entropy_d.mean(),
                "entropy_continuous": entropy_c.mean()}

    # ----------------------------------------------------------------- loop
    def learn(self, total_steps: int, callback: Callback | None = None) -> HybridSAC:
        self.off_policy_learn(total_steps, callback, self.explore)
        return self

    def explore(self, random: bool) -> tuple[Any, np.ndarray]:
        """This step's env action and what the buffer stores of it: (joint index, normalized
        continuous parameters). Uniform at first, then sampled from the policy. A batch of
        observations (n_envs > 1) gives a list of env actions and the stacked stored ones."""
        if np.ndim(self.obs) > 1:
            pairs = [self._explore_one(obs, random) for obs in self.obs]
            return [a for a, _ in pairs], np.stack([e for _, e in pairs])
        return self._explore_one(self.obs, random)

    def _explore_one(self, obs: np.ndarray, random: bool) -> tuple[Any, np.ndarray]:
        if random:
            action = self.action_space.sample()
            return action, self.layout.encode(action)
        with torch.no_grad():
            x = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(1, -1)
            joint, cont = self.actor.sample(x)
        k, c = int(joint.cpu()[0]), cont.cpu().numpy()[0]
        encoded = np.concatenate([[float(k)], c]).astype(np.float32)
        return self.layout.decode(k, c), encoded
