"""Action perturbations (noise, probabilistic action robustness, random replacement) and
reward noise: what the env receives differs from what the agent chose, or the feedback does.

Random actions come from a private copy of each agent's action space reseeded from the
wrapper's RNG at every reset, so they work for every space Gymnasium can sample (Box, Discrete,
MultiDiscrete, MultiBinary, Tuple, Dict) and are reproducible.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.perturb.base import Agent, EnvView, Perturbation, SpaceSampler


def _boxes(p: Perturbation, view: EnvView, why: str) -> dict[Agent, gym.spaces.Box]:
    spaces = {a: view.action_space(a) for a in p.targets}
    bad = {a: s for a, s in spaces.items() if not isinstance(s, gym.spaces.Box)}
    if bad:
        agent, space = next(iter(bad.items()))
        raise RobustRLError(f"{p.spec.kind}{why} needs Box actions; {view.name} acts in "
                            f"{type(space).__name__}{'' if agent is None else f' for {agent}'}; "
                            "use act-replace or act-pra for discrete actions")
    return spaces


def _clip(space: gym.spaces.Box, a: np.ndarray) -> np.ndarray:
    return np.clip(a, space.low, space.high).astype(space.dtype, copy=False)


class ActGaussian(Perturbation):
    """act-gaussian: a + sigma * half_range * N(0, 1), clipped to the Box.

    sigma is relative to half the action range so one value means the same on every dimension
    (it is the plain std for the usual [-1, 1] actions, and for unbounded dimensions).
    """

    def bind(self, view: EnvView) -> None:
        super().bind(view)
        self.spaces = _boxes(self, view, "")
        self.half = {}
        for a, s in self.spaces.items():
            half = (s.high.astype(np.float64) - s.low) / 2
            self.half[a] = np.where(np.isfinite(half), half, 1.0)

    def action(self, actions, last_obs, rng):
        if self.strength == 0:
            return actions
        return {a: _clip(self.spaces[a], np.asarray(u) + rng.normal(0, self.strength, np.shape(u))
                         * self.half[a]) for a, u in actions.items()}


class ActPRA(Perturbation):
    """act-pra: with probability alpha the adversary's (or a random) action is played instead.

    mode=mix (Box only) always plays (1 - alpha) * a + alpha * a_adv (noisy action robustness).
    The adversary is a random policy unless source=adversary, which calls the `adversary`
    callable given to `apply()` with (observation, agent).
    """

    def bind(self, view: EnvView) -> None:
        super().bind(view)
        self.mix = self.spec.get("mode") == "mix"
        if self.mix:
            self.spaces = _boxes(self, view, ",mode=mix")
        if self.spec.get("source") == "adversary" and self.ctx.adversary is None:
            raise RobustRLError("act-pra,source=adversary needs the adversary policy: pass "
                                "adversary=callable(observation, agent) -> action to apply()")
        self.samplers = {a: SpaceSampler(view.action_space(a)) for a in self.targets}
        self.hit: dict[Agent, bool] = {}

    def params(self) -> dict[str, Any]:
        return {"alpha": self.strength, "mode": self.spec.get("mode"),
                "source": self.spec.get("source")}

    def agent_params(self, agent: Agent) -> dict[str, Any]:
        return {"adversarial": self.hit.get(agent, False)}

    def new_episode(self, rng):
        for s in self.samplers.values():
            s.seed(rng)
        self.hit = {}

    def _adversary(self, agent: Agent, obs: Any) -> Any:
        if self.spec.get("source") == "adversary":
            return self.ctx.adversary(obs, agent)
        return self.samplers[agent].sample()

    def action(self, actions, last_obs, rng):
        if self.strength == 0:
            return actions
        if self.mix:
            self.hit = dict.fromkeys(actions, True)
            return {a: _clip(self.spaces[a], (1 - self.strength) * np.asarray(u)
                             + self.strength * np.asarray(self._adversary(a, last_obs.get(a))))
                    for a, u in actions.items()}
        draws = rng.random(len(actions)) < self.strength
        self.hit = dict(zip(actions, draws.tolist(), strict=True))
        return {a: self._adversary(a, last_obs.get(a)) if hit else u
                for (a, u), hit in zip(actions.items(), draws, strict=True)}


class ActReplace(Perturbation):
    """act-replace: each agent's action is replaced by a uniformly random one with prob p
    (ERNIE's faulty-action protocol, p = 0.05)."""

    def bind(self, view: EnvView) -> None:
        super().bind(view)
        self.samplers = {a: SpaceSampler(view.action_space(a)) for a in self.targets}
        self.hit: dict[Agent, bool] = {}

    def params(self) -> dict[str, Any]:
        return {"p": self.strength}

    def agent_params(self, agent: Agent) -> dict[str, Any]:
        return {"replaced": self.hit.get(agent, False)}

    def new_episode(self, rng):
        for s in self.samplers.values():
            s.seed(rng)
        self.hit = {}

    def action(self, actions, last_obs, rng):
        draws = rng.random(len(actions)) < self.strength
        self.hit = dict(zip(actions, draws.tolist(), strict=True))
        return {a: self.samplers[a].sample() if hit else u
                for (a, u), hit in zip(actions.items(), draws, strict=True)}


class RewardGaussian(Perturbation):
    """reward-gaussian: r + N(0, sigma^2) (raw reward units), per agent."""

    def reward(self, rewards, rng):
        if self.strength == 0:
            return rewards
        noise = rng.normal(0.0, self.strength, len(rewards))
        return {a: float(r) + float(n) for (a, r), n in zip(rewards.items(), noise, strict=True)}
