"""Agents: `make_agent(name, env, **config)` and `load(path)`.

Hyperparameter defaults come from the dataclass of each algorithm, then from
`agents/<name>.toml` (section `defaults`, then a family glob like `"mujoco/*"`, then the exact
env id), then from the caller's keyword arguments.
"""

from __future__ import annotations

import fnmatch
import importlib
import tomllib
from typing import Any

from robustrl.agents.base import Agent, EnvLike, read_checkpoint
from robustrl.core.config import from_dict, replace
from robustrl.core.errors import RobustRLError
from robustrl.core.paths import spec_dir

AGENTS: dict[str, str] = {
    "sac": "robustrl.agents.sac:SAC",
    "ppo": "robustrl.agents.ppo:PPO",
    "hybrid_sac": "robustrl.agents.hybrid_sac:HybridSAC",
    "mappo": "robustrl.agents.mappo:MAPPO",
    "ippo": "robustrl.agents.mappo:IPPO",
    "maddpg": "robustrl.agents.maddpg:MADDPG",
    "idqn": "robustrl.agents.idqn:IDQN",
    "mfq": "robustrl.agents.mfq:MFQ",
}
"""Agent name -> "module:Class"; a module is imported only when its agent is used."""


def agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        raise RobustRLError(f"unknown agent '{name}'; available: {', '.join(sorted(AGENTS))}")
    module, _, attr = AGENTS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def hyperparameters(name: str, env_id: str | None) -> dict[str, Any]:
    """The TOML defaults of agent `name` for `env_id` (most specific section wins)."""
    path = spec_dir("agents") / f"{name}.toml"
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        table = tomllib.load(f)
    merged = dict(table.get("defaults", {}))
    if env_id is not None:
        for pattern, section in table.items():
            if pattern != "defaults" and "*" in pattern and fnmatch.fnmatch(env_id, pattern):
                merged.update(section)
        merged.update(table.get(env_id, {}))
    return merged


def resolve_config(name: str, env_id: str | None, overrides: dict[str, Any] | None = None):
    """Dataclass defaults <- agents/<name>.toml <- overrides (dotted keys allowed)."""
    cls = agent_class(name)
    config = from_dict(cls.Config, hyperparameters(name, env_id), prefix="agent.")
    return replace(config, overrides or {}, prefix="agent.")


def make_agent(name: str, env: EnvLike, seed: int = 0, env_kwargs: dict[str, Any] | None = None,
               **config: Any) -> Agent:
    """Build agent `name` for `env` (an env id, a gymnasium.Env, or a factory)."""
    env_id = env if isinstance(env, str) else None
    return agent_class(name)(env, resolve_config(name, env_id, config), seed=seed,
                             env_kwargs=env_kwargs)


def load(path, env: EnvLike | None = None) -> Agent:
    """Load a saved agent; the env is remade from its id unless `env` is given."""
    checkpoint = read_checkpoint(path)
    cls = agent_class(checkpoint["agent"])
    env = env if env is not None else checkpoint["env_id"]
    if env is None:
        raise RobustRLError(f"{path} was trained on an unregistered env; pass env= to load()")
    config = from_dict(cls.Config, checkpoint["config"])
    agent = cls(env, config, seed=checkpoint["seed"], env_kwargs=checkpoint["env_kwargs"])
    agent.restore(checkpoint)
    return agent


__all__ = ["AGENTS", "Agent", "agent_class", "load", "make_agent", "resolve_config"]
