"""The env side of a trained adversary (adversary-agents,policy=adversary).

One agent of a multi-agent team is taken over by a policy trained to hurt the rest of the
team, while everyone else keeps playing the evaluated policy, frozen. From the adversary's
seat that is an ordinary single-agent task: `AdversaryEnv`. Training the policy needs an
agent, so it happens above perturb (`robustrl.bench.adversary`); here is only what the env
side needs: the single-agent view, the frozen team policy, the agent a spec replaces, and
`adversary_fn`, which turns a trained policy into the `apply(adversary=...)` callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.perturb.base import AdversaryFn
from robustrl.perturb.spec import PerturbationSpec, parse

TeamPolicy = Callable[[dict[str, Any]], dict[str, Any]]
"""{agent: observation} -> {agent: action}, e.g. a MultiAgent learner's `act`."""


class AdversaryEnv(gym.Env):
    """A PettingZoo ParallelEnv seen from `target`'s seat, every other agent frozen.

    `step(action)` plays `action` for `target` and `team(observations)` for everyone else:
    the team policy gets the full observation dict (as an evaluator calls it) and its action
    for `target` is dropped, which is exactly what the adversary-agents wrapper does during
    evaluation. The observation is `target`'s own; the reward is minus the summed reward of
    the `scored` agents for that step (`info["team_reward"]` holds the sum itself). The
    episode ends when `target` is done or no agent is left.
    """

    def __init__(self, env: Any, team: TeamPolicy, target: str,
                 scored: Sequence[str] | None = None):
        agents = [str(a) for a in env.possible_agents]
        if target not in agents:
            raise RobustRLError(f"adversary: unknown agent {target}; this env's agents are "
                                f"{', '.join(agents)}")
        scored = [a for a in agents if a != target] if not scored else list(scored)
        unknown = [a for a in scored if a not in agents]
        if unknown:
            raise RobustRLError(f"adversary: unknown scored agent(s) {', '.join(unknown)}; "
                                f"this env's agents are {', '.join(agents)}")
        self.env, self.team, self.target, self.scored = env, team, target, scored
        self.observation_space = env.observation_space(target)
        self.action_space = env.action_space(target)
        self._obs: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._obs, infos = self.env.reset(seed=seed, options=options)
        return self._obs[self.target], {}

    def step(self, action: Any):
        actions = self.team(self._obs)
        actions[self.target] = action
        self._obs, rewards, terminations, truncations, _ = self.env.step(actions)
        team_reward = float(sum(rewards.get(a, 0.0) for a in self.scored))
        done = self.target not in self.env.agents
        terminated = bool(terminations.get(self.target, False))
        truncated = done and not terminated
        obs = self._obs.get(self.target)
        if obs is None:  # target removed: the last observation only feeds a discarded value
            obs = np.zeros(self.observation_space.shape, self.observation_space.dtype)
        return obs, -team_reward, terminated, truncated, {"team_reward": team_reward}

    def close(self) -> None:
        self.env.close()


def frozen_team(learner: Any) -> TeamPolicy:
    """A robustrl MultiAgent learner's deterministic policy (as the bench evaluates it)."""
    return lambda obs: learner.act(obs, deterministic=True)


def adversary_fn(agent: Any) -> AdversaryFn:
    """`adversary(observation, agent_id) -> action` for `apply()`: the trained policy's
    deterministic action (an int for Discrete actions)."""
    discrete = isinstance(agent.action_space, gym.spaces.Discrete)

    def act(obs: Any, _agent: Any) -> Any:
        action = agent.act(np.asarray(obs, np.float32), deterministic=True)
        return int(action) if discrete else action

    return act


def spec_target(spec: str | PerturbationSpec, agents: Sequence[str]) -> str:
    """The one agent `adversary-agents,...,policy=adversary` replaces (its `agents=` name,
    else the last agent); one line unless k = 1, the only case a trained adversary covers."""
    spec = parse(spec)
    k = int(spec.strength)
    if k != 1:
        raise RobustRLError(f"{spec}: policy=adversary trains one adversary, so k must be 1 "
                            f"(got {k}); replace one agent, or use policy=random for k > 1")
    names = spec.get("agents") or tuple(agents[-1:])
    return str(names[0])


__all__ = ["AdversaryEnv", "adversary_fn", "frozen_team", "spec_target"]
