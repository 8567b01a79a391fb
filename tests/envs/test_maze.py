"""Mazes (gymnasium-robotics): Gymnasium conformance, spaces as declared, the flatten option,
seeding, and the goal factors."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robustrl import envs
from robustrl.core.errors import RobustRLError

MAZE_IDS = envs.list_envs("maze")
# Gymnasium's checker warns about wrappers and about the mazes' unbounded Box spaces.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*different from the unwrapped version"),
    pytest.mark.filterwarnings("ignore:.*observation space (minimum|maximum) value"),
]
FAST_IDS = ["maze/PointMaze_UMaze-v3", "maze/AntMaze_UMaze-v5"]


def test_ids_cover_point_and_ant_mazes():
    point = [i for i in MAZE_IDS if i.startswith("maze/PointMaze_") and i.endswith("-v3")]
    ant = [i for i in MAZE_IDS if i.startswith("maze/AntMaze_") and i.endswith("-v5")]
    assert len(point) == len(ant) == 20 and len(MAZE_IDS) == 40


def _check(env_id: str, flatten: bool) -> None:
    """Gymnasium's checker on the whole stack make() returns (adapter + factor wrapper).

    Its close check re-creates the env from `env.spec`, which the registry's factor wrapper
    does not record, so closing (twice, as that check does) is tested here directly.
    """
    env = envs.make(env_id, flatten=flatten)
    check_env(env, skip_render_check=True, skip_close_check=True)
    env.close()
    env.close()
    adapter = env.env  # the maze layer alone re-creates from its spec
    check_env(adapter, skip_render_check=True)


@pytest.mark.parametrize("flatten", [False, True])
def test_check_env(flatten: bool):
    _check(FAST_IDS[0], flatten)


@pytest.mark.slow
@pytest.mark.parametrize("flatten", [False, True])
@pytest.mark.parametrize("env_id", MAZE_IDS)
def test_check_env_all(env_id: str, flatten: bool):
    _check(env_id, flatten)


def _spaces_match(env_id: str):
    env = envs.make(env_id)
    spec = envs.spec(env_id)
    assert str(env.observation_space) == spec.observation_space
    assert str(env.action_space) == spec.action_space
    assert spec.kind == "single"
    env.close()


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_spaces_match_spec(env_id: str):
    _spaces_match(env_id)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", MAZE_IDS)
def test_spaces_match_spec_all(env_id: str):
    _spaces_match(env_id)


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_flatten_concatenates_observation_achieved_desired(env_id: str):
    plain, flat = envs.make(env_id), envs.make(env_id, flatten=True)
    d, _ = plain.reset(seed=4)
    f, _ = flat.reset(seed=4)
    np.testing.assert_array_equal(
        f, np.concatenate([d["observation"], d["achieved_goal"], d["desired_goal"]]))
    assert flat.observation_space.shape == f.shape and flat.observation_space.contains(f)
    action = plain.action_space.sample()
    d, *_ = plain.step(action)
    f, *_ = flat.step(action)
    np.testing.assert_array_equal(
        f, np.concatenate([d["observation"], d["achieved_goal"], d["desired_goal"]]))


@pytest.mark.parametrize("env_id", ["maze/PointMaze_UMaze-v3", "maze/PointMaze_UMazeDense-v3"])
def test_factors_every_step_match_the_reward(env_id: str):
    env = envs.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    names = {f.name for f in envs.spec(env_id).factors}
    for _ in range(50):
        obs, reward, _, _, info = env.step(env.action_space.sample())
        f = info["reward_factors"]
        assert set(f) == names
        distance = float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))
        assert f["goal_distance"] == pytest.approx(distance)
        assert f["success"] == float(distance <= 0.45)
        expected = math.exp(-distance) if "Dense" in env_id else f["success"]
        assert reward == pytest.approx(expected)


def test_success_factor_when_goal_reached():
    env = envs.make("maze/PointMaze_Open-v3", continuing_task=False)
    obs, _ = env.reset(seed=1)
    for _ in range(300):  # a proportional controller drives the point to the goal
        direction = obs["desired_goal"] - obs["achieved_goal"]
        action = np.clip(5 * direction - 0.5 * obs["observation"][2:], -1, 1).astype(np.float32)
        obs, _, terminated, _, info = env.step(action)
        if terminated:
            break
    assert terminated and info["reward_factors"]["success"] == 1.0


def test_seeding_gives_identical_rollouts():
    def rollout():
        env = envs.make(FAST_IDS[0], flatten=True)
        obs, _ = env.reset(seed=11)
        env.action_space.seed(11)
        trace = [obs]
        for _ in range(20):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            trace += [obs, reward, info["reward_factors"]["goal_distance"]]
        return trace

    for a, b in zip(rollout(), rollout(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_kwargs_raise_one_line_error():
    with pytest.raises(RobustRLError) as err:
        envs.make(FAST_IDS[0], bogus=1)
    assert "\n" not in str(err.value)


def test_missing_gymnasium_robotics_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    monkeypatch.delitem(sys.modules, "robustrl.envs.maze", raising=False)
    with pytest.raises(RobustRLError, match=r"pip install 'robustrl\[maze\]'"):
        envs.make(FAST_IDS[0])
