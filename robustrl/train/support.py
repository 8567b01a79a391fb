"""What a learner can be asked to do: one-line refusals read from the registry's capabilities.

Checked when a run's config is resolved (`build_run`), so `robustrl train` refuses before its
run directory is written and a bench suite before any of its jobs runs, instead of a learner
failing deep inside a run (or, worse, silently ignoring a setting).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from robustrl.agents import AGENTS, Capabilities, capabilities
from robustrl.core.errors import RobustRLError
from robustrl.envs import spec

AGENT_KINDS = {"single": "single-agent (Gymnasium)", "multi": "multi-agent (PettingZoo)"}


def learners_with(has: Callable[[Capabilities], bool]) -> str:
    """The registry names whose capabilities satisfy `has`, for the way out of a refusal."""
    return ", ".join(name for name in AGENTS if has(capabilities(name)))


def asks_ernie(agent_overrides: Mapping[str, Any]) -> bool:
    """Whether agent overrides set robust.method = ernie (as `robust.method` or a table)."""
    robust = agent_overrides.get("robust")
    method = robust.get("method") if isinstance(robust, Mapping) else None
    return "ernie" in (agent_overrides.get("robust.method"), method)


def check_supported(agent: str, env_id: str,
                    sections: Mapping[str, Mapping[str, Any]]) -> None:
    """One line unless `agent` can train online on `env_id` with these overrides (`sections`:
    the run, env, agent, reward and heron overrides of `build_run`)."""
    caps = capabilities(agent)
    if caps.learning == "offline":
        raise RobustRLError(f"{agent} is an offline learner: train it from a dataset with "
                            f"`robustrl train --agent {agent} --dataset FILE` (`robustrl data "
                            "generate` makes one)")
    if asks_ernie(sections["agent"]) and not caps.ernie:
        raise RobustRLError(f"{agent} has no ERNIE regularizer (robust.method=ernie); learners "
                            f"with it: {learners_with(lambda c: c.ernie)}")
    method = sections["reward"].get("method", "none")
    if method != "none" and not caps.learned_reward:
        raise RobustRLError(f"{agent} cannot train on a learned reward (reward.method={method}); "
                            f"learners that can: {learners_with(lambda c: c.learned_reward)}")
    kind = spec(env_id).kind
    if kind is not None and kind != caps.agents:
        fits = learners_with(lambda c: c.agents == kind and c.learning != "offline")
        raise RobustRLError(f"{agent} is a {AGENT_KINDS[caps.agents]} learner and {env_id} a "
                            f"{AGENT_KINDS[kind]} env; use one of: {fits}")


__all__ = ["asks_ernie", "check_supported", "learners_with"]
