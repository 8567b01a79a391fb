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
from robustrl.core.distributions import LOG_2PI
from robustrl.core.episodes import EpisodeStats
from robustrl.core.flat import FlatAdam
from robustrl.core.loop import minibatches
from robustrl.core.networks import NumpyMLP, mlp, orthogonal_init
from robustrl.core.normalizer import RunningMeanStd
from robustrl.core.returns import gae
from robustrl.core.vector import make_vector
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
        return self.distribution_of(self.actor(obs))

    def distribution_of(self, out: torch.Tensor):
        """The action distribution for the actor's output `out` (logits or means)."""
        # Argument validation costs more than the 64x64 forward itself; inputs are ours.
        if self.discrete:
            return Categorical(logits=out, validate_args=False)
        return Normal(out, self.log_std.exp().expand_as(out), validate_args=False)

    @torch.no_grad()
    def sample(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and their log-probabilities for the actor's outputs `out`, drawn from torch's
        generator as the distribution's `sample()` draws them (discrete: multinomial on the
        softmax), without torch.distributions' per-call overhead (~5x the ops' cost here)."""
        if not self.discrete:
            dist = self.distribution_of(out)
            action = dist.sample()
            return action, self.log_prob(dist, action)
        logp_all = out.log_softmax(-1)
        action = torch.multinomial(logp_all.exp().reshape(-1, out.shape[-1]), 1, True)
        action = action.reshape(out.shape[:-1])
        return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)

    def log_prob(self, dist, actions: torch.Tensor) -> torch.Tensor:
        lp = dist.log_prob(actions)
        return lp if self.discrete else lp.sum(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def evaluate(self, obs: torch.Tensor,
                 actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The actor's output, log pi(actions | obs) and the mean entropy, for the update.

        `distribution` + `log_prob` + `entropy` in closed form: the same values with a third of
        the ops (the Gaussian's std does not depend on the observation, so its entropy is one
        sum over log_std), which matters at minibatch 64.
        """
        out = self.actor(obs)
        if self.discrete:
            logp_all = out.log_softmax(-1)
            logp = logp_all.gather(-1, actions[:, None]).squeeze(-1)
            return out, logp, -(logp_all.exp() * logp_all).sum(-1).mean()
        log_std_sum = self.log_std.sum()
        z = (actions - out) * (-self.log_std).exp()
        d = out.shape[-1]
        logp = -0.5 * z.square().sum(-1) - (log_std_sum + 0.5 * d * LOG_2PI)
        return out, logp, log_std_sum + d * (0.5 + 0.5 * LOG_2PI)


def sample_numpy(out: np.ndarray, log_std: np.ndarray, discrete: bool,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Actions and their log-probabilities from the actor's outputs (..., out), in numpy: per
    env step, on a handful of numbers, torch's per-op overhead would cost more than the forward
    pass. Discrete: Gumbel-max over the logits; continuous: Normal(out, exp(log_std))."""
    if discrete:
        logits = out - out.max(-1, keepdims=True)
        logp_all = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        action = (logp_all - np.log(-np.log(rng.random(out.shape)))).argmax(-1)  # Gumbel
        return action, np.take_along_axis(logp_all, action[..., None], -1)[..., 0]
    noise = rng.standard_normal(out.shape)
    logp = (-0.5 * noise**2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    return (out + np.exp(log_std) * noise).astype(np.float32), logp


def approx_kl(log_ratio: torch.Tensor) -> torch.Tensor:
    """The (k3) estimate of KL(pi_old || pi) from log(pi / pi_old) of the old policy's samples."""
    return ((log_ratio.exp() - 1) - log_ratio).mean()


@torch.no_grad()
def update_metrics(losses: list[torch.Tensor], log_ratios: list[torch.Tensor],
                   clip: float | None = None) -> dict[str, float]:
    """An update's logged means, read in one go: policy loss, value loss and entropy from each
    minibatch's stacked [policy_loss, value_loss, entropy], approx_kl over every minibatch's
    log-ratios and, given `clip`, the fraction of ratios outside [1 - clip, 1 + clip]."""
    log_ratio = torch.stack(log_ratios)  # (minibatches, size): every minibatch equal
    names = ["policy_loss", "value_loss", "entropy", "approx_kl"]
    values = [*torch.stack(losses).double().mean(0), approx_kl(log_ratio).double()]
    if clip is not None:
        names.append("clip_fraction")
        values.append(((log_ratio.exp() - 1).abs() > clip).double().mean())
    return dict(zip(names, torch.stack(values).tolist()))


def ppo_minibatches(batch: dict[str, torch.Tensor], n_minibatches: int, clip: float,
                    normalize_advantage: bool) -> list[dict[str, torch.Tensor]]:
    """One epoch's shuffled minibatches (robustrl.core.loop.minibatches) with the advantages
    normalized per minibatch (when asked) and `lo` / `hi`, the clipping bounds of the
    probability ratio that `clipped_policy_loss` takes, all computed in one batched pass."""
    epoch = minibatches(batch, n_minibatches)
    adv = epoch["advantages"]
    if normalize_advantage:
        adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True) + 1e-8)
    # min(r A, clip(r, 1 - c, 1 + c) A) = A clamp(r, lo, hi): with A >= 0 it is A min(r, 1 + c),
    # with A < 0 it is A max(r, 1 - c). The same value and gradient in 2 ops instead of 4 (and a
    # cheap clamp backward instead of minimum's tie-splitting one).
    positive = adv >= 0
    epoch["advantages"] = adv
    epoch["lo"] = torch.where(positive, -torch.inf, 1 - clip)
    epoch["hi"] = torch.where(positive, 1 + clip, torch.inf)
    return [{k: v[i] for k, v in epoch.items()} for i in range(n_minibatches)]


def clipped_policy_loss(log_ratio: torch.Tensor, mb: dict[str, torch.Tensor]) -> torch.Tensor:
    """PPO's clipped surrogate loss, -mean(min(r A, clip(r) A)) with r = exp(log(pi / pi_old)),
    for a minibatch of `ppo_minibatches` (normalized advantages, clipping bounds)."""
    return -(log_ratio.exp().clamp(mb["lo"], mb["hi"]) * mb["advantages"]).mean()


class PPO(Agent):
    """Proximal Policy Optimization: on-policy clipped actor-critic, Box or Discrete actions."""

    name = "ppo"
    Config = PPOConfig
    capabilities = Capabilities(agents="single", learning="on-policy",
                                action_spaces=(gym.spaces.Box, gym.spaces.Discrete), ernie=True,
                                relabel=False, learned_reward=True)
    batched_act = True
    STATE = ("net", "opt", "obs_rms", "ret_rms", "stats.episodes", "updates")

    def _build(self) -> None:
        cfg = self.config
        self.obs_dim = int(np.prod(self.observation_space.shape))
        self.net = ActorCritic(self.obs_dim, self.action_space, cfg).to(self.device)
        self.opt = FlatAdam(self.net, lr=cfg.lr, eps=1e-5, max_grad_norm=cfg.max_grad_norm)
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
        x = torch.from_numpy(self._norm_obs(obs)).to(self.device)
        dist = self.net.distribution(x)
        if deterministic:
            a = dist.probs.argmax(-1) if self.net.discrete else dist.mean
        else:
            a = dist.sample()
        a = a.cpu().numpy()
        if not self.net.discrete:
            a = np.clip(a, self.action_space.low.ravel(), self.action_space.high.ravel())
        batch_shape = np.shape(obs)[:-1]
        return a.reshape(batch_shape + self.action_space.shape)

    # ----------------------------------------------------------------- rollouts
    def _make_envs(self) -> gym.vector.VectorEnv:
        return make_vector(self.env_fn, self.config.n_envs, self.config.vector,
                           first=self.take_env())

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
        log_std = self.net.log_std.detach().cpu().numpy().astype(np.float64)
        # actor and critic in one numpy pass: outputs [actor's | value]
        both = NumpyMLP.joint(self.net.actor, self.net.critic)
        k = self.net.actor[-1].out_features
        for t in range(t_max):
            if cfg.normalize_obs:
                self.obs_rms.update(self.obs)
            x = self._norm_obs(self.obs)
            y = both(x)
            val_buf[t] = y[:, k]
            action, logp_buf[t] = sample_numpy(y[:, :k], log_std, self.net.discrete, self.rng)
            env_action = action if self.net.discrete else np.clip(
                action, self.action_space.low, self.action_space.high)
            next_obs, reward, terminated, truncated, info = self.envs.step(env_action)
            done = terminated | truncated
            self.stats.step(reward, done)
            reward = np.asarray(reward, np.float64)
            if cfg.normalize_reward:
                self.discounted = self.discounted * cfg.gamma + reward
                self.ret_rms.update(self.discounted)
                self.discounted[done] = 0.0
                reward = reward / self.ret_rms.std
            cut = truncated & ~terminated
            if cut.any():  # bootstrap a time-limit cut from the real final observation
                final = np.stack([info["final_obs"][i] for i in np.flatnonzero(cut)])
                reward[cut] += cfg.gamma * both(self._norm_obs(final))[:, k]
            obs_buf[t], act_buf[t], rew_buf[t] = x, action.reshape(act_buf[t].shape), reward
            done_buf[t] = done
            self.obs = next_obs
        val_buf[t_max] = both(self._norm_obs(self.obs))[:, k]

        advantages = gae(rew_buf, val_buf, done_buf, cfg.gamma, cfg.gae_lambda)
        returns = advantages + val_buf[:t_max]

        def flat(a: np.ndarray) -> torch.Tensor:  # (T, n, ...) -> (T * n, ...) on the device
            return torch.from_numpy(a.reshape(t_max * n, *a.shape[2:])).to(self.device)

        return {"obs": flat(obs_buf), "actions": flat(act_buf), "logp": flat(logp_buf),
                "advantages": flat(advantages), "returns": flat(returns),
                "values": flat(val_buf[:t_max])}

    # ----------------------------------------------------------------- update
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float | torch.Tensor]:
        cfg = self.config
        if self.net.discrete:
            batch = {**batch, "actions": batch["actions"].long()}
        if cfg.clip_value is None:
            batch = {k: v for k, v in batch.items() if k != "values"}
        # Per minibatch only detached tensors are kept; the metrics are read once at the end
        # (one Python float per update instead of five per minibatch).
        losses: list[torch.Tensor] = []
        log_ratios: list[torch.Tensor] = []
        for _ in range(cfg.n_epochs):
            for mb in ppo_minibatches(batch, cfg.n_minibatches, cfg.clip,
                                      cfg.normalize_advantage):
                obs = mb["obs"]
                out, logp, entropy = self.net.evaluate(obs, mb["actions"])
                log_ratio = logp - mb["logp"]
                policy_loss = clipped_policy_loss(log_ratio, mb)
                value = self.net.value(obs)
                value_err = (value - mb["returns"]).square()
                if cfg.clip_value is not None:
                    old = mb["values"]
                    clipped = old + (value - old).clamp(-cfg.clip_value, cfg.clip_value)
                    value_err = torch.max(value_err, (clipped - mb["returns"]).square())
                value_loss = 0.5 * value_err.mean()
                loss = policy_loss + cfg.vf_coef * value_loss
                if cfg.ent_coef:
                    loss = loss - cfg.ent_coef * entropy
                if self.ernie:  # lam * R(theta) on normalized observations (robustrl.robust)
                    loss = loss + self.ernie.penalty("actor", self.net.actor, obs, clean=out) \
                        + self.ernie.penalty("critic", self.net.critic, obs, clean=value[:, None])
                self.opt.step(loss)
                with torch.no_grad():
                    losses.append(torch.stack([policy_loss, value_loss, entropy]))
                log_ratios.append(log_ratio.detach())
            if cfg.target_kl is not None and approx_kl(log_ratios[-1]).item() > cfg.target_kl:
                break
        self.updates += 1
        return {**update_metrics(losses, log_ratios, cfg.clip), **self.ernie.metrics()}

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
