"""Offline datasets: PointMaze generation (D4RL/Minari recipe), the .npz format and its
D4RL/Minari loaders, and their one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from robustrl.core.errors import RobustRLError
from robustrl.data.dataset import OfflineDataset, load_dataset, peek_env_id, save_dataset
from robustrl.data.generate import EVAL_ENV_KWARGS, GenerateConfig, GridPlanner, generate_dataset

UMAZE = "maze/PointMaze_UMaze-v3"


# ----------------------------------------------------------------------------- generation
def test_controller_reaches_goals(umaze):
    data = load_dataset(umaze)
    m = data.metadata
    reached = int(data.infos["success"].sum())
    assert reached == m["goals_reached"] > 20
    # each episode is one goal: it ends when the goal is reached or its step limit runs out
    assert reached / data.num_episodes > 0.8
    assert m["ref_planner_success"] == 1.0  # the noise-free planner-controller always arrives
    assert m["ref_max_score"] > 100 > 20 > m["ref_min_score"]


def test_keys_shapes_dtypes(umaze):
    with np.load(umaze, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    n = 10_000
    expected = {"observations": ((n, 4), np.float32), "next_observations": ((n, 4), np.float32),
                "actions": ((n, 2), np.float32), "rewards": ((n,), np.float32),
                "terminals": ((n,), np.bool_), "timeouts": ((n,), np.bool_),
                "infos/goal": ((n, 2), np.float32), "infos/qpos": ((n, 2), np.float32),
                "infos/qvel": ((n, 2), np.float32), "infos/success": ((n,), np.bool_),
                "infos/reward_sparse": ((n,), np.float32),
                "infos/reward_dense": ((n,), np.float32)}
    for key, (shape, dtype) in expected.items():
        assert arrays[key].shape == shape and arrays[key].dtype == dtype, key
    meta = json.loads(str(arrays["metadata"]))
    assert meta["env_id"] == UMAZE and meta["recipe"]["steps"] == n
    assert meta["eval_env_kwargs"] == EVAL_ENV_KWARGS

    obs, nxt, goal = arrays["observations"], arrays["next_observations"], arrays["infos/goal"]
    timeouts, success = arrays["timeouts"], arrays["infos/success"]
    assert not arrays["terminals"].any()  # the continuing maze never terminates
    assert timeouts[success].all() and timeouts[-1]  # a reached goal ends its episode
    inside = ~timeouts[:-1]
    np.testing.assert_array_equal(nxt[:-1][inside], obs[1:][inside])
    np.testing.assert_array_equal(goal[:-1][inside], goal[1:][inside])  # one goal an episode
    assert np.abs(arrays["actions"]).max() <= 1.0
    # sparse env: the reward is the sparse one; both variants agree with the distances
    np.testing.assert_array_equal(arrays["rewards"], arrays["infos/reward_sparse"])
    distance = np.linalg.norm(nxt[:, :2] - goal, axis=1)
    np.testing.assert_allclose(arrays["infos/reward_dense"], np.exp(-distance), rtol=1e-5)
    assert arrays["rewards"][success].min() == 1.0
    np.testing.assert_array_equal(arrays["infos/qpos"], obs[:, :2])


def test_grid_planner_paths():
    maze = [[1, 1, 1, 1, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 1, 0, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 1, 1, 1]]
    planner = GridPlanner(maze)
    assert planner.path((3, 1), (1, 1)) == [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    assert planner.path((1, 1), (1, 1)) == []
    assert planner.next_cell((1, 1)) is planner.next_cell((1, 1))  # one table per goal cell
    walled = [[1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 1, 1]]
    assert GridPlanner(walled).path((1, 1), (1, 3)) == []  # unreachable: no path


def test_generation_is_seeded(tmp_path):
    cfg = GenerateConfig(steps=300, seed=3, ref_episodes=1)
    a = generate_dataset(UMAZE, cfg, show_progress=False)
    b = generate_dataset(UMAZE, cfg, show_progress=False)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)


def test_d4rl_goal_switch_waits_until_settled():
    """goal_switch="settled" (D4RL maze2d): a goal is done once the ball rests on it."""
    data = generate_dataset(UMAZE, GenerateConfig(steps=3000, seed=0, ref_episodes=1,
                                                  goal_switch="settled"), show_progress=False)
    assert data.metadata["goals_reached"] > 3
    ends = np.flatnonzero(data.timeouts)
    settled = np.linalg.norm(data.next_observations[ends, :2] - data.goals[ends], axis=1) < 0.1
    assert settled.sum() >= data.metadata["goals_reached"]  # (+ the last row, cut off)
    assert data.rewards.mean() > 0.05  # steps spent inside the goal radius before settling
    with pytest.raises(RobustRLError, match="goal_switch"):
        generate_dataset(UMAZE, GenerateConfig(steps=10, goal_switch="never"))


def test_generation_bad_input(tmp_path):
    with pytest.raises(RobustRLError, match="PointMaze"):
        generate_dataset("maze/AntMaze_UMaze-v5", GenerateConfig(steps=10))
    with pytest.raises(RobustRLError, match=".npz"):
        generate_dataset(UMAZE, GenerateConfig(steps=10), out=tmp_path / "x.hdf5")


# ----------------------------------------------------------------------------- format
def test_loader_round_trip(tmp_path, umaze):
    data = load_dataset(umaze)
    data.metadata["note"] = "copied"
    path = save_dataset(tmp_path / "copy.npz", data)
    again = load_dataset(path)
    for key in ("observations", "actions", "rewards", "next_observations", "terminals",
                "timeouts"):
        np.testing.assert_array_equal(getattr(again, key), getattr(data, key))
    assert again.infos.keys() == data.infos.keys()
    assert again.metadata["note"] == "copied" and again.env_id == UMAZE
    inputs, next_inputs = again.policy_inputs()
    assert inputs.shape == next_inputs.shape == (len(data), 6)  # [observation, goal]
    assert again.normalized_score(again.metadata["ref_max_score"]) == pytest.approx(100.0)


def _d4rl_arrays(n: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    timeouts = np.zeros(n, bool)
    timeouts[5] = True
    return {"observations": rng.normal(size=(n, 4)), "actions": rng.uniform(-1, 1, (n, 2)),
            "rewards": rng.normal(size=n), "terminals": np.zeros(n, bool),
            "timeouts": timeouts, "infos/goal": rng.normal(size=(n, 2))}


def test_d4rl_rows_without_next_observations(tmp_path):
    """D4RL files have no next_observations: the next row, dropping episode-ending rows."""
    arrays = _d4rl_arrays()
    np.savez(tmp_path / "d4rl.npz", **arrays)
    data = load_dataset(tmp_path / "d4rl.npz")
    keep = [i for i in range(12) if i not in (5, 11)]
    np.testing.assert_allclose(data.observations, arrays["observations"][keep], rtol=1e-6)
    np.testing.assert_allclose(data.next_observations[0], arrays["observations"][1], rtol=1e-6)
    np.testing.assert_allclose(data.next_observations[4], arrays["observations"][5], rtol=1e-6)
    assert data.timeouts[4] and data.timeouts[-1] and data.goals.shape == (10, 2)


def test_d4rl_hdf5_and_minari_folder(tmp_path):
    h5py = pytest.importorskip("h5py")
    arrays = _d4rl_arrays()
    with h5py.File(tmp_path / "maze2d.hdf5", "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    data = load_dataset(tmp_path / "maze2d.hdf5")
    assert len(data) == 10 and data.goals is not None

    folder = tmp_path / "pointmaze-umaze-v2"
    (folder / "data").mkdir(parents=True)
    spec = {"id": "PointMaze_UMaze-v3", "kwargs": {"continuing_task": True}}
    with h5py.File(folder / "data" / "main_data.hdf5", "w") as f:
        f.attrs["env_spec"] = json.dumps(spec)
        f.attrs["ref_min_score"], f.attrs["ref_max_score"] = 1.0, 200.0
        for e, t in enumerate((5, 3)):
            g = f.create_group(f"episode_{e}")
            obs = g.create_group("observations")
            obs["observation"] = np.arange((t + 1) * 4, dtype=float).reshape(t + 1, 4)
            obs["desired_goal"] = np.full((t + 1, 2), float(e))
            obs["achieved_goal"] = obs["observation"][()][:, :2]
            g["actions"] = np.zeros((t, 2))
            g["rewards"] = np.ones(t)
            g["terminations"] = np.zeros(t, bool)
            g["truncations"] = np.zeros(t, bool)
    data = load_dataset(folder)
    assert len(data) == 8 and data.env_id == UMAZE and data.num_episodes == 2
    np.testing.assert_array_equal(data.next_observations[0], data.observations[1])
    assert data.normalized_score(200.0) == pytest.approx(100.0)
    assert data.metadata["eval_env_kwargs"] == {"continuing_task": True}


def test_hdf5_without_h5py_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "d.hdf5").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(RobustRLError, match="needs h5py; pip install h5py"):
        load_dataset(tmp_path / "d.hdf5")


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("actions"), "missing key"),
    (lambda a: a.update(actions=np.zeros((3, 2))), "actions has 3 rows"),
    (lambda a: a.update(rewards=np.zeros((12, 3))), r"rewards must have shape \(12,\)"),
    (lambda a: a.update(observations=np.zeros(12)), "2-D numeric"),
    (lambda a: a.update(**{"infos/goal": np.zeros((4, 2))}), "infos/goal"),
])
def test_malformed_datasets_are_one_line(tmp_path, change, message):
    arrays = _d4rl_arrays()
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(RobustRLError, match=message):
        load_dataset(tmp_path / "bad.npz")


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(RobustRLError, match="not found"):
        load_dataset(tmp_path / "none.npz")
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(RobustRLError, match="unknown format"):
        load_dataset(tmp_path / "data.csv")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(RobustRLError, match="corrupt"):
        load_dataset(tmp_path / "broken.npz")
    with pytest.raises(RobustRLError, match="not a Minari dataset"):
        load_dataset(tmp_path)


def test_dataset_class_requires_references():
    data = OfflineDataset(*(np.zeros((2, 1)),) * 4, np.zeros(2, bool), np.zeros(2, bool))
    with pytest.raises(RobustRLError, match="no reference returns"):
        data.normalized_score(1.0)


def test_episode_ends_and_peek_env_id(tmp_path, umaze):
    data = load_dataset(umaze)
    ends = data.episode_ends
    assert ends[-1] and ends.sum() == data.num_episodes
    np.testing.assert_array_equal(ends[:-1], (data.terminals | data.timeouts)[:-1])
    assert not data.terminals.any()  # the property leaves the arrays alone
    assert peek_env_id(umaze) == UMAZE  # from the metadata, without loading the arrays
    assert peek_env_id(tmp_path / "none.npz") is None
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert peek_env_id(tmp_path / "broken.npz") is None  # load_dataset reports it later
