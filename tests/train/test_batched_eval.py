"""Batched evaluation plays many episodes at once and scores each exactly as one at a time."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from robustrl.agents import make_agent
from robustrl.train import eval_env, evaluate, evaluation
from robustrl.train.evaluation import batchable

CONFIGS = {"sac": {"learning_starts": 100}, "hybrid_sac": {"learning_starts": 100},
           "ppo": {"n_steps": 256}, "sb3:ppo": {}, "sb3:sac": {}}


@pytest.mark.parametrize(("name", "env_id", "steps"), [
    ("sac", "mujoco/Hopper-v5", 300),   # short training so the policy is not the init
    ("ppo", "gym/CartPole-v1", 512),
    ("hybrid_sac", "hybrid/platform", 300),  # parameterized actions: a tuple per row
    ("hybrid_sac", "mujoco/Hopper-v5", 300),
    ("sb3:ppo", "gym/CartPole-v1", 256),
    ("sb3:sac", "gym/Pendulum-v1", 200),
])
@pytest.mark.parametrize("perturb", [(), ("obs-gaussian:0.2",)])
def test_batched_returns_equal_sequential(name, env_id, steps, perturb, monkeypatch):
    agent = make_agent(name, env_id, seed=0, **CONFIGS[name])
    agent.learn(steps)
    assert batchable(agent, perturb)
    sequential = evaluate(agent, 6, seed=7, env=eval_env(agent, perturb, seed=7))
    calls = []
    act = agent.act
    monkeypatch.setattr(agent, "act", lambda obs, det=True: calls.append(len(obs)) or act(obs, det))
    monkeypatch.setattr(evaluation, "EVAL_WIDTH", 4)  # copies start later episodes too
    batched = evaluate(agent, 6, seed=7, env=partial(eval_env, agent, perturb, seed=7))
    assert batched["returns"] == sequential["returns"]
    assert batched["lengths"] == sequential["lengths"]
    assert max(calls) == evaluation.MIN_ROWS and len(calls) < sum(batched["lengths"])
    assert len(set(sequential["returns"])) > 1  # distinct seeds, distinct episodes


def test_fallbacks_are_sequential():
    agent = make_agent("sac", "gym/Pendulum-v1", seed=0)
    assert batchable(agent, ("obs-gaussian:0.1", "dyn-mass:1.5"))
    assert not batchable(agent, ("obs-pgd:0.1",))       # attacks the policy per env
    assert not batchable(agent, (), deterministic=False)  # sampled actions use one rng
    assert not batchable(make_agent("hybrid_sac", "hybrid/platform", seed=0), ("obs-pgd:0.1",))
    result = evaluate(agent, 3, seed=1, deterministic=False,
                      env=partial(eval_env, agent, ("obs-gaussian:0.1",), seed=1))
    assert result["episodes"] == 3 and np.all(np.array(result["lengths"]) == 200)
