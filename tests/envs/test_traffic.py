"""Traffic signals on SUMO (sumo-rl + libsumo): Gymnasium/PettingZoo conformance, spaces as the
TOML declares, seeding, reward factors, one-simulation-per-process handling (a second env runs
in a worker process; closing or dropping the first frees the simulation), identity, subprocess
workers, baseline controllers and the hybrid (phase + duration) task. Skipped without SUMO."""

from __future__ import annotations

import gc
import importlib.util
import multiprocessing as mp
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robustrl
from robustrl import envs
from robustrl.core.errors import RobustRLError
from robustrl.envs import make_subprocess, make_vec
from robustrl.envs.traffic import TrafficParallelEnv, neighbours
from robustrl.envs.traffic_baselines import (
    FixedTimeController,
    MaxPressureController,
    evaluate_controller,
)
from robustrl.envs.traffic_core import FACTORS
from robustrl.envs.worker import find_worker

with warnings.catch_warnings():  # pettingzoo.test imports its own deprecated creation API
    warnings.simplefilter("ignore", DeprecationWarning)
    from pettingzoo.test import parallel_api_test

# find_spec, not importorskip: importing libsumo (or sumo_rl without SUMO_HOME) here would
# pre-empt robustrl's own set-up of SUMO. The robustrl modules above import no SUMO.
if any(importlib.util.find_spec(m) is None for m in ("sumo", "libsumo", "sumo_rl")):
    pytest.skip("SUMO (eclipse-sumo, libsumo, sumo-rl) is not installed", allow_module_level=True)

SHORT = 100  # simulated seconds: 20 decisions of 5 s
TRAFFIC_IDS = envs.list_envs("traffic")
HYBRID_IDS = [i for i in envs.list_envs("hybrid") if i.startswith("hybrid/traffic-")]


def _is_parallel(env) -> bool:
    return hasattr(env, "possible_agents")


def _rollout(env, seed: int, steps: int = 1000):
    """Seeded random rollout of a single- or multi-agent env: (obs, reward, factors) per step."""
    obs, _ = env.reset(seed=seed)
    trace = []
    if _is_parallel(env):
        for i, a in enumerate(env.possible_agents):
            env.action_space(a).seed(seed + i)
        trace.append(obs)
        while env.agents and len(trace) <= steps:
            obs, rew, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
            trace.append((obs, rew, {a: i["reward_factors"] for a, i in infos.items()}))
        return trace
    env.action_space.seed(seed)
    trace.append(obs)
    done = False
    while not done and len(trace) <= steps:
        obs, rew, term, trunc, info = env.step(env.action_space.sample())
        trace.append((obs, rew, info["reward_factors"]))
        done = term or trunc
    return trace


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(a, b))


def _check_spaces(env_id: str) -> None:
    env = envs.make(env_id, num_seconds=SHORT)
    try:
        first = env.possible_agents[0] if _is_parallel(env) else None
        obs_space = env.observation_space(first) if first else env.observation_space
        act_space = env.action_space(first) if first else env.action_space
        spec = envs.spec(env_id)
        assert str(obs_space) == spec.observation_space
        assert str(act_space) == spec.action_space
        assert (spec.kind == "multi") == _is_parallel(env)
    finally:
        env.close()


# -- conformance -------------------------------------------------------------------------------


def test_check_env_single_intersection():
    env = envs.make("traffic/single-intersection", num_seconds=SHORT)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_parallel_api_2x2grid():
    env = envs.make("traffic/2x2grid", num_seconds=SHORT)
    try:
        parallel_api_test(env, num_cycles=SHORT)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ["traffic/single-intersection", "traffic/2x2grid",
                                    "hybrid/traffic-single-intersection"])
def test_spaces_match_toml(env_id):
    _check_spaces(env_id)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*For Box action spaces")
@pytest.mark.parametrize("env_id", TRAFFIC_IDS + HYBRID_IDS)
def test_every_id_spaces_and_conformance(env_id):
    _check_spaces(env_id)
    env = envs.make(env_id, num_seconds=300 if env_id.startswith("hybrid/") else 30)
    try:
        if _is_parallel(env):
            parallel_api_test(env, num_cycles=300)
        else:
            check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_single_agent_override():
    env = envs.make("traffic/2x2grid", num_seconds=SHORT, single_agent=True)
    try:
        assert str(env.action_space) == "MultiDiscrete([4 4 4 4])"
        assert env.observation_space.shape == (84,)
        obs, _ = env.reset(seed=0)
        obs, _, _, _, info = env.step(env.action_space.sample())
        assert obs.shape == (84,) and set(info["reward_factors"]) == set(FACTORS)
        assert set(info["signal_factors"]) == {"1", "2", "5", "6"}
    finally:
        env.close()
    env = envs.make("traffic/single-intersection", num_seconds=SHORT, single_agent=False)
    try:
        assert env.possible_agents == ["t"]
    finally:
        env.close()


# -- seeding, factors, info ------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["traffic/single-intersection", "traffic/2x2grid"])
def test_seeded_rollouts_repeat(env_id):
    env = envs.make(env_id, num_seconds=SHORT)
    try:
        first, again, other = _rollout(env, 3), _rollout(env, 3), _rollout(env, 4)
    finally:
        env.close()
    assert _same(first, again)
    assert not _same(first, other)


def test_reward_factors_on_every_step():
    env = envs.make("traffic/2x2grid", num_seconds=SHORT)
    try:
        env.reset(seed=0)
        totals = dict.fromkeys(FACTORS, 0.0)
        while env.agents:
            *_, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
            assert set(infos) == set(env.possible_agents)
            for info in infos.values():
                factors = info["reward_factors"]
                assert set(factors) == set(FACTORS)
                assert all(isinstance(v, float) and np.isfinite(v) and v >= 0
                           for v in factors.values())
                assert factors["phase_switch"] in (0.0, 1.0)
                for k, v in factors.items():
                    totals[k] += v
                assert "system_mean_waiting_time" in info and "system_arrived" in info
        # random phases on a loaded grid: cars queue, wait, cross and lights switch
        for k in ("queue_length", "waiting_time", "delay", "throughput", "phase_switch"):
            assert totals[k] > 0, k
    finally:
        env.close()
    spec = envs.spec("traffic/2x2grid")
    assert {f.name for f in spec.factors} == set(FACTORS) == set(spec.ranking)


def test_emergency_stops_counted():
    env = envs.make("traffic/single-intersection", num_seconds=600, hard_brake_decel=3.0)
    try:
        trace = _rollout(env, 0)
    finally:
        env.close()
    assert sum(step[2]["emergency_stops"] for step in trace[1:]) > 0


# -- one simulation per process, close ---------------------------------------------------------


def _in_process(env) -> bool:
    return find_worker(env) is None


def test_second_env_runs_in_a_worker_and_close_frees_the_simulation():
    import traci

    env = envs.make("traffic/single-intersection", num_seconds=SHORT)
    assert _in_process(env)
    env.reset(seed=0)
    env.step(0)
    other = envs.make("traffic/2x2grid", num_seconds=SHORT)  # the simulation is taken: a worker
    try:
        assert not _in_process(other) and other.process.is_alive()
        assert envs.identity(other) == ("traffic/2x2grid", {"num_seconds": SHORT})
    finally:
        other.close()
    env.close()
    env.close()  # twice is fine
    assert not traci.isLoaded()
    other = envs.make("traffic/2x2grid", num_seconds=SHORT)
    try:
        assert _in_process(other)  # closing the first freed the simulation
        other.reset(seed=0)
        assert traci.isLoaded()
        with pytest.raises(RobustRLError, match="one simulation per process"):
            env.reset(seed=0)  # the closed env cannot take the simulation over
        with pytest.raises(RobustRLError, match="one simulation per process") as err:
            TrafficParallelEnv(net_file="2x2grid/2x2.net.xml",
                               route_file="2x2grid/2x2.rou.xml")  # built directly: no worker
        assert "\n" not in str(err.value)
    finally:
        other.close()
    assert not traci.isLoaded()


def test_dropping_an_env_frees_the_simulation():
    env = envs.make("traffic/2x2grid", num_seconds=SHORT)
    env.reset(seed=0)
    del env  # never closed: dropping the last reference stops its simulation
    gc.collect()
    again = envs.make("hybrid/traffic-single-intersection", num_seconds=SHORT)
    try:
        assert _in_process(again)
    finally:
        again.close()


@pytest.mark.parametrize("second", ["traffic/2x2grid", "traffic/single-intersection",
                                    "hybrid/traffic-single-intersection"])
def test_two_envs_from_make_step_side_by_side(second):
    first = envs.make("traffic/2x2grid", num_seconds=SHORT)
    remote = envs.make(second, num_seconds=SHORT)
    try:
        assert _in_process(first) and not _in_process(remote)
        spec = envs.spec(second)
        assert (spec.kind == "multi") == _is_parallel(remote)
        obs_space = remote.observation_space(remote.possible_agents[0]) if _is_parallel(
            remote) else remote.observation_space
        assert str(obs_space) == spec.observation_space
        first.reset(seed=0)
        here = _rollout(remote, 5, steps=10)  # steps while the first env's simulation runs
        first.step({a: first.action_space(a).sample() for a in first.agents})
        factors = here[1][2] if not _is_parallel(remote) else next(iter(here[1][2].values()))
        assert set(factors) == set(FACTORS)
        assert _same(here, _rollout(remote, 5, steps=10))  # seeded, as in-process
    finally:
        remote.close()
        first.close()
    local = envs.make(second, num_seconds=SHORT)
    try:
        assert _in_process(local)
        assert _same(here, _rollout(local, 5, steps=10))  # the worker changes nothing
    finally:
        local.close()
    assert not mp.active_children()


def test_identity_of_traffic_envs():
    env = envs.make("traffic/single-intersection", num_seconds=SHORT, delta_time=10)
    try:
        made_as = ("traffic/single-intersection", {"num_seconds": SHORT, "delta_time": 10})
        assert envs.identity(env) == made_as
        from robustrl.perturb import apply

        assert envs.identity(apply(env, "obs-gaussian:0.1")) == made_as
    finally:
        env.close()


def test_neighbours_and_controllers_of_a_worker_env():
    first = envs.make("traffic/single-intersection", num_seconds=SHORT)
    grid = envs.make("traffic/2x2grid", num_seconds=SHORT)
    try:
        assert not _in_process(grid)
        assert neighbours(grid) == {"1": ["2", "5"], "2": ["1", "6"], "5": ["1", "6"],
                                    "6": ["2", "5"]}
        with pytest.raises(RobustRLError, match="close that one first") as err:
            MaxPressureController(grid)
        assert "\n" not in str(err.value)
    finally:
        grid.close()
        first.close()


def test_two_envs_at_once_in_subprocesses():
    vec = make_vec("traffic/single-intersection", 2, num_seconds=SHORT)
    grid = make_subprocess("traffic/2x2grid", num_seconds=SHORT)
    try:
        obs, _ = vec.reset(seed=[0, 1])
        assert obs.shape == (2, 11)
        remote = _rollout(grid, 5)  # runs while the vector env's simulations are alive
        for _ in range(3):
            obs, reward, _, _, info = vec.step(vec.action_space.sample())
        assert obs.shape == (2, 11) and reward.shape == (2,)
        assert info["reward_factors"]["queue_length"].shape == (2,)
        assert grid.call("state").shape == (84,)
        assert envs.identity(grid) == ("traffic/2x2grid", {"num_seconds": SHORT})
    finally:
        vec.close()
        grid.close()
    assert not grid.process.is_alive()
    assert not mp.active_children()
    local = envs.make("traffic/2x2grid", num_seconds=SHORT)
    try:
        assert _same(remote, _rollout(local, 5))  # the worker changes nothing
    finally:
        local.close()


def test_subprocess_errors_are_one_line():
    with pytest.raises(RobustRLError, match=r"invalid argument\(s\) \['nope'\]"):
        make_subprocess("traffic/single-intersection", nope=1)
    assert not mp.active_children()


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"nope": 1}, r"invalid argument\(s\) \['nope'\]"),
    ({"num_second": 10}, "did you mean 'num_seconds'"),
    ({"route_file": "missing.rou.xml"}, "route file 'missing.rou.xml' not found"),
    ({"net_file": "missing.net.xml"}, "network file 'missing.net.xml' not found"),
    ({"delta_time": 2}, "delta_time"),
    ({"reward_fn": "speed"}, "unknown reward_fn 'speed'"),
    ({"render_mode": "human"}, "render_mode"),
])
def test_bad_input_is_one_line(kwargs, message):
    with pytest.raises(RobustRLError, match=message) as err:
        envs.make("traffic/single-intersection", **kwargs)
    assert "\n" not in str(err.value)


def test_sumo_missing_says_what_to_install():
    code = ("import sys; sys.modules['sumo'] = None\n"
            "from robustrl import envs\n"
            "from robustrl.core.errors import RobustRLError\n"
            "try:\n    envs.make('traffic/single-intersection')\n"
            "except RobustRLError as e:\n    print(e)\n")
    root = str(Path(robustrl.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=env, check=False)
    assert "pip install 'robustrl[traffic]'" in out.stdout, out.stderr


# -- baseline controllers ----------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["traffic/single-intersection", "traffic/2x2grid"])
def test_controllers_run(env_id):
    env = envs.make(env_id, num_seconds=SHORT)
    try:
        for controller in (FixedTimeController(env, green_time=10), MaxPressureController(env)):
            obs, _ = env.reset(seed=0)
            controller.reset()
            for _ in range(5):
                action = controller(obs)
                if _is_parallel(env):
                    assert set(action) == set(env.agents)
                    assert all(env.action_space(a).contains(v) for a, v in action.items())
                    obs, *_ = env.step(action)
                else:
                    assert env.action_space.contains(action)
                    obs, *_ = env.step(action)
    finally:
        env.close()


def test_fixed_time_cycles_phases():
    env = envs.make("traffic/2way-single-intersection", num_seconds=SHORT)
    try:
        controller = FixedTimeController(env, green_time=10)  # 2 decisions of 5 s per phase
        env.reset(seed=0)
        assert [controller(None) for _ in range(9)] == [0, 0, 1, 1, 2, 2, 3, 3, 0]
    finally:
        env.close()


def test_evaluate_controller():
    result = evaluate_controller("traffic/2x2grid", "max-pressure", num_seconds=300)
    assert set(result) == {"mean_waiting_time", "throughput", "mean_queue", "mean_return",
                           "episodes"}
    assert result["throughput"] > 0 and result["mean_waiting_time"] >= 0
    with pytest.raises(RobustRLError, match="unknown traffic controller"):
        evaluate_controller("traffic/2x2grid", "webster", num_seconds=300)


@pytest.mark.slow
def test_max_pressure_beats_fixed_time_on_the_grid():
    fixed = evaluate_controller("traffic/2x2grid", "fixed-time", num_seconds=3600)
    pressure = evaluate_controller("traffic/2x2grid", "max-pressure", num_seconds=3600)
    assert pressure["mean_waiting_time"] < fixed["mean_waiting_time"]
    assert pressure["throughput"] >= fixed["throughput"]


@pytest.mark.slow
def test_evaluate_in_subprocess():
    result = evaluate_controller("traffic/single-intersection", "fixed-time", num_seconds=300,
                                 in_subprocess=True)
    assert result["throughput"] > 0
    assert not mp.active_children()


# -- hybrid: next phase + green duration ---------------------------------------------------


# the duration bounds are seconds on purpose; scaling them to [-1, 1] is the agent's business
@pytest.mark.filterwarnings("ignore:.*For Box action spaces")
def test_hybrid_single_intersection_conformance_and_durations():
    env = envs.make("hybrid/traffic-single-intersection", num_seconds=SHORT)
    try:
        check_env(env.unwrapped, skip_render_check=True)
        _, info = env.reset(seed=0)
        t = info["step"]
        # stay in phase 0 for 12.4 s (rounded to 12), then switch to phase 1 for 30 s (+2 yellow)
        _, _, _, _, info = env.step((0, (np.array([12.4], np.float32),
                                         np.array([7.0], np.float32))))
        assert info["step"] - t == 12 and info["green_duration"] == 12
        assert info["reward_factors"]["phase_switch"] == 0.0
        _, _, _, _, info = env.step((1, (np.array([5.0], np.float32),
                                         np.array([30.0], np.float32))))
        assert info["step"] - t == 12 + 2 + 30 and info["green_duration"] == 30
        assert info["reward_factors"]["phase_switch"] == 1.0
        assert env.unwrapped.core.signals["t"].green_phase == 1
        # out-of-bounds durations are clipped to [min_green, max_green]
        _, _, _, _, info = env.step((1, (np.array([0.0], np.float32),
                                         np.array([500.0], np.float32))))
        assert info["green_duration"] == 50
        with pytest.raises(RobustRLError, match="action for light t"):
            env.step((7, ()))
    finally:
        env.close()


def test_hybrid_grid_parallel_api_and_seeding():
    env = envs.make("hybrid/traffic-2x2grid", num_seconds=SHORT)
    try:
        parallel_api_test(env, num_cycles=200)
        first, again = _rollout(env, 1), _rollout(env, 1)
        assert _same(first, again)
        _, infos = env.reset(seed=2)
        assert all(info["acting"] for info in infos.values())
        actions = {a: env.action_space(a).sample() for a in env.agents}
        _, rewards, _, _, infos = env.step(actions)
        acting = [a for a, info in infos.items() if info["acting"]]
        assert acting and all(rewards[a] == 0.0 for a in infos if a not in acting)
    finally:
        env.close()
