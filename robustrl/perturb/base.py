"""Building blocks every perturbation kind uses, whatever the env API.

A `Perturbation` works on dicts keyed by agent (the key is `None` for a Gymnasium env), so each
kind is written once for single- and multi-agent envs; `wrappers.py` adapts it to both APIs
and owns the schedule and the random generator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.perturb.spec import PerturbationSpec

KEY = "perturbation"
Agent = Any
"""An agent id of a PettingZoo env, or None for a Gymnasium env."""
AdversaryFn = Callable[[Any, Agent], Any]
"""(observation, agent) -> action; agent is None on a Gymnasium env."""


@dataclass
class Context:
    """What `apply()` was given beyond the spec: the evaluated policy and an adversary."""

    policy_fn: Callable | Mapping[Agent, Callable] | None = None
    obs_scale: Any = None
    adversary: AdversaryFn | None = None
    surrogate_fn: Callable | Mapping[Agent, Callable] | None = None
    """obs-transfer: the surrogate policy the attack's gradients come from."""


@dataclass
class EnvView:
    """The wrapped env as a perturbation sees it, identical for both APIs."""

    env: Any
    multi: bool
    agents: tuple[Agent, ...]
    """possible_agents, or (None,) for a Gymnasium env."""

    def observation_space(self, agent: Agent) -> gym.Space:
        return self.env.observation_space(agent) if self.multi else self.env.observation_space

    def action_space(self, agent: Agent) -> gym.Space:
        return self.env.action_space(agent) if self.multi else self.env.action_space

    @property
    def name(self) -> str:
        """The env's id for error messages (Gymnasium spec id, PettingZoo metadata name)."""
        spec = getattr(self.env, "spec", None)
        if getattr(spec, "id", None):
            return spec.id
        metadata = getattr(self.env, "metadata", None) or {}
        return metadata.get("name") or type(self.env.unwrapped).__name__

    def per_agent(self, value: Any, agent: Agent, what: str) -> Any:
        """`value[agent]` when a mapping keyed by agent ids was given, else `value` itself."""
        if isinstance(value, Mapping) and self.multi:
            if agent not in value:
                raise RobustRLError(f"{what} has no entry for agent {agent}; give one per agent "
                                    "or a single value for all")
            return value[agent]
        return value


class Perturbation:
    """Base class: identity hooks; subclasses override the ones they perturb.

    `bind` runs once when wrapped and raises `RobustRLError` when the kind does not apply.
    `activate`/`deactivate` bracket the time the perturbation is on (dynamics write and
    restore simulator parameters there); the data hooks are only called while it is on.
    """

    def __init__(self, spec: PerturbationSpec, ctx: Context):
        self.spec = spec
        self.ctx = ctx
        self.strength = spec.strength
        self.view: EnvView | None = None
        self.targets: tuple[Agent, ...] = ()

    def bind(self, view: EnvView) -> None:
        self.view = view
        names = self.spec.options.get("agents")
        self.targets = check_agents(self.spec, view, names) if names else view.agents

    def params(self) -> dict[str, Any]:
        """Kind-specific parameters reported in `info["perturbation"]`."""
        return {}

    def agent_params(self, agent: Agent) -> dict[str, Any]:
        """Per-step, per-agent parameters (e.g. whether this action was replaced)."""
        return {}

    def new_episode(self, rng: np.random.Generator) -> None:
        """Per-episode draws (e.g. reseeding action-space samplers)."""

    def before_reset(self) -> None:
        """Runs before the inner reset of an episode that starts active (route-file swaps)."""

    def activate(self) -> None:
        """Turn the perturbation on (dynamics: write the scaled simulator parameters)."""

    def deactivate(self) -> None:
        """Turn it off again (dynamics: restore what activate() changed)."""

    def observation(self, obs: dict[Agent, Any], rng: np.random.Generator) -> dict[Agent, Any]:
        return obs

    def action(self, actions: dict[Agent, Any], last_obs: dict[Agent, Any],
               rng: np.random.Generator) -> dict[Agent, Any]:
        return actions

    def reward(self, rewards: dict[Agent, Any], rng: np.random.Generator) -> dict[Agent, Any]:
        return rewards


def check_agents(spec: PerturbationSpec, view: EnvView, names: tuple[str, ...]) -> tuple:
    """Resolve `agents=a+b` against the env's agent ids, with a one-line error if wrong."""
    if not view.multi:
        raise RobustRLError(f"{spec.kind}: agents= only applies to multi-agent (PettingZoo) envs; "
                            f"{view.name} is single-agent")
    by_name = {str(a): a for a in view.agents}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise RobustRLError(f"{spec.kind}: unknown agent(s) {', '.join(unknown)}; this env's "
                            f"agents are {', '.join(by_name)}")
    return tuple(by_name[n] for n in dict.fromkeys(names))


class SpaceSampler:
    """Samples an action space from the wrapper's RNG (a private, reseeded copy of the space)."""

    def __init__(self, space: gym.Space):
        self.space = copy.deepcopy(space)

    def seed(self, rng: np.random.Generator) -> None:
        self.space.seed(int(rng.integers(2**31)))

    def sample(self) -> Any:
        return self.space.sample()
