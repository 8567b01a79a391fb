"""What the multi-agent learners share: PettingZoo ParallelEnv handling, agent-id one-hots,
batched stepping of several env copies, per-agent episode stats, GAE, a multi-agent replay.

The learners (IPPO/MAPPO, MADDPG, IDQN) share one network across agents (parameter sharing)
and tell agents apart by a one-hot id appended to the observation, so every update is one
batched pass over (time x envs x agents) samples. That needs the same action space for every
agent and every agent acting at every step until the episode ends (true for mpe and the traffic
grids). Observations may differ in size when every agent's is a 1-D Box (the teams of mpe's
simple_adversary, simple_tag, simple_push): each is zero-padded to the largest size, the
standard way (`stack_obs`; the id tells the roles apart). Anything else is refused with one line.

Padding stays inside the learner: `act({name: obs})` takes and returns dicts in the env's own
spaces, `policy_fns[name]` takes that agent's own observation size, `obs_scale` is per agent,
and ERNIE never perturbs padding (`robust_scale`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

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


def stack_obs(obs: Mapping[str, Any], agents: Sequence[str], obs_dim: int) -> np.ndarray:
    """{agent: observation} -> (n_agents, obs_dim) float32 in `agents` order, each flattened and
    zero-padded to `obs_dim`; an agent missing from `obs` (done) gets zeros."""
    out = np.zeros((len(agents), obs_dim), np.float32)
    for j, a in enumerate(agents):
        if a in obs:
            o = np.asarray(obs[a], np.float32).ravel()
            out[j, :o.size] = o
    return out


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

    Observations come as (n_envs, n_agents, obs_dim), zero-padded to obs_dim (`stack_obs`); an
    env whose episode ended is reset at once and its final observation (and global state)
    returned for bootstrapping.
    """

    def __init__(self, envs: list[Any], agents: list[str], seed: int, want_state: bool,
                 obs_dim: int):
        self.envs = envs
        self.agents = agents
        self.seed = seed
        self.want_state = want_state
        self.obs_dim = obs_dim
        self.resets = 0

    def _obs(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return stack_obs(obs, self.agents, self.obs_dim)

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
        self.observation_space, self.action_space = self._shared_spaces(probe)
        self.check_spaces(self.observation_space, self.action_space)
        self.obs_dim = int(np.prod(self.observation_space.shape))
        # Each agent's own observation size (obs_dim is the largest, the padded size), and
        # obs_mask (n_agents, obs_dim): 1 on each agent's own observation, 0 on its padding.
        self.obs_sizes = [int(np.prod(probe.observation_space(a).shape)) for a in self.agents]
        self.padded = min(self.obs_sizes) < self.obs_dim
        self.obs_mask = (np.arange(self.obs_dim) < np.array(self.obs_sizes)[:, None]).astype(
            np.float32)
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        self.act_dim = int(self.action_space.n) if self.discrete else int(
            np.prod(self.action_space.shape))
        self.ids = one_hot_ids(self.n_agents)
        self._probe_env = probe
        self.envs: ParallelEnvs | None = None
        self._build()

    def _shared_spaces(self, probe: Any) -> tuple[gym.Space, gym.Space]:
        """The one (observation, action) space of the shared network: identical action spaces
        for every agent, observation spaces of one shape (the first agent's is used) or 1-D
        Boxes (then one Box of the largest size, the others zero-padded to it); anything else
        is one line."""
        obs = {a: probe.observation_space(a) for a in self.agents}
        act = {a: probe.action_space(a) for a in self.agents}
        first = self.agents[0]
        for a in self.agents:
            if act[a] != act[first]:
                raise RobustRLError(
                    f"{self.name} shares one network across agents and needs the same action "
                    f"space for every agent; agent {a} has {act[a]}, {first} has {act[first]}")
        if all(o.shape == obs[first].shape for o in obs.values()):
            return obs[first], act[first]
        for a, o in obs.items():
            if not isinstance(o, gym.spaces.Box) or len(o.shape) != 1:
                raise RobustRLError(
                    f"{self.name} shares one network across agents: observation spaces may "
                    f"differ only as 1-D Boxes (zero-padded to the largest); agent {a} has {o}")
        size = max(o.shape[0] for o in obs.values())
        low, high = np.zeros(size, np.float32), np.zeros(size, np.float32)
        for o in obs.values():
            low[:o.shape[0]] = np.minimum(low[:o.shape[0]], o.low)
            high[:o.shape[0]] = np.maximum(high[:o.shape[0]], o.high)
        return gym.spaces.Box(low, high, (size,), np.float32), act[first]

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
        return ParallelEnvs(envs, self.agents, self.seed, want_state, self.obs_dim)

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
        """{agent: f(obs (B, that agent's own obs size)) -> its policy output}, differentiable:
        the per-agent form perturbation attacks and the ERNIE regularizer take (`policy_output`
        itself maps joint padded observations (..., n_agents, obs_dim))."""
        return {a: self.joint_policy([a], squeeze=True) for a in self.agents}

    def joint_policy(self, agents: Sequence[str] | None = None,
                     squeeze: bool = False) -> Callable[[Any], Any]:
        """f(x (B, the named agents' own observations concatenated)) -> their policy outputs
        (B, k, out) (squeeze: (B, out) for one agent), differentiable; agents not named see
        zeros. The bench's Lipschitz estimate takes it: the ball covers exactly what those
        agents observe, never padding. Default: every agent, in `self.agents` order."""
        names = list(self.agents if agents is None else agents)
        index = [self.agents.index(a) for a in names]
        sizes = [self.obs_sizes[i] for i in index]

        def fn(x: Any) -> Any:
            parts = dict(zip(index, x.split(sizes, -1)))
            zeros = x.new_zeros(*x.shape[:-1], self.obs_dim)
            joint = torch.stack([
                torch.nn.functional.pad(parts[i], (0, self.obs_dim - parts[i].shape[-1]))
                if i in parts else zeros for i in range(self.n_agents)], -2)
            out = self.policy_output(joint)[..., index, :]
            return out[..., 0, :] if squeeze else out

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
        scale = self.ernie.scale(per_agent, x.shape[-1], actions)
        if not self.padded:
            return scale
        mask = torch.from_numpy(self.obs_mask).to(x.dtype)
        if obs == "joint":
            return torch.cat([scale[:per_agent] * mask.flatten(), scale[per_agent:]])
        own = x[:, -self.n_agents:] @ mask  # the one-hot id picks the agent's row
        return torch.cat([scale[:per_agent] * own, scale[per_agent:].expand(len(x), -1)], -1)

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


__all__ = ["MultiAgent", "MultiAgentStats", "ParallelEnvs", "gae", "is_parallel_env",
           "multi_agent_buffer", "one_hot_ids", "stack_obs"]
