"""Proximal Policy Optimization (Schulman et al. 2017), discrete and continuous actions.

Read top to bottom: config, the actor-critic, acting, rollout collection with GAE, the
clipped update, the loop. Vectorized envs use Gymnasium's same-step autoreset so that a
time-limit truncation bootstraps from the true final observation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from robustrl.agents.base import Agent, Callback, Capabilities
from robustrl.core.episodes import EpisodeStats
from robustrl.core.loop import minibatches
from robustrl.core.networks import NumpyMLP, mlp, orthogonal_init
from robustrl.core.normalizer import RunningMeanStd
from robustrl.core.returns import gae
from robustrl.robust import RobustConfig, attach


@dataclass
class PPOConfig:
    lr: float = 3e-4
    """Adam learning rate."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """linear: anneal the learning rate to 0 over the requested total steps."""
    n_envs: int = 8
    """Parallel environment copies (one vectorized env)."""
    vector: Literal["sync", "async"] = "sync"
    """async steps each copy in a subprocess of its own (sync: all in this process)."""
    n_steps: int = 256
    """Steps per env per rollout (rollout size = n_envs * n_steps)."""
    n_epochs: int = 10
    n_minibatches: int = 8
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    """Clipping range of the probability ratio."""
    clip_value: float | None = None
    """Clip the value update to this range around the old value (None: no clipping)."""
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    """Stop an update's epochs early when the approximate KL exceeds this."""
    hidden: tuple[int, ...] = (64, 64)
    activation: Literal["tanh", "relu"] = "tanh"
    normalize_obs: bool = True
    """Running mean/std normalization of observations (saved with the agent)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (helps on MuJoCo)."""
    normalize_advantage: bool = True
    init_log_std: float = 0.0
    """Initial log standard deviation of continuous actions (state independent)."""
    robust: RobustConfig = field(default_factory=RobustConfig)
    """ERNIE's adversarial Lipschitz regularizer on the actor and/or critic (robustrl.robust)."""


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, action_space: gym.Space, cfg: PPOConfig):
        super().__init__()
        act = nn.Tanh if cfg.activation == "tanh" else nn.ReLU
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        out_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.actor = mlp(obs_dim, cfg.hidden, out_dim, act)
        self.critic = mlp(obs_dim, cfg.hidden, 1, act)
        orthogonal_init(self)
        for head, gain in ((self.actor[-1], 0.01), (self.critic[-1], 1.0)):
            nn.init.orthogonal_(head.weight, gain)
        self.log_std = nn.Parameter(torch.full((out_dim,), cfg.init_log_std))

    def distribution(self, obs: torch.Tensor):
        out = self.actor(obs)
        # Argument validation costs more than the 64x64 forward itself; inputs are ours.
        if self.discrete:
            return Categorical(logits=out, validate_args=False)
        return Normal(out, self.log_std.exp().expand_as(out), validate_args=False)

    def log_prob(self, dist, actions: torch.Tensor) -> torch.Tensor:
        lp = dist.log_prob(actions)
        return lp if self.discrete else lp.sum(-1)

    def entropy(self, dist) -> torch.Tensor:
        """Mean entropy of the (per-dimension, for continuous actions summed) distribution."""
        entropy = dist.entropy()
        return (entropy if self.discrete else entropy.sum(-1)).mean()

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)


def clipped_policy_loss(log_ratio: torch.Tensor, adv: torch.Tensor, clip: float,
                        normalize_advantage: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate loss and the probability ratio, from log(pi / pi_old) and the
    advantages (normalized over the minibatch when asked)."""
    ratio = log_ratio.exp()
    if normalize_advantage:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    return -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean(), ratio


class PPO(Agent):
    """Proximal Policy Optimization: on-policy clipped actor-critic, Box or Discrete actions."""

    name = "ppo"
    Config = PPOConfig
    capabilities = Capabilities(agents="single", learning="on-policy",
                                action_spaces=(gym.spaces.Box, gym.spaces.Discrete), ernie=True,
                                relabel=False, learned_reward=True, gpu=False)
    batched_act = True
    STATE = ("net", "opt", "obs_rms", "ret_rms", "stats.episodes", "updates")

    def _build(self) -> None:
        cfg = self.config
        self.obs_dim = int(np.prod(self.observation_space.shape))
        self.net = ActorCritic(self.obs_dim, self.action_space, cfg)
        # fused: one kernel for all (small) parameter tensors instead of a Python loop over them
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, eps=1e-5, fused=True)
        self.ernie = attach(cfg.robust, self.name, logits=self.net.discrete)
        self.obs_rms = RunningMeanStd((self.obs_dim,))
        self.ret_rms = RunningMeanStd(())
        self.stats = EpisodeStats(cfg.n_envs)
        self.envs: gym.vector.VectorEnv | None = None
        self.obs: np.ndarray | None = None
        self.discounted = np.zeros(cfg.n_envs)
        self.updates = 0

    # ----------------------------------------------------------------- acting
    def _norm_obs(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32).reshape(-1, self.obs_dim)
        return self.obs_rms.normalize(obs) if self.config.normalize_obs else obs

    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net.actor(self.obs_rms.normalize(obs) if self.config.normalize_obs else obs)

    @property
    def obs_scale(self) -> np.ndarray:
        """Std of the observation normalizer: ε of attacks is given in these units."""
        return self.obs_rms.std if self.config.normalize_obs else np.ones(self.obs_dim)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        x = torch.from_numpy(self._norm_obs(obs))
        dist = self.net.distribution(x)
        if deterministic:
            a = dist.probs.argmax(-1) if self.net.discrete else dist.mean
        else:
            a = dist.sample()
        a = a.numpy()
        if not self.net.discrete:
            a = np.clip(a, self.action_space.low.ravel(), self.action_space.high.ravel())
        batch_shape = np.shape(obs)[:-1]
        return a.reshape(batch_shape + self.action_space.shape)

    def _sample(self, out: np.ndarray, log_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Action and log-probability from the actor's output, in numpy: per env step, on a
        handful of numbers, torch's per-op overhead would cost more than the forward pass."""
        if self.net.discrete:
            logits = out - out.max(-1, keepdims=True)
            logp_all = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            action = (logp_all - np.log(-np.log(self.rng.random(out.shape)))).argmax(-1)  # Gumbel
            return action, np.take_along_axis(logp_all, action[:, None], -1)[:, 0]
        noise = self.rng.standard_normal(out.shape)
        logp = (-0.5 * noise**2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        return (out + np.exp(log_std) * noise).astype(np.float32), logp

    # ----------------------------------------------------------------- rollouts
    def _make_envs(self) -> gym.vector.VectorEnv:
        cfg = self.config
        first = self.take_env()
        fns = [lambda: first] + [self.env_fn] * (cfg.n_envs - 1)
        mode = gym.vector.AutoresetMode.SAME_STEP
        if cfg.vector == "async":
            first.close()
            return gym.vector.AsyncVectorEnv([self.env_fn] * cfg.n_envs, autoreset_mode=mode)
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)

    def open_envs(self) -> None:
        self.envs = self._make_envs()

    def _collect(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        n, t_max = cfg.n_envs, cfg.n_steps
        obs_buf = np.zeros((t_max, n, self.obs_dim), np.float32)
        act_buf = np.zeros((t_max, n, *self.action_space.shape), np.float32)
        logp_buf = np.zeros((t_max, n), np.float32)
        rew_buf = np.zeros((t_max, n), np.float32)
        done_buf = np.zeros((t_max, n), np.float32)
        val_buf = np.zeros((t_max + 1, n), np.float32)
        log_std = self.net.log_std.detach().numpy().astype(np.float64)
        actor, critic = NumpyMLP(self.net.actor), NumpyMLP(self.net.critic)
        for t in range(t_max):
            if cfg.normalize_obs:
                self.obs_rms.update(self.obs)
            x = self._norm_obs(self.obs)
            val_buf[t] = critic(x)[:, 0]
            action, logp_buf[t] = self._sample(actor(x), log_std)
            env_action = action if self.net.discrete else np.clip(
                action, self.action_space.low, self.action_space.high)
            next_obs, reward, terminated, truncated, info = self.envs.step(env_action)
            self.stats.step(reward, terminated | truncated)
            reward = np.asarray(reward, np.float64)
            if cfg.normalize_reward:
                self.discounted = self.discounted * cfg.gamma + reward
                self.ret_rms.update(self.discounted)
                self.discounted[terminated | truncated] = 0.0
                reward = reward / self.ret_rms.std
            cut = truncated & ~terminated
            if cut.any():  # bootstrap a time-limit cut from the real final observation
                final = np.stack([info["final_obs"][i] for i in np.flatnonzero(cut)])
                reward[cut] += cfg.gamma * critic(self._norm_obs(final))[:, 0]
            obs_buf[t], act_buf[t], rew_buf[t] = x, action.reshape(act_buf[t].shape), reward
            done_buf[t] = terminated | truncated
            self.obs = next_obs
        val_buf[t_max] = critic(self._norm_obs(self.obs))[:, 0]

        advantages = gae(rew_buf, val_buf, done_buf, cfg.gamma, cfg.gae_lambda)
        returns = advantages + val_buf[:t_max]
        flat = lambda a: torch.from_numpy(a.reshape(t_max * n, *a.shape[2:]))  # noqa: E731
        return {"obs": flat(obs_buf), "actions": flat(act_buf), "logp": flat(logp_buf),
                "advantages": flat(advantages), "returns": flat(returns),
                "values": flat(val_buf[:t_max])}

    # ----------------------------------------------------------------- update
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.config
        size = batch["obs"].shape[0]
        actions = batch["actions"].long() if self.net.discrete else batch["actions"]
        log: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "entropy": [],
                                       "approx_kl": [], "clip_fraction": []}
        for _ in range(cfg.n_epochs):
            for idx in minibatches(size, cfg.n_minibatches):
                obs = batch["obs"][idx]
                dist = self.net.distribution(obs)
                log_ratio = self.net.log_prob(dist, actions[idx]) - batch["logp"][idx]
                policy_loss, ratio = clipped_policy_loss(log_ratio, batch["advantages"][idx],
                                                         cfg.clip, cfg.normalize_advantage)
                value = self.net.value(obs)
                value_err = (value - batch["returns"][idx]) ** 2
                if cfg.clip_value is not None:
                    old = batch["values"][idx]
                    clipped = old + (value - old).clamp(-cfg.clip_value, cfg.clip_value)
                    value_err = torch.max(value_err, (clipped - batch["returns"][idx]) ** 2)
                value_loss = 0.5 * value_err.mean()
                entropy = self.net.entropy(dist)
                loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
                if self.ernie:  # lam * R(theta) on normalized observations (robustrl.robust)
                    out = dist.logits if self.net.discrete else dist.loc  # actor(obs), reused
                    loss = loss + self.ernie.penalty("actor", self.net.actor, obs, clean=out) \
                        + self.ernie.penalty("critic", self.net.critic, obs, clean=value[:, None])
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm, foreach=True)
                self.opt.step()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - log_ratio).mean().item()
                    log["approx_kl"].append(approx_kl)
                    clipped = ((ratio - 1).abs() > cfg.clip).float().mean().item()
                    log["clip_fraction"].append(clipped)
                log["policy_loss"].append(policy_loss.item())
                log["value_loss"].append(value_loss.item())
                log["entropy"].append(entropy.item())
            if cfg.target_kl is not None and approx_kl > cfg.target_kl:
                break
        self.updates += 1
        return {**{k: float(np.mean(v)) for k, v in log.items()}, **self.ernie.metrics()}

    # ----------------------------------------------------------------- loop
    def learn(self, total_steps: int, callback: Callback | None = None) -> PPO:
        cfg = self.config
        if self.envs is None:
            self.envs = self._make_envs()
        if self.obs is None:
            self.obs, _ = self.envs.reset(seed=self.seed + self.stats.episodes)

        def anneal() -> None:
            for group in self.opt.param_groups:
                group["lr"] = cfg.lr * max(1.0 - self.num_steps / total_steps, 0.0)

        self.on_policy_learn(total_steps, callback, cfg.n_envs * cfg.n_steps,
                             anneal if cfg.lr_schedule == "linear" else None)
        return self
