"""A failing job does not end a sweep: stored as failed with one line, the others finish,
`bench report` lists it, a rerun retries only it; --fail-fast stops at the first failure."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import pytest

from robustrl.bench import run_suite
from robustrl.bench.store import read_failures
from robustrl.cli import bench as bench_cli
from robustrl.core.errors import RobustRLError

# The broken job is listed first, so with one worker it is the first to run.
SUITE = """
name = "failures"
seeds = [0]
episodes = 2
lipschitz_obs = 16

[[train]]
label = "broken"
agents = ["ppo"]
envs = ["custom/BrokenCartPole-v1"]
steps = 128
[train.set]
n_envs = 1
n_steps = 64
n_epochs = 1
hidden = [16]
run = { tensorboard = false, imports = ["tests.bench.broken_env"] }
env = { max_episode_steps = 50 }

[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 128
[train.set]
n_envs = 1
n_steps = 64
n_epochs = 1
hidden = [16]
run = { tensorboard = false }
env = { max_episode_steps = 50 }

[[perturbations]]
spec = "obs-gaussian"
strengths = [0.1]
"""
CELLS_PER_JOB = 2


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="robustrl bench")
    bench_cli.add_arguments(parser)
    return parser.parse_args(argv)


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def suite(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ROBUSTRL_TEST_BREAK", "1")  # spawned workers inherit it
    path = tmp_path / "failures.toml"
    path.write_text(SUITE)
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_failed_job_is_stored_the_others_finish_and_a_rerun_retries_only_it(
        suite, tmp_path, monkeypatch, capsys, workers):
    out = tmp_path / "out"
    assert bench_cli.run(_args(str(suite), "--workers", str(workers), "--out", str(out))) == 1
    printed = capsys.readouterr().out
    assert "1 jobs failed" in printed
    assert "broken on custom/BrokenCartPole-v1 seed 0: RuntimeError: simulated crash" in printed
    db = out / "results.sqlite"
    [failure] = read_failures(db)
    assert failure["error"] == "RuntimeError: simulated crash in BrokenCartPole.step"
    assert _count(db, "cells") == CELLS_PER_JOB  # the healthy job is stored in full

    # `bench report` lists the failure under the tables of what finished.
    assert bench_cli.run(_args("report", str(db), "--out", str(tmp_path / "rep"))) == 0
    assert "1 failed job(s)" in capsys.readouterr().out

    # Rerun once the cause is gone: only the failed job runs; its failure row is cleared.
    monkeypatch.setenv("ROBUSTRL_TEST_BREAK", "0")
    summary = run_suite(suite, workers=workers, out=out)
    assert (summary.skipped, summary.ran, summary.failures) == (CELLS_PER_JOB, CELLS_PER_JOB, [])
    assert read_failures(db) == [] and _count(db, "cells") == 2 * CELLS_PER_JOB


def test_fail_fast_stops_at_the_first_failure(suite, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_suite(suite, workers=1, out=tmp_path, fail_fast=True)
    db = tmp_path / "results.sqlite"
    assert _count(db, "cells") == 0  # the healthy job after it never ran
    assert len(read_failures(db)) == 1  # still recorded for `bench report`


def test_robustrl_errors_stay_one_line():
    """A job's RobustRLError is stored as its message (no traceback, no type prefix)."""
    from robustrl.bench import backends

    assert backends.error_line(RobustRLError("x\nwhat to do")) == "what to do"
    assert backends.error_line(ValueError("bad\n  detail")) == "ValueError: bad"
