"""Run directories: config, metrics, atomic checkpoints, resume after SIGKILL, eval."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from robustrl.agents.base import read_checkpoint
from robustrl.cli import main
from robustrl.train import build_run, load_run_agent, train

FAST = ["--set", "hidden=[32, 32]", "--set", "learning_starts=100", "--set", "log_interval=100",
        "--set", "run.checkpoint_every=300", "--set", "run.tensorboard=false"]


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "robustrl.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _steps(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(float(r["step"])) for r in csv.DictReader(f)]


def test_run_directory_contents(tmp_path):
    cfg = build_run("sac", "gym/Pendulum-v1", 400, overrides={
        "hidden": [32, 32], "learning_starts": 100, "log_interval": 100,
        "run.checkpoint_every": 200})
    train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["run"]["agent"] == "sac" and config["agent"]["hidden"] == [32, 32]
    assert _steps(run) == [100, 200, 300, 400]
    assert any((run / "tb").iterdir())
    assert read_checkpoint(run / "checkpoint.pt")["num_steps"] == 400
    assert load_run_agent(run).num_steps == 400


def test_resume_after_sigkill(tmp_path):
    run = tmp_path / "run"
    proc = _cli("train", "--agent", "sac", "--env", "gym/Pendulum-v1", "--steps", "2000",
                "--out", str(run), *FAST)
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert (run / "checkpoint.pt").exists(), proc.communicate()
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = read_checkpoint(run / "checkpoint.pt")["num_steps"]
    assert 300 <= killed_at < 2000

    resumed = _cli("train", "--resume", str(run))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "2000 steps" in out
    assert read_checkpoint(run / "checkpoint.pt")["num_steps"] == 2000
    assert read_checkpoint(run / "agent.pt")["num_steps"] == 2000
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 2000  # no duplicated or lost rows
    assert not list(run.glob(".*.tmp"))


def test_eval_table_and_json(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--agent", "ppo", "--env", "gym/CartPole-v1", "--steps", "256",
                 "--out", str(run), "--set", "n_envs=2", "--set", "n_steps=64",
                 "--set", "run.tensorboard=false"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "3"]) == 0
    assert "±" in capsys.readouterr().out
    assert main(["eval", str(run), "--episodes", "3", "--json",
                 "--perturb", "act-replace:0.5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 3 and len(result["returns"]) == 3
    assert result["perturbations"] == ["act-replace:0.5"]


@pytest.mark.parametrize("argv,message", [
    (["train", "--agent", "sac", "--env", "mujoco/Hoper-v5", "--steps", "10", "--out", "x"],
     "unknown env id 'mujoco/Hoper-v5'; did you mean 'mujoco/Hopper-v5'"),
    (["train", "--agent", "sac", "--env", "gym/CartPole-v1", "--steps", "10", "--out", "x"],
     "sac cannot handle action space Discrete(2)"),
    (["train", "--agent", "sac", "--env", "gym/Pendulum-v1", "--steps", "10", "--out", "x",
      "--set", "batchsize=3"], "unknown config key 'agent.batchsize'; did you mean"),
    (["train", "--agent", "sac", "--env", "gym/Pendulum-v1", "--steps", "10", "--out", "x",
      "--set", "lr=fast"], "agent.lr: expected a number"),
    (["eval", "no/such/run"], "run directory no/such/run not found"),
    (["train", "--resume", "no/such/run"], "run directory no/such/run not found"),
])
def test_bad_input_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "--agent", "sac", "--env", "gym/Pendulum-v1", "--steps", "50", "--out",
          str(run), "--set", "learning_starts=10", "--set", "run.tensorboard=false"])
    capsys.readouterr()
    (run / "agent.pt").write_bytes(b"\x00garbage")
    assert main(["eval", str(run)]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_data_generate_bad_input_is_one_line(capsys, tmp_path):
    assert main(["data", "generate", "maze/PointMaze_Nowhere-v3", "--steps", "10",
                 "--out", str(tmp_path / "d.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustrl: error:") and "PointMaze_Nowhere" in err and "\n" not in err
    assert not (tmp_path / "d.npz").exists()


def test_bench_missing_suite_is_one_line(capsys):
    assert main(["bench", "no-such-suite.toml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustrl: error:") and "no-such-suite.toml" in err and "\n" not in err


def test_envs_listing(capsys):
    assert main(["envs", "--family", "mujoco"]) == 0
    out = capsys.readouterr().out
    assert "mujoco/HalfCheetah-v5" in out and "forward_reward" in out
    assert main(["envs", "show", "mujoco/Hopper-v5"]) == 0
    assert "healthy_reward" in capsys.readouterr().out


USER_MODULE = '''
import gymnasium as gym
import numpy as np
from robustrl import envs


class Corridor(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, length: float = 5.0):
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        move = float(np.clip(action[0], -1, 1))
        self.x = float(np.clip(self.x + move, -1.0, 10.0))
        factors = {"progress": move, "effort": move**2}
        return (np.array([self.x], np.float32), move - 0.1 * move**2, self.x >= self.length,
                self.x < 0, {"reward_factors": factors})


envs.register("custom/Corridor-v0", Corridor, factors={"progress": "higher", "effort": "lower"},
              length=3.0)
'''


def test_cli_trains_user_registered_env(tmp_path):
    (tmp_path / "my_corridor_envs.py").write_text(USER_MODULE)
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "robustrl.cli", "train", "--import", "my_corridor_envs",
         "--agent", "sac", "--env", "custom/Corridor-v0", "--steps", "600", "--out", str(run),
         "--set", "learning_starts=100", "--set", "hidden=[32, 32]"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "robustrl.cli", "eval", str(run), "--json",
                           "--episodes", "3"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # 600 steps are plenty to learn to walk right: 3 steps of +1 to the goal.
    assert result["return_mean"] > 2.0 and result["length_mean"] <= 10, result
