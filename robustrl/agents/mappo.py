"""MAPPO (Yu et al. 2022) for PettingZoo parallel envs, discrete and continuous actions.

One actor shared by all agents (its input: the agent's normalized observation + a one-hot
agent id), trained with PPO's clipped objective on every agent's samples at once. The critic
is what tells MAPPO and IPPO (robustrl.agents.ippo) apart:
- MAPPO: V(s, id_i), the env's global `state()` when it has one, else all observations
  concatenated (the centralized critic sees what the agents cannot; it is only used in training);
- IPPO (`centralized_critic = False`): V(o_i, id_i), each agent's local observation.
Each agent's own reward is its return target (for cooperative mpe tasks these share a team term).
The actor-critic is `robustrl.agents.ppo.ActorCritic` with the critic swapped for one on the
critic's input, so sampling, log-probabilities and initialisation are PPO's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robustrl.agents.base import Callback, Capabilities
from robustrl.agents.multiagent import MultiAgent
from robustrl.agents.ppo import (
    ActorCritic,
    clipped_policy_loss,
    ppo_minibatches,
    update_metrics,
)
from robustrl.core.episodes import MultiAgentStats
from robustrl.core.flat import FlatAdam
from robustrl.core.networks import NumpyMLP, mlp, orthogonal_init
from robustrl.core.normalizer import RunningMeanStd
from robustrl.core.returns import gae
from robustrl.robust import RobustConfig, attach


@dataclass
class MAPPOConfig:
    centralized_critic: bool = True
    """True (MAPPO): critic on the global state (or all observations); False (IPPO): local."""
    lr: float = 5e-4
    """Adam learning rate (actor and critic)."""
    n_envs: int = 8
    """Env copies stepped together (traffic ids: copies beyond the first run in subprocesses)."""
    n_steps: int = 100
    """Steps per env per rollout (samples per update = n_envs * n_steps * n_agents)."""
    n_epochs: int = 10
    n_minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    """Clipping range of the probability ratio."""
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 10.0
    hidden: tuple[int, ...] = (64, 64)
    activation: Literal["tanh", "relu"] = "tanh"
    normalize_obs: bool = True
    """Running mean/std normalization of observations and global states (saved with the agent)."""
    normalize_advantage: bool = True
    init_log_std: float = -0.5
    """Initial log std of continuous actions (mpe forces live in [0, 1])."""
    robust: RobustConfig = field(default_factory=RobustConfig)
    """ERNIE's adversarial Lipschitz regularizer on the shared actor (each agent's own
    observation) and/or the critic (MAPPO: the global state) (robustrl.robust)."""


class MAPPO(MultiAgent):
    """Multi-agent PPO: a shared actor, a centralized critic on the global state."""

    name = "mappo"
    Config = MAPPOConfig
    capabilities = Capabilities(agents="multi", learning="on-policy",
                                action_spaces=(gym.spaces.Box, gym.spaces.Discrete), ernie=True,
                                relabel=False, learned_reward=True)
    STATE = ("net", "opt", "obs_rms", "state_rms", "stats.episodes", "updates")

    def _build(self) -> None:
        cfg = self.config
        probe = self._probe_env
        self.state_dim = self.n_agents * self.obs_dim
        self.use_env_state = False
        if cfg.centralized_critic and hasattr(probe, "state"):
            try:
                obs, _ = probe.reset(seed=self.seed)
                state = np.asarray(probe.state(), np.float32).ravel()
                joint = np.concatenate([np.asarray(obs[a], np.float32).ravel()
                                        for a in self.agents])
                # mpe and traffic states are the observations concatenated: skip the call
                # (in mpe2 it recomputes every observation, a third of the step's cost).
                if not (state.shape == joint.shape and np.allclose(state, joint)):
                    self.state_dim, self.use_env_state = state.size, True
            except (NotImplementedError, AttributeError):
                pass
        critic_in = (self.state_dim if cfg.centralized_critic else self.obs_dim) + self.n_agents
        self.net = ActorCritic(self.obs_dim + self.n_agents, self.action_space, cfg)
        act = nn.Tanh if cfg.activation == "tanh" else nn.ReLU
        self.net.critic = mlp(critic_in, cfg.hidden, 1, act)
        orthogonal_init(self.net.critic)
        nn.init.orthogonal_(self.net.critic[-1].weight, 1.0)
        self.net.to(self.device)
        self.opt = FlatAdam(self.net, lr=cfg.lr, eps=1e-5, max_grad_norm=cfg.max_grad_norm)
        self.ernie = attach(cfg.robust, self.name, logits=self.discrete)
        self.obs_rms = RunningMeanStd((self.obs_dim,))
        self.state_rms = RunningMeanStd((self.state_dim,))
        self.stats = MultiAgentStats(cfg.n_envs, self.agents)
        self.obs: np.ndarray | None = None
        self.state: np.ndarray | None = None
        self.updates = 0

    # ----------------------------------------------------------------- inputs
    def _global(self, obs: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        """(E, N, obs_dim), (E, state_dim) -> the centralized critic's state (E, state_dim)."""
        return state if self.use_env_state else obs.reshape(obs.shape[0], -1)

    def _critic_in(self, obs: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        """Critic input per agent: (E, N, critic_in) float32."""
        if not self.config.centralized_critic:
            return self.inputs(obs, self.obs_normalizer)
        s = self._global(obs, state)
        if self.config.normalize_obs:
            s = self.state_rms.normalize(s)
        s = np.broadcast_to(s[:, None, :], (s.shape[0], self.n_agents, s.shape[-1]))
        ids = np.broadcast_to(self.ids, (s.shape[0], self.n_agents, self.n_agents))
        return np.concatenate([s, ids], -1).astype(np.float32)

    def _critic_scale(self, c: torch.Tensor) -> torch.Tensor:
        """ERNIE's scale on critic inputs: the env's global state, all (padded) observations
        (MAPPO) or the agent's own (IPPO); ids fixed."""
        if self.use_env_state:
            return self.ernie.scale(c, self.state_dim)
        return self.robust_scale(c, "joint" if self.config.centralized_critic else "own")

    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits / action means for raw observations (..., n_agents, obs_dim), differentiable."""
        return self.net.actor(self.inputs(obs, self.obs_normalizer))

    def _env_action(self, action: np.ndarray) -> np.ndarray:
        if self.discrete:
            return action
        return np.clip(action, self.action_space.low.ravel(), self.action_space.high.ravel())

    @torch.no_grad()
    def act_array(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        dist = self.net.distribution(self.net_inputs(obs))
        if deterministic:
            a = dist.probs.argmax(-1) if self.discrete else dist.mean
        else:
            a = dist.sample()
        return self._env_action(a.cpu().numpy())

    # ----------------------------------------------------------------- rollouts
    def _collect(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        t_max, e, n = cfg.n_steps, cfg.n_envs, self.n_agents
        act_shape = () if self.discrete else (self.act_dim,)
        actor_buf = np.zeros((t_max, e, n, self.obs_dim + n), np.float32)
        critic_buf: list[np.ndarray] = []
        act_buf = np.zeros((t_max, e, n, *act_shape), np.float32)
        logp_buf = np.zeros((t_max, e, n), np.float32)
        rew_buf = np.zeros((t_max, e, n), np.float32)
        done_buf = np.zeros((t_max, e, n), np.float32)
        val_buf = np.zeros((t_max + 1, e, n), np.float32)
        # The networks' forward passes through numpy snapshots (as PPO's): on (E, N) samples
        # per step torch's per-op overhead outweighed the 64x64 arithmetic. Actions are still
        # drawn by torch's distribution, from torch's generator, as before.
        actor, critic = NumpyMLP(self.net.actor), NumpyMLP(self.net.critic)
        for t in range(t_max):
            if cfg.normalize_obs:
                self.obs_rms.update(self.obs.reshape(-1, self.obs_dim))
                if cfg.centralized_critic:
                    self.state_rms.update(self._global(self.obs, self.state))
            x = self.inputs(self.obs, self.obs_normalizer)
            c = self._critic_in(self.obs, self.state)
            action, logp = self.net.sample(torch.from_numpy(actor(x)).to(self.device))
            action, logp_buf[t] = action.cpu().numpy(), logp.cpu().numpy()
            val_buf[t] = critic(c)[..., 0]
            out = self.envs.step(self._env_action(action))
            self.stats.step_agents(out["rewards"], out["done"])
            reward = out["rewards"].copy()
            for i, final in out["final_obs"].items():  # bootstrap time-limit cuts
                cut = out["truncated"][i] & ~out["terminated"][i]
                if cut.any():
                    fs = out["final_state"][i]
                    ci = self._critic_in(final[None], None if fs is None else fs[None])
                    reward[i] += cfg.gamma * critic(ci)[0, :, 0] * cut
            actor_buf[t], act_buf[t], rew_buf[t] = x, action, reward
            critic_buf.append(c)
            done_buf[t] = (out["terminated"] | out["truncated"]) | out["done"][:, None]
            self.obs, self.state = out["obs"], out["state"]
        val_buf[t_max] = critic(self._critic_in(self.obs, self.state))[..., 0]
        advantages = gae(rew_buf, val_buf, done_buf, cfg.gamma, cfg.gae_lambda)
        returns = advantages + val_buf[:t_max]
        size = t_max * e * n

        def flat(a: np.ndarray) -> torch.Tensor:  # (T, E, N, ...) -> (T * E * N, ...) on the device
            return torch.from_numpy(a.reshape(size, *a.shape[3:])).to(self.device)

        return {"obs": flat(actor_buf), "critic": flat(np.stack(critic_buf)),
                "actions": flat(act_buf), "logp": flat(logp_buf),
                "advantages": flat(advantages), "returns": flat(returns)}

    # ----------------------------------------------------------------- update
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float | torch.Tensor]:
        cfg = self.config
        if self.discrete:
            batch = {**batch, "actions": batch["actions"].long()}
        # Per minibatch only detached tensors are kept, read once after the epochs.
        losses: list[torch.Tensor] = []
        log_ratios: list[torch.Tensor] = []
        for _ in range(cfg.n_epochs):
            for mb in ppo_minibatches(batch, cfg.n_minibatches, cfg.clip,
                                      cfg.normalize_advantage):
                x, c = mb["obs"], mb["critic"]
                out, logp, entropy = self.net.evaluate(x, mb["actions"])
                log_ratio = logp - mb["logp"]
                policy_loss = clipped_policy_loss(log_ratio, mb)
                value = self.net.value(c)
                value_loss = 0.5 * (value - mb["returns"]).square().mean()
                loss = policy_loss + cfg.vf_coef * value_loss
                if cfg.ent_coef:
                    loss = loss - cfg.ent_coef * entropy
                if self.ernie:  # lam * R(theta); agent ids and padding stay fixed
                    loss = loss + self.ernie.penalty(
                        "actor", self.net.actor, x, scale=self.robust_scale(x, "own"),
                        clean=out) + self.ernie.penalty(
                        "critic", self.net.critic, c, scale=self._critic_scale(c),
                        clean=value[:, None])
                self.opt.step(loss)
                with torch.no_grad():
                    losses.append(torch.stack([policy_loss, value_loss, entropy]))
                log_ratios.append(log_ratio.detach())
        self.updates += 1
        return {**update_metrics(losses, log_ratios), **self.ernie.metrics()}

    # ----------------------------------------------------------------- loop
    def learn(self, total_steps: int, callback: Callback | None = None) -> MAPPO:
        """`num_steps` counts env steps (one joint step of all agents in one env copy)."""
        cfg = self.config
        if self.envs is None:
            self.obs, self.state = self.start_envs(cfg.n_envs, want_state=self.use_env_state)
        self.on_policy_learn(total_steps, callback, cfg.n_envs * cfg.n_steps)
        return self


__all__ = ["MAPPO", "MAPPOConfig"]
