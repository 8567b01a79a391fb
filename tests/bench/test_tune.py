"""`robustrl tune`: a tiny Optuna study runs, resumes after SIGKILL without duplicating
trials, writes the best configuration; bad specs and a missing Optuna are one line."""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from robustrl.agents import agent_class
from robustrl.bench.tune import run_tune
from robustrl.bench.tune_spec import load_tune_spec
from robustrl.bench.tune_trial import ask, iqm, open_study
from robustrl.cli import tune as tune_cli
from robustrl.core.config import from_dict, parse_assignments
from robustrl.core.errors import RobustRLError
from robustrl.train import build_run

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "tuning" / "cartpole_ppo_smoke.toml"


def _states(out: Path) -> list[str]:
    if not (out / "study.sqlite").exists():
        return []
    conn = sqlite3.connect(out / "study.sqlite", timeout=5)
    try:
        return [r[0] for r in conn.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        conn.close()


def test_tiny_study_writes_a_ready_config_and_set_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    tune_cli.add_arguments(parser)
    assert tune_cli.run(parser.parse_args([str(SMOKE), "--out", str(tmp_path)])) == 0
    printed = capsys.readouterr().out
    assert "3 trials finished" in printed and "--set lr=" in printed
    states = _states(tmp_path)
    assert len(states) == 3 and set(states) <= {"COMPLETE", "PRUNED"}
    # The pruner saw clean evaluation returns during training (every eval_every = 256 steps).
    study = optuna.load_study(study_name="cartpole_ppo_smoke",
                              storage=f"sqlite:///{tmp_path / 'study.sqlite'}")
    assert all(set(t.intermediate_values) <= {256, 512, 768} and t.intermediate_values
               for t in study.trials)
    best = tomllib.loads((tmp_path / "best.toml").read_text())["gym/CartPole-v1"]
    assert 1e-4 <= best["lr"] <= 3e-3 and 2 <= best["n_epochs"] <= 8
    assert best["ent_coef"] in (0.0, 0.01) and best["n_steps"] == 64  # fixed settings kept
    config = from_dict(agent_class("ppo").Config, best, prefix="agent.")  # a valid section
    assert config.lr == best["lr"]
    # The --set line rebuilds exactly the best trial's configuration.
    line = (tmp_path / "best_set.txt").read_text().split()
    run = build_run("ppo", "gym/CartPole-v1", 1024, 0, parse_assignments(line[1::2]))
    assert run.agent.lr == best["lr"] and run.agent.n_epochs == best["n_epochs"]
    assert run.env["max_episode_steps"] == 200
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("number,state,value")
    # Every trial trained its own run to the full budget (or was pruned on the way).
    assert len(list((tmp_path / "trials").glob("*/seed0/config.toml"))) == 3

    # Rerunning a finished study runs nothing more.
    [summary] = run_tune(SMOKE, out=tmp_path)
    assert summary.finished == 3 and len(_states(tmp_path)) == 3


def test_killed_tuning_run_resumes_without_duplicate_trials(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "robustrl.cli", "tune", str(SMOKE),
                             "--out", str(tmp_path)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            states = _states(tmp_path)
            if any(s in ("COMPLETE", "PRUNED") for s in states) and "RUNNING" in states:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)  # mid-trial: the study holds a RUNNING trial
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _states(tmp_path)
    assert before[-1] == "RUNNING" and len(before) < 4

    [summary] = run_tune(SMOKE, out=tmp_path)
    states = _states(tmp_path)
    # Only the interrupted trial is extra (failed); 3 finished, none ran twice.
    assert states.count("FAIL") == 1 and states[len(before) - 1] == "FAIL"
    assert len(states) == 4 and summary.finished == 3 and summary.failed == 1
    assert (tmp_path / "best.toml").exists()


def test_robust_objective_is_the_iqm_under_the_perturbations(tmp_path):
    spec = tmp_path / "robust.toml"
    spec.write_text(SMOKE.read_text().replace("trials = 3", "trials = 1").replace(
        "steps = 1024", "steps = 256") + "\n")
    text = spec.read_text().replace(
        'startup_trials = 2', 'startup_trials = 2\nobjective = "robust"\n'
        'perturbations = ["none", "obs-gaussian:0.5", "act-replace:0.5"]')
    spec.write_text(text)
    [summary] = run_tune(spec, out=tmp_path / "out")
    assert summary.finished == 1 and summary.best_value > 0
    assert iqm([1, 2, 3, 4, 100, -50, 2, 3]) == pytest.approx(2.5)  # the tails are dropped


def test_a_failing_trial_is_stored_failed_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTRL_TEST_BREAK", "1")
    spec = tmp_path / "broken.toml"
    spec.write_text(SMOKE.read_text().replace('"gym/CartPole-v1"', '"custom/BrokenCartPole-v1"')
                    .replace('"run.tensorboard" = false', '"run.tensorboard" = false, '
                             '"run.imports" = ["tests.bench.broken_env"]'))
    with pytest.raises(RuntimeError, match="simulated crash"):  # a bug is not swallowed
        run_tune(spec, out=tmp_path / "out")
    study = optuna.load_study(study_name="cartpole_ppo_smoke",
                              storage=f"sqlite:///{tmp_path / 'out' / 'study.sqlite'}")
    [trial] = study.trials
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["error"] == "RuntimeError: simulated crash in BrokenCartPole.step"


@pytest.mark.slow
def test_two_workers_share_the_study_without_overshooting(tmp_path):
    spec = tmp_path / "two.toml"
    spec.write_text(SMOKE.read_text().replace("steps = 1024", "steps = 256").replace(
        "eval_every = 256", "eval_every = 128"))
    [summary] = run_tune(spec, workers=2, out=tmp_path / "out")
    assert summary.finished == 3 and len(_states(tmp_path / "out")) == 3
    trials = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path}/out/study.sqlite")
    assert len({tuple(sorted(t.params.items())) for t in trials.trials}) == 3  # none repeated


def test_fresh_samplers_do_not_repeat_configurations(tmp_path):
    """Workers, Ray tasks and resumed runs each open the study with a fresh sampler; seeded
    alike they drew the same startup configurations (trials 0 and 1 identical)."""
    [(_, spec, params)] = load_tune_spec(SMOKE)
    storage = f"sqlite:///{tmp_path}/study.sqlite"

    def draw(offset: int | None = None) -> tuple:
        trial = ask(open_study(spec, storage), spec, offset)
        return tuple(p.suggest(trial) for p in params)

    drawn = [draw() for _ in range(3)]
    assert len(set(drawn)) == 3
    assert draw(0) == drawn[0]  # deterministic: the same offset gives the same draw


@pytest.mark.slow
def test_trials_as_ray_tasks_through_the_storage_proxy(tmp_path):
    """--backend ray: trials run as Ray tasks in temporary folders, reporting through the
    driver's gRPC proxy of the study; exactly `trials` finished, outputs written."""
    pytest.importorskip("ray")
    import ray

    spec = tmp_path / "cartpole_ppo_smoke.toml"
    spec.write_text(SMOKE.read_text().replace("steps = 1024", "steps = 512"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        [summary] = run_tune(spec, workers=2, out=tmp_path / "out", backend="ray")
    finally:
        ray.shutdown()
    states = _states(tmp_path / "out")
    assert len(states) == 3 and set(states) <= {"COMPLETE", "PRUNED"}
    assert summary.finished == 3 and (tmp_path / "out" / "best.toml").exists()
    assert not (tmp_path / "out" / "trials").exists()  # the runs stayed on the nodes
    study = optuna.load_study(study_name="cartpole_ppo_smoke",
                              storage=f"sqlite:///{tmp_path / 'out' / 'study.sqlite'}")
    assert all(t.intermediate_values for t in study.trials)  # reports came through
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 3  # distinct


@pytest.mark.parametrize("change, message", [
    (("[space]", "[spaces]"), "unknown config key 'spaces'"),
    (("log = true }", "log = true, high2 = 1 }"), "space.lr: unknown key(s) high2"),
    (("low = 2, high = 8", "low = 8, high = 2"), "low < high"),
    (("ent_coef = { choices = [0.0, 0.01] }", "bogus_hp = { low = 1, high = 2 }"),
     "bogus_hp"),
    (("trials = 3", 'trials = 3\nobjective = "robust"'), "needs perturbations"),
    (("trials = 3", "trials = [3"), "malformed TOML"),
    (('agent = "ppo"\n', ""), "missing required key(s) agent"),
])
def test_malformed_spec_is_one_line(tmp_path, change, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(SMOKE.read_text().replace(*change, 1))
    with pytest.raises(RobustRLError) as e:
        run_tune(spec, out=tmp_path / "out")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_optuna_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(RobustRLError, match=r"pip install 'robustrl\[tune\]'"):
        run_tune(SMOKE, out=tmp_path)


def test_comparison_spec_gives_each_variant_the_same_budget():
    """experiments/tuning/ppo_vs_ernie_hopper.toml: one study per variant, equal budgets."""
    from robustrl.bench.tune_spec import load_tune_spec

    studies = load_tune_spec(ROOT / "experiments" / "tuning" / "ppo_vs_ernie_hopper.toml")
    assert [label for label, _, _ in studies] == ["ppo", "ernie"]
    (_, ppo, ppo_space), (_, ernie, ernie_space) = studies
    for key in ("steps", "seeds", "trials", "objective", "perturbations", "episodes"):
        assert getattr(ppo, key) == getattr(ernie, key), key
    assert [p.key for p in ppo_space] == ["lr", "ent_coef"]
    assert [p.key for p in ernie_space] == ["lr", "ent_coef", "robust.lam", "robust.eps"]
    assert ernie.set["robust.method"] == "ernie" and "robust.method" not in ppo.set
