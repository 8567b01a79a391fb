"""One process per run directory (an advisory flock), and `eval` on unfinished or foreign
agent files."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from robustrl.cli import main
from robustrl.core.errors import RobustRLError
from robustrl.train import build_run, train
from robustrl.train.rundir import LOCK, lock_run
from tests.subprocess_cli import run_cli, subprocess_env


@pytest.mark.slow
def test_second_process_is_refused_and_a_killed_ones_lock_is_not_stale(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "robustrl.cli", "train", "--agent", "ppo", "--env",
         "gym/CartPole-v1", "--steps", "10000000", "--out", str(run), "--set", "n_envs=1",
         "--set", "run.checkpoint_every=1000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        deadline = time.time() + 120
        while not ((run / "metrics.csv").exists() and (run / LOCK).read_text().strip()):
            assert first.poll() is None and time.time() < deadline, first.stderr.read()
            time.sleep(0.2)
        for args in (["--resume", str(run)],
                     ["--agent", "ppo", "--env", "gym/CartPole-v1", "--steps", "10",
                      "--out", str(run)]):
            proc = run_cli("train", *args, timeout=300)
            err = proc.stderr.strip()
            assert proc.returncode != 0 and "\n" not in err and "Traceback" not in err, err
            if args[0] == "--resume":
                assert f"in use by another robustrl process (pid {first.pid})" in err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    lock = lock_run(run)  # the kernel released the dead process's lock
    lock.close()


def test_lock_is_exclusive_and_released_on_close(tmp_path):
    held = lock_run(tmp_path)
    with pytest.raises(RobustRLError, match="in use by another robustrl process"):
        lock_run(tmp_path)
    held.close()
    lock_run(tmp_path).close()


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, seed in (("a", 0), ("b", 1)):
        cfg = build_run("ppo", "gym/CartPole-v1", 256, seed,
                        {"n_envs": 1, "n_steps": 128, "n_epochs": 1,
                         "run.checkpoint_every": 128})
        train(cfg, root / name, show_progress=False)
    return root


def test_eval_says_when_the_run_is_unfinished(finished_runs, tmp_path, capsys):
    run = tmp_path / "partial"
    shutil.copytree(finished_runs / "a", run)
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["finished"] and err == ""
    # as if killed halfway through 512 steps: the checkpoint at 256 is all there is
    (run / "agent.pt").unlink()
    config = run / "config.toml"
    config.write_text(config.read_text().replace("steps = 256", "steps = 512"))
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert not result["finished"] and (result["steps"], result["planned_steps"]) == (256, 512)
    assert "unfinished" in err and "256 of 512 planned" in err and err.count("\n") == 1


def test_eval_refuses_a_foreign_agent_file(finished_runs, tmp_path, capsys):
    run = tmp_path / "mixed"
    shutil.copytree(finished_runs / "a", run)
    shutil.copy(finished_runs / "b" / "agent.pt", run / "agent.pt")  # seed 1's agent
    assert main(["eval", str(run), "--episodes", "1"]) != 0
    err = capsys.readouterr().err.strip()
    assert "does not belong to the run" in err and "seed" in err and "\n" not in err
