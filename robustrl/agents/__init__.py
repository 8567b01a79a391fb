"""Agents: the one registry of learners, `make_agent(name, env, **config)` and `load(path)`.

Registry name = module name = `agents/<name>.toml` name. Every learner class declares its
`capabilities` (robustrl.agents.base.Capabilities); `capability_rows` is the table
`robustrl agents` prints.

Hyperparameter defaults come from the dataclass of each algorithm, then from
`agents/<name>.toml` (section `defaults`, then a family glob like `"mujoco/*"`, then the exact
env id), then from the caller's keyword arguments.
"""

from __future__ import annotations

import fnmatch
import importlib
import tomllib
from typing import Any

from robustrl.agents.base import Agent, Capabilities, EnvLike, read_checkpoint
from robustrl.core.config import from_dict, replace
from robustrl.core.errors import RobustRLError
from robustrl.core.paths import spec_dir
from robustrl.envs import identity

AGENTS: dict[str, str] = {
    "sac": "robustrl.agents.sac:SAC",
    "ppo": "robustrl.agents.ppo:PPO",
    "hybrid_sac": "robustrl.agents.hybrid_sac:HybridSAC",
    "mappo": "robustrl.agents.mappo:MAPPO",
    "ippo": "robustrl.agents.ippo:IPPO",
    "maddpg": "robustrl.agents.maddpg:MADDPG",
    "idqn": "robustrl.agents.idqn:IDQN",
    "mfq": "robustrl.agents.mfq:MFQ",
    "iql": "robustrl.agents.iql:IQL",
    "td3bc": "robustrl.agents.td3bc:TD3BC",
    "awac": "robustrl.agents.awac:AWAC",
    "cql": "robustrl.agents.cql:CQL",
    "tdmpc": "robustrl.agents.tdmpc:IQLTDMPC",
}
"""Learner name -> "module:Class" (online agents, offline workers, the IQL-TD-MPC manager); a
module is imported only when its learner is used."""


def agent_class(name: str) -> type[Any]:
    """The learner class registered as `name` (an `Agent` subclass for online learners)."""
    if name.startswith("sb3:"):  # Stable-Baselines3 algorithms, optional (robustrl[sb3])
        return importlib.import_module("robustrl.agents.sb3").sb3_class(name)
    if name not in AGENTS:
        raise RobustRLError(f"unknown agent '{name}'; available: {', '.join(sorted(AGENTS))}")
    module, _, attr = AGENTS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def capabilities(name: str) -> Capabilities:
    return agent_class(name).capabilities


def capability_rows() -> list[dict[str, str]]:
    """One row per registered learner, for `robustrl agents`: what it supports, and the first
    line of its class docstring as a summary."""
    yes = {True: "yes", False: "-"}
    rows = []
    for name in AGENTS:
        cls = agent_class(name)
        caps: Capabilities = cls.capabilities
        rows.append({
            "agent": name, "agents": caps.agents, "learning": caps.learning,
            "actions": ", ".join(t.__name__ for t in caps.action_spaces),
            "ernie": yes[caps.ernie], "relabel": yes[caps.relabel],
            "learned reward": yes[caps.learned_reward],
            "summary": (cls.__doc__ or "").strip().split("\n")[0],
        })
    return rows


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
    """Build agent `name` for `env` (an env id, an env instance, or a factory).

    The config comes from `agents/<name>.toml` for the env's id: the id given, or the one an
    instance made by `robustrl.envs.make` carries; a factory or a user's own env gets the
    dataclass defaults (plus `config`)."""
    if capabilities(name).learning == "offline":
        raise RobustRLError(f"{name} is an offline learner: train it from a dataset with "
                            f"`robustrl train --agent {name} --dataset FILE`")
    made = None if isinstance(env, str) or callable(env) else identity(env)
    env_id = env if isinstance(env, str) else made[0] if made is not None else None
    return agent_class(name)(env, resolve_config(name, env_id, config), seed=seed,
                             env_kwargs=env_kwargs)


def load(path, env: EnvLike | None = None) -> Agent:
    """Load a saved agent; the env is remade from its id unless `env` is given."""
    checkpoint = read_checkpoint(path)
    cls = agent_class(checkpoint["agent"])
    if cls.capabilities.learning == "offline":
        raise RobustRLError(f"{path} holds the offline learner {checkpoint['agent']}; load it "
                            "with robustrl.train.offline.load_worker (or `robustrl eval RUN`)")
    env = env if env is not None else checkpoint["env_id"]
    if env is None:
        raise RobustRLError(f"{path} was trained on an unregistered env; pass env= to load()")
    config = from_dict(cls.Config, checkpoint["config"])
    agent = cls(env, config, seed=checkpoint["seed"], env_kwargs=checkpoint["env_kwargs"])
    agent.restore(checkpoint)
    return agent


__all__ = ["AGENTS", "Agent", "Capabilities", "agent_class", "capabilities", "capability_rows",
           "hyperparameters", "load", "make_agent", "resolve_config"]
