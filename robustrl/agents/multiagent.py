"""What the multi-agent learners share: PettingZoo ParallelEnv handling, agent-id one-hots,
batched stepping of several env copies, per-agent episode stats, GAE, a multi-agent replay.

The learners (IPPO/MAPPO, MADDPG, IDQN) share one network across agents (parameter sharing)
and tell agents apart by a one-hot id appended to the observation, so every update is one
batched pass over (time x envs x agents) samples. That needs homogeneous agents: the same
observation and action space for every agent, and every agent acting at every step until the
episode ends (true for mpe and the traffic grids); anything else is refused with one line.

Acting on a ParallelEnv: `agent.act({name: obs})` returns `{name: action}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.agents.base import Agent
from robustrl.core.buffer import ReplayBuffer
from robustrl.core.episodes import EpisodeStats
from robustrl.core.errors import RobustRLError
from robustrl.core.seeding import seed_everything


def is_parallel_env(env: Any) -> bool:
    return hasattr(env, "possible_agents") and callable(getattr(env, "observation_space", None))


def one_hot_ids(n_agents: int) -> np.ndarray:
    """(n_agents, n_agents) identity: row i is appended to agent i's observation."""
    return np.eye(n_agents, dtype=np.float32)


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, gamma: float,
        lam: float) -> np.ndarray:
    """Generalized advantage estimates over a (T, ...) rollout; `values` has T + 1 rows.

    The loop runs over time only; every other axis (envs, agents) is vectorized.
    """
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * values[t + 1] * not_done - values[t]
        last = delta + gamma * lam * not_done * last
        advantages[t] = last
    return advantages


def multi_agent_buffer(capacity: int, n_agents: int, obs_dim: int, action_shape: tuple[int, ...],
                       action_dtype: Any = np.float32) -> ReplayBuffer:
    """The one replay buffer, holding joint transitions: obs (N, obs_dim), actions (N, ...),
    rewards and terminated (N,) per agent."""
    buf = ReplayBuffer(capacity, (n_agents, obs_dim), (n_agents, *action_shape), action_dtype)
    buf.rewards = np.zeros((capacity, n_agents), np.float32)
    buf.terminated = np.zeros((capacity, n_agents), np.float32)
    return buf


class MultiAgentStats(EpisodeStats):
    """Episode returns summed over agents (the team return), plus each agent's own mean."""

    def __init__(self, n_envs: int, agents: list[str], window: int = 20):
        super().__init__(n_envs, window)
        self.agents = agents
        self.agent_returns = np.zeros((n_envs, len(agents)))
        self.finished_agent: list[np.ndarray] = []
        self.window = window

    def step_agents(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """rewards (n_envs, n_agents); dones (n_envs,)."""
        self.agent_returns += rewards
        for i in np.flatnonzero(dones):
            self.finished_agent = [*self.finished_agent[-(self.window - 1):],
                                   self.agent_returns[i].copy()]
            self.agent_returns[i] = 0.0
        self.step(rewards.sum(1), dones)

    def metrics(self) -> dict[str, float]:
        out = super().metrics()
        if self.finished_agent:
            means = np.mean(self.finished_agent, 0)
            out.update({f"return/{a}": float(m) for a, m in zip(self.agents, means)})
        return out


class ParallelEnvs:
    """n copies of a ParallelEnv stepped together, with arrays instead of dicts.

    Observations come as (n_envs, n_agents, obs_dim); an env whose episode ended is reset at
    once and its final observation (and global state) returned for bootstrapping.
    """

    def __init__(self, envs: list[Any], agents: list[str], seed: int, want_state: bool):
        self.envs = envs
        self.agents = agents
        self.seed = seed
        self.want_state = want_state
        self.resets = 0

    def _obs(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(obs[a], np.float32).ravel() for a in self.agents])

    def _state(self, env: Any, obs: np.ndarray) -> np.ndarray:
        if hasattr(env, "state"):
            try:
                return np.asarray(env.state(), np.float32).ravel()
            except (NotImplementedError, AttributeError):
                pass
        return obs.ravel()

    def _reset_one(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        obs, _ = self.envs[i].reset(seed=self.seed + self.resets)
        self.resets += 1
        o = self._obs(obs)
        return o, (self._state(self.envs[i], o) if self.want_state else None)

    def reset(self) -> tuple[np.ndarray, np.ndarray | None]:
        out = [self._reset_one(i) for i in range(len(self.envs))]
        obs = np.stack([o for o, _ in out])
        return obs, (np.stack([s for _, s in out]) if self.want_state else None)

    def step(self, actions: np.ndarray) -> dict[str, Any]:
        """actions (n_envs, n_agents, ...) -> dict of arrays; see the class docstring."""
        n, m = len(self.envs), len(self.agents)
        obs_l, state_l, final_obs, final_state, infos = [], [], {}, {}, []
        rewards = np.zeros((n, m), np.float32)
        terminated = np.zeros((n, m), bool)
        truncated = np.zeros((n, m), bool)
        for i, env in enumerate(self.envs):
            step_actions = {a: actions[i, j] for j, a in enumerate(self.agents)}
            obs, rew, term, trunc, info = env.step(step_actions)
            if set(obs) != set(self.agents) and env.agents:
                raise RobustRLError("multi-agent learners need every agent to act at every step "
                                    f"until the episode ends; got observations for {sorted(obs)}")
            rewards[i] = [rew.get(a, 0.0) for a in self.agents]
            terminated[i] = [term.get(a, False) for a in self.agents]
            truncated[i] = [trunc.get(a, False) for a in self.agents]
            o = self._obs(obs)
            s = self._state(env, o) if self.want_state else None
            infos.append(info)
            if not env.agents or (terminated[i] | truncated[i]).all():
                final_obs[i], final_state[i] = o, s
                o, s = self._reset_one(i)
            obs_l.append(o)
            state_l.append(s)
        return {"obs": np.stack(obs_l), "state": np.stack(state_l) if self.want_state else None,
                "rewards": rewards, "terminated": terminated, "truncated": truncated,
                "done": (terminated | truncated).all(1) | np.isin(np.arange(n), list(final_obs)),
                "final_obs": final_obs, "final_state": final_state, "infos": infos}

    def close(self) -> None:
        for env in self.envs:
            env.close()


class MultiAgent(Agent):
    """Base of the multi-agent learners: env handling of a ParallelEnv, space checks, acting
    with dicts. Subclasses fill in `_build`, `learn`, `act_array`, `policy_output`, state."""

    action_spaces: tuple[type[gym.Space], ...] = (gym.spaces.Box, gym.spaces.Discrete)

    def __init__(self, env: Any, config: Any = None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None):
        self.config = config if config is not None else self.Config()
        self.seed = seed
        self.env_kwargs = dict(env_kwargs or {})
        self.env_id = env if isinstance(env, str) else None
        self.rng = seed_everything(seed)
        self.num_steps = 0
        if is_parallel_env(env):
            instance = env
            env = self._single_instance(instance)
        self.env_fn = self._env_factory(env)
        probe = self.env_fn()
        if not is_parallel_env(probe):
            raise RobustRLError(f"{self.name} is a multi-agent learner and needs a PettingZoo "
                                f"ParallelEnv (e.g. mpe/simple_spread, traffic/2x2grid); got "
                                f"{type(probe).__name__} (use a single-agent learner: ppo, sac)")
        self.agents: list[str] = list(probe.possible_agents)
        self.n_agents = len(self.agents)
        spaces = [(probe.observation_space(a), probe.action_space(a)) for a in self.agents]
        self.observation_space, self.action_space = spaces[0]
        for a, (o, s) in zip(self.agents, spaces):
            if o.shape != self.observation_space.shape or s != self.action_space:
                raise RobustRLError(
                    f"{self.name} shares one network across agents and needs identical spaces; "
                    f"agent {a} has {o} / {s}, {self.agents[0]} has {self.observation_space} / "
                    f"{self.action_space}")
        self.check_spaces(self.observation_space, self.action_space)
        self.obs_dim = int(np.prod(self.observation_space.shape))
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        self.act_dim = int(self.action_space.n) if self.discrete else int(
            np.prod(self.action_space.shape))
        self.ids = one_hot_ids(self.n_agents)
        self._probe_env = probe
        self.envs: ParallelEnvs | None = None
        self._build()

    def _single_instance(self, instance: Any) -> Callable[[], Any]:
        used: list[bool] = []

        def factory() -> Any:
            if used:
                raise RobustRLError(f"{self.name} needs another env copy; pass an env id or a "
                                    "factory (lambda: MyEnv()) instead of an instance")
            used.append(True)
            return instance

        return factory

    def make_envs(self, n: int, want_state: bool = False) -> ParallelEnvs:
        first = self.take_env()
        envs = [first] + [self.make_extra_env() for _ in range(n - 1)]
        return ParallelEnvs(envs, self.agents, self.seed, want_state)

    # ----------------------------------------------------------------- acting
    def inputs(self, obs: np.ndarray, rms: Any = None) -> np.ndarray:
        """(..., n_agents, obs_dim) raw -> normalized observations with the agent one-hot."""
        obs = np.asarray(obs, np.float32)
        if rms is not None:
            obs = rms.normalize(obs)
        ids = np.broadcast_to(self.ids, (*obs.shape[:-1], self.n_agents))
        return np.concatenate([obs, ids], -1)

    @property
    def attack_policy(self) -> dict[str, Callable[[Any], Any]]:
        return self.policy_fns

    @property
    def policy_fns(self) -> dict[str, Callable[[Any], Any]]:
        """{agent: f(obs (B, obs_dim)) -> that agent's policy output}, differentiable: the
        per-agent form perturbation attacks and the ERNIE regularizer take (`policy_output`
        itself maps joint observations (..., n_agents, obs_dim))."""

        def for_agent(i: int) -> Callable[[Any], Any]:
            def fn(obs: Any) -> Any:
                joint = obs.new_zeros(*obs.shape[:-1], self.n_agents, obs.shape[-1])
                joint = joint.index_copy(-2, obs.new_tensor([i], dtype=int),
                                         obs.unsqueeze(-2))
                return self.policy_output(joint)[..., i, :]
            return fn

        return {a: for_agent(i) for i, a in enumerate(self.agents)}

    def act_array(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """(..., n_agents, obs_dim) -> actions (..., n_agents[, act_dim]) in env format."""
        raise NotImplementedError

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """A dict {agent: obs} gives a dict {agent: action}; an array (..., N, obs_dim) an array."""
        if isinstance(obs, dict):
            zeros = np.zeros(self.obs_dim, np.float32)
            stacked = np.stack([np.asarray(obs.get(a, zeros), np.float32).ravel()
                                for a in self.agents])
            actions = self.act_array(stacked, deterministic)
            return {a: (int(actions[j]) if self.discrete else actions[j])
                    for j, a in enumerate(self.agents) if a in obs}
        return self.act_array(np.asarray(obs, np.float32), deterministic)


__all__ = ["MultiAgent", "MultiAgentStats", "ParallelEnvs", "gae", "is_parallel_env",
           "multi_agent_buffer", "one_hot_ids"]
