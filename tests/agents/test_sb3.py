"""Stable-Baselines3 interoperability: an SB3 model file evaluated under perturbations, and
`sb3:ppo` trained through SB3 as an agent of a run and of a bench suite next to `ppo`."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from robustrl.agents import agent_class, load
from robustrl.cli import main
from robustrl.core.errors import RobustRLError
from robustrl.train import build_run, evaluate_sb3, load_run_agent, train

sb3 = pytest.importorskip("stable_baselines3", reason="extra robustrl[sb3] not installed")


@pytest.fixture(scope="module")
def ppo_zip(tmp_path_factory):
    """An SB3 PPO trained a few hundred steps on CartPole by SB3 itself, saved as SB3 does."""
    import gymnasium as gym

    path = tmp_path_factory.mktemp("sb3") / "ppo_cartpole.zip"
    model = sb3.PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=128, seed=0, device="cpu")
    model.learn(384)
    model.save(path)
    return path


def test_eval_sb3_model_under_perturbations(ppo_zip, capsys):
    clean = evaluate_sb3(ppo_zip, "ppo", "gym/CartPole-v1", 4, seed=7)
    noisy = evaluate_sb3(ppo_zip, "ppo", "gym/CartPole-v1", 4, ["obs-gaussian:1.0"], seed=7)
    assert clean["agent"] == "sb3:ppo" and noisy["perturbations"] == ["obs-gaussian:1.0"]
    assert len(clean["returns"]) == 4 and clean["returns"] != noisy["returns"]
    # the same actions SB3 itself takes
    model = sb3.PPO.load(ppo_zip, device="cpu")
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=7)
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(model.predict(obs, deterministic=True)[0])
        total, done = total + r, term or trunc
    assert clean["returns"][0] == total
    # the CLI, with an attack on the SB3 policy's logits
    assert main(["eval", str(ppo_zip), "--sb3", "ppo", "--env", "gym/CartPole-v1",
                 "--episodes", "2", "--perturb", "obs-pgd:0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["perturbations"] == ["obs-pgd:0.5"]


def test_sb3_eval_input_errors_are_one_line(ppo_zip, tmp_path, capsys):
    cases = [
        (["--sb3", "ppo"], "--sb3 needs --env"),
        (["--sb3", "ppo", "--env", "gym/CartPole-v1", "--which", "best"], "holds one"),
        (["--env", "gym/CartPole-v1"], "--env is for an SB3 model file"),
        (["--sb3", "ppo", "--env", "gym/Pendulum-v1"], "trained on observations Box(shape=(4"),
        (["--sb3", "sac", "--env", "gym/CartPole-v1"], "is not an SB3 SAC model file"),
        (["--sb3", "nope", "--env", "gym/CartPole-v1"], "SB3 agents: sb3:ppo"),
    ]
    for extra, message in cases:
        assert main(["eval", str(ppo_zip), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["eval", str(tmp_path / "missing.zip"), "--sb3", "ppo", "--env",
                 "gym/CartPole-v1"]) == 2
    assert "not found" in capsys.readouterr().err


def test_missing_extra_names_it(monkeypatch):
    from robustrl.agents import sb3 as adapter

    adapter.sb3_class.cache_clear()
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    try:
        with pytest.raises(RobustRLError, match=r"pip install robustrl\[sb3\]"):
            agent_class("sb3:ppo")
    finally:
        adapter.sb3_class.cache_clear()


def test_sb3_agent_in_a_run_trains_resumes_and_evaluates(tmp_path):
    run = tmp_path / "run"
    cfg = build_run("sb3:ppo", "gym/CartPole-v1", 512, overrides={
        "log_every": 512, "run.eval_every": 1024, "run.eval_episodes": 1,
        "run.tensorboard": False})
    agent = train(cfg, run, show_progress=False)
    assert agent.num_steps >= 512  # SB3's PPO collects whole rollouts (2048 steps)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and "eval/return_mean" in rows[0]
    loaded = load_run_agent(run)
    obs = np.zeros(4, dtype=np.float32)
    assert loaded.name == "sb3:ppo" and loaded.act(obs) == agent.act(obs)
    assert load(run / "best.pt").name == "sb3:ppo"
    assert main(["eval", str(run), "--episodes", "2", "--perturb", "obs-gaussian:0.5"]) == 0
    # the checkpoint carries SB3's model: training continues from it
    resumed = load(run / "checkpoint.pt")
    resumed.learn(agent.num_steps + 256)
    assert resumed.num_steps > agent.num_steps and resumed.model.num_timesteps == resumed.num_steps


def test_tiny_suite_with_sb3_ppo_next_to_ppo(tmp_path):
    from robustrl.bench import report, run_suite

    suite = tmp_path / "mixed.toml"
    suite.write_text("""
name = "mixed"
seeds = [0]
episodes = 2
lipschitz_obs = 16

[[train]]
agents = ["ppo", "sb3:ppo"]
envs = ["gym/CartPole-v1"]
steps = 256
set = { "env.max_episode_steps" = 50, "run.tensorboard" = false }

[[perturbations]]
spec = "obs-gaussian"
strengths = [0.5]
""")
    summary = run_suite(suite, workers=1, out=tmp_path / "out")
    assert summary.ran == 4  # 2 agents × (clean + 1 strength)
    result = report(summary.db, tmp_path / "rep")
    agents = {s.agent for s in result["summaries"]}
    assert agents == {"ppo", "sb3:ppo"}
    assert all(s.seeds == 1 for s in result["summaries"])  # (AUC needs random_baseline)
    assert (tmp_path / "rep" / "gym-CartPole-v1.png").stat().st_size > 0
