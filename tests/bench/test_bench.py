"""Benchmark runner: suite validation, resumable SQLite results (SIGKILL), report, backends."""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robustrl.bench import load_suite, plan_suite, report, run_suite
from robustrl.bench import store as bench_store
from robustrl.bench.store import ResultStore
from robustrl.cli import bench as bench_cli
from robustrl.core.errors import RobustRLError

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "experiments" / "robustness" / "tiny.toml"
N_CELLS = 4 * 5  # 2 agents × 2 seeds trained runs; clean + 2 perturbations × 2 strengths each
N_ROWS = N_CELLS * 3


def _rows(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return sorted(conn.execute("SELECT * FROM episodes"))
    finally:
        conn.close()


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=1)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="robustrl bench")
    bench_cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The tiny suite run once, uninterrupted, through the CLI entry (local, 2 workers)."""
    out = tmp_path_factory.mktemp("bench_ref")
    assert bench_cli.run(_args(str(TINY), "--workers", "2", "--out", str(out))) == 0
    return out / "results.sqlite"


def _write_suite(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- validation
BASE = """
name = "v"
episodes = 1
[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 64
"""


@pytest.mark.parametrize("extra, message", [
    ("bogus = 1\n", "unknown config key 'train.bogus'"),
    ("[[perturbations]]\nspec = 'obs-gausian'\nstrengths = [0.1]\n", "did you mean 'obs-gaussian'"),
    ("[[perturbations]]\nspec = 'act-replace'\nstrengths = [1.5]\n", "out of range"),
    ("[[perturbations]]\nspec = 'dyn-mass'\nstrengths = [1.5]\n", "dyn-mass does not apply"),
    ("[[perturbations]]\nspec = 'obs-gaussian:0.1'\nstrengths = [0.1]\n", "must not contain"),
    ("[[perturbations]]\nspec = 'obs-gaussian'\nstrengths = 'x'\n", "strengths"),
    ("[[perturbations]]\nspec = 'act-replace'\nstrengths = [0.1]\n" * 2, "listed twice"),
    ("[[train]]\nagents = ['sac']\nenvs = ['gym/CartPole-v1']\nsteps = 64\n",
     "sac cannot handle action space"),
    ("[[train]]\nagents = ['ppo']\nenvs = ['gym/Pendulum-v1']\nsteps = 64\nset = {lrr = 1}\n",
     "did you mean 'lr'"),
    ("[[train]]\nagents = ['dqn']\nenvs = ['gym/Pendulum-v1']\nsteps = 64\n", "unknown agent"),
    ("[[train]]\nagents = ['ppo']\nenvs = ['gym/Nope-v0']\nsteps = 64\n", "Nope-v0"),
    ("[[train]]\nagents = ['ppo']\nsteps = 64\n", "missing required key(s) envs"),
    ("[[train]]\nagents = ['ppo']\nenvs = ['gym/CartPole-v1']\nsteps = 65\n"
     "score_agents = ['agent_0']\n", "score_agents only applies to multi-agent"),
    ("[[train]]\nagents = ['mappo']\nenvs = ['mpe/simple_adversary']\nsteps = 64\n"
     "score_agents = ['agent_0', 'agent_2']\n", "unknown agent(s) agent_2; mpe/simple_adversary"),
    ("[[train]]\nagents = ['mappo']\nenvs = ['mpe/simple_adversary']\nsteps = 64\n"
     "score_agents = ['agent_0', 'agent_0']\n", "score_agents repeats an agent"),
    ("[[train]]\nagents = ['mappo']\nenvs = ['mpe/simple_spread']\nsteps = 64\n"
     "[[perturbations]]\nspec = 'adversary-agents,policy=adversary'\nstrengths = [2]\n"
     "envs = ['mpe/*']\n", "policy=adversary trains one adversary, so k must be 1 (got 2)"),
    ("[[perturbations]]\nspec = 'adversary-agents,policy=adversary,adv_steps=0'\n"
     "strengths = [1]\n", "adv_steps=0 must be >= 1"),
    ("[[train]]\nagents = ['iql']\nenvs = ['maze/PointMaze_UMaze-v3']\nsteps = 64\n",
     "iql is an offline learner"),
    ("[[train]]\nagents = ['hybrid_sac']\nenvs = ['hybrid/platform']\nsteps = 64\n"
     "set = {'robust.method' = 'ernie'}\n", "hybrid_sac has no ERNIE regularizer"),
    ("[[train]]\nagents = ['hybrid_sac']\nenvs = ['hybrid/platform']\nsteps = 64\n"
     "set = {robust = {method = 'ernie'}}\n", "hybrid_sac has no ERNIE regularizer"),
    ("[[train]]\nagents = ['hybrid_sac']\nenvs = ['hybrid/platform']\nsteps = 64\n"
     "set = {reward = {method = 'heron'}}\n", "hybrid_sac cannot train on a learned reward"),
    ("[[train]]\nagents = ['mappo']\nenvs = ['gym/CartPole-v1']\nsteps = 64\n",
     "mappo is a multi-agent (PettingZoo) learner and gym/CartPole-v1 a single-agent"),
])
def test_bad_suite_is_one_clear_line(tmp_path, extra, message):
    suite = _write_suite(tmp_path / "s.toml", BASE + extra)
    with pytest.raises(RobustRLError, match=None) as info:
        plan_suite(load_suite(suite), tmp_path / "out")
    text = str(info.value)
    assert message in text and "\n" not in text
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_malformed_toml(tmp_path):
    with pytest.raises(RobustRLError, match="did you mean 'episodes'"):
        load_suite(_write_suite(tmp_path / "s.toml", "episdes = 3\n" + BASE))
    with pytest.raises(RobustRLError, match="malformed TOML"):
        load_suite(_write_suite(tmp_path / "s.toml", "name = [\n"))
    with pytest.raises(RobustRLError, match="not found"):
        load_suite(tmp_path / "missing.toml")


def test_plan_of_tiny_suite(tmp_path):
    plan = plan_suite(load_suite(TINY), tmp_path)
    assert len(plan.jobs) == 4 and plan.n_cells == N_CELLS
    ids = [c.id for j in plan.jobs for c in j.cells]
    assert len(set(ids)) == len(ids)
    again = plan_suite(load_suite(TINY), tmp_path / "elsewhere")  # `out` is not in the hash
    assert again.suite_hash == plan.suite_hash
    assert [c.id for j in again.jobs for c in j.cells] == ids


def test_labels_tell_apart_the_same_agent_trained_differently(tmp_path):
    variants = """
[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 64
label = "ppo+weighted"
set = { reward = { method = "weighted", beta = 0.5 } }
"""
    plan = plan_suite(load_suite(_write_suite(tmp_path / "s.toml", BASE + variants)), tmp_path)
    plain, weighted = plan.jobs
    assert (plain.label, weighted.label) == ("ppo", "ppo+weighted")
    assert plain.agent == weighted.agent == "ppo" and plain.run_id != weighted.run_id
    assert weighted.run.reward.method == "weighted" and "ppo+weighted" in weighted.run_dir
    same = variants.replace('label = "ppo+weighted"', 'label = "again"')
    with pytest.raises(RobustRLError, match="trained twice"):
        plan_suite(load_suite(_write_suite(tmp_path / "s.toml", BASE + variants + same)),
                   tmp_path)

# --------------------------------------------------------------------------- sweep + report
def test_tiny_sweep_rows_rerun_and_report(reference, tmp_path, capsys):
    assert len(_rows(reference)) == N_ROWS and _count(reference, "cells") == N_CELLS
    assert _count(reference, "runs") == 4
    conn = sqlite3.connect(reference)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    lips = [r[0] for r in conn.execute("SELECT lipschitz FROM runs")]
    conn.close()
    assert all(x is not None and x >= 0 for x in lips)

    # Same command again: every cell is found finished, nothing reruns, rows unchanged.
    summary = run_suite(TINY, workers=2, out=reference.parent)
    assert (summary.skipped, summary.ran) == (N_CELLS, 0)
    assert len(_rows(reference)) == N_ROWS

    capsys.readouterr()
    assert bench_cli.run(_args("report", str(reference), "--out", str(tmp_path / "rep"))) == 0
    printed = capsys.readouterr().out
    assert "AUC" in printed and "Lipschitz" in printed
    rep = tmp_path / "rep"
    for name in ("report.md", "curves.csv", "summary.csv", "episodes.csv",
                 "gym-CartPole-v1.png", "gym-Pendulum-v1.png"):
        assert (rep / name).stat().st_size > 0, name
    result = report(reference, tmp_path / "rep2")
    summaries = {(s.agent, s.perturbation): s for s in result["summaries"]}
    assert set(summaries) == {(a, p) for a in ("ppo", "sac")
                              for p in ("obs-gaussian", "act-replace")}
    s = summaries[("ppo", "obs-gaussian")]
    # tiny has no random_baseline, so no normalized AUC (tests/bench/test_report.py has one)
    assert s.seeds == 2 and s.auc is None and s.worst <= s.average
    assert len((rep / "episodes.csv").read_text().splitlines()) == N_ROWS + 1
    assert bench_cli.run(_args("export", str(reference), "--out", str(tmp_path / "c.csv"),
                               "--table", "cells")) == 0
    assert len((tmp_path / "c.csv").read_text().splitlines()) == N_CELLS + 1


def test_other_suite_or_locked_db_is_refused(reference, tmp_path, monkeypatch):
    before = _rows(reference)
    other = load_suite(TINY)
    other.episodes = 2
    with pytest.raises(RobustRLError, match="holds results of suite 'tiny'"):
        run_suite(other, out=tmp_path, db=reference)
    with ResultStore(reference, "tiny", plan_suite(load_suite(TINY), tmp_path).suite_hash):
        with pytest.raises(RobustRLError, match="another sweep is writing"):
            run_suite(TINY, out=tmp_path, db=reference)
    monkeypatch.setattr(bench_store, "BUSY_TIMEOUT", 0.2)
    holder = sqlite3.connect(reference, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RobustRLError, match="locked by another process"):
            run_suite(TINY, out=tmp_path, db=reference)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    (tmp_path / "junk.sqlite").write_text("not a database " * 100)
    with pytest.raises(RobustRLError, match="not a robustrl results database"):
        run_suite(TINY, out=tmp_path, db=tmp_path / "junk.sqlite")
    assert _rows(reference) == before  # nothing stored was lost or changed


def test_sigkill_mid_sweep_then_rerun_gives_the_same_rows(reference, tmp_path):
    db = tmp_path / "results.sqlite"
    cmd = [sys.executable, "-m", "robustrl.cli.bench", str(TINY), "--workers", "1",
           "--out", str(tmp_path)]  # --workers 1: jobs run in the sweep's own process
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    while _count(db, "cells") == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, mid-way
    proc.wait()
    done = _count(db, "cells")
    assert 0 < done < N_CELLS, proc.stderr.read()
    assert _count(db, "episodes") == done * 3  # finished cells complete, nothing partial

    summary = run_suite(TINY, workers=1, out=tmp_path)
    assert summary.skipped == done and summary.ran == N_CELLS - done
    assert _rows(db) == _rows(reference)


def test_ray_backend_writes_the_same_rows(reference, tmp_path):
    pytest.importorskip("ray")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_suite(TINY, backend="ray", workers=2, out=tmp_path)
    finally:
        ray.shutdown()
    assert summary.ran == N_CELLS
    assert _rows(tmp_path / "results.sqlite") == _rows(reference)


def test_bad_cli_input():
    with pytest.raises(RobustRLError, match="usage"):
        bench_cli.run(_args("report"))
    with pytest.raises(RobustRLError, match="not found"):
        bench_cli.run(_args("report", "nope.sqlite"))
    with pytest.raises(RobustRLError, match="--workers"):
        run_suite(TINY, workers=0)
    with pytest.raises(RobustRLError, match="--address is for --backend ray"):
        run_suite(TINY, address="auto")


def test_multiagent_cells_attack_each_agent_policy(tmp_path):
    pytest.importorskip("mpe2")
    suite = _write_suite(tmp_path / "ma.toml", """
name = "ma"
episodes = 1
[[train]]
agents = ["mappo"]
envs = ["mpe/simple_spread"]
steps = 100
set = { n_envs = 1, n_steps = 50, n_epochs = 1, hidden = [16], "run.tensorboard" = false }
[[perturbations]]
spec = "obs-pgd"
strengths = [0.1]
[[perturbations]]
spec = "adversary-agents"
strengths = [1]
""")
    summary = run_suite(suite, workers=1, out=tmp_path / "out")
    assert _count(tmp_path / "out" / "results.sqlite", "cells") == 3, summary


def test_score_agents_scores_one_team_of_a_competitive_env(tmp_path):
    """simple_adversary scored on the good team only: each stored return is agent_0's plus
    agent_1's (the adversary's left out), the cell ids change with the key, and the perturbed
    cells target that team (agents=)."""
    pytest.importorskip("mpe2")
    from robustrl.train import evaluate, load_run_agent

    text = """
name = "adv"
episodes = 2
[[train]]
agents = ["mappo"]
envs = ["mpe/simple_adversary"]
steps = 100
set = { n_envs = 1, n_steps = 50, n_epochs = 1, hidden = [16], "run.tensorboard" = false }
score_agents = ["agent_0", "agent_1"]
[[perturbations]]
spec = "obs-pgd,agents=agent_0+agent_1"
strengths = [0.1]
[[perturbations]]
spec = "adversary-agents,agents=agent_1"
strengths = [1]
"""
    suite = _write_suite(tmp_path / "adv.toml", text)
    plan = plan_suite(load_suite(suite), tmp_path / "out")
    unscored = plan_suite(load_suite(_write_suite(
        tmp_path / "all.toml", text.replace('score_agents = ["agent_0", "agent_1"]', ""))),
        tmp_path / "out")
    assert plan.jobs[0].run_id == unscored.jobs[0].run_id  # training is the same ...
    assert not {c.id for c in plan.jobs[0].cells} & {c.id for c in unscored.jobs[0].cells}
    assert plan.suite_hash != unscored.suite_hash  # ... the scores are not
    run_suite(suite, workers=1, out=tmp_path / "out")
    conn = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    stored = [r[0] for r in conn.execute(
        "SELECT return FROM episodes WHERE spec = 'none' ORDER BY episode")]
    lipschitz = conn.execute("SELECT lipschitz FROM runs").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM cells").fetchone()[0] == 3
    conn.close()
    by_agent = evaluate(load_run_agent(plan.jobs[0].run_dir), 2, seed=10_000)["returns_by_agent"]
    expected = [a0 + a1 for a0, a1 in zip(by_agent["agent_0"], by_agent["agent_1"])]
    np.testing.assert_allclose(stored, expected, rtol=1e-6)
    assert lipschitz is not None and lipschitz > 0


def test_traffic_jobs_share_no_simulation_and_take_dynamics(tmp_path):
    """libsumo runs one simulation per process: two jobs per worker process, then dynamics
    (dyn-inflow) applied to an evaluation env that must live in the job's own process."""
    suite = _write_suite(tmp_path / "traffic.toml", """
name = "traffic"
seeds = [0, 1, 2]
episodes = 1
[[train]]
agents = ["idqn"]
envs = ["traffic/2x2grid"]
steps = 60
set = { learning_starts = 30, "env.num_seconds" = 100, "run.tensorboard" = false }
[[train]]
agents = ["ppo"]
envs = ["traffic/single-intersection"]
steps = 64
set = { n_envs = 2, n_steps = 32, "env.num_seconds" = 100, "run.tensorboard" = false }
[[perturbations]]
spec = "dyn-inflow"
strengths = [1.5]
""")
    run_suite(suite, workers=2, out=tmp_path / "out")
    assert _count(tmp_path / "out" / "results.sqlite", "cells") == 12


def test_trained_adversary_cell_is_cached_in_the_run_directory(tmp_path, monkeypatch):
    """adversary-agents,policy=adversary: the worker trains a PPO adversary against the trained
    run once, saves it in the run directory, and a rerun (here: into a fresh database) loads
    it and reproduces the cell's rows."""
    pytest.importorskip("mpe2")
    import robustrl.bench.adversary as adversary

    suite = _write_suite(tmp_path / "adv.toml", """
name = "advcache"
episodes = 2
[[train]]
agents = ["mappo"]
envs = ["mpe/simple_spread"]
steps = 200
set = { n_envs = 1, n_steps = 50, n_epochs = 1, hidden = [16], "run.tensorboard" = false }
[[perturbations]]
spec = "adversary-agents,policy=adversary,adv_steps=300"
strengths = [1]
""")
    out = tmp_path / "out"
    run_suite(suite, workers=1, out=out)
    (run_dir,) = (out / "runs").iterdir()
    (saved,) = (run_dir / "adversaries").iterdir()
    assert saved.name.startswith("agent_2_") and saved.suffix == ".pt"
    spec = "adversary-agents:1,policy=adversary,adv_steps=300"
    conn = sqlite3.connect(out / "results.sqlite")
    assert conn.execute("SELECT count(*) FROM cells").fetchone()[0] == 2
    conn.close()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached adversary should have been reused")

    monkeypatch.setattr(adversary, "train_adversary", no_training)
    stamp = saved.stat().st_mtime_ns
    summary = run_suite(suite, workers=1, out=out, db=tmp_path / "again.sqlite")
    assert summary.ran == 2 and saved.stat().st_mtime_ns == stamp
    first, again = _rows(out / "results.sqlite"), _rows(tmp_path / "again.sqlite")
    assert [r for r in first if spec in r] == [r for r in again if spec in r]
    assert len([r for r in again if spec in r]) == 2


def test_traffic_controllers_are_evaluated_next_to_the_learners(tmp_path):
    """`controllers`: fixed-time and max-pressure play every cell of the traffic env; their
    rows equal evaluating the controller directly, observation noise leaves them unchanged,
    and turning them on changes no learner's cell (the suite hash is kept)."""
    from robustrl.envs.traffic_baselines import evaluate_controller

    text = """
name = "controllers"
episodes = 1
controllers = ["fixed-time", "max-pressure"]
[[train]]
agents = ["idqn"]
envs = ["traffic/2x2grid"]
steps = 40
set = { learning_starts = 20, "env.num_seconds" = 100, "run.tensorboard" = false }
[[perturbations]]
spec = "obs-gaussian"
strengths = [0.5]
"""
    suite = _write_suite(tmp_path / "controllers.toml", text)
    plan = plan_suite(load_suite(suite), tmp_path / "out")
    assert [(j.label, j.reference) for j in plan.jobs] == [
        ("idqn", ""), ("fixed-time", "fixed-time"), ("max-pressure", "max-pressure")]
    off = load_suite(suite)
    off.controllers = []
    assert plan_suite(off, tmp_path / "out").suite_hash == plan.suite_hash
    run_suite(suite, workers=1, out=tmp_path / "out")
    returns: dict[tuple[str, str], float] = {}
    for row in _rows(tmp_path / "out" / "results.sqlite"):
        returns[row[2], row[6]] = row[10]
    for name in ("fixed-time", "max-pressure"):
        direct = evaluate_controller("traffic/2x2grid", name, seed=10_000, num_seconds=100)
        assert returns[name, "none"] == pytest.approx(direct["mean_return"])
        assert returns[name, "obs-gaussian:0.5"] == returns[name, "none"]
    assert returns["fixed-time", "none"] != returns["max-pressure", "none"]


@pytest.mark.parametrize("line, error", [
    ('controllers = ["max-presure"]', "list each of"),
    ('controllers = ["fixed-time"]\n[[train]]\nagents = ["ppo"]\nenvs = ["gym/CartPole-v1"]\n'
     'steps = 64', "no traffic/\\* env"),
])
def test_bad_controllers_are_one_line_errors(tmp_path, line, error):
    head, _, train = line.partition("\n")
    train = train or ('[[train]]\nagents = ["idqn"]\nenvs = ["traffic/2x2grid"]\nsteps = 40')
    suite = _write_suite(tmp_path / "bad.toml", f'name = "bad"\n{head}\n{train}\n')
    with pytest.raises(RobustRLError, match=error):
        plan_suite(load_suite(suite), tmp_path / "out", check_envs=False)
