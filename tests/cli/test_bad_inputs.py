"""The bad-input catalogue (issue 17): every case ends in a one-line error (exit code 2, no
traceback) or in the correct behaviour. One row per case; the rows run `robustrl` in-process,
so an uncaught exception fails the row with its traceback."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from robustrl.cli import main

PPO = ["--agent", "ppo", "--env", "gym/CartPole-v1", "--set", "n_envs=1", "--set", "n_steps=32",
       "--set", "hidden=[8]", "--set", "run.tensorboard=false"]
"""A tiny PPO run: 32-step rollouts, so --steps 64 trains in well under a second."""

RAISING_MODULE = "raise RuntimeError('boom: a bug in the user module')\n"
SPACE_METHODS_MODULE = '''
import gymnasium as gym
import numpy as np
from robustrl import envs

class PerAgentSpaces(gym.Env):  # PettingZoo-style space methods, but no possible_agents
    def observation_space(self, agent):
        return gym.spaces.Box(-1, 1, (2,), np.float32)
    def action_space(self, agent):
        return gym.spaces.Discrete(2)

envs.register("custom/PerAgentSpaces-v0", PerAgentSpaces, check=False)  # refused at train
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("catalogue") / "run"
    assert main(["train", *PPO, "--steps", "64", "--out", str(run)]) == 0
    return run


def then(*_effects: object, argv: list[str]) -> list[str]:
    """`argv`, after the setup effects given before it have run."""
    return argv


def copy_run(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    return run


def read_only(path: Path, monkeypatch) -> Path:
    """`path` made read-only; as root (who writes anyway) `os.access` reports it read-only."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p).resolve()
                            == path.resolve() else real(p, mode, **kw))
    else:
        path.chmod(0o555)
    return path


def tiny_dataset(tmp_path: Path, nan_rewards: bool = False) -> Path:
    from robustrl.data.dataset import OfflineDataset, save_dataset

    n, rng = 64, np.random.default_rng(0)
    rewards = rng.normal(size=n).astype(np.float32)
    if nan_rewards:
        rewards[5] = np.nan
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    timeouts[-1] = True
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    data = OfflineDataset(observations=obs, actions=rng.uniform(-1, 1, (n, 1)).astype(np.float32),
                          rewards=rewards, next_observations=obs + 0.1, terminals=terminals,
                          timeouts=timeouts, metadata={"env_id": "gym/Pendulum-v1"})
    return save_dataset(tmp_path / "data.npz", data)


def suite(tmp_path: Path, glob: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(f'''name = "globs"
seeds = [0]
episodes = 1
[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 32
set = {{ n_envs = 1, n_steps = 32, hidden = [8] }}
[[perturbations]]
spec = "obs-gaussian"
strengths = [0.1]
envs = ["{glob}"]
''')
    return path


Setup = Callable[[Path, Path, object], list[str]]
"""(trained run, tmp_path, monkeypatch) -> argv."""

CASES: dict[str, tuple[Setup, str]] = {
    # name: (argv, a fragment the one-line message must contain)
    "negative hidden": (lambda r, t, m: ["train", *PPO, "--steps", "64", "--out", str(t / "o"),
                                         "--set", "hidden=[-8]"], "hidden"),
    "negative lr": (lambda r, t, m: ["train", *PPO, "--steps", "64", "--out", str(t / "o"),
                                     "--set", "lr=-1e-3"], "lr"),
    "--seed -1": (lambda r, t, m: ["train", *PPO, "--steps", "64", "--seed", "-1",
                                   "--out", str(t / "o")], "seed"),
    "eval --seed -5": (lambda r, t, m: ["eval", str(r), "--seed", "-5"], "seed"),
    "eval --episodes 0": (lambda r, t, m: ["eval", str(r), "--episodes", "0"], "episodes"),
    "--out is an existing file": (
        lambda r, t, m: then((t / "f").write_text("x"),
             argv=["train", *PPO, "--steps", "64", "--out", str(t / "f")]), "existing file"),
    "foreign pickle as agent.pt": (
        lambda r, t, m: then(torch.save({"format": 1, "agent": "ppo", "weights": [1, 2]},
                                   copy_run(r, t) / "agent.pt"), argv=["eval", str(t / "copy")]),
        "agent.pt"),
    "empty config.toml (eval)": (
        lambda r, t, m: then((copy_run(r, t) / "config.toml").write_text(""),
                             argv=["eval", str(t / "copy")]), "config"),
    "empty config.toml (resume)": (
        lambda r, t, m: then((copy_run(r, t) / "config.toml").write_text(""),
             argv=["train", "--resume", str(t / "copy")]), "config"),
    "config.toml with an edited env (typo)": (
        lambda r, t, m: then((copy_run(r, t) / "config.toml").write_text(
            (r / "config.toml").read_text().replace("gym/CartPole-v1", "gym/CartPoel-v1")),
             argv=["train", "--resume", str(t / "copy")]), "CartPoel"),
    "config.toml with an edited env (another env)": (
        lambda r, t, m: then((copy_run(r, t) / "config.toml").write_text(
            (r / "config.toml").read_text().replace("gym/CartPole-v1", "gym/Acrobot-v1")),
             argv=["train", "--resume", str(t / "copy")]), "checkpoint holds ppo on gym/CartPole"),
    "garbage metrics.csv on resume": (
        lambda r, t, m: then((copy_run(r, t) / "metrics.csv").write_bytes(b"\x00\xff junk\n1\n"),
             argv=["train", "--resume", str(t / "copy")]), "metrics"),
    "read-only --out (train)": (
        lambda r, t, m: ["train", *PPO, "--steps", "64",
                         "--out", str(read_only(t / "ro", m) / "run")], "not writable"),
    "--out below a file (train)": (
        lambda r, t, m: then((t / "f").write_text("x"),
             argv=["train", *PPO, "--steps", "64", "--out", str(t / "f" / "run")]), "is a file"),
    "read-only run directory (resume)": (
        lambda r, t, m: ["train", "--resume", str(read_only(copy_run(r, t), m))],
        "not writable"),
    "read-only --out (data generate)": (
        lambda r, t, m: ["data", "generate", "maze/PointMaze_UMaze-v3", "--steps", "100000",
                         "--out", str(read_only(t / "ro", m) / "d.npz")], "not writable"),
    "read-only --out (bench)": (
        lambda r, t, m: ["bench", str(suite(t, "gym/*")), "--out", str(read_only(t / "ro", m))],
        "not writable"),
    "read-only --out (bench report)": (
        lambda r, t, m: ["bench", "report", str(t / "results.sqlite"),
                         "--out", str(read_only(t / "ro", m))], "not writable"),
    "data generate --set noise=-1": (
        lambda r, t, m: ["data", "generate", "maze/PointMaze_UMaze-v3", "--steps", "100",
                         "--out", str(t / "d.npz"), "--set", "noise=-1"], "noise"),
    "IQL on a dataset with NaN rewards": (
        lambda r, t, m: ["train", "--agent", "iql", "--dataset",
                         str(tiny_dataset(t, nan_rewards=True)), "--steps", "10",
                         "--out", str(t / "iql")], "rewards is NaN"),
    "an --import module that raises": (
        lambda r, t, m: then((t / "raising_envs.py").write_text(RAISING_MODULE), m.chdir(t),
             argv=["train", *PPO, "--steps", "64", "--out", str(t / "o"),
                   "--import", "raising_envs"]), "boom"),
    "--steps -5": (lambda r, t, m: ["train", *PPO, "--steps", "-5", "--out", str(t / "o")],
                   "steps"),
    "--steps 0": (lambda r, t, m: ["train", *PPO, "--steps", "0", "--out", str(t / "o")],
                  "steps"),
    "quickstart --steps -1": (lambda r, t, m: ["quickstart", "--steps", "-1",
                                               "--out", str(t / "q")], "steps"),
    "gamma=2": (lambda r, t, m: ["train", *PPO, "--steps", "64", "--out", str(t / "o"),
                                 "--set", "gamma=2"], "gamma"),
    "checkpoint_every=-5": (lambda r, t, m: ["train", *PPO, "--steps", "64", "--out",
                                             str(t / "o"), "--set", "run.checkpoint_every=-5"],
                            "checkpoint_every"),
    "batch_size=0": (lambda r, t, m: ["train", "--agent", "sac", "--env", "gym/Pendulum-v1",
                                      "--steps", "64", "--out", str(t / "o"),
                                      "--set", "batch_size=0"], "batch_size"),
    "lr=nan": (lambda r, t, m: ["train", *PPO, "--steps", "64", "--out", str(t / "o"),
                                "--set", "lr=nan"], "lr must be > 0"),
    "offline run.log_every=0": (
        lambda r, t, m: ["train", "--agent", "iql", "--dataset", str(tiny_dataset(t)),
                         "--steps", "10", "--out", str(t / "o"), "--set", "run.log_every=0"],
        "log_every must be >= 1"),
    "typo in envs --family": (lambda r, t, m: ["envs", "--family", "mujocoo"], "'mujoco'"),
    "bench perturbation glob matching no env": (
        lambda r, t, m: ["bench", str(suite(t, "mujoco/*")), "--out", str(t / "b")],
        "applies to no env"),
    "space methods without possible_agents": (
        lambda r, t, m: then(
            (t / "space_methods_envs.py").write_text(SPACE_METHODS_MODULE), m.chdir(t),
            argv=["train", "--agent", "sac", "--env", "custom/PerAgentSpaces-v0", "--steps", "64",
                  "--out", str(t / "o"), "--import", "space_methods_envs"]), "possible_agents"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line(case, trained, tmp_path, monkeypatch, capsys):
    setup, fragment = CASES[case]
    argv = setup(trained, tmp_path, monkeypatch)
    capsys.readouterr()
    try:
        code = main(argv)
    finally:
        for name in ("raising_envs", "space_methods_envs"):
            sys.modules.pop(name, None)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("robustrl: error")]
    assert code == 2, (case, code, err)
    assert len(lines) == 1 and "Traceback" not in err and "bound method" not in err, err
    assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "o").exists(), "a refused train must not write its run directory"


@dataclass
class Custom:
    lr: float = 0.1
    """Covered by the shared table (RANGES): > 0."""
    hidden: tuple[int, ...] = (8,)
    margin: float = field(default=0.5, metadata={"range": "[0, 1]"})
    """Declares its own range."""


def test_ranges_shared_and_declared_on_a_field():
    from robustrl.core.config import from_dict, replace
    from robustrl.core.errors import RobustRLError

    assert from_dict(Custom, {"margin": 1.0}).margin == 1.0
    with pytest.raises(RobustRLError, match=r"margin must be in \[0, 1\], got 2.0"):
        from_dict(Custom, {"margin": 2.0})
    with pytest.raises(RobustRLError, match=r"every value of hidden must be >= 1, got \(8, 0\)"):
        replace(Custom(), {"hidden": [8, 0]})
    with pytest.raises(RobustRLError, match="lr must be > 0, got 0"):
        replace(Custom(), {"lr": 0})


def test_failed_train_does_not_block_the_corrected_command(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text("[run]\n")  # what a train that failed before step 0 left
    assert main(["train", *PPO, "--steps", "64", "--out", str(out)]) == 0
    assert main(["train", *PPO, "--steps", "64", "--out", str(out)]) == 2  # a real run: refused
    assert "already holds a run" in capsys.readouterr().err


def test_on_policy_rounding_is_stated_and_recorded(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *PPO, "--steps", "50", "--out", str(out)]) == 0
    assert "--steps 50 became 64" in capsys.readouterr().out
    assert "steps = 64" in (out / "config.toml").read_text()


def test_budget_below_learning_starts_is_warned(tmp_path, capsys):
    assert main(["train", "--agent", "sac", "--env", "gym/Pendulum-v1", "--steps", "20",
                 "--out", str(tmp_path / "run"), "--set", "hidden=[8]",
                 "--set", "learning_starts=50", "--set", "run.tensorboard=false"]) == 0
    assert "learning_starts 50" in capsys.readouterr().out


@pytest.mark.parametrize("call, fragment", [
    (lambda envs, cls: envs.register("mujoco/Hopper-v5", cls), "built in"),
    (lambda envs, cls: envs.register("custom/Dup-v0", cls, check=False) and envs.register(
        "custom/Dup-v0", lambda: cls(), check=False), "already registered"),
    (lambda envs, cls: envs.register("custom/Up-v0", cls, factors={"speed": "up"}), "'up'"),
])
def test_register_refuses(call, fragment):
    import gymnasium as gym

    from robustrl import envs
    from robustrl.core.errors import RobustRLError

    try:
        with pytest.raises(RobustRLError, match=fragment) as info:
            call(envs, gym.Env)
        assert "\n" not in str(info.value)
    finally:
        for env_id in ("custom/Dup-v0", "custom/Up-v0"):
            envs.registry._REGISTRY.pop(env_id, None)
    # the same registration twice is a no-op (gym.Env itself would fail the env check)
    envs.register("custom/Dup-v0", gym.Env, check=False)
    envs.register("custom/Dup-v0", gym.Env, check=False)
    envs.registry._REGISTRY.pop("custom/Dup-v0")
