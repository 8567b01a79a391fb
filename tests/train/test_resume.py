"""Exact resume: a run SIGKILLed at any point and resumed (`robustrl train --resume`, a fresh
process) ends with the same metrics.csv (wall-clock columns aside), TensorBoard scalars and
final agent as the uninterrupted run.

The kill points are made deterministic by a driver that SIGKILLs its own process from inside
the run: in the middle of writing the k-th checkpoint (half the temp file written), right after
it, or at a metrics row between checkpoints."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl import envs
from robustrl.agents.base import read_checkpoint
from robustrl.cli import main
from robustrl.train import build_run, resume, train
from robustrl.train.rundir import read_run_toml
from tests.subprocess_cli import run_cli, subprocess_env

WALL_CLOCK = {"steps_per_second", "updates_per_s"}

DRIVER = textwrap.dedent("""
    import os, signal, sys, tempfile
    from pathlib import Path
    import robustrl.core.io as io
    from robustrl.core import logging as rl_logging
    from robustrl.cli import main

    mode, k = sys.argv[1], int(sys.argv[2])
    writes, rows = [0], [0]
    original_write, original_log = io.atomic_write_bytes, rl_logging.MetricsLogger.log

    def write(path, data):
        if str(path).endswith("checkpoint.pt"):
            writes[0] += 1
            if writes[0] == k and mode == "during":
                path = Path(path)  # a half-written temp file, as atomic_write_bytes names it
                fd, _ = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                os.write(fd, data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            original_write(path, data)
            if writes[0] == k and mode == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return
        original_write(path, data)

    def log(self, step, metrics):
        original_log(self, step, metrics)
        rows[0] += 1
        if mode == "row" and rows[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)

    io.atomic_write_bytes = write
    rl_logging.MetricsLogger.log = log
    sys.exit(main(sys.argv[3:]))
""")


def _killed(mode: str, k: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, mode, str(k), *args],
                          capture_output=True, text=True, env=subprocess_env(), timeout=600)


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in WALL_CLOCK}
                for row in csv.DictReader(f)]


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
            for tag in acc.Tags()["scalars"] if tag not in WALL_CLOCK}


def _same_agent(a: Path, b: Path) -> None:
    kind = torch.load(a, map_location="cpu", weights_only=False).get("kind")  # offline workers
    sa, sb = read_checkpoint(a, kind)["state"], read_checkpoint(b, kind)["state"]
    assert sa.keys() == sb.keys()
    for key in sa:
        _same_tree(sa[key], sb[key], key)


def _same_tree(x, y, where: str) -> None:
    if isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            _same_tree(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    elif hasattr(x, "shape"):
        assert (x == y).all(), where
    else:
        assert x == y, where


def _check_resume(tmp_path: Path, train_args: list[str], kills: list[tuple[str, int]]) -> None:
    """Uninterrupted run vs one killed at each of `kills` in turn, resumed after each."""
    ref = tmp_path / "ref"
    assert main(["train", *train_args, "--out", str(ref)]) == 0  # here: one process fewer
    run = tmp_path / "killed"
    first, *rest = kills
    proc = _killed(*first, "train", *train_args, "--out", str(run))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    for mode, k in rest:
        proc = _killed(mode, k, "train", "--resume", str(run))
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    proc = run_cli("train", "--resume", str(run))
    assert proc.returncode == 0, proc.stderr
    assert _metrics(run) == _metrics(ref)
    assert _scalars(run) == _scalars(ref)
    _same_agent(run / "agent.pt", ref / "agent.pt")
    assert "resumes" not in (run / "config.toml").read_text()


SAC = ["--agent", "sac", "--env", "mujoco/InvertedPendulum-v5", "--steps", "450", "--seed", "3",
       "--set", "learning_starts=100", "--set", "batch_size=32", "--set", "hidden=[32,32]",
       "--set", "log_interval=50", "--set", "run.checkpoint_every=150"]


def test_sac_mujoco_resume_is_exact(tmp_path):
    """Killed mid-episode while writing its 2nd checkpoint: resumed, the same run."""
    _check_resume(tmp_path, SAC, [("during", 2)])


@pytest.mark.slow
def test_sac_mujoco_resume_after_many_kills_is_exact(tmp_path):
    """Killed while writing the 2nd checkpoint, then right after the 1st checkpoint of the
    resumed process, then between checkpoints: the same run as never killed."""
    _check_resume(tmp_path, SAC, [("during", 2), ("after", 1), ("row", 2)])


@pytest.mark.slow
def test_ppo_mujoco_resume_is_exact(tmp_path):
    args = ["--agent", "ppo", "--env", "mujoco/HalfCheetah-v5", "--steps", "1536", "--seed", "1",
            "--set", "n_envs=2", "--set", "n_steps=128", "--set", "n_epochs=2",
            "--set", "normalize_reward=true", "--set", "run.checkpoint_every=256"]
    _check_resume(tmp_path, args, [("during", 2), ("after", 1), ("row", 1)])


@pytest.mark.slow
def test_mappo_mpe_resume_is_exact(tmp_path):
    args = ["--agent", "mappo", "--env", "mpe/simple_spread", "--steps", "1200", "--seed", "2",
            "--set", "n_envs=2", "--set", "n_steps=40", "--set", "n_epochs=2",
            "--set", "run.checkpoint_every=160"]
    _check_resume(tmp_path, args, [("during", 2), ("after", 2), ("row", 3)])


@pytest.mark.slow
def test_offline_iql_resume_is_exact(tmp_path):
    from robustrl.data.generate import GenerateConfig, generate_dataset

    data = tmp_path / "umaze.npz"
    generate_dataset("maze/PointMaze_UMaze-v3", GenerateConfig(steps=3000, seed=0,
                                                               ref_episodes=2),
                     out=data, show_progress=False)
    args = ["--agent", "iql", "--dataset", str(data), "--steps", "400", "--seed", "4",
            "--set", "batch_size=64", "--set", "run.log_every=25", "--set", "run.eval_every=100",
            "--set", "run.eval_episodes=1", "--set", "run.checkpoint_every=75"]
    _check_resume(tmp_path, args, [("during", 2), ("row", 3)])


# --------------------------------------------------------------------------- user envs
class Drift(gym.Env):
    """A noisy 1-D walk: its state is the position, the step counter and np_random."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += 0.3 * float(action[0]) + float(self.np_random.normal(0, 0.5))
        self.t += 1
        return (np.array([self.x], np.float32), -abs(self.x), abs(self.x) > 3, self.t >= 40, {})


class HookedDrift(Drift):
    """The same env with the state hook robustrl.envs.state looks for."""

    def get_state(self):
        return self.x, self.t, self.np_random.bit_generator.state

    def set_state(self, state):
        self.x, self.t, self.np_random.bit_generator.state = state


envs.register("r17test/Drift-v0", Drift)
envs.register("r17test/HookedDrift-v0", HookedDrift)
PPO_SMALL = {"n_envs": 2, "n_steps": 32, "n_epochs": 1, "hidden": [16],
             "run.checkpoint_every": 64, "run.tensorboard": False}


def _interrupted(env_id: str, out: Path) -> None:
    """Train 128 steps, then resume it to 256 (config.toml's budget raised, as a run killed
    at its 128-step checkpoint would go on)."""
    train(build_run("ppo", env_id, 128, 0, PPO_SMALL), out, show_progress=False)
    (out / "agent.pt").unlink()
    config = out / "config.toml"
    config.write_text(config.read_text().replace("steps = 128", "steps = 256"))
    resume(out)


def test_user_env_with_a_state_hook_resumes_exactly(tmp_path):
    train(build_run("ppo", "r17test/HookedDrift-v0", 256, 0, PPO_SMALL), tmp_path / "ref",
          show_progress=False)
    _interrupted("r17test/HookedDrift-v0", tmp_path / "run")
    assert _metrics(tmp_path / "run") == _metrics(tmp_path / "ref")
    assert "resumes" not in read_run_toml(tmp_path / "run")


def test_resume_without_env_state_is_recorded_as_inexact(tmp_path):
    _interrupted("r17test/Drift-v0", tmp_path / "run")
    assert read_run_toml(tmp_path / "run")["resumes"] == [
        {"step": 128, "exact": False, "why": "an env's state cannot be saved"}]
    rows = _metrics(tmp_path / "run")
    marked = [r["step"] for r in rows if r.get("resumed_inexact_at")]
    assert marked == ["192"] and rows[-1]["step"] == "256"
