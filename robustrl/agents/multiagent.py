"""What the multi-agent learners share: reading a PettingZoo ParallelEnv's agents into one
shared (padded) space, acting with dicts, the per-agent views attacks and ERNIE take.

The learners (IPPO/MAPPO, MADDPG, IDQN, MF-Q) share one network across agents (parameter
sharing) and tell agents apart by a one-hot id appended to the observation, so every update is
one batched pass over (time x envs x agents) samples. That needs the same action space for every
agent and every agent acting at every step until the episode ends (true for mpe and the traffic
grids). Observations may differ in size when every agent's is a 1-D Box (the teams of mpe's
simple_adversary, simple_tag, simple_push): each is zero-padded to the largest size, the
standard way (`robustrl.core.parallel`; the id tells the roles apart). Anything else is refused
with one line.

Padding stays inside the learner: `act({name: obs})` takes and returns dicts in the env's own
spaces, `policy_fns[name]` takes that agent's own observation size, `obs_scale` is per agent,
and ERNIE never perturbs padding (`robust_scale`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from robustrl.agents.base import Agent, Callback
from robustrl.core.errors import RobustRLError
from robustrl.core.logging import host_floats
from robustrl.core.loop import StepRate, crossed, updates_per_step
from robustrl.core.parallel import (
    ParallelEnvs,
    is_parallel_env,
    one_hot_ids,
    shared_spaces,
    stack_obs,
)


class AgentPolicies(dict):
    """{agent: f(its own observations (B, size)) -> its policy output}, the `policy_fn` attacks
    take from a multi-agent learner, plus `rows(agents)`: one function for several agents at
    once (`MultiAgent.agent_rows`), which obs-pgd uses to attack every agent in one batch."""

    def __init__(self, fns: dict[str, Callable[[Any], Any]],
                 rows: Callable[[Sequence[str]], Callable[[Any], Any]]):
        super().__init__(fns)
        self.rows = rows


class MultiAgent(Agent):
    """Base of the multi-agent learners: a ParallelEnv's agents and shared spaces, acting with
    dicts. Subclasses fill in `_build`, `learn`, `act_array`, `policy_output`, state."""

    @classmethod
    def spaces_of(cls, env: Any) -> tuple[gym.Space, gym.Space, int]:
        """The shared, zero-padded per-agent observation space, the common action space and the
        number of agents; one line when `env` is not a ParallelEnv or its spaces do not fit."""
        if not is_parallel_env(env):
            raise RobustRLError(f"{cls.name} is a multi-agent learner and needs a PettingZoo "
                                f"ParallelEnv (e.g. mpe/simple_spread, traffic/2x2grid); got "
                                f"{type(env).__name__} (use a single-agent learner: ppo, sac)")
        observation_space, action_space = shared_spaces(env, cls.name)
        cls.check_spaces(observation_space, action_space)
        return observation_space, action_space, len(env.possible_agents)

    def _read_env(self, env: Any) -> None:
        self.agents: list[str] = list(env.possible_agents)
        self.obs_dim = int(np.prod(self.observation_space.shape))
        # Each agent's own observation size (obs_dim is the largest, the padded size), and
        # obs_mask (n_agents, obs_dim): 1 on each agent's own observation, 0 on its padding.
        self.obs_sizes = [int(np.prod(env.observation_space(a).shape)) for a in self.agents]
        self.padded = min(self.obs_sizes) < self.obs_dim
        self.obs_mask = (np.arange(self.obs_dim) < np.array(self.obs_sizes)[:, None]).astype(
            np.float32)
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        self.act_dim = int(self.action_space.n) if self.discrete else int(
            np.prod(self.action_space.shape))
        self.ids = one_hot_ids(self.n_agents)
        self.envs: ParallelEnvs | None = None

    def make_envs(self, n: int, want_state: bool = False) -> ParallelEnvs:
        """The first env and n - 1 further copies, stepped together."""
        envs = [self.take_env()] + [self.env_fn() for _ in range(n - 1)]
        return ParallelEnvs(envs, self.agents, self.seed, want_state, self.obs_dim)

    def start_envs(self, n: int, want_state: bool = False) -> tuple[np.ndarray, Any]:
        """Make the n training envs (`self.envs`) and reset them, seeded past the episodes
        already counted (a resumed agent continues the seed sequence): (obs, state)."""
        self.envs = self.make_envs(n, want_state)
        self.envs.resets = self.stats.episodes
        return self.envs.reset()

    def open_envs(self) -> None:
        self.envs = self.make_envs(self.config.n_envs,
                                   want_state=getattr(self, "use_env_state", False))

    # ----------------------------------------------------------------- acting
    def inputs(self, obs: Any, rms: Any = None) -> Any:
        """(..., n_agents, obs_dim) raw -> normalized observations with the agent one-hot:
        numpy in, float32 numpy out; a torch tensor stays a differentiable tensor."""
        if isinstance(obs, torch.Tensor):
            if rms is not None:
                obs = rms.normalize(obs)
            ids = torch.as_tensor(self.ids, device=obs.device)
            return torch.cat([obs, ids.expand(*obs.shape[:-1], self.n_agents)], -1)
        obs = np.asarray(obs, np.float32)
        if rms is not None:
            obs = rms.normalize(obs)
        ids = np.broadcast_to(self.ids, (*obs.shape[:-1], self.n_agents))
        return np.concatenate([obs, ids], -1)

    @property
    def obs_normalizer(self) -> Any:
        """The observation normalizer `inputs` takes: `obs_rms`, or None without
        normalize_obs."""
        return self.obs_rms if self.config.normalize_obs else None

    def net_inputs(self, obs: Any) -> torch.Tensor:
        """`inputs` on the learner's device for raw observations (numpy, or a replayed CPU
        tensor): normalized on the host, as when acting, then moved in one copy."""
        obs = obs.numpy() if isinstance(obs, torch.Tensor) else obs
        return torch.from_numpy(self.inputs(obs, self.obs_normalizer)).to(self.device)

    @property
    def attack_policy(self) -> AgentPolicies:
        return AgentPolicies(self.policy_fns, self.agent_rows)

    @property
    def policy_fns(self) -> dict[str, Callable[[Any], Any]]:
        """{agent: f(obs (B, that agent's own obs size)) -> its policy output}, differentiable:
        the per-agent form perturbation attacks and the ERNIE regularizer take (`policy_output`
        itself maps joint padded observations (..., n_agents, obs_dim))."""
        return {a: self.joint_policy([a], squeeze=True) for a in self.agents}

    def joint_policy(self, agents: Sequence[str] | None = None,
                     squeeze: bool = False) -> Callable[[Any], Any]:
        """f(x (B, the named agents' own observations concatenated)) -> their policy outputs
        (B, k, out) (squeeze: (B, out) for one agent), differentiable; agents not named see
        zeros. The bench's Lipschitz estimate takes it: the ball covers exactly what those
        agents observe, never padding. Default: every agent, in `self.agents` order. The
        output comes back on x's device (a learner on a GPU, attacked from the CPU)."""
        names = list(self.agents if agents is None else agents)
        index = [self.agents.index(a) for a in names]
        sizes = [self.obs_sizes[i] for i in index]

        def fn(x: Any) -> Any:
            home, x = x.device, x.to(self.device)
            parts = dict(zip(index, x.split(sizes, -1)))
            zeros = x.new_zeros(*x.shape[:-1], self.obs_dim)
            joint = torch.stack([
                torch.nn.functional.pad(parts[i], (0, self.obs_dim - parts[i].shape[-1]))
                if i in parts else zeros for i in range(self.n_agents)], -2)
            out = self.policy_output(joint)[..., index, :].to(home)
            return out[..., 0, :] if squeeze else out

        return fn

    def agent_rows(self, agents: Sequence[str]) -> Callable[[Any], Any]:
        """f(x (B * k, obs_size)) -> (B * k, out) for k agents observing the same size: row
        b * k + i is agents[i]'s observation, each row its own sample (every agent's output
        depends only on its own observation), so an attack batches all agents in one call."""
        joint, k = self.joint_policy(agents), len(agents)

        def fn(x: Any) -> Any:
            out = joint(x.reshape(-1, k * x.shape[-1]))
            return out.reshape(-1, out.shape[-1])

        return fn

    def joint_obs_scale(self, agents: Sequence[str] | None = None) -> np.ndarray:
        """`obs_scale` laid out like `joint_policy(agents)`'s input."""
        scale = self.obs_scale
        names = self.agents if agents is None else agents
        return np.concatenate([np.broadcast_to(scale[a] if isinstance(scale, dict) else scale,
                                               (self.obs_sizes[self.agents.index(a)],))
                               for a in names])

    @property
    def obs_scale(self) -> np.ndarray | dict[str, np.ndarray]:
        """Per-dimension std of the observation normalizer (ones without it), in the env's own
        observation spaces: one array when no agent is padded, else {agent: its own slice}."""
        scale = self.obs_rms.std if self.config.normalize_obs else np.ones(self.obs_dim)
        if not self.padded:
            return scale
        return {a: scale[:d] for a, d in zip(self.agents, self.obs_sizes)}

    def robust_scale(self, x: torch.Tensor, obs: Literal["own", "joint"],
                     actions: int = 0) -> torch.Tensor:
        """ERNIE's per-input scale (`Ernie.scale`) for network inputs `x` (batch first) that
        start with one agent's padded observation ("own"; the agent is read from the one-hot id
        that ends x: per-sample scale) or all agents' ("joint"), then `actions` action inputs:
        padding is held fixed (0) so the ball covers only what each agent observes."""
        per_agent = self.obs_dim * (self.n_agents if obs == "joint" else 1)
        scale = self.ernie.scale(x, per_agent, actions)
        if not self.padded:
            return scale
        mask = torch.from_numpy(self.obs_mask).to(x)
        if obs == "joint":
            return torch.cat([scale[:per_agent] * mask.flatten(), scale[per_agent:]])
        own = x[:, -self.n_agents:] @ mask  # the one-hot id picks the agent's row
        return torch.cat([scale[:per_agent] * own, scale[per_agent:].expand(len(x), -1)], -1)

    # ----------------------------------------------------------------- off-policy loop
    def store_step(self, action: np.ndarray, env_action: np.ndarray,
                   **extras: np.ndarray) -> dict[str, Any]:
        """Step the training envs with `env_action`, count the returns and store the joint
        transition (`action` as the learner stores it; where an episode ended, its true final
        observation, not the reset one); `self.obs` moves on. Returns the envs' step."""
        out = self.envs.step(env_action)
        self.stats.step_agents(out["rewards"], out["done"])
        next_obs = out["obs"].copy()
        for i, final in out["final_obs"].items():
            next_obs[i] = final
        self.buffer.add(self.obs, action, out["rewards"], next_obs, out["terminated"], **extras)
        self.obs = out["obs"]
        return out

    def off_policy_learn(self, total_steps: int, callback: Callback | None,
                         explore: Callable[[], tuple[np.ndarray, np.ndarray]], *,
                         normalize_first: bool = False, gradient_steps: int = 1,
                         sync_targets: Callable[[], None] | None = None,
                         target_interval: int = 1,
                         log_extras: Callable[[], dict[str, float]] = dict) -> None:
        """The loop of the off-policy learners (IDQN, MF-Q, MADDPG). `num_steps` counts env
        steps (one joint step of all agents in one env copy). Each step: `explore()` gives
        (action to store, env action) for `self.obs` (the learner's own random actions before
        `learning_starts`); the observation normalizer sees `self.obs` after choosing, or
        before with `normalize_first`; `store_step` stores it. After `learning_starts`,
        `gradient_steps` updates every `train_freq` env steps (with n_envs > 1,
        `updates_per_step(cfg)` per env step, robustrl.core.loop); `sync_targets()` every
        `target_interval` env steps; every `log_interval` env steps the callback gets the
        episode statistics, the last update's metrics (read back to the host only then),
        `log_extras()` and the step rate."""
        cfg = self.config
        if self.envs is None:
            self.obs, _ = self.start_envs(cfg.n_envs)
        rate, last_log, metrics = StepRate(self.num_steps), self.num_steps, {}
        owed = 0.0  # n_envs > 1: updates due, fractional
        while self.num_steps < total_steps:
            if normalize_first and cfg.normalize_obs:
                self.obs_rms.update(self.obs.reshape(-1, self.obs_dim))
            action, env_action = explore()
            if not normalize_first and cfg.normalize_obs:
                self.obs_rms.update(self.obs.reshape(-1, self.obs_dim))
            self.store_step(action, env_action)
            before = self.num_steps
            self.num_steps += cfg.n_envs
            if cfg.n_envs > 1 and self.num_steps >= cfg.learning_starts:
                owed += cfg.n_envs * updates_per_step(cfg)
                for _ in range(int(owed)):
                    metrics = self.update()
                owed -= int(owed)
            elif self.num_steps >= cfg.learning_starts and crossed(before, self.num_steps,
                                                                   cfg.train_freq):
                for _ in range(gradient_steps):
                    metrics = self.update()
            if sync_targets is not None and crossed(before, self.num_steps, target_interval):
                sync_targets()
            if callback is not None and self.num_steps - last_log >= cfg.log_interval:
                last_log = self.num_steps
                logged = {**self.stats.metrics(), **host_floats(metrics), **log_extras(),
                          "steps_per_second": rate(self.num_steps)}
                if callback(self, logged) is False:
                    break

    def random_actions(self) -> np.ndarray:
        """Uniform discrete actions for every env copy and agent, (n_envs, n_agents)."""
        return self.rng.integers(0, self.act_dim, (self.config.n_envs, self.n_agents))

    def act_array(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """(..., n_agents, obs_dim) -> actions (..., n_agents[, act_dim]) in env format."""
        raise NotImplementedError

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """A dict {agent: obs} (each in its own space) gives a dict {agent: action}; an array
        (..., N, obs_dim) of padded observations an array."""
        if isinstance(obs, dict):
            actions = self.act_array(stack_obs(obs, self.agents, self.obs_dim), deterministic)
            return {a: (int(actions[j]) if self.discrete else actions[j])
                    for j, a in enumerate(self.agents) if a in obs}
        return self.act_array(np.asarray(obs, np.float32), deterministic)


__all__ = ["MultiAgent"]
