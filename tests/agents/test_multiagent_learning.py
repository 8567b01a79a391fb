"""Learning checks of the multi-agent learners on fixed seeds and small budgets.

Budgets and the numbers they reached are recorded in experiments/multiagent/results/multiagent.md.
Both are `slow` (minutes on a shared 2-core machine):
    pytest -m slow tests/agents/test_multiagent_learning.py -s
"""

import numpy as np
import pytest
import torch

from robustrl.agents import make_agent
from robustrl.envs import make
from robustrl.envs.traffic_baselines import evaluate_controller
from robustrl.train import evaluate


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def random_return(episodes: int = 100, seed: int = 10_000) -> float:
    env = make("mpe/simple_spread", N=3, max_cycles=25)
    rng = np.random.default_rng(seed)
    returns = []
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        total = 0.0
        while env.agents:
            _, rewards, _, _, _ = env.step({a: int(rng.integers(5)) for a in env.agents})
            total += sum(rewards.values())
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.slow
@pytest.mark.learning
def test_mappo_beats_random_on_simple_spread():
    """Team return (sum over the 3 agents, 25 steps): random about -83 on these seeds."""
    agent = make_agent("mappo", "mpe/simple_spread", seed=0, env_kwargs={"N": 3, "max_cycles": 25})
    agent.learn(20_000)
    baseline = random_return()
    result = evaluate(agent, episodes=100)
    print(f"mappo simple_spread: random {baseline:.1f}, learned {result['return_mean']:.1f}")
    assert result["return_mean"] > baseline + 10, (result["return_mean"], baseline)


@pytest.mark.slow
@pytest.mark.learning
def test_idqn_beats_fixed_time_on_2x2grid():
    """agents/idqn.toml's traffic settings, 10 episodes of 1,000 simulated seconds (2,000 env
    steps), evaluated greedily on held-out seeds against the fixed-time controller."""
    kwargs = {"num_seconds": 1000}
    agent = make_agent("idqn", "traffic/2x2grid", seed=0, env_kwargs=kwargs)
    try:
        agent.learn(2_000)
        learned = evaluate(agent, episodes=2, seed=100)["mean_waiting_time"]
    finally:
        agent.close()
    fixed = evaluate_controller("traffic/2x2grid", "fixed-time", episodes=2, seed=100, **kwargs)
    print(f"idqn 2x2grid mean waiting time: fixed-time {fixed['mean_waiting_time']:.2f} s, "
          f"learned {learned:.2f} s")
    assert learned < fixed["mean_waiting_time"], (learned, fixed)
