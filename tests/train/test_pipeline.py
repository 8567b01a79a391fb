"""The run's env pipeline: the factory it hands the agent, and evaluation envs."""

from __future__ import annotations

import pytest

from robustrl.agents import make_agent
from robustrl.core.errors import RobustRLError
from robustrl.envs import identity
from robustrl.reward import HeronConfig, RewardConfig
from robustrl.train import build_run, eval_env, evaluate, train, training_envs


def test_training_factory_hands_out_the_probe_first_then_fresh_envs():
    from robustrl.agents.ppo import PPO

    envs, loop = training_envs(PPO, "gym/CartPole-v1", {"max_episode_steps": 50}, PPO.Config(),
                               RewardConfig(), HeronConfig())
    first, second = envs(), envs()
    assert loop is None and first is not second
    assert identity(first) == identity(second) == ("gym/CartPole-v1", {"max_episode_steps": 50})
    agent = PPO(envs, seed=0)  # the agent gets the run's factory and still knows its env
    assert (agent.env_id, agent.env_kwargs) == ("gym/CartPole-v1", {"max_episode_steps": 50})
    for env in (first, second):
        env.close()
    agent.close()


def test_training_factory_refuses_an_env_the_learner_cannot_use():
    from robustrl.agents.sac import SAC

    with pytest.raises(RobustRLError, match="sac cannot handle action space Discrete"):
        training_envs(SAC, "gym/CartPole-v1", {}, SAC.Config(), RewardConfig(), HeronConfig())


def test_learned_reward_trains_on_wrapped_envs_and_evaluates_on_the_env_reward(tmp_path):
    """A weighted-factor reward wraps every training env; evaluation envs are made by the run
    without the wrapper, so they score the env's own reward."""
    cfg = build_run("ppo", "gym/CartPole-v1", 128, overrides={
        "n_envs": 2, "n_steps": 32, "reward.method": "weighted", "run.tensorboard": False})
    agent = train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "reward.pt").exists()
    env = eval_env(agent)
    assert identity(env) == ("gym/CartPole-v1", {})
    assert type(env).__module__.split(".")[1] != "reward"  # no reward wrapper around it
    result = evaluate(agent, 2, env=env)
    assert all(r == length for r, length in zip(result["returns"], result["lengths"]))
    agent.close()


def test_eval_env_applies_perturbations_and_closes_the_agent_for_dynamics():
    agent = make_agent("ppo", "mujoco/InvertedPendulum-v5", n_envs=1, n_steps=32)
    env = eval_env(agent, ["obs-gaussian:0.1"], seed=0)
    assert env.perturbation_spec.kind == "obs-gaussian"
    env.close()
    agent.learn(32)
    env = eval_env(agent, ["dyn-mass:2.0"], seed=0)  # the simulation must be at hand
    assert env.perturbation_spec.kind == "dyn-mass"
    assert evaluate(agent, 1, env=env)["episodes"] == 1
    agent.learn(64)  # learning goes on with new envs
    assert agent.num_steps == 64
    agent.close()
    with pytest.raises(RobustRLError, match="obs-gausian"):
        eval_env(agent, ["obs-gausian:0.1"])


def test_traffic_dynamics_evaluation_runs_beside_a_trained_agent():
    """libsumo runs one simulation per process and a trained agent holds it; dyn-inflow needs
    the simulation at hand, so the evaluation env takes it over in this process."""
    pytest.importorskip("sumo")
    agent = make_agent("idqn", "traffic/2x2grid", seed=0, env_kwargs={"num_seconds": 100},
                       learning_starts=20, batch_size=16, log_interval=20, hidden=[16])
    try:
        agent.learn(20)
        env = eval_env(agent, ["dyn-inflow:1.5"], seed=0)
        result = evaluate(agent, 1, env=env)
        assert result["length_mean"] == 20 and "mean_waiting_time" in result
    finally:
        agent.close()
