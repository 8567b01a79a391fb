"""Provenance in config.toml, checkpoints and the results database; one configuration per
agent × env × seed in a database; files written with the umask; stale temp files removed;
TensorBoard keeps the point at the resume step."""

from __future__ import annotations

import os
import sqlite3
import tomllib

import pytest
import torch

from robustrl.bench import report, run_suite
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text
from robustrl.core.provenance import PACKAGES, provenance
from robustrl.train import build_run, train

SUITE = """name = "prov"
seeds = [0]
episodes = 1
[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 32
set = { n_envs = 1, n_steps = 32, hidden = [8], "run.tensorboard" = false }
"""


def test_provenance_names_code_and_packages():
    p = provenance()
    assert set(PACKAGES) | {"python", "git_commit"} <= set(p)
    assert p["torch"] == torch.__version__
    assert p["git_commit"] == "-" or len(p["git_commit"].split("-")[0]) == 40


def test_run_records_provenance_and_resolved_env(tmp_path):
    cfg = build_run("ppo", "gym/CartPole-v1", 32, 0,
                    {"n_envs": 1, "n_steps": 32, "hidden": [8], "run.tensorboard": False})
    train(cfg, tmp_path / "run", show_progress=False)
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert config["provenance"]["torch"] == torch.__version__
    assert config["provenance"]["env_kwargs"] == {"gym_id": "CartPole-v1"}  # spec defaults
    assert config["agent"]["hidden"] == [8] and config["agent"]["lr"] > 0  # fully resolved
    for name in ("checkpoint.pt", "agent.pt"):
        saved = torch.load(tmp_path / "run" / name, weights_only=False)
        assert saved["provenance"] == provenance()
    mode = 0o666 & ~_umask()
    for name in ("config.toml", "checkpoint.pt", "agent.pt", "metrics.csv"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == mode, name


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_db_refuses_a_second_configuration_and_names_the_change(tmp_path, monkeypatch):
    suite = tmp_path / "prov.toml"
    suite.write_text(SUITE)
    out = tmp_path / "out"
    run_suite(suite, workers=1, out=out)
    conn = sqlite3.connect(out / "results.sqlite")
    (config, prov), = conn.execute("SELECT config, provenance FROM run_configs").fetchall()
    conn.close()
    assert '"agent.hidden": [8]' in config and '"torch"' in prov
    assert run_suite(suite, workers=1, out=out).ran == 0  # same config: nothing to redo

    import robustrl.agents as agents

    real = agents.hyperparameters
    monkeypatch.setattr(agents, "hyperparameters",  # as if agents/ppo.toml were edited
                        lambda name, env_id: {**real(name, env_id), "lr": 5e-4})
    with pytest.raises(RobustRLError, match=r"ppo on gym/CartPole-v1 seed 0 .*agent\.lr "
                       r"0\.001 -> 0\.0005"):
        run_suite(suite, workers=1, out=out)
    monkeypatch.undo()

    import robustrl.bench.store as store

    monkeypatch.setattr(store, "provenance", lambda: {**provenance(), "torch": "0.0.1"})
    with pytest.raises(RobustRLError, match=r"torch .* -> 0\.0\.1"):
        run_suite(suite, workers=1, out=out)


def test_report_never_mixes_two_configurations(tmp_path):
    suite = tmp_path / "prov.toml"
    suite.write_text(SUITE)
    out = tmp_path / "out"
    run_suite(suite, workers=1, out=out)
    db = out / "results.sqlite"
    conn = sqlite3.connect(db)  # a database written before run_configs: two runs, one cell key
    conn.execute("INSERT INTO cells SELECT 'other', 'run2', agent, env, seed, perturbation, "
                 "spec, strength, episodes, return_mean, seconds, finished_at FROM cells")
    conn.commit()
    conn.close()
    with pytest.raises(RobustRLError, match="2 configurations of ppo on gym/CartPole-v1 seed 0"):
        report(db)


def test_atomic_write_mode_and_stale_temps(tmp_path):
    target = tmp_path / "a.txt"
    dead = tmp_path / ".a.txt.999999999.x.tmp"  # a writer (pid) that no longer runs
    dead.write_text("half")
    mine = tmp_path / f".a.txt.{os.getpid()}.y.tmp"  # this process: maybe writing right now
    mine.write_text("half")
    other = tmp_path / ".b.txt.999999999.z.tmp"  # another target's
    other.write_text("half")
    atomic_write_text(target, "done")
    assert target.read_text() == "done" and target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert not dead.exists() and mine.exists() and other.exists()


def test_tensorboard_keeps_the_point_at_the_resume_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from robustrl.core.logging import MetricsLogger

    logger = MetricsLogger(tmp_path)
    for step in (10, 20, 30):
        logger.log(step, {"loss": float(step)})
    logger.close()
    logger = MetricsLogger(tmp_path, resume_step=20)  # checkpoint at 20; 30 is redone
    logger.log(30, {"loss": 31.0})
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(10, 10.0), (20, 20.0),
                                                                   (30, 31.0)]


def test_suite_refuses_two_configurations_under_one_label(tmp_path):
    from robustrl.bench import load_suite, plan_suite

    suite = tmp_path / "two.toml"
    suite.write_text(SUITE + SUITE.split("\n", 3)[3].replace("hidden = [8]", "hidden = [16]"))
    with pytest.raises(RobustRLError, match="two different settings under one name"):
        plan_suite(load_suite(suite), tmp_path, check_envs=False)
