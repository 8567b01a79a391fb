"""Mean-field Q-learning (mfq) and its distributionally robust target: the traffic neighbour
graph, neighbours' mean actions, the DRO target against the plain one, short runs on
traffic/2x2grid and mpe/simple_spread with save/load, one-line config errors."""

import numpy as np
import pytest
import torch

from robustrl.agents import load, make_agent, resolve_config
from robustrl.agents.mfq import (
    MFQ,
    mean_actions,
    neighbour_graph,
    neighbour_weights,
    robust_value,
)
from robustrl.core.errors import RobustRLError
from robustrl.train import build_run, train

SPREAD = {"N": 3, "max_cycles": 25}
SMALL = {"hidden": (32, 32), "learning_starts": 40, "batch_size": 16, "log_interval": 25}


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _spread(seed=0, **config):
    return make_agent("mfq", "mpe/simple_spread", seed=seed, env_kwargs=SPREAD,
                      **{**SMALL, **config})


def test_traffic_neighbours_of_2x2grid_follow_the_net():
    import sumolib

    from robustrl.envs import make
    from robustrl.envs.traffic import neighbours, resolve_file

    env = make("traffic/2x2grid", num_seconds=100)
    try:
        graph = neighbours(env)
        net = sumolib.net.readNet(resolve_file(env.config.net_file, "network file"))
    finally:
        env.close()
    assert list(graph) == env.possible_agents and len(graph) == 4
    assert all(len(v) == 2 for v in graph.values())
    # the net itself: an edge joins the two lights' junctions (tls ids are node ids here)
    roads = {frozenset((e.getFromNode().getID(), e.getToNode().getID())) for e in net.getEdges()}
    for light, others in graph.items():
        assert light not in others
        for other in others:
            assert frozenset((light, other)) in roads and light in graph[other]
    assert graph == {"1": ["2", "5"], "2": ["1", "6"], "5": ["1", "6"], "6": ["2", "5"]}
    with pytest.raises(RobustRLError, match="needs a traffic env"):
        neighbours(object())


def test_mean_actions_and_fallback_graph():
    agents = ["a", "b", "c", "d"]
    graph = {"a": ["b", "c"], "b": ["a"], "c": ["a"], "d": []}
    w = neighbour_weights(graph, agents)
    mean = mean_actions(np.array([[0, 1, 2, 1], [2, 2, 2, 0]]), w, 3)
    assert mean.shape == (2, 4, 3)
    np.testing.assert_allclose(mean[0], [[0, .5, .5], [1, 0, 0], [1, 0, 0], [1 / 3] * 3])
    np.testing.assert_allclose(mean[1], [[0, 0, 1], [0, 0, 1], [0, 0, 1], [1 / 3] * 3])
    # non-traffic envs: every other agent is a neighbour
    agent = _spread()
    assert agent.graph == {"agent_0": ["agent_1", "agent_2"], "agent_1": ["agent_0", "agent_2"],
                           "agent_2": ["agent_0", "agent_1"]}
    assert neighbour_graph(None, agents, "all")["d"] == ["a", "b", "c"]
    # act remembers its actions' neighbour mean for the next call (MF-Q: previous step's)
    obs = {a: np.zeros(18, np.float32) for a in agent.agents}
    actions = agent.act(obs)
    expected = agent.mean_actions(np.array([actions[a] for a in agent.agents]))
    np.testing.assert_allclose(agent.acting_mean, expected)
    agent.reset_mean_action()
    assert agent.acting_mean is None


def test_dro_target_equals_plain_at_zero_and_falls_with_rho():
    agent = _spread(dro_rho=0.1)
    agent.learn(80)  # some updates, so Q depends on the mean action
    rng = np.random.default_rng(0)
    next_obs = torch.from_numpy(rng.normal(size=(32, 3, 18)).astype(np.float32))
    next_mean = torch.from_numpy(agent.mean_actions(rng.integers(0, 5, (32, 3))))
    robust, plain = agent.next_values(next_obs, next_mean)
    assert robust.shape == plain.shape == (32, 3) and (robust <= plain + 1e-6).all()
    same, _ = agent.next_values(next_obs, next_mean, rho=0.0)
    torch.testing.assert_close(same, plain)
    # the correction itself (kl_worst_case) at rho = 0 and growing rho
    values = torch.from_numpy(rng.normal(size=(32, 3, 5)))
    probs = next_mean.double()
    base = torch.zeros(32, 3)
    torch.testing.assert_close(robust_value(base, values, probs, 0.0), base, atol=1e-6,
                               rtol=0)
    previous = base
    for rho in (1e-3, 0.01, 0.1, 1.0, 10.0):
        current = robust_value(base, values, probs, rho)
        assert (current <= previous + 1e-6).all()
        previous = current
    worst = values.where(probs > 0, torch.inf).amin(-1).float()
    expected = (probs * values).sum(-1).float()
    torch.testing.assert_close(previous, worst - expected, atol=1e-5, rtol=0)  # ball covers all
    mask = torch.tensor([True, False, True])
    assert (robust_value(base, values, probs, 1.0, mask)[:, 1] == 0).all()


def test_traffic_grid_run_logs_saves_and_loads(tmp_path):
    agent = make_agent("mfq", "traffic/2x2grid", seed=0, env_kwargs={"num_seconds": 100},
                       dro_rho=0.1, **{**SMALL, "learning_starts": 20, "log_interval": 20})
    logs = []
    try:
        assert agent.graph == {"1": ["2", "5"], "2": ["1", "6"], "5": ["1", "6"],
                               "6": ["2", "5"]}
        agent.learn(60, lambda a, m: logs.append(m))
        assert agent.num_steps == 60 and agent.stats.episodes == 3
        obs = agent.obs.copy()
        agent.reset_mean_action()
        actions = agent.act_array(obs[0])
        agent.save(tmp_path / "mfq.pt")
    finally:
        agent.close()
    assert len(logs) == 3 and {"td_loss", "q_mean", "robust/dro_gap", "epsilon",
                               "episode_return"} <= set(logs[-1])
    assert all(np.isfinite(v) for v in logs[-1].values())
    loaded = load(tmp_path / "mfq.pt")
    np.testing.assert_array_equal(loaded.act_array(obs[0]), actions)
    assert isinstance(loaded, MFQ) and loaded.config.dro_rho == 0.1


def test_simple_spread_train_run_save_load_resume(tmp_path):
    cfg = build_run("mfq", "mpe/simple_spread", steps=150, seed=1,
                    overrides={**{f"agent.{k}": v for k, v in SMALL.items()},
                               "agent.exploration": "boltzmann", "agent.dro_rho": 0.05,
                               "run.tensorboard": False, "env.N": 3})
    agent = train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "agent.pt").exists() and agent.num_steps == 150
    agent.save(tmp_path / "a.pt", include_buffer=True)
    loaded = load(tmp_path / "a.pt")
    obs, _ = loaded.env_fn().reset(seed=0)
    agent.reset_mean_action()
    assert loaded.act(obs) == agent.act(obs)
    assert len(loaded.buffer) == 150 and loaded.config.exploration == "boltzmann"
    loaded.learn(200)
    assert loaded.num_steps == 200
    x = torch.zeros(2, 3, 18, requires_grad=True)
    loaded.policy_output(x).sum().backward()
    assert x.grad is not None


def test_same_seed_same_run():
    def trace():
        logs = []
        agent = _spread(seed=3, dro_rho=0.1, exploration="boltzmann")
        agent.learn(100, lambda a, m: logs.append(
            {k: v for k, v in m.items() if k != "steps_per_second"}))
        return logs

    assert trace() == trace()


@pytest.mark.parametrize("overrides,message", [
    ({"dro_rho": -0.1}, "mfq: dro_rho must be >= 0"),
    ({"exploration": "softmax"}, "exploration: 'softmax' is not one of"),
    ({"temperature_end": 0}, "mfq: temperature_end must be > 0"),
    ({"gamma": 1.5}, r"mfq: gamma must be in \[0, 1\]"),
    ({"batch_size": 0}, "mfq: batch_size must be >= 1"),
    ({"neighbourhood": "ring"}, "neighbourhood: 'ring' is not one of"),
])
def test_bad_config_is_one_line(overrides, message):
    with pytest.raises(RobustRLError, match=message) as info:
        resolve_config("mfq", "traffic/2x2grid", overrides)
    assert "\n" not in str(info.value)


def test_refuses_continuous_actions_and_bad_robust_target():
    with pytest.raises(RobustRLError, match="mfq cannot handle action space Box"):
        make_agent("mfq", "mpe/simple_spread", env_kwargs={**SPREAD, "continuous_actions": True})
    with pytest.raises(RobustRLError, match="perturb_other_actions"):
        _spread(robust={"method": "ernie", "perturb_other_actions": True})
    agent = _spread(robust={"method": "ernie", "target": "both", "perturb_other_actions": True})
    agent.learn(60)
    assert agent.updates > 0
