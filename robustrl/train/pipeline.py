"""The env pipeline of a run: make → reward wrapper → perturbations.

The run, not the agent, decides what wraps an env: training envs give the learned reward when
the run asks for one, evaluation envs give the env's own reward and may be perturbed. An agent
only ever sees a factory (its first call returns the env the run already made to read the
spaces), so nothing outside an agent assigns an agent's attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from robustrl.agents.base import Agent
from robustrl.core.guards import guard_env
from robustrl.envs import make
from robustrl.perturb import apply, parse
from robustrl.perturb.base import AdversaryFn
from robustrl.reward import (
    HeronConfig,
    PreferenceLoop,
    RewardConfig,
    build_loop,
    check_vectorization,
)

EnvFactory = Callable[[], Any]


def first_then(first: Any, make_next: EnvFactory) -> EnvFactory:
    """A factory whose first call returns `first` (the env already made to read the spaces,
    so it is not made twice) and every later call `make_next()`."""
    pending = [first]
    return lambda: pending.pop() if pending else make_next()


def training_envs(agent_cls: type[Agent], env_id: str, env_kwargs: dict[str, Any],
                  agent_config: Any, reward: RewardConfig, heron: HeronConfig,
                  seed: int = 0) -> tuple[EnvFactory, PreferenceLoop | None]:
    """The factory a run hands its `agent_cls` learner, and the preference loop behind it
    (None when the run trains on the env reward).

    The first env is made here and checked with `agent_cls.spaces_of` (one line if the learner
    cannot use it). With a learned reward (`reward.method` learned / heron / weighted) the
    loop is built from those spaces and wraps every env the factory makes; the reward model
    lives in this process, so an agent that would step envs in worker processes
    (`agent_config.vector = "async"`) is refused.
    """
    probe = make(env_id, **env_kwargs)
    try:
        observation_space, action_space, n_agents = agent_cls.spaces_of(probe)
        if reward.method == "none":  # every env's outputs are checked for NaN/Inf
            return first_then(guard_env(probe), lambda: guard_env(make(env_id, **env_kwargs))), None
        check_vectorization(getattr(agent_config, "vector", "sync"))
        loop = build_loop(reward, heron, env_id=env_id, observation_space=observation_space,
                          action_space=action_space, n_agents=n_agents, seed=seed)
    except BaseException:
        probe.close()
        raise
    return first_then(loop.wrap(guard_env(probe)),
                      lambda: loop.wrap(guard_env(make(env_id, **env_kwargs)))), loop


def eval_env(agent: Agent, perturb: Sequence[str] = (), *, seed: int | None = None,
             adversary: AdversaryFn | None = None, surrogate: Any = None,
             render_mode: str | None = None) -> Any:
    """A fresh env to evaluate `agent` on: its env without the run's reward wrapper (scores
    are env returns), under the perturbation specs `perturb` (seeded by `seed`; `adversary`
    plays `policy=adversary` / `source=adversary` specs; obs-transfer specs take their
    gradients from `surrogate`, an agent, else from their `surrogate=RUN_DIR`; `render_mode`
    goes to the env, e.g. "rgb_array" to record video).

    A dynamics perturbation changes the simulation itself, so the env must run in this process;
    the agent's own envs are closed first, since a simulator that allows one instance per
    process (libsumo) may be held by them (`learn` makes new ones).
    """
    from robustrl.train.transfer import surrogate_policy

    specs = [parse(s) for s in perturb]
    if any(s.kind.startswith("dyn-") for s in specs):
        agent.close()
    surrogate_fn = surrogate_policy(specs, surrogate)  # loaded (and closed) before the env
    render = {"render_mode": render_mode} if render_mode else {}
    env = make(agent.env_id, **agent.env_kwargs, **render) if agent.env_id else agent.env_fn()
    if not specs:
        return env
    try:
        return apply(env, specs, policy_fn=agent.attack_policy, obs_scale=agent.obs_scale,
                     adversary=adversary, seed=seed, surrogate_fn=surrogate_fn)
    except BaseException:
        env.close()
        raise


__all__ = ["EnvFactory", "eval_env", "first_then", "training_envs"]
