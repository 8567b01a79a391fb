"""PettingZoo ParallelEnvs as arrays: one shared (padded) space, stacked observations, several
env copies stepped together.

The multi-agent learners share one network across agents, so every agent's observation must
fit one input: same action space for every agent, observations of one shape or 1-D Boxes
zero-padded to the largest (`shared_spaces`, `stack_obs`). `ParallelEnvs` steps n copies and
hands back (n_envs, n_agents, ...) arrays, resetting a finished copy at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.core.errors import RobustRLError


def is_parallel_env(env: Any) -> bool:
    """PettingZoo's ParallelEnv API: per-agent spaces are methods, agents are named."""
    return hasattr(env, "possible_agents") and callable(getattr(env, "observation_space", None))


def one_hot_ids(n_agents: int) -> np.ndarray:
    """(n_agents, n_agents) identity: row i is appended to agent i's observation."""
    return np.eye(n_agents, dtype=np.float32)


def shared_spaces(env: Any, who: str) -> tuple[gym.Space, gym.Space]:
    """The one (observation, action) space of a network shared by all of `env`'s agents.

    Identical action spaces for every agent; observation spaces of one shape (the first
    agent's is used) or 1-D Boxes (then one Box of the largest size, the others zero-padded to
    it). Anything else is refused with one line naming `who` (the learner).
    """
    agents = list(env.possible_agents)
    obs = {a: env.observation_space(a) for a in agents}
    act = {a: env.action_space(a) for a in agents}
    first = agents[0]
    for a in agents:
        if act[a] != act[first]:
            raise RobustRLError(
                f"{who} shares one network across agents and needs the same action "
                f"space for every agent; agent {a} has {act[a]}, {first} has {act[first]}")
    if all(o.shape == obs[first].shape for o in obs.values()):
        return obs[first], act[first]
    for a, o in obs.items():
        if not isinstance(o, gym.spaces.Box) or len(o.shape) != 1:
            raise RobustRLError(
                f"{who} shares one network across agents: observation spaces may "
                f"differ only as 1-D Boxes (zero-padded to the largest); agent {a} has {o}")
    size = max(o.shape[0] for o in obs.values())
    low, high = np.zeros(size, np.float32), np.zeros(size, np.float32)
    for o in obs.values():
        low[:o.shape[0]] = np.minimum(low[:o.shape[0]], o.low)
        high[:o.shape[0]] = np.maximum(high[:o.shape[0]], o.high)
    return gym.spaces.Box(low, high, (size,), np.float32), act[first]


def stack_obs(obs: Mapping[str, Any], agents: Sequence[str], obs_dim: int) -> np.ndarray:
    """{agent: observation} -> (n_agents, obs_dim) float32 in `agents` order, each flattened and
    zero-padded to `obs_dim`; an agent missing from `obs` (done) gets zeros."""
    out = np.zeros((len(agents), obs_dim), np.float32)
    for j, a in enumerate(agents):
        if a in obs:
            o = np.asarray(obs[a], np.float32).ravel()
            out[j, :o.size] = o
    return out


class ParallelEnvs:
    """n copies of a ParallelEnv stepped together, with arrays instead of dicts.

    Observations come as (n_envs, n_agents, obs_dim), zero-padded to obs_dim (`stack_obs`); an
    env whose episode ended is reset at once and its final observation (and global state)
    returned for bootstrapping. Needs every agent to act at every step until the episode ends.
    """

    def __init__(self, envs: list[Any], agents: list[str], seed: int, want_state: bool,
                 obs_dim: int):
        self.envs = envs
        self.agents = agents
        self.agent_set = set(agents)
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
            if obs.keys() != self.agent_set and env.agents:
                raise RobustRLError("multi-agent learners need every agent to act at every step "
                                    f"until the episode ends; got observations for {sorted(obs)}")
            rewards[i] = [rew.get(a, 0.0) for a in self.agents]
            terminated[i] = [term.get(a, False) for a in self.agents]
            truncated[i] = [trunc.get(a, False) for a in self.agents]
            o = self._obs(obs)
            s = self._state(env, o) if self.want_state else None
            infos.append(info)
            # the arrays first: `env.agents` walks the wrapper chain's __getattr__
            if (terminated[i] | truncated[i]).all() or not env.agents:
                final_obs[i], final_state[i] = o, s
                o, s = self._reset_one(i)
            obs_l.append(o)
            state_l.append(s)
        done = (terminated | truncated).all(1)
        done[list(final_obs)] = True
        return {"obs": np.stack(obs_l), "state": np.stack(state_l) if self.want_state else None,
                "rewards": rewards, "terminated": terminated, "truncated": truncated,
                "done": done,
                "final_obs": final_obs, "final_state": final_state, "infos": infos}

    def close(self) -> None:
        for env in self.envs:
            env.close()
