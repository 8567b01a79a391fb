"""MADDPG (Lowe et al. 2017) for PettingZoo parallel envs: decentralized deterministic actors,
a centralized critic Q_i(o_1..o_N, a_1..a_N) per agent.

Actor and critic are each one network shared by all agents with an agent one-hot in the input
(parameter sharing), so the per-agent updates of the paper become one batched pass:
- continuous (Box) actions: tanh output rescaled to the bounds, Gaussian exploration noise;
- discrete actions: the actor's logits give a straight-through Gumbel-softmax sample (a one-hot
  in the forward pass, a softmax gradient in the backward pass), as in the paper's particle
  experiments; the env gets the argmax, the critic the one-hot.
The critic sees all observations concatenated (for mpe and the traffic grids this is exactly
the env's `state()`). In agent i's actor loss only a_i comes from the current actor, the others'
actions are the stored ones (the paper's update).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustrl.agents.base import Callback, Capabilities
from robustrl.agents.multiagent import MultiAgent
from robustrl.core.buffer import ReplayBuffer
from robustrl.core.episodes import MultiAgentStats
from robustrl.core.networks import mlp, polyak_update
from robustrl.core.normalizer import RunningMeanStd
from robustrl.robust import RobustConfig, attach


@dataclass
class MADDPGConfig:
    lr: float = 1e-3
    """Adam learning rate of actor and critic."""
    actor_lr: float | None = None
    """The actor's own learning rate; None uses `lr`."""
    critic_lr: float | None = None
    """The critic's own learning rate; None uses `lr`."""
    buffer_size: int = 100_000
    """Joint transitions kept (each holds every agent's)."""
    batch_size: int = 256
    learning_starts: int = 1_000
    """Env steps of uniformly random actions before the first update."""
    train_freq: int = 4
    """Env steps between updates."""
    gamma: float = 0.95
    tau: float = 0.01
    """Polyak rate of the target networks."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise on continuous actions, in units of half the action range."""
    gumbel_temperature: float = 1.0
    logit_reg: float = 1e-3
    """Penalty on the squared pre-activation output (the paper's regularizer; keeps tanh and
    softmax out of saturation)."""
    hidden: tuple[int, ...] = (64, 64)
    max_grad_norm: float = 0.5
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
    """ERNIE's adversarial Lipschitz regularizer on the actor (each agent's own observation)
    and/or the centralized critic (joint observation, optionally the other agents' actions)."""


class MADDPG(MultiAgent):
    """MADDPG: off-policy deterministic actors with a centralized critic, Box or Discrete."""

    name = "maddpg"
    Config = MADDPGConfig
    capabilities = Capabilities(agents="multi", learning="off-policy",
                                action_spaces=(gym.spaces.Box, gym.spaces.Discrete), ernie=True,
                                relabel=False, learned_reward=True)
    """relabel: the buffer holds the critic's actions (one-hots, [-1, 1]), not the env's."""
    STATE = ("actor", "actor_target", "critic", "critic_target", "actor_opt", "critic_opt",
             "obs_rms", "stats.episodes", "updates")

    def _build(self) -> None:
        cfg = self.config
        n, d, a = self.n_agents, self.obs_dim, self.act_dim
        self.actor = mlp(d + n, cfg.hidden, a).to(self.device)
        self.actor_target = mlp(d + n, cfg.hidden, a).to(self.device)
        self.critic = mlp(n * (d + a) + n, cfg.hidden, 1).to(self.device)
        self.critic_target = mlp(n * (d + a) + n, cfg.hidden, 1).to(self.device)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor_opt = torch.optim.Adam(
            self.actor.parameters(), lr=cfg.lr if cfg.actor_lr is None else cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(
            self.critic.parameters(), lr=cfg.lr if cfg.critic_lr is None else cfg.critic_lr)
        self.obs_rms = RunningMeanStd((d,))
        self.ernie = attach(cfg.robust, self.name, logits=self.discrete, critic_actions=True)
        self.buffer = ReplayBuffer(cfg.buffer_size, (n, d), (n, a), reward_shape=(n,))
        self.stats = MultiAgentStats(cfg.n_envs, self.agents)
        if not self.discrete:
            self.low = self.action_space.low.ravel().astype(np.float32)
            self.high = self.action_space.high.ravel().astype(np.float32)
        self.obs: np.ndarray | None = None
        self.updates = 0

    # ----------------------------------------------------------------- acting
    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (discrete) or tanh actions in [-1, 1] for raw observations, differentiable."""
        out = self.actor(self.inputs(obs, self.obs_normalizer))
        return out if self.discrete else torch.tanh(out)

    def _policy(self, net: nn.Module, x: torch.Tensor, explore: bool) -> torch.Tensor:
        """Critic-format actions: one-hots (discrete) or values in [-1, 1] (continuous)."""
        out = net(x)
        if self.discrete:
            if explore:
                return F.gumbel_softmax(out, tau=self.config.gumbel_temperature, hard=True)
            return F.one_hot(out.argmax(-1), self.act_dim).float()
        return torch.tanh(out)

    def _to_env(self, action: np.ndarray) -> np.ndarray:
        if self.discrete:
            return action.argmax(-1)
        return (self.low + (action + 1.0) * 0.5 * (self.high - self.low)).astype(np.float32)

    @torch.no_grad()
    def _noisy_action(self, obs: np.ndarray) -> np.ndarray:
        action = self._policy(self.actor, self.net_inputs(obs), explore=True).cpu().numpy()
        if not self.discrete:
            noise = self.rng.normal(0.0, self.config.exploration_noise, action.shape)
            action = np.clip(action + noise, -1.0, 1.0).astype(np.float32)
        return action

    @torch.no_grad()
    def act_array(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if deterministic:
            greedy = self._policy(self.actor, self.net_inputs(obs), explore=False)
            return self._to_env(greedy.cpu().numpy())
        return self._to_env(self._noisy_action(obs))

    # ----------------------------------------------------------------- update
    def _critic_in(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """x (B, N, d + N), actions (B, N, N, a): agent i's joint action in row i
        -> (B, N, N * (d + a) + N): every agent's Q input."""
        b, n = x.shape[:2]
        obs = x[..., :self.obs_dim].reshape(b, 1, -1).expand(b, n, n * self.obs_dim)
        ids = torch.as_tensor(self.ids, device=x.device).expand(b, n, n)
        return torch.cat([obs, actions.reshape(b, n, -1), ids], -1)

    def _critic_penalty(self, x: torch.Tensor, actions: torch.Tensor,
                        clean: torch.Tensor) -> torch.Tensor:
        """ERNIE on the critic: the joint observation is perturbed and, with
        robust.perturb_other_actions, every Q_i's other agents' actions (its own stays)."""
        b, n, d = x.shape[0], self.n_agents, self.obs_dim
        own = torch.eye(n, device=x.device).reshape(1, n, n, 1)

        def q(p: torch.Tensor) -> torch.Tensor:  # p: [joint observation | joint action]
            obs = torch.cat([p[:, :n * d].reshape(b, n, d), x[..., d:]], -1)
            others = p[:, n * d:].reshape(actions.shape)
            joint = own * actions[:, None] + (1 - own) * others[:, None]
            return self.critic(self._critic_in(obs, joint)).squeeze(-1)

        p = torch.cat([x[..., :d].flatten(1), actions.flatten(1)], 1)
        scale = self.robust_scale(p, "joint", actions=n * self.act_dim)
        return self.ernie.penalty("critic", q, p, scale=scale, clean=clean)

    def update(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        batch = self.buffer.sample(cfg.batch_size, self.rng)
        x, x_next = self.net_inputs(batch["obs"]), self.net_inputs(batch["next_obs"])
        actions, rewards, term = (batch[k].to(self.device)
                                  for k in ("actions", "rewards", "terminated"))
        n = self.n_agents
        shared = lambda a: a[:, None].expand(a.shape[0], n, *a.shape[1:])  # noqa: E731
        with torch.no_grad():
            next_actions = self._policy(self.actor_target, x_next, explore=True)
            q_next = self.critic_target(self._critic_in(x_next, shared(next_actions)))
            target = rewards + cfg.gamma * (1 - term) * q_next.squeeze(-1)
        q = self.critic(self._critic_in(x, shared(actions))).squeeze(-1)
        critic_loss = F.mse_loss(q, target)
        if self.ernie:  # lam * R(theta) (robustrl.robust)
            critic_loss = critic_loss + self._critic_penalty(x, actions, clean=q)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
        self.critic_opt.step()

        out = self.actor(x)
        if self.discrete:
            new = F.gumbel_softmax(out, tau=cfg.gumbel_temperature, hard=True)
        else:
            new = torch.tanh(out)
        # row i: agent i's own action is the new one
        own = torch.eye(n, device=x.device).reshape(1, n, n, 1)
        joint = own * new[:, None] + (1 - own) * shared(actions)
        actor_loss = -self.critic(self._critic_in(x, joint)).mean()
        loss = actor_loss + cfg.logit_reg * (out ** 2).mean()
        if self.ernie:  # per agent observation (ids fixed): logits, or actions in [-1, 1]
            act_fn = self.actor if self.discrete else lambda v: torch.tanh(self.actor(v))
            clean = (out if self.discrete else new).flatten(0, 1)  # act_fn(x), reused
            flat = x.flatten(0, 1)
            loss = loss + self.ernie.penalty("actor", act_fn, flat,
                                             scale=self.robust_scale(flat, "own"), clean=clean)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.max_grad_norm)
        self.actor_opt.step()
        polyak_update(self.actor_target, self.actor, cfg.tau)
        polyak_update(self.critic_target, self.critic, cfg.tau)
        self.updates += 1
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "q_mean": q.detach().mean(), **self.ernie.metrics()}

    # ----------------------------------------------------------------- loop
    def learn(self, total_steps: int, callback: Callback | None = None) -> MADDPG:
        """`num_steps` counts env steps (one joint step of all agents in one env copy)."""
        self.off_policy_learn(total_steps, callback, self.explore, normalize_first=True)
        return self

    def explore(self) -> tuple[np.ndarray, np.ndarray]:
        """This step's critic-format actions (stored) and their env form: uniform at first,
        then the exploring policy."""
        if self.num_steps < self.config.learning_starts:
            if self.discrete:
                action = np.eye(self.act_dim, dtype=np.float32)[self.random_actions()]
            else:
                shape = (self.config.n_envs, self.n_agents, self.act_dim)
                action = self.rng.uniform(-1, 1, shape).astype(np.float32)
        else:
            action = self._noisy_action(self.obs)
        return action, self._to_env(action)

__all__ = ["MADDPG", "MADDPGConfig"]
