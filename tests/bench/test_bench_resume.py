"""A sweep SIGKILLed at any moment, any number of times, and rerun stores the same rows as an
uninterrupted one (wall-clock columns aside): a job killed mid-training resumes where its
checkpoint holds the episodes in progress, and is retrained from scratch where it does not."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustrl.bench import run_suite
from tests.subprocess_cli import subprocess_env

WALL_CLOCK = {"seconds", "finished_at", "train_seconds", "run_dir"}
SUITE = """
name = "resume"
seeds = [0]
episodes = 2
lipschitz_obs = 32

[[train]]
agents = ["sac"]
envs = ["gym/Pendulum-v1"]
steps = 300
set = { learning_starts = 50, batch_size = 32, hidden = [32, 32], log_interval = 50, \
        "env.max_episode_steps" = 70, "run.tensorboard" = false, "run.checkpoint_every" = 100 }

[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 256
set = { n_envs = 2, n_steps = 32, n_epochs = 2, hidden = [32, 32], \
        "env.max_episode_steps" = 100, "run.tensorboard" = false, "run.checkpoint_every" = 64 }

[[perturbations]]
spec = "obs-gaussian"
strengths = [0.1]
"""

# Runs the bench CLI (jobs in its own process: --workers 1) and SIGKILLs it in the middle of
# writing its k-th checkpoint ("during") or right after it ("after").
DRIVER = """
import os, signal, sys, tempfile
from pathlib import Path
import robustrl.core.io as io
from robustrl.cli import main

mode, k = sys.argv[1], int(sys.argv[2])
writes, original = [0], io.atomic_write_bytes

def write(path, data):
    if str(path).endswith("checkpoint.pt"):
        writes[0] += 1
        if writes[0] == k and mode == "during":
            path = Path(path)
            fd, _ = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.write(fd, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    original(path, data)
    if str(path).endswith("checkpoint.pt") and writes[0] == k and mode == "after":
        os.kill(os.getpid(), signal.SIGKILL)

io.atomic_write_bytes = write
sys.exit(main(["bench", *sys.argv[3:]]))
"""


def _table(db: Path, name: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        cursor = conn.execute(f"SELECT * FROM {name}")
        keep = [i for i, d in enumerate(cursor.description) if d[0] not in WALL_CLOCK]
        return sorted(tuple(row[i] for i in keep) for row in cursor)
    finally:
        conn.close()


def _killed_sweep(suite: Path, out: Path, mode: str, k: int) -> None:
    proc = subprocess.run([sys.executable, "-c", DRIVER, mode, str(k), str(suite),
                           "--workers", "1", "--out", str(out)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _mark_inexact(checkpoint: Path) -> None:
    """What a checkpoint of an env whose state cannot be saved looks like."""
    state = torch.load(checkpoint, weights_only=False)
    state.update(live=None, exact=False)
    torch.save(state, checkpoint)


@pytest.mark.slow
def test_killed_sweeps_store_the_rows_of_an_uninterrupted_one(tmp_path):
    suite = tmp_path / "resume.toml"
    suite.write_text(SUITE)
    reference = tmp_path / "reference"
    run_suite(suite, workers=1, out=reference)

    out = tmp_path / "killed"
    _killed_sweep(suite, out, "during", 2)  # sac, mid-episode, writing its 2nd checkpoint
    (sac_checkpoint,) = out.rglob("checkpoint.pt")
    _mark_inexact(sac_checkpoint)  # this one cannot resume exactly: retrained from scratch
    _killed_sweep(suite, out, "after", 2)  # sac again: right after its 2nd checkpoint
    _killed_sweep(suite, out, "during", 5)  # sac resumed (1 write), ppo's 4th checkpoint
    summary = run_suite(suite, workers=1, out=out)
    assert summary.ran > 0

    for name in ("episodes", "cells", "runs"):
        assert _table(out / "results.sqlite", name) == _table(reference / "results.sqlite",
                                                              name), name
    assert not any("resumes" in p.read_text() for p in out.rglob("config.toml"))
