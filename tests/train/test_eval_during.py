"""Evaluation during training (run.eval_every / eval_episodes, best.pt, eval --which), and the
library's learn(): progress bar, callbacks that can stop training, torch threads."""

import csv
import io
import json

import pytest
import torch

from robustrl.agents import load, make_agent
from robustrl.agents.learning import LearnInfo, apply_threads
from robustrl.cli import main
from robustrl.core.errors import RobustRLError
from robustrl.train import build_run, load_run_agent, train
from robustrl.train.eval_during import EVAL_SEED

SAC = {"hidden": [32, 32], "learning_starts": 100, "log_interval": 100,
       "run.tensorboard": False}


def _rows(run):
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_eval_during_training_logs_scores_and_keeps_best(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = build_run("sac", "gym/Pendulum-v1", 600, overrides={
        **SAC, "run.eval_every": 200, "run.eval_episodes": 2, "run.tensorboard": True})
    train(cfg, run)
    evals = [r for r in _rows(run) if r.get("eval/return_mean")]
    assert [int(r["step"]) for r in evals] == [200, 400, 600]
    scores = [float(r["eval/return_mean"]) for r in evals]
    assert all(-2000 < s < 0 for s in scores)  # Pendulum's 200-step returns
    assert float(evals[-1]["eval/best_return"]) == max(scores)
    best = load(run / "best.pt")
    assert best.num_steps == [200, 400, 600][scores.index(max(scores))]
    assert load_run_agent(run, "best").num_steps == best.num_steps
    assert load_run_agent(run).num_steps == 600
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(run / "tb"))
    tb.Reload()
    assert [e.step for e in tb.Scalars("eval/return_mean")] == [200, 400, 600]

    assert main(["eval", str(run), "--which", "best", "--episodes", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["which"] == "best" and len(out["returns"]) == 2


def test_eval_seeds_are_disjoint_from_training(tmp_path, monkeypatch):
    import robustrl.train.eval_during as eval_during

    seen = []
    real = eval_during.evaluate
    monkeypatch.setattr(eval_during, "evaluate",
                        lambda agent, n, seed: seen.append(seed) or real(agent, n, seed=seed))
    cfg = build_run("sac", "gym/Pendulum-v1", 300, seed=3, overrides={
        **SAC, "run.eval_every": 300, "run.eval_episodes": 1})
    agent = train(cfg, tmp_path / "run")
    assert seen == [EVAL_SEED + 3000]  # same seeds at every evaluation of this run
    assert agent.seed + agent.stats.episodes < EVAL_SEED  # training resets: seed + episodes


def test_eval_during_multi_agent(tmp_path):
    run = tmp_path / "ma"
    cfg = build_run("mappo", "mpe/simple_spread", 400, overrides={
        "hidden": [32, 32], "n_envs": 2, "n_steps": 50, "n_epochs": 2, "n_minibatches": 2,
        "run.eval_every": 200, "run.eval_episodes": 1,
        "run.tensorboard": False, "env.max_cycles": 25})
    train(cfg, run)
    evals = [r for r in _rows(run) if r.get("eval/return_mean")]
    assert [int(r["step"]) for r in evals] == [200, 400]
    assert (run / "best.pt").exists() and load_run_agent(run, "best").name == "mappo"


def test_best_needs_eval_every_and_bad_values_are_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    train(build_run("sac", "gym/Pendulum-v1", 200, overrides=SAC), run)
    assert not (run / "best.pt").exists()
    assert main(["eval", str(run), "--which", "best"]) == 2
    assert "run.eval_every" in capsys.readouterr().err
    with pytest.raises(RobustRLError, match="eval_episodes"):
        train(build_run("sac", "gym/Pendulum-v1", 200, overrides={
            **SAC, "run.eval_every": 100, "run.eval_episodes": 0}), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------- library learn()
def test_callbacks_get_info_and_can_stop(tmp_path):
    agent = make_agent("sac", "gym/Pendulum-v1", hidden=[32, 32], learning_starts=100,
                       log_interval=100)
    infos: list[LearnInfo] = []

    def stop_at_300(info: LearnInfo) -> bool:
        infos.append(info)
        return info.step < 300

    agent.learn(1000, callbacks=[stop_at_300])
    assert [i.step for i in infos] == [100, 200, 300] and agent.num_steps == 300
    assert infos[0].total_steps == 1000 and infos[0].agent is agent
    assert "steps_per_second" in infos[-1].metrics


def test_progress_bar_like_the_cli(monkeypatch):
    import robustrl.agents.learning as learning

    stream = io.StringIO()
    bars = []

    def bar(total, desc="", initial=0):  # the CLI's bar, forced on and into a buffer
        from tqdm import tqdm

        bars.append(tqdm(total=total, desc=desc, initial=initial, file=stream))
        return bars[-1]

    monkeypatch.setattr(learning, "progress_bar", bar)
    agent = make_agent("sac", "gym/Pendulum-v1", hidden=[32, 32], learning_starts=100,
                       log_interval=100)
    agent.learn(200, progress=True)
    assert bars[0].n == 200 and "sac gym/Pendulum-v1" in stream.getvalue()
    assert "ret=" in stream.getvalue()
    agent.learn(300)  # no progress requested: no bar
    assert len(bars) == 1


def test_progress_is_quiet_off_a_terminal(capsys):
    agent = make_agent("sac", "gym/Pendulum-v1", hidden=[32, 32], learning_starts=100,
                       log_interval=100)
    agent.learn(200, progress=True)  # pytest's stderr is no terminal
    assert capsys.readouterr().err == ""


def test_threads_default_to_one_unless_the_user_chose(monkeypatch):
    import robustrl.agents.learning as learning

    before = torch.get_num_threads()
    try:
        for var in learning.THREAD_VARS:
            monkeypatch.delenv(var, raising=False)
        torch.set_num_threads(2)
        monkeypatch.setattr(learning, "_THREADS_AT_IMPORT", 2)  # 2 = torch's own default here
        apply_threads(None)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(3)  # the user's call after importing robustrl
        apply_threads(None)
        assert torch.get_num_threads() == 3
        monkeypatch.setattr(learning, "_THREADS_AT_IMPORT", 3)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's environment
        apply_threads(None)
        assert torch.get_num_threads() == 3
        apply_threads(2)  # explicit
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- tracking
def _wandb_history(run):
    """History rows of an offline W&B run, read from its .wandb file (LevelDB-style log of
    protobuf records: 32 KiB blocks, 7-byte record headers)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    data, pos, block, chunks, records = path.read_bytes(), 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # padding to the end of a block
            pos += left
            continue
        chunks += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            records.append(chunks)
            chunks = b""
    rows = []
    for raw in records:
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def test_wandb_offline_logs_the_tensorboard_scalars(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    train(build_run("sac", "gym/Pendulum-v1", 300, overrides={
        **SAC, "run.tensorboard": True, "run.track": "wandb", "run.eval_every": 200,
        "run.eval_episodes": 1}), run)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(run / "tb"))
    tb.Reload()
    expected = {(tag, e.step): e.value for tag in tb.Tags()["scalars"] for e in tb.Scalars(tag)}
    logged = {(k, row["_step"]): v for row in _wandb_history(run) for k, v in row.items()
              if not k.startswith("_")}
    assert logged.keys() == expected.keys()
    assert ("eval/return_mean", 200) in logged and ("critic_loss", 300) in logged
    assert all(abs(logged[k] - v) <= 1e-4 * max(1.0, abs(v)) for k, v in expected.items())


def test_tracker_choice_and_missing_extra_are_one_line(tmp_path, monkeypatch):
    import sys

    from robustrl.core.tracking import check_tracker

    with pytest.raises(RobustRLError, match="unknown run.track 'mlflow'; choose one of: none, "):
        train(build_run("sac", "gym/Pendulum-v1", 100, overrides={
            **SAC, "run.track": "mlflow"}), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if the extra were not installed
    with pytest.raises(RobustRLError, match=r"pip install robustrl\[wandb\]"):
        check_tracker("wandb")


def test_resumed_run_keeps_its_best_score_and_schedule(tmp_path):
    from robustrl.train.eval_during import PeriodicEval

    rows = [{"step": "200", "eval/return_mean": "-700.5"}, {"step": "300", "loss": "1"},
            {"step": "400", "eval/return_mean": "-900"}]
    evals = PeriodicEval(tmp_path, every=200, episodes=1, seed=0, rows=rows, start=450)
    assert evals.best == -700.5 and evals.next == 600
