"""A trained adversary for one agent of a multi-agent team (adversary-agents,policy=adversary).

The strong form of the malicious-agent perturbation: one agent is taken over by a policy
trained to hurt the rest of the team, while everyone else keeps playing the evaluated policy,
frozen. From the adversary's seat that is an ordinary single-agent task, so it is trained with
robustrl's own single-agent PPO on `AdversaryEnv`:

    >>> from robustrl.perturb import adversary, apply
    >>> adv = adversary.train_adversary(learner, "agent_2", steps=20_000, seed=0)
    >>> env = apply(learner.env_fn(), "adversary-agents:1,agents=agent_2,policy=adversary",
    ...             adversary=adversary.adversary_fn(adv))

What it optimizes: the expected sum over the episode of minus the scored agents' summed
reward (undiscounted in the score, γ-discounted in PPO's objective), i.e. it minimizes the
return the bench scores, against the evaluated policy acting deterministically as it does
in evaluation. It is a best response to that fixed policy, not an equilibrium: the team
does not adapt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.perturb.base import AdversaryFn
from robustrl.perturb.spec import PerturbationSpec, parse

TeamPolicy = Callable[[dict[str, Any]], dict[str, Any]]
"""{agent: observation} -> {agent: action}, e.g. a MultiAgent learner's `act`."""

PPO_SETTINGS: dict[str, Any] = {"n_envs": 8, "n_steps": 128, "n_minibatches": 4,
                                "ent_coef": 0.01}
"""The adversary's PPO settings over agents/ppo.toml's defaults: rollouts of 1024 steps
(about 40 particle-world episodes), a little entropy bonus against early collapse."""


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


def _check_learner(learner: Any, target: str) -> None:
    agents = [str(a) for a in getattr(learner, "agents", ())]
    if not agents:
        raise RobustRLError(f"a trained adversary plays against a multi-agent learner; "
                            f"{getattr(learner, 'name', learner)} is single-agent")
    if target not in agents:
        raise RobustRLError(f"adversary: unknown agent {target}; the learner's agents are "
                            f"{', '.join(agents)}")


def _adversary_envs(learner: Any, target: str, scored: Sequence[str] | None,
                    env_fn: Callable[[], Any] | None) -> Callable[[], AdversaryEnv]:
    """Factory of `AdversaryEnv` copies around `learner`'s env (or `env_fn`'s)."""
    _check_learner(learner, target)
    make = env_fn or learner.make_extra_env  # traffic: another process per copy
    team = frozen_team(learner)
    return lambda: AdversaryEnv(make(), team, target, scored)


def _ppo(learner: Any, target: str, scored: Sequence[str] | None, seed: int,
         env_fn: Callable[[], Any] | None, overrides: dict[str, Any]):
    from robustrl.agents import resolve_config
    from robustrl.agents.ppo import PPO

    config = resolve_config("ppo", None, {**PPO_SETTINGS, **overrides})
    return PPO(_adversary_envs(learner, target, scored, env_fn), config, seed=seed)


def train_adversary(learner: Any, target: str, scored: Sequence[str] | None = None,
                    steps: int = 20_000, seed: int = 0,
                    env_fn: Callable[[], Any] | None = None, **ppo: Any):
    """Train a PPO policy for `target` that minimizes the `scored` agents' return (default:
    every other agent) while the rest play `learner` deterministically, frozen.

    `steps` env steps (rounded up to whole PPO rollouts); `env_fn` makes the ParallelEnv
    copies (default: the learner's own env); `ppo` overrides `PPO_SETTINGS` / agents/ppo.toml.
    Returns the trained PPO agent (its envs closed); `adversary_fn` turns it into the callable
    `robustrl.perturb.apply(adversary=...)` takes.
    """
    agent = _ppo(learner, target, scored, seed, env_fn, ppo)
    try:
        agent.learn(steps)
    finally:
        agent.close()
    return agent


def load_adversary(path: str | Path, learner: Any, target: str,
                   scored: Sequence[str] | None = None,
                   env_fn: Callable[[], Any] | None = None):
    """An adversary saved with `agent.save(path)` by `train_adversary`'s caller, rebuilt
    against the same learner / target / scored agents."""
    from robustrl.agents import load

    agent = load(path, env=_adversary_envs(learner, target, scored, env_fn))
    agent.close()
    return agent


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


__all__ = ["PPO_SETTINGS", "AdversaryEnv", "adversary_fn", "frozen_team", "load_adversary",
           "spec_target", "train_adversary"]
