"""Observation perturbations: random noise, a constant shift, and adversarial PGD.

Every strength is in normalized observation units: with `obs_scale` (the agent's observation
normalizer std, per dimension) the raw perturbation is strength * obs_scale, so sigma = 0.1
means "a tenth of a typical deviation" on every dimension. Perturbed observations are clipped
to the observation space's bounds so the env still honours its own space.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.perturb.base import Agent, EnvView, Perturbation


class _BoxObservation(Perturbation):
    """Checks Box observation spaces and keeps their bounds and the normalizer scale."""

    def bind(self, view: EnvView) -> None:
        super().bind(view)
        self.spaces: dict[Agent, gym.spaces.Box] = {}
        self.scales: dict[Agent, np.ndarray] = {}
        for agent in self.targets:
            space = view.observation_space(agent)
            if not isinstance(space, gym.spaces.Box):
                raise RobustRLError(
                    f"{self.spec.kind} needs Box observations; {view.name} observes "
                    f"{type(space).__name__}{'' if agent is None else f' for {agent}'}")
            self.spaces[agent] = space
            scale = view.per_agent(self.ctx.obs_scale, agent, f"{self.spec.kind}: obs_scale")
            self.scales[agent] = _scale(self.spec.kind, scale, space.shape)

    def _clip(self, agent: Agent, obs: np.ndarray) -> np.ndarray:
        space = self.spaces[agent]
        return np.clip(obs, space.low, space.high).astype(space.dtype, copy=False)


_UNIT = np.float64(1.0)
"""The scale without a normalizer; one shared object, so PGD batches such agents together."""


def _scale(kind: str, scale: Any, shape: tuple[int, ...]) -> np.ndarray:
    if scale is None:
        return _UNIT
    arr = np.asarray(scale.detach().cpu() if hasattr(scale, "detach") else scale, np.float64)
    try:
        np.broadcast_shapes(arr.shape, shape)
    except ValueError:
        raise RobustRLError(f"{kind}: obs_scale has shape {arr.shape}, which does not match the "
                            f"observation shape {shape}") from None
    if not np.all(arr > 0):
        raise RobustRLError(f"{kind}: obs_scale must be > 0 everywhere (a normalizer std)")
    return arr


class ObsNoise(_BoxObservation):
    """obs-gaussian / obs-uniform / obs-shift: additive noise or shift in normalized units."""

    def params(self) -> dict[str, Any]:
        return {"normalized": self.ctx.obs_scale is not None}

    def observation(self, obs, rng):
        if self.strength == 0:
            return obs
        out = {}
        for agent, o in obs.items():
            o = np.asarray(o)
            if self.spec.kind == "obs-gaussian":
                noise = rng.normal(0.0, self.strength, o.shape)
            elif self.spec.kind == "obs-uniform":
                noise = rng.uniform(-self.strength, self.strength, o.shape)
            else:
                noise = self.strength
            out[agent] = self._clip(agent, o + noise * self.scales[agent])
        return out


class ObsPGD(_BoxObservation):
    """obs-pgd: the observation the policy would be most wrong about within the eps-ball.

    K steps from R random starts; per observation the iterate with the highest attack
    objective is kept. Agents sharing one attacked function and one observation shape are
    attacked as a single batch, and so are agents whose per-agent functions come with a
    `rows(agents)` function for all of them (robustrl's multi-agent learners). `_attacked` is
    the function the gradients come from: the evaluated policy here, a surrogate in
    obs-transfer.
    """

    def bind(self, view: EnvView) -> None:
        fn = self._attacked()
        super().bind(view)
        self.rows = getattr(fn, "rows", None) if view.multi else None
        self.fns = {a: view.per_agent(fn, a, f"{self.spec.kind}: policy_fn")
                    for a in self.targets}
        self.distances = {a: self._distance(view.action_space(a), a) for a in self.targets}

    def _attacked(self) -> Any:
        if self.ctx.policy_fn is None:
            raise RobustRLError(
                "obs-pgd attacks the evaluated policy: pass policy_fn= (observations -> logits or "
                "mean action, a torch callable) to robustrl.perturb.apply")
        return self.ctx.policy_fn

    def _distance(self, space: gym.Space, agent: Agent) -> str:
        """The objective as a distance of pgd.distance_per_sample (nll, kl or l2)."""
        chosen, discrete = self.spec.get("objective"), isinstance(space, gym.spaces.Discrete)
        if chosen == "kl" and not discrete:
            raise RobustRLError(
                f"{self.spec.kind}: objective=kl needs Discrete actions (categorical logits); "
                f"{self.view.name}{'' if agent is None else f' ({agent})'} acts in "
                f"{type(space).__name__}: use objective=action or l2")
        if chosen == "action":
            return "nll" if discrete else "l2"
        if chosen == "auto":  # flipping every greedy action it can hurt returns less (README)
            return "kl" if discrete else "l2"
        return chosen

    def params(self) -> dict[str, Any]:
        return {"eps": self.strength, "steps": self.spec.get("steps"),
                "restarts": self.spec.get("restarts"), "norm": self.spec.get("norm"),
                "objective": self.spec.get("objective"),
                "normalized": self.ctx.obs_scale is not None}

    def observation(self, obs, rng):
        if self.strength == 0:
            return obs
        import torch

        from robustrl.perturb.pgd import pgd_attack, policy_device

        groups: dict[tuple, list[Agent]] = {}
        for agent, o in obs.items():
            key = (np.shape(o), self.distances[agent])
            if self.rows is None:
                key += (id(self.fns[agent]), id(self.scales[agent]))
            groups.setdefault(key, []).append(agent)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        out = {}
        for agents in groups.values():
            fn, scale = self.fns[agents[0]], self.scales[agents[0]]
            if self.rows is not None and len(agents) > 1:  # one sample per agent
                fn = self.rows(agents)
                scale = np.stack([np.broadcast_to(self.scales[a], np.shape(obs[a]))
                                  for a in agents])
            device, dtype = policy_device(fn)
            batch = np.stack([np.asarray(obs[a]) for a in agents])
            x = torch.as_tensor(batch, dtype=dtype, device=device)
            delta = pgd_attack(
                fn, x, self.strength, self.spec.get("steps"), self.spec.get("norm"),
                self.distances[agents[0]], torch.as_tensor(scale, dtype=dtype, device=device),
                self.spec.get("step_size"), restarts=self.spec.get("restarts"), keep_best=True,
                generator=generator)
            perturbed = batch + delta.cpu().numpy().astype(np.float64)
            out.update({a: self._clip(a, p) for a, p in zip(agents, perturbed, strict=True)})
        return out
