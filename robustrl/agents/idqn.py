"""Independent DQN for PettingZoo parallel envs with discrete actions (traffic grids, mpe),
with an optional centralized value.

Every agent runs double DQN (Hasselt et al. 2016) with a target network, ε-greedy exploration
and its own reward; one Q network is shared by all agents (parameter sharing, agent one-hot).
`mixer` adds a centralized value trained on the team reward (the sum of the agents' rewards):
- "none": plain independent learners;
- "vdn": Sunehag et al. 2018: the team TD loss on Σ_i Q_i(o_i, a_i) replaces the per-agent ones;
- "qcombo" (default): Zhang et al. 2020, the learner the ERNIE paper used for traffic. A global
  Q_g(s, a) on all observations and the joint action (one-hots) learns the team return
  (its bootstrap action: each agent's greedy action), the individual Q_i keep their own TD
  losses, and a consistency loss (Q_g(s, a) - Σ_i Q_i(o_i, a_i))² couples the two, so that
  local greedy actions improve the team value. Acting stays decentralized (Q_i only).
We chose QCOMBO over VDN as the default because it keeps the per-agent rewards (each light's
own waiting time) as a learning signal while still seeing the system-wide one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustrl.agents.base import Callback, Capabilities
from robustrl.agents.multiagent import MultiAgent
from robustrl.core.buffer import ReplayBuffer
from robustrl.core.episodes import MultiAgentStats
from robustrl.core.networks import mlp
from robustrl.core.normalizer import RunningMeanStd
from robustrl.robust import RobustConfig, attach


@dataclass
class IDQNConfig:
    mixer: Literal["none", "vdn", "qcombo"] = "qcombo"
    """Centralized value: none, vdn (sum of Q_i) or qcombo (global Q + consistency loss)."""
    consistency_coef: float = 1.0
    """QCOMBO's weight λ of the consistency loss."""
    lr: float = 5e-4
    buffer_size: int = 100_000
    """Joint transitions kept (each holds every agent's)."""
    batch_size: int = 64
    learning_starts: int = 1_000
    """Env steps of ε = 1 exploration before the first update."""
    train_freq: int = 1
    """Env steps between updates."""
    gradient_steps: int = 1
    gamma: float = 0.99
    target_update_interval: int = 500
    """Env steps between hard copies of the online networks into the targets."""
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 10_000
    """Env steps over which ε falls linearly from eps_start to eps_end."""
    hidden: tuple[int, ...] = (64, 64)
    max_grad_norm: float = 10.0
    normalize_obs: bool = True
    """Running mean/std normalization of observations (raw ones are stored in the buffer)."""
    n_envs: int = 1
    """Env copies stepped together (traffic: copies beyond the first run in subprocesses)."""
    updates_per_step: float | None = field(default=None, metadata={"range": "> 0"})
    """With n_envs > 1: gradient updates per env step (n_envs x it per vector step); None:
    gradient_steps / train_freq, the single-env ratio."""
    log_interval: int = 1_000
    """Env steps between callbacks."""
    robust: RobustConfig = field(default_factory=RobustConfig)
    """ERNIE's adversarial Lipschitz regularizer on Q_i ("actor": each agent's own
    observation) and/or QCOMBO's global Q ("critic": joint observation, optionally the joint
    action's one-hots)."""


class IDQN(MultiAgent):
    """Independent double DQN with a shared Q network, optionally VDN or QCOMBO's global Q."""

    name = "idqn"
    Config = IDQNConfig
    capabilities = Capabilities(agents="multi", learning="off-policy",
                                action_spaces=(gym.spaces.Discrete,), ernie=True, relabel=True,
                                learned_reward=True)
    STATE = ("q", "q_target", "opt", "obs_rms", "stats.episodes", "updates")
    QCOMBO_STATE = ("g", "g_target")

    def _build(self) -> None:
        cfg = self.config
        n, a = self.n_agents, self.act_dim
        self.q = mlp(self.obs_dim + n, cfg.hidden, a).to(self.device)
        self.q_target = mlp(self.obs_dim + n, cfg.hidden, a).to(self.device)
        params = list(self.q.parameters())
        if cfg.mixer == "qcombo":
            self.g = mlp(n * (self.obs_dim + a), cfg.hidden, 1).to(self.device)
            self.g_target = mlp(n * (self.obs_dim + a), cfg.hidden, 1).to(self.device)
            params += list(self.g.parameters())
        self._sync_targets()
        self.opt = torch.optim.Adam(params, lr=cfg.lr)
        self.obs_rms = RunningMeanStd((self.obs_dim,))
        qcombo = cfg.mixer == "qcombo"
        self.ernie = attach(cfg.robust, self.name, logits=False, critic=qcombo,
                            critic_actions=qcombo)
        self.buffer = ReplayBuffer(cfg.buffer_size, (n, self.obs_dim), (n,), np.int64,
                                   reward_shape=(n,))
        self.stats = MultiAgentStats(cfg.n_envs, self.agents)
        self.obs: np.ndarray | None = None
        self.updates = 0

    def _sync_targets(self) -> None:
        self.q_target.load_state_dict(self.q.state_dict())
        if self.config.mixer == "qcombo":
            self.g_target.load_state_dict(self.g.state_dict())

    # ----------------------------------------------------------------- acting
    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values for raw observations (..., n_agents, obs_dim), differentiable."""
        return self.q(self.inputs(obs, self.obs_normalizer))

    def epsilon(self) -> float:
        cfg = self.config
        frac = min(self.num_steps / max(cfg.eps_decay_steps, 1), 1.0)
        return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)

    @torch.no_grad()
    def act_array(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Greedy actions; with `deterministic=False`, ε-greedy at the current ε."""
        greedy = self.q(self.net_inputs(obs)).argmax(-1).cpu().numpy()
        if deterministic:
            return greedy
        explore = self.rng.random(greedy.shape) < self.epsilon()
        return np.where(explore, self.rng.integers(0, self.act_dim, greedy.shape), greedy)

    # ----------------------------------------------------------------- update
    def update(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        b = self.buffer.sample(cfg.batch_size, self.rng)
        x, x_next = self.net_inputs(b["obs"]), self.net_inputs(b["next_obs"])
        actions, rewards, term = (b[k].to(self.device) for k in ("actions", "rewards",
                                                                 "terminated"))
        q_all = self.q(x)
        q = q_all.gather(-1, actions[..., None]).squeeze(-1)  # (B, N)
        with torch.no_grad():
            best = self.q(x_next).argmax(-1, keepdim=True)  # double DQN: online argmax
            q_next = self.q_target(x_next).gather(-1, best).squeeze(-1)
        team_reward, team_term = rewards.sum(1), term.amax(1)
        metrics: dict[str, torch.Tensor] = {}
        if cfg.mixer == "vdn":
            target = team_reward + cfg.gamma * (1 - team_term) * q_next.sum(1)
            loss = F.smooth_l1_loss(q.sum(1), target)
        else:
            target = rewards + cfg.gamma * (1 - term) * q_next
            loss = F.smooth_l1_loss(q, target)
        metrics["td_loss"] = loss.detach()
        if cfg.mixer == "qcombo":
            joint = lambda o, a: torch.cat([o[..., :self.obs_dim].flatten(1),  # noqa: E731
                                            F.one_hot(a, self.act_dim).float().flatten(1)], 1)
            g = self.g(joint(x, actions)).squeeze(-1)
            with torch.no_grad():
                g_next = self.g_target(joint(x_next, best.squeeze(-1))).squeeze(-1)
                g_target = team_reward + cfg.gamma * (1 - team_term) * g_next
            global_loss = F.smooth_l1_loss(g, g_target)
            consistency = ((g - q.sum(1)) ** 2).mean()
            loss = loss + global_loss + cfg.consistency_coef * consistency
            if self.ernie:  # lam * R(theta) of the global Q (robustrl.robust)
                g_in = joint(x, actions)
                n = self.n_agents
                scale = self.robust_scale(g_in, "joint", n * self.act_dim)
                loss = loss + self.ernie.penalty("critic", self.g, g_in, scale=scale,
                                                 clean=g[:, None])
            metrics.update(global_loss=global_loss.detach(), consistency_loss=consistency.detach())
        if self.ernie:  # ... and of Q_i on each agent's own observation (ids fixed)
            flat = x.flatten(0, 1)
            loss = loss + self.ernie.penalty("actor", self.q, flat,
                                             scale=self.robust_scale(flat, "own"),
                                             clean=q_all.flatten(0, 1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]],
                                 cfg.max_grad_norm)
        self.opt.step()
        self.updates += 1
        metrics["q_mean"] = q.detach().mean()
        return {**metrics, **self.ernie.metrics()}

    # ----------------------------------------------------------------- loop
    def learn(self, total_steps: int, callback: Callback | None = None) -> IDQN:
        """`num_steps` counts env steps (one joint step of all agents in one env copy)."""
        cfg = self.config
        self.off_policy_learn(total_steps, callback, self.explore,
                              gradient_steps=cfg.gradient_steps, sync_targets=self._sync_targets,
                              target_interval=cfg.target_update_interval,
                              log_extras=lambda: {"epsilon": self.epsilon()})
        return self

    def explore(self) -> tuple[np.ndarray, np.ndarray]:
        """This step's actions (stored as taken): uniform at first, then ε-greedy."""
        action = (self.random_actions() if self.num_steps < self.config.learning_starts
                  else self.act_array(self.obs, deterministic=False))
        return action, action

    # ----------------------------------------------------------------- checkpoint
    def state_names(self) -> tuple[str, ...]:
        return self.STATE + (self.QCOMBO_STATE if self.config.mixer == "qcombo" else ())


__all__ = ["IDQN", "IDQNConfig"]
