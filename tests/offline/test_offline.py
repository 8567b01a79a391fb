"""Offline learners: the IQL / TD3+BC / AWAC / CQL workers and the IQL-TD-MPC manager,
their registry entries, offline training runs and the CLI."""

from __future__ import annotations

import json
import tomllib

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.agents import agent_class, capabilities
from robustrl.agents.base import Capabilities
from robustrl.agents.offline import TransitionSampler, torch_device
from robustrl.cli import main
from robustrl.core.errors import RobustRLError
from robustrl.core.logging import read_metrics
from robustrl.core.normalizer import FixedNormalizer
from robustrl.data.dataset import load_dataset
from robustrl.data.generate import (
    EVAL_ENV_KWARGS,
    GenerateConfig,
    generate_dataset,
    random_policy,
    rollout_returns,
)
from robustrl.envs import make
from robustrl.train.manager import train_manager
from robustrl.train.offline import (
    build_offline_run,
    load_worker,
    offline_agents,
    offline_worker_class,
    train_offline,
    worker_names,
)

UMAZE = "maze/PointMaze_UMaze-v3"
WORKERS = ["awac", "cql", "iql", "td3bc"]
TINY = {"hidden": [32, 32], "batch_size": 64}
FAST_RUN = {"run.eval_episodes": 1, "run.tensorboard": False, "run.log_every": 10}


# ----------------------------------------------------------------------------- registry
def test_one_registry_declares_the_offline_learners():
    """The workers and the manager sit in the one agents registry, declared offline."""
    assert offline_agents() == [*WORKERS, "tdmpc"] and worker_names() == WORKERS
    expected = Capabilities(agents="single", learning="offline",
                            action_spaces=(gym.spaces.Box,), ernie=False, relabel=False,
                            learned_reward=False)
    for name in offline_agents():
        assert capabilities(name) == expected
        assert agent_class(name).name == name  # registry name = learner name = module name
        assert agent_class(name).__module__ == f"robustrl.agents.{name}"
        assert "lr" in agent_class(name).Config.__dataclass_fields__  # one learning-rate key
    assert capabilities("sac").learning != "offline"
    with pytest.raises(RobustRLError, match="tdmpc is a manager, not a worker"):
        offline_worker_class("tdmpc")


# ----------------------------------------------------------------------------- workers
@pytest.mark.parametrize("name", WORKERS)
def test_worker_updates_and_round_trips(name, umaze):
    data = load_dataset(umaze)
    inputs, next_inputs = data.policy_inputs()
    sampler = TransitionSampler(inputs, data.actions, data.rewards, next_inputs,
                                data.terminals.astype(np.float32))
    cls = offline_worker_class(name)
    extra = {"n_actions": 2} if name == "cql" else {}
    config = cls.Config(hidden=(32, 32), batch_size=32, **extra)
    worker = cls(6, 2, config, seed=0,
                 normalizer=FixedNormalizer(inputs.mean(0), inputs.std(0)))
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
@pytest.mark.parametrize("name", WORKERS)
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
    for name in WORKERS:
        cfg = build_offline_run(name, umaze, 10)
        assert cfg.agent.batch_size == 256 and cfg.agent.gamma == 0.99
        assert cfg.agent.lr == 3e-4
    cql = build_offline_run("cql", umaze, 10).agent
    assert cql.actor_lr == 1e-4  # CORL's actor rate, the dataclass default
    assert build_offline_run("cql", umaze, 10, overrides={"lr": 1e-3}).agent.lr == 1e-3
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
     "'sac' is not an offline agent; with --dataset choose one of: awac, cql, iql, td3bc, "
     "tdmpc"),
    (["train", "--agent", "cql", "--env", UMAZE, "--steps", "5", "--out", "x"],
     "or train with --env one of: hybrid_sac, idqn"),
    (["train", "--agent", "iql", "--dataset", "none.npz", "--steps", "5", "--out", "x"],
     "none.npz not found"),
    (["data", "generate", "maze/PointMaze_UMaze-v3", "--steps", "0", "--out", "x.npz"],
     "steps must be >= 1"),
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

    env = make(UMAZE, **EVAL_ENV_KWARGS)
    rand = rollout_returns(env, random_policy(env, seed=1), 20, seed=10_000)
    random_score = data.normalized_score(float(np.mean(rand["returns"])))
    score, success = result.evaluation["normalized_score"], result.evaluation["success"]
    print(f"IQL normalized score {score:.1f} (success {success:.2f}), random {random_score:.1f}")
    assert abs(random_score) < 10
    assert score > random_score + 10, (score, random_score)
    assert success >= 0.6  # (a random walk also finds the UMaze goal in ~1/3 of episodes)


# ----------------------------------------------------------------------------- manager
MANAGER = {"hidden": [32, 32], "latent_dim": 4, "k": 10, "horizon": 2, "batch_size": 32,
           "num_candidates": 8}


def test_manager_trains_plans_and_relabels(tmp_path, umaze):
    from robustrl.agents.tdmpc import AbstractSequences, load_manager

    out = tmp_path / "manager"
    manager = train_manager(umaze, 5, out=out, overrides={**MANAGER, "run.tensorboard": False,
                                                          "run.log_every": 5},
                            show_progress=False)
    assert {"config.toml", "metrics.csv", "manager.pt"} <= {p.name for p in out.iterdir()}
    row = read_metrics(out / "metrics.csv")[-1]
    assert row["step"] == 5 and all(np.isfinite(v) for v in row.values())

    data = load_dataset(umaze)
    inputs, _ = data.policy_inputs()
    sequences = AbstractSequences(inputs, data.rewards, data.episode_ends, k=10, horizon=2,
                                  gamma=0.99)
    states, returns, masks = sequences.sample(16)
    assert states.shape == (3, 16, 6) and returns.shape == masks.shape == (2, 16)
    assert masks[0].all()  # the first abstract step of a sequence is always in its episode

    intent = manager.plan(inputs[0], torch.Generator().manual_seed(0))
    assert intent.shape == (4,) and np.abs(intent).max() <= 1.0
    assert manager.plan(inputs[:3]).shape == (3, 4)
    intents, next_intents = manager.relabel(inputs, data.episode_ends, seed=0)
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
    argv = ["train", "--agent", "tdmpc", "--dataset", str(umaze), "--steps", "3",
            "--out", str(out), "--set", "run.tensorboard=false"]
    argv += [f"--set={k}={json.dumps(v)}" for k, v in MANAGER.items()]
    assert main(argv) == 0
    assert "run.manager=" in capsys.readouterr().out and (out / "manager.pt").exists()
    assert tomllib.loads((out / "config.toml").read_text())["run"]["agent"] == "tdmpc"
    with pytest.raises(RobustRLError, match="is a manager run; manager training does not"):
        train_offline("", resume=True, out=out)
