"""Traffic dynamics perturbations on a sumo-rl SumoEnvironment (skipped without SUMO)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from pettingzoo import ParallelEnv

from robustrl.core.errors import RobustRLError
from robustrl.perturb import apply

sumo = pytest.importorskip("sumo")
# sumo-rl refuses to import without SUMO_HOME; libsumo runs SUMO in-process (fast).
os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
os.environ.setdefault("LIBSUMO_AS_TRACI", "1")
sumo_rl = pytest.importorskip("sumo_rl")

NET = Path(sumo_rl.__file__).parent / "nets" / "single-intersection"


def make(route=None):
    return sumo_rl.SumoEnvironment(
        net_file=str(NET / "single-intersection.net.xml"),
        route_file=str(route or NET / "single-intersection.rou.xml"),
        single_agent=True, num_seconds=300, use_gui=False, sumo_warnings=False)


def vehicles(env, steps=5):
    """Vehicles in the network or waiting to enter it after `steps` agent steps."""
    env.reset(seed=0)
    for n in range(steps):
        env.step(n % 2)
    return env.unwrapped.sumo.simulation.getMinExpectedNumber()


def test_inflow_scale_adds_vehicles_and_is_restored():
    base = make()
    try:
        nominal = vehicles(base)
    finally:
        base.close()
    env = apply(make(), "dyn-inflow:2")
    try:
        more = vehicles(env)
        assert env.unwrapped.sumo.simulation.getScale() == 2.0
        assert more > 1.5 * nominal
        _, info = env.reset(seed=1)
        assert info["perturbation"]["dyn-inflow"]["simulator"] == "traffic"
        assert env.unwrapped.sumo.simulation.getScale() == 2.0  # not 4: no compounding
    finally:
        env.close()


def test_speed_scales_lane_limits_and_route_swap(tmp_path):
    alt = tmp_path / "alt.rou.xml"
    shutil.copy(NET / "single-intersection.rou.xml", alt)
    env = apply(make(), "dyn-speed:0.5,start=2")
    try:
        env.reset(seed=0)
        conn = env.unwrapped.sumo
        lanes = conn.lane.getIDList()
        nominal = np.array([conn.lane.getMaxSpeed(lane) for lane in lanes])
        for _ in range(3):
            *_, info = env.step(0)
        limits = np.array([conn.lane.getMaxSpeed(lane) for lane in lanes])
        assert info["perturbation"]["dyn-speed"]["active"] is True
        np.testing.assert_allclose(limits, 0.5 * nominal)
    finally:
        env.close()

    env = apply(make(), f"dyn-inflow:1,route={alt}")
    try:
        env.reset(seed=0)
        assert env.unwrapped._route == str(alt)
    finally:
        env.close()
    assert env.unwrapped._route == str(NET / "single-intersection.rou.xml")
    with pytest.raises(RobustRLError, match="route file .* does not exist"):
        apply(make(), "dyn-inflow:1,route=missing.rou.xml")


def test_mujoco_kinds_do_not_apply_to_traffic():
    with pytest.raises(RobustRLError, match="dyn-mass does not apply to .*: it needs a MuJoCo"):
        apply(make(), "dyn-mass:1.5")


class Adapter(ParallelEnv):
    """The shape of a PettingZoo adapter around SumoEnvironment(single_agent=False): the
    perturbation finds the SumoEnvironment among its attributes, whatever the name."""

    def __init__(self):
        self.metadata = {"name": "tiny_traffic"}
        self._sim = sumo_rl.SumoEnvironment(
            net_file=str(NET / "single-intersection.net.xml"),
            route_file=str(NET / "single-intersection.rou.xml"),
            single_agent=False, num_seconds=300, use_gui=False, sumo_warnings=False)
        self.possible_agents = list(self._sim.ts_ids)
        self.agents = self.possible_agents[:]

    def observation_space(self, agent):
        return self._sim.observation_spaces(agent)

    def action_space(self, agent):
        return self._sim.action_spaces(agent)

    def reset(self, seed=None, options=None):
        obs = self._sim.reset(seed=seed)
        return obs, {a: {} for a in self.possible_agents}

    def step(self, actions):
        obs, rewards, _, _ = self._sim.step(actions)
        return obs, rewards, dict.fromkeys(obs, False), dict.fromkeys(obs, False), \
            {a: {} for a in obs}

    def close(self):
        self._sim.close()


def test_traffic_adapter_is_found_and_info_is_per_agent():
    env = apply(Adapter(), ["dyn-inflow:1.5", "dyn-speed:0.8"])
    try:
        _, infos = env.reset(seed=0)
        agent = env.possible_agents[0]
        assert set(infos[agent]["perturbation"]) == {"dyn-inflow", "dyn-speed"}
        assert env.unwrapped._sim.sumo.simulation.getScale() == 1.5
        env.step({a: 0 for a in env.possible_agents})
    finally:
        env.close()
