"""`bench report`: IQM/CI tables, sign-aware normalization against the random pseudo-agent,
P(A > B), performance profiles, learning curves, and the labels of every table and plot."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from robustrl.bench import load_suite, plan_suite, report, run_suite, stats
from robustrl.bench.curves import RunRef, learning_curves, runs_of_db, write_curves
from robustrl.bench.store import ResultStore
from robustrl.bench.suite import RANDOM
from robustrl.cli import bench as bench_cli
from robustrl.core.errors import RobustRLError

ENV = "traffic/fake"
STRENGTHS = (0.5, 1.0)


def _job(agent: str, seed: int, cells: dict[tuple[str, float | None], list[float]]) -> dict:
    return {"run": f"{agent}-{seed}", "agent": agent, "env": ENV, "seed": seed,
            "run_dir": f"runs/{agent}-{seed}", "steps": 0, "lipschitz": None,
            "lipschitz_eps": 0.05, "train_seconds": 0.0, "eval_seed": 0,
            "cells": [{"config_hash": f"{agent}-{seed}-{p}-{s}", "perturbation": p,
                       "spec": p if s is None else f"{p}:{s}", "strength": s,
                       "returns": r, "lengths": [1] * len(r), "seconds": 0.0}
                      for (p, s), r in cells.items()]}


@pytest.fixture
def negative_db(tmp_path) -> Path:
    """Negative returns (waiting times): 'good' loses 10% of its clean−random gap per unit of
    inflow, 'bad' is as poor as random under the perturbation; the random policy is worse
    under more inflow too. 5 seeds each."""
    db = tmp_path / "results.sqlite"
    with ResultStore(db, "neg", "h") as store:
        for seed in range(5):
            for agent, clean in (("good", -10.0 - seed), ("bad", -12.0 - seed)):
                cells = {("none", None): [clean, clean]}
                for s in STRENGTHS:
                    rnd = -100.0 * (1 + s)
                    score = clean + 0.1 * s * (rnd - clean) if agent == "good" else rnd
                    cells[("dyn-inflow", s)] = [score - 1, score + 1]
                store.write_job(_job(agent, seed, cells))
            store.write_job(_job(RANDOM, seed, {("none", None): [-100.0, -100.0], **{
                ("dyn-inflow", s): [-100.0 * (1 + s)] * 2 for s in STRENGTHS}}))
    return db


def test_normalized_scores_are_sign_aware_on_negative_returns(negative_db, tmp_path):
    result = report(negative_db, tmp_path / "rep")
    points = {(p.agent, p.strength): p for p in result["points"]}
    assert RANDOM not in {p.agent for p in result["points"]}  # a reference, not a learner
    for s in STRENGTHS:
        good, bad = points[("good", s)], points[("bad", s)]
        assert good.normalized == pytest.approx(1 - 0.1 * s)  # 1 = clean, 0 = random
        assert bad.normalized == pytest.approx(0.0, abs=1e-9)
        assert good.random == -100.0 * (1 + s) and len(good.normalized_scores) == 5
        assert good.lo <= good.iqm <= good.hi  # raw returns: IQM inside its interval
    summaries = {s.agent: s for s in result["summaries"]}
    assert summaries["good"].auc == pytest.approx(1 - 0.1 * np.mean(STRENGTHS))
    assert summaries["good"].grid == "0.5;1"
    # P(good > bad) = 1 on every task (good dominates), with a degenerate CI
    pooled = [i for i in result["improvements"] if i.strength == "all"]
    assert [(i.a, i.b, i.env, i.tasks, i.p, i.lo, i.hi) for i in pooled] == [
        ("bad", "good", ENV, 2, 0.0, 0.0, 0.0)]
    assert len(result["improvements"]) == 3  # each strength, and pooled over the grid
    aggregate = {(a.agent, a.perturbation): a for a in result["aggregates"]}
    assert aggregate[("bad", "dyn-inflow")].iqm == pytest.approx(0.0, abs=1e-9)
    assert aggregate[("good", "dyn-inflow")].tasks == 2


def test_report_files_and_labels(negative_db, tmp_path, capsys):
    out = tmp_path / "rep"
    assert bench_cli.run(bench_cli_args("report", str(negative_db), "--out", str(out))) == 0
    for name in ("report.md", "curves.csv", "summary.csv", "aggregates.csv",
                 "improvements.csv", "episodes.csv", "traffic-fake.png", "profiles.png"):
        assert (out / name).stat().st_size > 0, name
    text = (out / "report.md").read_text()
    assert "[lo, hi] = 95% stratified-bootstrap CI" in text  # what the interval means
    assert "interquartile mean (IQM)" in text and "P(A > B)" in text
    assert "| × nominal |" in text  # the strength axis has units
    with (out / "curves.csv").open() as f:
        row = next(csv.DictReader(f))
    assert len(row["scores"].split(";")) == 5  # each run's raw score, recomputable
    assert stats.iqm([[float(x) for x in row["scores"].split(";")]]) == pytest.approx(
        float(row["iqm"]))


def test_plot_labels(negative_db, tmp_path, monkeypatch):
    import matplotlib.axes

    labels = []
    real_set = matplotlib.axes.Axes.set

    def spy(self, **kwargs):
        labels.append(kwargs)
        return real_set(self, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set", spy)
    result = report(negative_db, tmp_path / "rep")
    env_plot, profile = labels[0], labels[-1]
    assert env_plot["xlabel"] == "strength (× nominal)" and "raw units" in env_plot["ylabel"]
    assert "band: 95% stratified-bootstrap CI" in env_plot["title"]
    assert "1 = clean, 0 = random" in profile["xlabel"] and "band" in profile["title"]
    assert len(result["plots"]) == 2


def test_without_random_rows_the_report_says_how_to_get_them(tmp_path):
    db = tmp_path / "results.sqlite"
    with ResultStore(db, "s", "h") as store:
        for seed in range(3):
            store.write_job(_job("a", seed, {("none", None): [1.0 + seed],
                                             ("obs-gaussian", 0.1): [0.5 + seed]}))
    result = report(db, tmp_path / "rep")
    assert "random_baseline = true" in result["markdown"]
    assert result["points"][0].normalized is None and result["aggregates"] == []


def _write_metrics(run_dir: Path, rows: list[tuple[int, float]]) -> None:
    run_dir.mkdir(parents=True)
    lines = ["step,loss,episode_return"] + [f"{s},0.1,{r}" for s, r in rows]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_learning_curves_across_seeds(tmp_path):
    refs = []
    for seed, slope in enumerate((1.0, 2.0, 3.0, 100.0)):  # the last seed is an outlier
        d = tmp_path / f"run{seed}"
        _write_metrics(d, [(0, 0.0), (100 + seed, slope * (100 + seed))])
        refs.append(RunRef("ppo", "gym/X", d))
    (curve,) = learning_curves(refs, points=11)
    assert curve.runs == 4 and curve.steps[-1] == 100  # up to the shortest run
    # at step 100 the runs read 100, 200, 300, 10000: the IQM is the middle two's mean
    assert curve.iqm[-1] == pytest.approx(250.0)
    assert np.all(curve.lo <= curve.iqm) and np.all(curve.iqm <= curve.hi)
    paths = write_curves(refs, tmp_path / "out")
    assert paths[0].stat().st_size > 0
    assert "ci95_lo" in (tmp_path / "out" / "learning_curves.csv").read_text()
    with pytest.raises(RobustRLError, match="logs no 'nope'"):
        learning_curves(refs, metric="nope")
    with pytest.raises(RobustRLError, match="not a run directory"):
        bench_cli.run(bench_cli_args("curves", str(tmp_path)))


def bench_cli_args(*argv: str):
    import argparse

    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    return parser.parse_args(argv)


SUITE = """
name = "rand"
seeds = [0, 1]
episodes = 2
random_baseline = true
[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 128
[train.set]
n_envs = 2
n_steps = 32
n_epochs = 1
hidden = [16]
"env.max_episode_steps" = 40
"run.tensorboard" = false
[[perturbations]]
spec = "act-replace"
strengths = [0.5]
"""


def test_random_pseudo_agent_is_planned_run_and_reported(tmp_path):
    """A real sweep: the random policy's rows sit next to PPO's, under the same cells."""
    path = tmp_path / "rand.toml"
    path.write_text(SUITE)
    plan = plan_suite(load_suite(path), tmp_path / "out")
    randoms = [j for j in plan.jobs if j.label == RANDOM]
    assert len(randoms) == 2 and len(plan.jobs) == 4  # one per env × seed
    assert [c.spec for c in randoms[0].cells] == [c.spec for c in plan.jobs[0].cells]
    off = load_suite(path)
    off.random_baseline = False
    assert plan_suite(off, tmp_path / "out").suite_hash == plan.suite_hash  # cells only added
    summary = run_suite(path, workers=1, out=tmp_path / "out")
    assert summary.ran == 8
    result = report(summary.db, tmp_path / "rep", curves=True)
    (point,) = result["points"]
    assert point.agent == "ppo" and point.random is not None and point.normalized is not None
    assert [r.label for r in runs_of_db(summary.db)] == ["ppo", "ppo"]
    assert (tmp_path / "rep" / "learning_curves.png").stat().st_size > 0


def test_report_from_an_episodes_export(negative_db, tmp_path):
    """The committed raw rows alone reproduce the report (all but Lipschitz)."""
    from robustrl.bench import export_csv

    export = export_csv(negative_db, tmp_path / "raw" / "episodes.csv")
    raw = export.read_text()
    from_db = report(negative_db, tmp_path / "a")
    from_csv = report(export, tmp_path / "raw")  # into the export's own folder
    assert [p.scores for p in from_csv["points"]] == [p.scores for p in from_db["points"]]
    assert (tmp_path / "raw" / "report.md").read_text() == from_db["markdown"]
    assert export.read_text() == raw  # the source rows are left as they were
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(RobustRLError, match="not an episodes export"):
        report(bad, tmp_path / "c")


def test_runs_export_beside_the_episodes_keeps_the_lipschitz_column(tmp_path):
    from robustrl.bench import export_csv

    db = tmp_path / "results.sqlite"
    with ResultStore(db, "s", "h") as store:
        for seed in range(3):
            job = _job("ppo", seed, {("none", None): [1.0 + seed], ("obs-gaussian", 0.1): [0.5]})
            store.write_job({**job, "lipschitz": 2.0 + seed / 3})
    from_db = report(db, tmp_path / "a")
    assert (tmp_path / "a" / "runs.csv").is_file()
    raw = tmp_path / "raw"
    export_csv(db, raw / "episodes.csv")
    bare = report(raw / "episodes.csv", tmp_path / "bare")  # no runs.csv: no Lipschitz
    assert {s.lipschitz for s in bare["summaries"]} == {None}
    assert not (tmp_path / "bare" / "runs.csv").exists()
    export_csv(db, raw / "runs.csv", table="runs")
    full = report(raw / "episodes.csv", tmp_path / "full")
    assert [s.lipschitz for s in full["summaries"]] == [s.lipschitz for s in from_db["summaries"]]
    assert (tmp_path / "full" / "report.md").read_text() == from_db["markdown"]
    assert (tmp_path / "full" / "runs.csv").read_text() == (raw / "runs.csv").read_text()
    other = tmp_path / "other"
    export_csv(db, other / "episodes.csv")
    (other / "runs.csv").write_text((raw / "runs.csv").read_text().replace("ppo-2", "ppo-9"))
    with pytest.raises(RobustRLError, match="list different runs"):
        report(other / "episodes.csv", tmp_path / "c")


def test_variant_is_compared_to_its_base(tmp_path):
    db = tmp_path / "results.sqlite"
    with ResultStore(db, "s", "h") as store:
        for seed in range(3):
            for agent, score in (("ppo", 1.0), ("ppo+ernie", 2.0)):
                store.write_job(_job(agent, seed, {("none", None): [score + 5],
                                                   ("obs-gaussian", 0.1): [score + seed]}))
    (row,) = report(db, tmp_path / "rep")["improvements"]
    # ERNIE's runs 2, 3, 4 against 1, 2, 3: 6 of 9 pairs won, 2 tied
    assert (row.a, row.b) == ("ppo+ernie", "ppo") and row.p == pytest.approx(7 / 9)
