"""The Ray backend on a real Ray cluster started on this machine (ray.cluster_utils.Cluster):
same database rows as the local backend, run directories shipped back to the driver (no
shared file system), and a node killed mid-sweep loses and duplicates nothing."""

from __future__ import annotations

import argparse
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from robustrl.bench import run_suite
from robustrl.bench.store import read_failures
from robustrl.cli import bench as bench_cli

ROOT = Path(__file__).resolve().parents[2]
ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

SUITE = """
name = "ray_cluster"
seeds = {seeds}
episodes = 2
lipschitz_obs = 16

[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = {steps}

[train.set]
n_envs = 1
n_steps = 64
n_epochs = 2
hidden = [16]
run = {{ tensorboard = false }}
env = {{ max_episode_steps = 100 }}

[[perturbations]]
spec = "obs-gaussian"
strengths = [0.1]
"""
WALL_CLOCK = {"cells": ("seconds", "finished_at"), "runs": ("train_seconds", "run_dir")}


def _suite(tmp_path: Path, seeds: list[int], steps: int) -> Path:
    path = tmp_path / "ray_cluster.toml"
    path.write_text(SUITE.format(seeds=seeds, steps=steps))
    return path


def _tables(db: Path) -> dict[str, list[tuple]]:
    """Every table's rows without the wall-clock (and location) columns, sorted."""
    conn = sqlite3.connect(db)
    try:
        tables = {}
        for table in ("episodes", "cells", "runs"):
            cursor = conn.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cursor.description]
            keep = [i for i, n in enumerate(names) if n not in WALL_CLOCK.get(table, ())]
            tables[table] = sorted(tuple(row[i] for i in keep) for row in cursor)
        return tables
    finally:
        conn.close()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="robustrl bench")
    bench_cli.add_arguments(parser)
    return parser.parse_args(argv)


def _check_shipped(out: Path, n_runs: int) -> None:
    """The driver wrote each run directory from the task's return value: the final agent,
    config and metrics are there, the worker-only training checkpoint is not."""
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == n_runs
    for run in runs:
        assert {"agent.pt", "config.toml", "metrics.csv"} <= {p.name for p in run.iterdir()}
        assert not (run / "checkpoint.pt").exists()


BROKEN = """
[[train]]
label = "broken"
agents = ["ppo"]
envs = ["custom/BrokenCartPole-v1"]
steps = 128
set = { n_envs = 1, n_steps = 64, "run.imports" = ["tests.bench.broken_env"] }
"""


def test_one_node_cluster_via_cli_address_matches_local(tmp_path, monkeypatch):
    """The CI variant: `robustrl bench --backend ray --address` on a one-node cluster, with
    one job that raises: stored as failed, the others finish, and it is not retried."""
    suite = _suite(tmp_path, [0, 1], 128)
    suite.write_text(suite.read_text() + BROKEN)
    monkeypatch.setenv("ROBUSTRL_TEST_BREAK", "1")  # the Ray workers inherit it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                 "")]))
    monkeypatch.setenv("ROBUSTRL_TEST_BREAK_LOG", str(tmp_path / "local.log"))
    run_suite(suite, workers=1, out=tmp_path / "local")
    monkeypatch.setenv("ROBUSTRL_TEST_BREAK_LOG", str(tmp_path / "ray.log"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2,
                                                             "include_dashboard": False})
    try:
        assert bench_cli.run(_args(str(suite), "--backend", "ray", "--address",
                                   cluster.address, "--out", str(tmp_path / "ray"))) == 1
    finally:
        ray.shutdown()
        cluster.shutdown()
    local, remote = tmp_path / "local" / "results.sqlite", tmp_path / "ray" / "results.sqlite"
    assert _tables(remote) == _tables(local) and len(_tables(local)["cells"]) == 4
    _check_shipped(tmp_path / "ray", 2)
    failures = read_failures(remote)
    assert [f["error"] for f in failures] == ["RuntimeError: simulated crash in "
                                              "BrokenCartPole.step"] * 2  # one per seed
    assert len((tmp_path / "ray.log").read_text().splitlines()) == 2  # one attempt each


def _running_jobs(node) -> list[int]:
    """PIDs of the node's worker processes executing a bench job right now (Linux /proc)."""
    raylet = node.all_processes["raylet"][0].process.pid
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if parent == raylet and title.startswith("ray::run_job_shipped"):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds jobs through /proc")
def test_two_node_cluster_survives_losing_a_node(tmp_path):
    """Head + one worker node (one CPU each): the same rows as the local backend; then the
    worker node is killed while it runs a job: its job is retried on the head and the final
    database equals the uninterrupted one (nothing lost, nothing duplicated)."""
    suite = _suite(tmp_path, [0, 1, 2, 3], 1024)
    run_suite(suite, workers=2, out=tmp_path / "local")
    reference = _tables(tmp_path / "local" / "results.sqlite")
    assert len(reference["cells"]) == 8

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                             "include_dashboard": False})
    worker_node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        summary = run_suite(suite, backend="ray", out=tmp_path / "both")
        assert summary.failures == []
        assert _tables(tmp_path / "both" / "results.sqlite") == reference  # jobs on both nodes

        killed = threading.Event()
        db = tmp_path / "killed" / "results.sqlite"

        def kill_worker_node() -> None:
            """Once a job is stored and the worker node is running another (a process of its
            raylet titled ray::run_job_shipped), kill the node's processes without warning."""
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if db.exists() and _count(db) > 0 and _running_jobs(worker_node):
                    cluster.remove_node(worker_node, allow_graceful=False)
                    killed.set()
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_worker_node, daemon=True)
        killer.start()
        summary = run_suite(suite, backend="ray", out=tmp_path / "killed")
        killer.join(timeout=10)
        assert killed.is_set(), "the worker node never ran a job: nothing was killed"
        # The GCS marks the node dead once its health checks lapse (seconds after the kill).
        deadline = time.monotonic() + 120
        while len([n for n in ray.nodes() if n["Alive"]]) != 1 and time.monotonic() < deadline:
            time.sleep(1)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 1
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert summary.failures == [] and read_failures(db) == []
    assert _tables(db) == reference  # 0 lost, 0 duplicated
    _check_shipped(tmp_path / "killed", 4)


def _count(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=1)
    try:
        return conn.execute("SELECT count(*) FROM cells").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
