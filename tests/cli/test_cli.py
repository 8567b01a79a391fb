"""The command line end to end: `robustrl agents`, and the one-line refusals of combinations
a learner does not support (read from the registry's capabilities, before anything is
written)."""

from __future__ import annotations

import pytest

from robustrl.agents import AGENTS
from robustrl.cli import main


def test_agents_prints_the_capability_table_within_100_columns(capsys):
    assert main(["agents"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    header = lines[0].split()
    assert header[:4] == ["agent", "agents", "learning", "action"]
    rows = {line.split()[0]: line.split() for line in lines[2:2 + len(AGENTS)]}
    assert set(rows) == set(AGENTS)
    assert rows["hybrid_sac"][4:7] == ["-", "-", "-"]  # no ERNIE, no relabel, no --reward
    assert rows["sac"][2] == "off-policy" and rows["mappo"][1] == "multi"
    assert rows["iql"][2] == "offline" and rows["iql"][-1] == "-"  # no --reward


TRAIN = ["train", "--steps", "10", "--out", "run"]


@pytest.mark.parametrize("argv,message", [
    (["--agent", "hybrid_sac", "--env", "hybrid/platform", "--set", "robust.method=ernie"],
     "hybrid_sac has no ERNIE regularizer (robust.method=ernie); learners with it: sac, ppo"),
    (["--agent", "hybrid_sac", "--env", "hybrid/platform", "--reward", "weighted"],
     "hybrid_sac cannot train on a learned reward (reward.method=weighted)"),
    (["--agent", "maddpg", "--env", "mpe/simple_spread", "--set", "run.device=gpu0"],
     "unknown torch device 'gpu0'; use cpu or cuda"),
    (["--agent", "mappo", "--env", "gym/Pendulum-v1"],
     "mappo is a multi-agent (PettingZoo) learner and gym/Pendulum-v1 a single-agent "
     "(Gymnasium) env; use one of: sac, ppo, hybrid_sac"),
    (["--agent", "sac", "--env", "mpe/simple_spread"],
     "sac is a single-agent (Gymnasium) learner and mpe/simple_spread a multi-agent "
     "(PettingZoo) env; use one of: mappo, ippo, maddpg, idqn, mfq"),
    (["--agent", "tdmpc", "--env", "maze/PointMaze_UMaze-v3"], "--dataset"),
])
def test_unsupported_combination_is_one_line_and_writes_nothing(argv, message, capsys, tmp_path,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*TRAIN, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
