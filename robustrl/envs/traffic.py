"""Traffic-signal control on SUMO through sumo-rl: Gymnasium and PettingZoo adapters.

`make("traffic/<network>")` builds a sumo-rl `SumoEnvironment` on libsumo (SUMO in-process,
about 8x faster than TraCI sockets) and wraps it:

- one traffic light, or `single_agent=True`: `TrafficSignalEnv` (Gymnasium); with several lights
  it is one central controller (MultiDiscrete action, concatenated observations, summed reward);
- several lights, or `single_agent=False`: `TrafficParallelEnv` (PettingZoo ParallelEnv, one agent
  per light). sumo-rl 1.4.5's own `parallel_env` is broken on PettingZoo >= 1.25.

Every step reports `info["reward_factors"]` per light (see `FACTORS`), and the system metrics of
sumo-rl (`system_mean_waiting_time`, ...) plus `system_arrived` (vehicles that finished their trip
this episode). SUMO_HOME is taken from the `eclipse-sumo` wheel; users never set it. Your own
network: `register("mine/net", "robustrl.envs.traffic:make_traffic", net_file=...,
route_file=...)`.

One simulation per process (this is the one place the rule is decided). libsumo holds one
simulation per process, so `make` of a traffic id (`traffic/*`, `hybrid/traffic-*`, and ids
registered on these entry points) builds the env in this process when no other in-process
traffic env is alive here, and otherwise, transparently, in a worker process
(`robustrl.envs.worker`) with the same spaces, seeds and results. Closing the in-process env, or
dropping every reference to it, frees the process's simulation for the next `make`. Nothing
outside `robustrl.envs` needs to know. What needs the simulation at hand works only on an
in-process env: dynamics perturbations that edit the running simulation (`dyn-inflow`,
`dyn-speed`) and the baseline controllers (`traffic_baselines`); on a worker env they stop with
one line. The way out is to close the other traffic env first (`agent.close()` closes an
agent's envs), e.g. to make an evaluation env after the training envs are closed.
`neighbours(env)` works on both. Building an adapter directly (`TrafficSignalEnv(**kwargs)`)
while another traffic env is alive raises that one line too. `robustrl.envs.make_subprocess` /
`make_vec` put envs in worker processes on request (to step several at once).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.core.errors import RobustRLError
from robustrl.envs.traffic_config import INSTALL, TrafficConfig, load_sumo_rl, resolve_file
from robustrl.envs.traffic_core import FACTORS, TrafficCore, open_env
from robustrl.envs.traffic_parallel import TrafficParallelBase, build_adapter
from robustrl.envs.worker import find_worker


def _concat_box(boxes: list[spaces.Box]) -> spaces.Box:
    return spaces.Box(np.concatenate([b.low.ravel() for b in boxes]),
                      np.concatenate([b.high.ravel() for b in boxes]), dtype=boxes[0].dtype)


def _sum_factors(per_light: dict[str, dict[str, float]]) -> dict[str, float]:
    total = dict.fromkeys(FACTORS, 0.0)
    for factors in per_light.values():
        for key, value in factors.items():
            total[key] += value
    return total


class TrafficSignalEnv(gym.Env):
    """Gymnasium env: one light (Discrete action), or all lights under one central controller
    (MultiDiscrete action, concatenated observation, summed reward and factors)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, core: TrafficCore | None = None, **kwargs: Any):
        self.core = core or TrafficCore(TrafficConfig.from_kwargs(kwargs))
        self.config = self.core.config
        self.sim = self.core.sim  # reachable for perturbations (they look for a SumoEnvironment)
        self.ts_ids = self.core.ts_ids
        self.central = len(self.ts_ids) > 1
        if self.central:
            self.observation_space = _concat_box([self.core.observation_spaces[t]
                                                  for t in self.ts_ids])
            self.action_space = spaces.MultiDiscrete([self.core.action_spaces[t].n
                                                      for t in self.ts_ids])
        else:
            self.observation_space = self.core.observation_spaces[self.ts_ids[0]]
            self.action_space = self.core.action_spaces[self.ts_ids[0]]

    def _obs(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.central:
            return np.concatenate([obs[t] for t in self.ts_ids])
        return obs[self.ts_ids[0]]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self.core.reset(seed)
        return self._obs(obs), info

    def step(self, action: Any):
        if self.central:
            flat = np.asarray(action).ravel()
            if flat.size != len(self.ts_ids):
                raise RobustRLError(f"traffic env: expected one phase per light "
                                    f"({len(self.ts_ids)}), got {flat.size}")
            actions = dict(zip(self.ts_ids, flat, strict=True))
        else:
            actions = {self.ts_ids[0]: action}
        obs, rewards, truncated, info, factors = self.core.step(actions)
        if self.central:
            reward = float(sum(rewards[t] for t in self.ts_ids))
            info["reward_factors"] = _sum_factors(factors)
            info["signal_factors"] = factors
        else:
            reward = float(rewards[self.ts_ids[0]])
            info["reward_factors"] = factors[self.ts_ids[0]]
        return self._obs(obs), reward, False, truncated, info

    def close(self) -> None:
        self.core.close()


class TrafficParallelEnv(TrafficParallelBase):
    """PettingZoo ParallelEnv: one agent per traffic light, acting every `delta_time` seconds.
    Each agent's info holds its own `reward_factors` and the shared system metrics."""

    metadata: ClassVar[dict[str, Any]] = {"name": "robustrl_traffic", "render_modes": [],
                                          "is_parallelizable": True}

    def __init__(self, core: TrafficCore | None = None, **kwargs: Any):
        super().__init__(core, kwargs)
        self.config = self.core.config
        self.action_spaces = dict(self.core.action_spaces)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.core.reset(seed)
        self.agents = list(self.possible_agents)
        return obs, {a: dict(info) for a in self.agents}

    def step(self, actions: dict[str, Any]):
        obs, rewards, truncated, info, factors = self.core.step(actions)
        agents = self.agents
        infos = {a: {**info, "reward_factors": factors[a]} for a in agents}
        rewards = {a: float(rewards[a]) for a in agents}
        return self._step_result({a: obs[a] for a in agents}, rewards, infos, truncated)

    def state(self) -> np.ndarray:
        return np.concatenate([self.core.sim.observations[a] for a in self.possible_agents])


def make_traffic(**kwargs: Any) -> Any:
    """Entry point of the `traffic/` family: the keyword arguments are `TrafficConfig`'s. In
    this process when its simulation is free, else in a worker (see the module docstring)."""
    return open_env(_build, kwargs)


def _build(config: TrafficConfig) -> TrafficSignalEnv | TrafficParallelEnv:
    return build_adapter(config, TrafficSignalEnv, TrafficParallelEnv)


# ---------------------------------------------------------------------------------------------
# Neighbour graph of the lights (mean-field learners condition on their neighbours' actions).


@functools.cache
def _light_graph(net_file: str) -> dict[str, frozenset[str]]:
    """{light: lights sharing a (non-internal) edge with it} of a SUMO network, both ways."""
    load_sumo_rl()  # SUMO_HOME first
    try:
        import sumolib
    except ImportError:
        raise RobustRLError(f"the traffic neighbour graph needs sumolib; {INSTALL}") from None
    net = sumolib.net.readNet(net_file)
    node_light: dict[str, str] = {}
    for tls in net.getTrafficLights():
        for connection in tls.getConnections():  # (incoming lane, outgoing lane, link index)
            node_light[connection[0].getEdge().getToNode().getID()] = tls.getID()
    graph: dict[str, set[str]] = {tls.getID(): set() for tls in net.getTrafficLights()}
    for edge in net.getEdges():
        a = node_light.get(edge.getFromNode().getID())
        b = node_light.get(edge.getToNode().getID())
        if a is not None and b is not None and a != b:
            graph[a].add(b)
            graph[b].add(a)
    return {light: frozenset(others) for light, others in graph.items()}


def neighbours(env: Any) -> dict[str, list[str]]:
    """{light id: its neighbouring light ids} of a traffic env (through wrappers), in the env's
    light order. Two lights are neighbours when an edge of the network runs directly between
    junctions they control (a light's junctions: the nodes its controlled links enter); lights
    linked only through unsignalized junctions are not. Read from the net file with sumolib,
    so the simulation need not be running; for an env in a worker process, read there."""
    core = getattr(getattr(env, "unwrapped", env), "core", None)
    if not isinstance(core, TrafficCore):
        worker = find_worker(env)
        if worker is not None:
            return worker.call_env(neighbours)
        raise RobustRLError("neighbours() needs a traffic env made by robustrl.envs.make("
                            "'traffic/...')")
    graph = _light_graph(resolve_file(core.config.net_file, "network file"))
    return {t: [u for u in core.ts_ids if u != t and u in graph.get(t, ())]
            for t in core.ts_ids}
