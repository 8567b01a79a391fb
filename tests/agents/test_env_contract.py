"""The agent <-> env contract: an env made by `robustrl.envs.make` carries its id, so an agent
handed the instance resolves the id's config, saves and loads without env=, and multi-agent
learners make their copies from it; a user's own env works alone."""

import importlib.util

import numpy as np
import pytest

from robustrl import envs
from robustrl.agents import agent_class, load, make_agent, resolve_config
from robustrl.core.errors import RobustRLError

SMALL = {"hidden": (32, 32)}
# find_spec, not importorskip: importing libsumo here would pre-empt robustrl's SUMO set-up.
HAS_SUMO = all(importlib.util.find_spec(m) for m in ("sumo", "libsumo", "sumo_rl"))


def test_instance_made_by_envs_make_resolves_the_ids_config_and_round_trips(tmp_path):
    env = envs.make("mujoco/InvertedPendulum-v5")
    agent = make_agent("sac", env, learning_starts=50, **SMALL)
    by_id = make_agent("sac", "mujoco/InvertedPendulum-v5", learning_starts=50, **SMALL)
    assert agent.config == by_id.config
    assert agent.config == resolve_config("sac", "mujoco/InvertedPendulum-v5",
                                          {"learning_starts": 50, **SMALL})
    assert (agent.env_id, agent.env_kwargs) == ("mujoco/InvertedPendulum-v5", {})
    agent.learn(60)
    agent.save(tmp_path / "sac.pt")
    loaded = load(tmp_path / "sac.pt")  # no env=: the id travelled with the instance
    obs = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded.act(obs), agent.act(obs))
    assert loaded.env_id == "mujoco/InvertedPendulum-v5" and loaded.num_steps == 60
    agent.close()
    by_id.close()
    loaded.close()


def test_instance_kwargs_become_the_agents_env_kwargs():
    env = envs.make("mpe/simple_spread", N=2, max_cycles=10)
    agent = make_agent("ippo", env, n_envs=2, n_steps=10, n_epochs=1, **SMALL)
    assert (agent.env_id, agent.env_kwargs) == ("mpe/simple_spread",
                                                {"N": 2, "max_cycles": 10})
    assert agent.n_agents == 2
    assert agent.config.n_steps == 10 and agent.config.lr == 1e-3  # agents/ippo.toml "mpe/*"


@pytest.mark.parametrize("name,config", [
    ("mappo", {"n_envs": 2, "n_steps": 25, "n_epochs": 2, "n_minibatches": 2}),
    ("ippo", {"n_envs": 2, "n_steps": 25, "n_epochs": 2, "n_minibatches": 2}),
    ("maddpg", {"n_envs": 2, "learning_starts": 100, "batch_size": 32, "log_interval": 100}),
])
def test_multi_agent_learners_train_on_an_instance(name, config):
    agent = make_agent(name, envs.make("mpe/simple_spread"), seed=0, **config, **SMALL)
    logs = []
    agent.learn(300, lambda a, m: logs.append(m))
    assert agent.num_steps == 300 and logs
    assert len(agent.envs.envs) == 2  # the instance plus one copy made by envs.make
    agent.close()


@pytest.mark.skipif(not HAS_SUMO, reason="SUMO (eclipse-sumo, libsumo, sumo-rl) is not installed")
def test_idqn_trains_on_a_traffic_instance():
    agent = make_agent("idqn", envs.make("traffic/2x2grid", num_seconds=100), seed=0,
                       n_envs=2, learning_starts=20, batch_size=16, log_interval=20, **SMALL)
    try:
        assert agent.config.learning_starts == 20 and agent.config.eps_decay_steps == 1000
        agent.learn(40)  # the second copy runs in a subprocess worker (envs.make's rule)
        assert agent.num_steps == 40
    finally:
        agent.close()


def test_unidentified_instance_and_bad_env():
    import gymnasium as gym

    agent = make_agent("sac", gym.make("Pendulum-v1"), learning_starts=10, **SMALL)
    assert (agent.env_id, agent.env_kwargs) == (None, {})
    with pytest.raises(RobustRLError, match="needs several env copies"):
        agent.env_fn()
    with pytest.raises(RobustRLError, match="env must be an env id"):
        make_agent("sac", 3)
    with pytest.raises(RobustRLError, match="sac is a single-agent learner"):
        make_agent("sac", envs.make("mpe/simple_spread", continuous_actions=True))


def test_spaces_of_before_the_agent_exists():
    env = envs.make("mpe/simple_adversary")
    obs_space, act_space, n = agent_class("mappo").spaces_of(env)
    assert obs_space.shape == (10,) and act_space.n == 5 and n == 3
    single = envs.make("gym/Pendulum-v1")
    assert agent_class("sac").spaces_of(single)[2] == 1
    with pytest.raises(RobustRLError, match="idqn cannot handle action space Box"):
        agent_class("idqn").spaces_of(envs.make("mpe/simple_spread", continuous_actions=True))
