"""Training and loading the adversary of an `adversary-agents,policy=adversary` cell.

The strong form of the malicious-agent perturbation: one agent is taken over by a policy
trained to hurt the rest of the team, while everyone else keeps playing the evaluated policy,
frozen. From the adversary's seat that is an ordinary single-agent task
(`robustrl.perturb.adversary.AdversaryEnv`), so it is trained with robustrl's own
single-agent PPO. It lives here, above agents, because perturb never imports an agent: the
trained policy is handed to `robustrl.perturb.apply(adversary=...)`.

    >>> from robustrl.bench.adversary import train_adversary
    >>> from robustrl.perturb.adversary import adversary_fn
    >>> adv = train_adversary(learner, "agent_2", steps=20_000, seed=0)
    >>> env = apply(learner.env_fn(), "adversary-agents:1,agents=agent_2,policy=adversary",
    ...             adversary=adversary_fn(adv))

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

from robustrl.agents import load, resolve_config
from robustrl.agents.ppo import PPO
from robustrl.bench.suite import Job, digest, trained_adversary
from robustrl.core.errors import RobustRLError
from robustrl.perturb import parse
from robustrl.perturb.adversary import AdversaryEnv, adversary_fn, frozen_team, spec_target
from robustrl.perturb.base import AdversaryFn

PPO_SETTINGS: dict[str, Any] = {"n_envs": 8, "n_steps": 128, "n_minibatches": 4,
                                "ent_coef": 0.01}
"""The adversary's PPO settings over agents/ppo.toml's defaults: rollouts of 1024 steps
(about 40 particle-world episodes), a little entropy bonus against early collapse."""


def _check_learner(learner: Any, target: str) -> None:
    agents = [str(a) for a in getattr(learner, "agents", ())]
    if not agents:
        raise RobustRLError(f"a trained adversary plays against a multi-agent learner; "
                            f"{getattr(learner, 'name', learner)} is single-agent")
    if target not in agents:
        raise RobustRLError(f"adversary: unknown agent {target}; the learner's agents are "
                            f"{', '.join(agents)}")


def adversary_envs(learner: Any, target: str, scored: Sequence[str] | None,
                   env_fn: Callable[[], Any] | None = None) -> Callable[[], AdversaryEnv]:
    """Factory of `AdversaryEnv` copies around `learner`'s env (or `env_fn`'s); a traffic
    copy runs in a subprocess worker when the learner holds the in-process simulation."""
    _check_learner(learner, target)
    make = env_fn or learner.env_fn
    team = frozen_team(learner)
    return lambda: AdversaryEnv(make(), team, target, scored)


def train_adversary(learner: Any, target: str, scored: Sequence[str] | None = None,
                    steps: int = 20_000, seed: int = 0,
                    env_fn: Callable[[], Any] | None = None, **ppo: Any) -> PPO:
    """Train a PPO policy for `target` that minimizes the `scored` agents' return (default:
    every other agent) while the rest play `learner` deterministically, frozen.

    `steps` env steps (rounded up to whole PPO rollouts); `env_fn` makes the ParallelEnv
    copies (default: the learner's own env); `ppo` overrides `PPO_SETTINGS` / agents/ppo.toml.
    Returns the trained PPO agent (its envs closed); `adversary_fn` turns it into the callable
    `robustrl.perturb.apply(adversary=...)` takes.
    """
    config = resolve_config("ppo", None, {**PPO_SETTINGS, **ppo})
    agent = PPO(adversary_envs(learner, target, scored, env_fn), config, seed=seed)
    try:
        agent.learn(steps)
    finally:
        agent.close()
    return agent


def load_adversary(path: str | Path, learner: Any, target: str,
                   scored: Sequence[str] | None = None,
                   env_fn: Callable[[], Any] | None = None) -> PPO:
    """An adversary saved with `agent.save(path)` by `train_adversary`'s caller, rebuilt
    against the same learner / target / scored agents."""
    agent = load(path, env=adversary_envs(learner, target, scored, env_fn))
    agent.close()
    return agent


def cell_adversary(agent: Any, job: Job, spec: str) -> AdversaryFn | None:
    """The `adversary` callable of an `adversary-agents,...,policy=adversary` cell (else None):
    a PPO policy for the replaced agent that minimizes the scored agents' return (score_agents,
    else every other agent) against the job's frozen trained agent, seeded by the job's seed.
    Trained once per run × spec and saved in the run directory, so a rerun reuses it."""
    if not trained_adversary(spec):
        return None
    target = spec_target(spec, list(agent.agents))
    scored = job.score_agents or [a for a in agent.agents if a != target]
    key = digest([spec, scored, job.seed, PPO_SETTINGS], 12)  # new settings: a new adversary
    path = Path(job.run_dir) / "adversaries" / f"{target}_{key}.pt"
    if path.exists():
        return adversary_fn(load_adversary(path, agent, target, scored))
    trained = train_adversary(agent, target, scored, steps=parse(spec).get("adv_steps"),
                              seed=job.seed)
    trained.save(path)  # atomic: a killed sweep leaves no half-written adversary
    return adversary_fn(trained)


__all__ = ["PPO_SETTINGS", "adversary_envs", "cell_adversary", "load_adversary",
           "train_adversary"]
