"""Offline RL: PointMaze dataset generation (D4RL/Minari recipe), the dataset format and its
loaders, the IQL / TD3+BC / AWAC / CQL workers, offline training runs and the CLI."""

from __future__ import annotations

import json
import sys
import tomllib

import numpy as np
import pytest
import torch

from robustrl.agents.offline import TransitionSampler, torch_device
from robustrl.cli import main
from robustrl.core.errors import RobustRLError
from robustrl.core.logging import read_metrics
from robustrl.data.dataset import OfflineDataset, load_dataset, save_dataset
from robustrl.data.generate import (
    EVAL_ENV_KWARGS,
    GenerateConfig,
    GridPlanner,
    generate_dataset,
    rollout_returns,
)
from robustrl.train.offline import WORKERS, load_worker, train_offline, worker_class

UMAZE = "maze/PointMaze_UMaze-v3"
TINY = {"hidden": [32, 32], "batch_size": 64}
FAST_RUN = {"run.eval_episodes": 1, "run.tensorboard": False, "run.log_every": 10}


@pytest.fixture(scope="module")
def umaze(tmp_path_factory):
    """A 10k-step generated UMaze dataset (about 2 s)."""
    path = tmp_path_factory.mktemp("data") / "umaze.npz"
    generate_dataset(UMAZE, GenerateConfig(steps=10_000, seed=0, ref_episodes=5), out=path,
                     show_progress=False)
    return path


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


# ----------------------------------------------------------------------------- workers
@pytest.mark.parametrize("name", sorted(WORKERS))
def test_worker_updates_and_round_trips(name, umaze):
    data = load_dataset(umaze)
    inputs, next_inputs = data.policy_inputs()
    sampler = TransitionSampler(inputs, data.actions, data.rewards, next_inputs,
                                data.terminals.astype(np.float32))
    cls = worker_class(name)
    extra = {"n_actions": 2} if name == "cql" else {}
    config = cls.Config(hidden=(32, 32), batch_size=32, **extra)
    worker = cls(6, 2, config, seed=0, obs_mean=inputs.mean(0), obs_std=inputs.std(0))
    for _ in range(4):
        metrics = worker.update(sampler.sample(32))
    assert worker.num_updates == 4 and all(np.isfinite(v) for v in metrics.values())
    actions = worker.act(inputs[:5])
    assert actions.shape == (5, 2) and np.abs(actions).max() <= 1.0
    assert worker.act(inputs[0]).shape == (2,)
    twin = cls(6, 2, config, seed=1)
    twin.load_state_dict(worker.state_dict())
    np.testing.assert_allclose(twin.act(inputs[:5]), actions)
    out = worker.policy_output(torch.as_tensor(inputs[:3]))
    assert out.shape == (3, 2) and out.requires_grad


def test_device_is_checked(umaze):
    with pytest.raises(RobustRLError, match="unknown torch device 'gpu0'"):
        torch_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(RobustRLError, match="sees no GPU; use run.device=cpu"):
            train_offline(umaze, "iql", steps=1, overrides={"run.device": "cuda"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("name", sorted(WORKERS))
def test_worker_trains_on_gpu_and_loads_on_cpu(name, umaze, tmp_path):
    result = train_offline(umaze, name, steps=20, out=tmp_path / "run", show_progress=False,
                           overrides={**FAST_RUN, **TINY, "run.device": "cuda"})
    worker = result.worker
    assert all(p.is_cuda for n in worker.modules for p in getattr(worker, n).parameters())
    on_cpu = load_worker(tmp_path / "run")
    inputs, _ = load_dataset(umaze).policy_inputs()
    np.testing.assert_allclose(on_cpu.act(inputs[:5]), result.worker.act(inputs[:5]),
                               atol=1e-5)


def test_unknown_agent_is_one_line(umaze):
    with pytest.raises(RobustRLError, match="unknown offline agent 'bc'; available: awac, cql"):
        train_offline(umaze, "bc", steps=1)


# ----------------------------------------------------------------------------- runs
def test_train_offline_writes_a_run(tmp_path, umaze):
    out = tmp_path / "run"
    result = train_offline(umaze, "iql", steps=30, out=out, show_progress=False,
                           overrides={**FAST_RUN, **TINY, "run.eval_every": 20})
    assert {"config.toml", "metrics.csv", "checkpoint.pt", "agent.pt"} <= {
        p.name for p in out.iterdir()}
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["run"]["dataset"] == str(umaze) and config["agent"]["hidden"] == [32, 32]
    rows = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert "normalized_score" in rows[1] and "normalized_score" in rows[2]
    assert "normalized_score" in result.evaluation
    worker = load_worker(out)
    np.testing.assert_allclose(worker.act(np.zeros(6)), result.worker.act(np.zeros(6)))
    with pytest.raises(RobustRLError, match="already holds a run"):
        train_offline(umaze, "iql", steps=30, out=out, overrides=FAST_RUN)

    # resume continues from the checkpoint with the saved config (here: a larger budget)
    (out / "config.toml").write_text((out / "config.toml").read_text().replace(
        "steps = 30", "steps = 50"))
    result = train_offline("", resume=True, out=out, show_progress=False)
    assert result.worker.num_updates == 50
    assert [r["step"] for r in read_metrics(out / "metrics.csv")] == [10, 20, 30, 40, 50]


def test_agent_toml_files_resolve(umaze):
    from robustrl.train.offline import build_offline_run

    for name in WORKERS:
        cfg = build_offline_run(name, umaze, 10)
        assert cfg.agent.batch_size == 256 and cfg.agent.gamma == 0.99
    cfg = build_offline_run("iql", umaze, 10, overrides={"beta": 3.0, "run.eval_episodes": 2})
    assert cfg.agent.beta == 3.0 and cfg.run.eval_episodes == 2
    with pytest.raises(RobustRLError, match="unknown config key 'agent.betta'"):
        build_offline_run("iql", umaze, 10, overrides={"betta": 3.0})


# ----------------------------------------------------------------------------- CLI
def test_cli_generate_info_train(tmp_path, capsys):
    data = tmp_path / "small.npz"
    assert main(["data", "generate", UMAZE, "--steps", "1500", "--out", str(data),
                 "--seed", "1", "--set", "ref_episodes=1", "--set", "waypoint_speed=inf"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert load_dataset(data).metadata["recipe"]["waypoint_speed"] == float("inf")
    assert main(["data", "info", str(data)]) == 0
    assert "infos/goal" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["train", "--agent", "td3bc", "--dataset", str(data), "--steps", "20",
                 "--out", str(out), "--set", "hidden=[32,32]", "--set", "run.eval_episodes=1",
                 "--set", "run.tensorboard=false"]) == 0
    assert "normalized score" in capsys.readouterr().out
    assert main(["train", "--resume", str(out)]) == 0


@pytest.mark.parametrize("argv, message", [
    (["train", "--agent", "iql", "--steps", "5", "--out", "x"], "add --dataset FILE"),
    (["train", "--agent", "sac", "--dataset", "none.npz", "--steps", "5", "--out", "x"],
     "unknown offline agent 'sac'"),
    (["train", "--agent", "iql", "--dataset", "none.npz", "--steps", "5", "--out", "x"],
     "none.npz not found"),
    (["data", "generate", "maze/PointMaze_UMaze-v3", "--steps", "0", "--out", "x.npz"],
     "--steps must be positive"),
    (["data", "info", "none.npz"], "not found"),
])
def test_cli_bad_input_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustrl: error:") and message in err and "\n" not in err
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- learning
@pytest.mark.learning
def test_iql_beats_random_on_umaze(tmp_path):
    """IQL on a 20k-step generated UMaze dataset clearly beats the random policy's score.

    Measured (seed 0, 3000 updates): IQL ~20-33 normalized, success 0.75-0.95; random ~0-4,
    success ~0.35. (The Minari recipe's data leave a goal as soon as it is reached, so the
    policy has never seen how to stay there; the return counts steps at the goal.)
    """
    path = tmp_path / "umaze.npz"
    data = generate_dataset(UMAZE, GenerateConfig(steps=20_000, seed=0, ref_episodes=10),
                            out=path, show_progress=False)
    result = train_offline(path, "iql", steps=3000, seed=0, show_progress=False,
                           overrides={"hidden": [128, 128], "run.eval_episodes": 20,
                                      "run.eval_every": 3000})
    from robustrl.data.generate import random_policy
    from robustrl.envs import make

    env = make(UMAZE, **EVAL_ENV_KWARGS)
    rand = rollout_returns(env, random_policy(env, seed=1), 20, seed=10_000)
    random_score = data.normalized_score(float(np.mean(rand["returns"])))
    score, success = result.evaluation["normalized_score"], result.evaluation["success"]
    print(f"IQL normalized score {score:.1f} (success {success:.2f}), random {random_score:.1f}")
    assert abs(random_score) < 10
    assert score > random_score + 10, (score, random_score)
    assert success >= 0.6  # (a random walk also finds the UMaze goal in ~1/3 of episodes)


def test_dataset_class_requires_references():
    data = OfflineDataset(*(np.zeros((2, 1)),) * 4, np.zeros(2, bool), np.zeros(2, bool))
    with pytest.raises(RobustRLError, match="no reference returns"):
        data.normalized_score(1.0)


# ----------------------------------------------------------------------------- manager
MANAGER = {"hidden": [32, 32], "latent_dim": 4, "k": 10, "horizon": 2, "batch_size": 32,
           "num_candidates": 8}


def test_manager_trains_plans_and_relabels(tmp_path, umaze):
    from robustrl.agents.tdmpc import AbstractSequences, load_manager, train_manager

    out = tmp_path / "manager"
    manager = train_manager(umaze, 5, out=out, overrides={**MANAGER, "run.tensorboard": False,
                                                          "run.log_every": 5},
                            show_progress=False)
    assert {"config.toml", "metrics.csv", "manager.pt"} <= {p.name for p in out.iterdir()}
    row = read_metrics(out / "metrics.csv")[-1]
    assert row["step"] == 5 and all(np.isfinite(v) for v in row.values())

    data = load_dataset(umaze)
    inputs, _ = data.policy_inputs()
    sequences = AbstractSequences(data, inputs, k=10, horizon=2, gamma=0.99)
    states, returns, masks = sequences.sample(16)
    assert states.shape == (3, 16, 6) and returns.shape == masks.shape == (2, 16)
    assert masks[0].all()  # the first abstract step of a sequence is always in its episode

    intent = manager.plan(inputs[0], torch.Generator().manual_seed(0))
    assert intent.shape == (4,) and np.abs(intent).max() <= 1.0
    assert manager.plan(inputs[:3]).shape == (3, 4)
    intents, next_intents = manager.relabel(data, inputs, seed=0)
    assert intents.shape == next_intents.shape == (len(data), 4)
    # within an episode the intent changes only every k = 10 steps
    first_end = int(np.flatnonzero(data.timeouts)[0])
    window = intents[: first_end + 1]
    changes = np.flatnonzero(np.any(window[1:] != window[:-1], axis=1)) + 1
    assert set(changes) <= set(range(10, first_end + 1, 10))
    np.testing.assert_array_equal(next_intents[: first_end], intents[1: first_end + 1])

    again = load_manager(out)
    np.testing.assert_allclose(again.plan(inputs[:3], torch.Generator().manual_seed(1)),
                               manager.plan(inputs[:3], torch.Generator().manual_seed(1)))
    with pytest.raises(RobustRLError, match="manager checkpoint .* not found"):
        load_manager(tmp_path)

    # any worker learns and acts on [observation, goal, intent]
    result = train_offline(umaze, "td3bc", steps=10, show_progress=False,
                           overrides={**FAST_RUN, **TINY, "run.manager": str(out)})
    assert result.worker.obs_dim == 10 and "normalized_score" in result.evaluation


def test_cli_trains_a_manager(tmp_path, umaze, capsys):
    out = tmp_path / "m"
    argv = ["train", "--agent", "iql_tdmpc", "--dataset", str(umaze), "--steps", "3",
            "--out", str(out), "--set", "run.tensorboard=false"]
    argv += [f"--set={k}={json.dumps(v)}" for k, v in MANAGER.items()]
    assert main(argv) == 0
    assert "run.manager=" in capsys.readouterr().out and (out / "manager.pt").exists()
