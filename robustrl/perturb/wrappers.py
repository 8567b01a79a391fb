"""The wrappers: one perturbation on a Gymnasium env or a PettingZoo ParallelEnv, and `apply`.

Both wrapper classes share `PerturbationWrapper`, which owns what must not differ between the
APIs: the `np.random.Generator` (reseeded by `reset(seed=...)`, salted by kind and wrapper
depth so stacked wrappers draw independent streams), the lifetime step counter behind
`start=T`, the per-episode draw behind `prob=P`, and `info["perturbation"]`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import BaseParallelWrapper

from robustrl.core.errors import RobustRLError
from robustrl.perturb.action import ActGaussian, ActPRA, ActReplace, RewardGaussian
from robustrl.perturb.agents import AdversaryAgents
from robustrl.perturb.base import KEY, AdversaryFn, Agent, Context, EnvView, Perturbation
from robustrl.perturb.dynamics import Dynamics
from robustrl.perturb.observation import ObsNoise, ObsPGD
from robustrl.perturb.spec import KINDS, PerturbationSpec, parse
from robustrl.perturb.transfer import ObsTransfer

FACTORIES: dict[str, type[Perturbation]] = {
    "obs-gaussian": ObsNoise,
    "obs-uniform": ObsNoise,
    "obs-shift": ObsNoise,
    "obs-pgd": ObsPGD,
    "obs-transfer": ObsTransfer,
    "act-gaussian": ActGaussian,
    "act-pra": ActPRA,
    "act-replace": ActReplace,
    **{kind: Dynamics for kind in KINDS if kind.startswith("dyn-")},
    "adversary-agents": AdversaryAgents,
    "reward-gaussian": RewardGaussian,
}

PolicyFn = Callable | Mapping[Any, Callable]


class PerturbationWrapper:
    """Schedule, seeding and reporting shared by the two wrapper classes."""

    perturbation: Perturbation
    perturbation_spec: PerturbationSpec
    """The spec this wrapper applies (`spec` is Gymnasium's EnvSpec on Gymnasium wrappers)."""

    def _setup(self, inner: Any, spec: str | PerturbationSpec, ctx: Context, view: EnvView,
               seed: int | None) -> None:
        self.perturbation_spec = parse(spec)
        self.perturbation = FACTORIES[self.perturbation_spec.kind](self.perturbation_spec, ctx)
        depth = sum(isinstance(e, PerturbationWrapper) for e in wrapper_chain(inner))
        salt = getattr(self.perturbation, "RNG_KIND", self.perturbation_spec.kind)
        self._salt = (zlib.crc32(salt.encode()), depth)
        self._rng: np.random.Generator | None = None if seed is None else self._new_rng(seed)
        self._t = 0
        self._episode_on = True
        self._on = False
        self._last_obs: dict[Agent, Any] = {}
        self.perturbation.bind(view)

    def _new_rng(self, seed: int | None) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=self._salt))

    @property
    def perturbation_rng(self) -> np.random.Generator:
        """This wrapper's own generator (seeded by `reset(seed=...)` or `apply(seed=...)`)."""
        if self._rng is None:
            self._rng = self._new_rng(None)
        return self._rng

    @property
    def active(self) -> bool:
        """Whether the perturbation is on now (schedule and per-episode draw)."""
        return self._episode_on and self._t >= self.perturbation_spec.start

    def _begin_reset(self, seed: int | None) -> None:
        if seed is not None:
            self._rng = self._new_rng(seed)
        rng, prob = self.perturbation_rng, self.perturbation_spec.prob
        self._switch(False)  # restore dynamics before the inner reset
        self._episode_on = bool(rng.random() < prob) if prob < 1 else True
        self.perturbation.new_episode(rng)
        if self.active:
            self.perturbation.before_reset()

    def _end_reset(self, obs: dict[Agent, Any]) -> dict[Agent, Any]:
        self._switch(self.active)
        self._last_obs = obs
        return self._observe(obs)

    def _switch(self, on: bool) -> None:
        if on != self._on:
            (self.perturbation.activate if on else self.perturbation.deactivate)()
            self._on = on

    def _targets(self, values: dict[Agent, Any]) -> dict[Agent, Any]:
        return {a: values[a] for a in self.perturbation.targets if a in values}

    def _observe(self, obs: dict[Agent, Any]) -> dict[Agent, Any]:
        if not self._on:
            return obs
        return {**obs, **self.perturbation.observation(self._targets(obs), self._rng)}

    def _act(self, actions: dict[Agent, Any]) -> dict[Agent, Any]:
        self._switch(self.active)  # a start=T schedule switches on before step T runs
        if not self._on:
            return actions
        new = self.perturbation.action(self._targets(actions), self._last_obs, self._rng)
        return {**actions, **new}

    def _after_step(self, obs: dict[Agent, Any], rewards: dict[Agent, Any]):
        self._t += 1
        self._last_obs = obs
        if not self._on:
            return obs, rewards
        new_rewards = self.perturbation.reward(self._targets(rewards), self._rng)
        return self._observe(obs), {**rewards, **new_rewards}

    def _report(self, info: dict[str, Any], agent: Agent) -> dict[str, Any]:
        spec = self.perturbation_spec
        entry = {"strength": spec.strength, "active": self._on, "start": spec.start,
                 "prob": spec.prob, **self.perturbation.params()}
        if self._on and agent in self.perturbation.targets:
            entry.update(self.perturbation.agent_params(agent))
        reported = dict(info.get(KEY, {}))
        key, n = spec.kind, 2
        while key in reported:
            key, n = f"{spec.kind}#{n}", n + 1
        reported[key] = entry
        return {**info, KEY: reported}


def wrapper_chain(env: Any):
    """The env and everything it wraps (both APIs), outermost first."""
    seen: set[int] = set()
    while env is not None and id(env) not in seen:
        seen.add(id(env))
        yield env
        env = vars(env).get("env") if hasattr(env, "__dict__") else None


class GymPerturbation(PerturbationWrapper, gym.Wrapper, gym.utils.RecordConstructorArgs):
    """One perturbation on a Gymnasium env; `info["perturbation"][kind]` holds its parameters.

    Records its constructor arguments so `env.spec.make()` (and `check_env`) can rebuild it.
    """

    def __init__(self, env: gym.Env, spec: str | PerturbationSpec, *,
                 policy_fn: PolicyFn | None = None, obs_scale: Any = None,
                 adversary: AdversaryFn | None = None, seed: int | None = None,
                 surrogate_fn: PolicyFn | None = None):
        # no deepcopy: policy_fn is bound to the agent, whose copy (replay buffer and all)
        # took 0.5 s per wrapper; a rebuilt wrapper attacks the same live policy
        gym.utils.RecordConstructorArgs.__init__(
            self, spec=str(spec), policy_fn=policy_fn, obs_scale=obs_scale, adversary=adversary,
            seed=seed, surrogate_fn=surrogate_fn, _disable_deepcopy=True)
        gym.Wrapper.__init__(self, env)
        self._setup(env, spec, Context(policy_fn, obs_scale, adversary, surrogate_fn),
                    EnvView(env, False, (None,)), seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._begin_reset(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        obs = self._end_reset({None: obs})[None]
        return obs, self._report(info, None)

    def step(self, action):
        action = self._act({None: action})[None]
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, reward = self._after_step({None: obs}, {None: reward})
        return obs[None], reward[None], terminated, truncated, self._report(info, None)

    def close(self):
        self._switch(False)
        return self.env.close()


class ParallelPerturbation(PerturbationWrapper, BaseParallelWrapper):
    """One perturbation on a PettingZoo ParallelEnv, applied per agent, reported in each
    agent's info."""

    def __init__(self, env: ParallelEnv, spec: str | PerturbationSpec, *,
                 policy_fn: PolicyFn | None = None, obs_scale: Any = None,
                 adversary: AdversaryFn | None = None, seed: int | None = None,
                 surrogate_fn: PolicyFn | None = None):
        BaseParallelWrapper.__init__(self, env)
        self._setup(env, spec, Context(policy_fn, obs_scale, adversary, surrogate_fn),
                    EnvView(env, True, tuple(env.possible_agents)), seed)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self._begin_reset(seed)
        obs, infos = self.env.reset(seed=seed, options=options)
        obs = self._end_reset(obs)
        return obs, self._report_all(infos, obs)

    def step(self, actions):
        obs, rewards, terminations, truncations, infos = self.env.step(self._act(actions))
        obs, rewards = self._after_step(obs, rewards)
        return obs, rewards, terminations, truncations, self._report_all(infos, obs)

    def _report_all(self, infos: dict[Agent, Any], obs: dict[Agent, Any]) -> dict[Agent, Any]:
        out = dict(infos)
        for agent in dict.fromkeys([*infos, *obs]):
            out[agent] = self._report(infos.get(agent, {}), agent)
        return out

    def close(self):
        self._switch(False)
        return self.env.close()


def apply(
    env: Any,
    specs: str | PerturbationSpec | Sequence[str | PerturbationSpec],
    *,
    policy_fn: PolicyFn | None = None,
    obs_scale: Any = None,
    adversary: AdversaryFn | None = None,
    seed: int | None = None,
    surrogate_fn: PolicyFn | None = None,
):
    """Wrap `env` (Gymnasium Env or PettingZoo ParallelEnv) in one wrapper per spec.

    The first spec is innermost. `policy_fn` (torch: batch of observations -> logits or mean
    action; or a dict agent -> fn) is what obs-pgd attacks; `obs_scale` (array, or dict agent ->
    array) is the normalizer std that makes strengths normalized; `adversary(observation,
    agent) -> action` plays for act-pra,source=adversary and adversary-agents,policy=frozen|
    adversary; `surrogate_fn` (like policy_fn) is the policy obs-transfer takes its gradients
    from. `seed` seeds the wrappers until a `reset(seed=...)` reseeds them. Every problem
    (unknown kind, bad strength, a kind that does not fit the env) is one `RobustRLError`.
    """
    items = [specs] if isinstance(specs, (str, PerturbationSpec)) else list(specs)
    parsed = [parse(s) for s in items]  # every spec is checked before anything is wrapped
    kwargs = {"policy_fn": policy_fn, "obs_scale": obs_scale, "adversary": adversary,
              "seed": seed, "surrogate_fn": surrogate_fn}
    for spec in parsed:
        if isinstance(env, ParallelEnv):
            env = ParallelPerturbation(env, spec, **kwargs)
        elif isinstance(env, gym.Env):
            env = GymPerturbation(env, spec, **kwargs)
        elif isinstance(env, AECEnv):
            raise RobustRLError(f"{spec.kind}: PettingZoo AEC envs are not supported; convert "
                                "with pettingzoo.utils.conversions.aec_to_parallel first")
        else:
            raise RobustRLError(f"{spec.kind}: cannot wrap {type(env).__name__}; expected a "
                                "Gymnasium Env or a PettingZoo ParallelEnv")
    return env


def applied(env: Any) -> list[PerturbationSpec]:
    """The specs of the perturbation wrappers around `env`, innermost first."""
    return [e.perturbation_spec for e in wrapper_chain(env)
            if isinstance(e, PerturbationWrapper)][::-1]
