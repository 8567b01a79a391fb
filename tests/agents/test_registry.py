"""The one learner registry: every name imports, declares its capabilities, has a table row;
agents/<name>.toml holds only config fields, and only values that differ from what they
override."""

import dataclasses
import fnmatch
import tomllib

import gymnasium as gym
import pytest

from robustrl.agents import AGENTS, agent_class, capabilities, capability_rows
from robustrl.agents.base import Capabilities
from robustrl.core.config import from_dict
from robustrl.core.errors import RobustRLError
from robustrl.core.paths import spec_dir

ONLINE = ["sac", "ppo", "hybrid_sac", "mappo", "ippo", "maddpg", "idqn", "mfq"]


def test_registry_names_modules_and_capabilities():
    assert set(AGENTS) == {*ONLINE, "iql", "td3bc", "awac", "cql", "tdmpc"}
    for name, target in AGENTS.items():
        assert target.split(":")[0] == f"robustrl.agents.{name}"  # registry name = module name
        caps = capabilities(name)
        assert isinstance(caps, Capabilities), name
        assert all(issubclass(t, gym.Space) for t in caps.action_spaces)
    assert capabilities("hybrid_sac").ernie is False
    assert capabilities("idqn").action_spaces == (gym.spaces.Discrete,)
    assert {capabilities(n).agents for n in ("mappo", "ippo", "maddpg", "idqn", "mfq")} == {"multi"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        capabilities("sac").ernie = False
    with pytest.raises(RobustRLError, match="unknown agent 'sacc'"):
        capabilities("sacc")


def test_capability_rows():
    rows = {r["agent"]: r for r in capability_rows()}
    assert list(rows) == list(AGENTS)
    assert rows["ppo"] == {"agent": "ppo", "agents": "single", "learning": "on-policy",
                           "actions": "Box, Discrete", "ernie": "yes", "relabel": "-",
                           "learned reward": "yes",
                           "summary": agent_class("ppo").__doc__.strip().splitlines()[0]}
    assert all(r["summary"] for r in rows.values())


def _inherited(table: dict, section: str) -> list[str]:
    """The sections a section overrides: `defaults`, then every earlier glob its pattern
    falls under (an exact id, or a narrower glob such as hybrid/traffic-* under hybrid/*)."""
    names = list(table)
    earlier = names[:names.index(section)]
    return ["defaults"] * ("defaults" in table and section != "defaults") + [
        p for p in earlier if p != "defaults" and "*" in p and fnmatch.fnmatch(section, p)]


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_toml_holds_only_fields_that_differ_from_what_they_override(name):
    """Fails for an offline learner until its TOML is pruned (the offline area's part)."""
    path = spec_dir("agents") / f"{name}.toml"
    if not path.exists():
        pytest.skip(f"no agents/{name}.toml")
    with open(path, "rb") as f:
        table = tomllib.load(f)
    config_cls = agent_class(name).Config
    fields = {f.name for f in dataclasses.fields(config_cls)}
    redundant = []
    for section, values in table.items():
        unknown = sorted(set(values) - fields)
        assert not unknown, f"agents/{name}.toml [{section}] sets unknown keys {unknown}"
        base: dict = {}
        for parent in _inherited(table, section):
            base.update(table[parent])
        inherited = from_dict(config_cls, base)
        mine = from_dict(config_cls, {**base, **values})
        redundant += [f"[{section}] {k}" for k in values
                      if getattr(mine, k) == getattr(inherited, k)]
    assert not redundant, f"agents/{name}.toml repeats inherited values: {redundant}"
