"""Particle worlds (mpe2): PettingZoo conformance, spaces as declared, seeding, and reward
factors that are exactly the terms each scenario's reward is built from."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from robustrl import envs
from robustrl.core.errors import RobustRLError

MPE_IDS = envs.list_envs("mpe")
FAST_ID = "mpe/simple_spread"


def _rollout(env, seed: int, steps: int = 25):
    """Seeded random rollout; returns observations, rewards and factors, step by step."""
    obs, _ = env.reset(seed=seed)
    for i, agent in enumerate(env.possible_agents):
        env.action_space(agent).seed(seed + i)
    trace = [obs]
    for _ in range(steps):
        if not env.agents:
            break
        actions = {a: env.action_space(a).sample() for a in env.agents}
        obs, rewards, _, _, infos = env.step(actions)
        trace.append((obs, rewards, {a: i["reward_factors"] for a, i in infos.items()}))
    return trace


def _reward_from_factors(scenario: str, agent: str, f: dict[str, float], local_ratio=0.5):
    """Each scenario's reward rebuilt from its factors, with the weights in envs/mpe.toml."""
    adversary = agent.startswith(("adversary", "leadadversary", "eve"))
    match scenario:
        case "simple":
            return -f["landmark_sq_distance"]
        case "simple_adversary":
            own = -f["goal_distance"]
            return own if adversary else own + f["opponent_goal_distance"]
        case "simple_crypto":
            own = -f["decode_error"]
            return own if adversary else own + f["opponent_decode_error"]
        case "simple_push":
            own = -f["goal_distance"]
            return own + f["opponent_goal_distance"] if adversary else own
        case "simple_reference":
            return -local_ratio * f["partner_goal_distance"] - (1 - local_ratio) * f[
                "team_goal_distance"]
        case "simple_speaker_listener":
            return -f["listener_goal_sq_distance"]
        case "simple_spread":
            return -local_ratio * f["collisions"] - (1 - local_ratio) * f["coverage_distance"]
        case "simple_tag":
            return 10 * f["catches"] - 10 * f["caught"] - f["out_of_bounds"]
        case "simple_world_comm":
            return (5 * f["catches"] - 0.1 * f["prey_distance"] - 5 * f["caught"]
                    - 2 * f["out_of_bounds"] + 2 * f["food_eaten"] - 0.05 * f["food_distance"])
        case "simple_formation" | "simple_line":
            return -f["formation_error"]
        case "collect_treasure":
            return (5 * f["treasures_collected"] + 5 * f["treasures_deposited"]
                    - 5 * f["collisions"] - 0.1 * f["target_distance"])
    raise AssertionError(f"no reward rule for {scenario}")


def test_ids_cover_every_installed_mpe2_scenario():
    import mpe2.all_modules

    installed = {name.split("/")[1].rsplit("_v", 1)[0]
                 for name in mpe2.all_modules.mpe_environments}
    assert {i.split("/")[1] for i in MPE_IDS} == installed


def test_parallel_api_conformance():
    env = envs.make(FAST_ID)
    parallel_api_test(env, num_cycles=30)
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("env_id", MPE_IDS)
def test_parallel_api_conformance_all(env_id: str, continuous: bool):
    env = envs.make(env_id, continuous_actions=continuous)
    parallel_api_test(env, num_cycles=30)
    env.close()


def _mpe2_parallel_env(env_id: str, **kwargs):
    """mpe2's own parallel env (its AEC env behind PettingZoo's conversion) for `env_id`."""
    import mpe2.all_modules

    name = env_id.split("/")[1]
    [module] = [m for key, m in mpe2.all_modules.mpe_environments.items()
                if key.split("/")[1].rsplit("_v", 1)[0] == name]
    return module.parallel_env(**kwargs)


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("env_id", MPE_IDS)
def test_steps_equal_mpe2s_own_parallel_env(env_id: str, continuous: bool):
    """The adapter steps mpe2's core without the AEC conversion: observations, rewards, flags,
    infos, live agents and global state equal mpe2's parallel env over three seeded episodes."""
    kwargs = {"continuous_actions": continuous, "max_cycles": 12}
    ours, ref = envs.make(env_id, **kwargs), _mpe2_parallel_env(env_id, **kwargs)
    rng = np.random.default_rng(0)
    for episode in range(3):
        results = [ours.reset(seed=episode), ref.reset(seed=episode)]
        while True:
            (o1, *rest1), (o2, *rest2) = results
            assert o1.keys() == o2.keys() and ours.agents == ref.agents
            for a in o1:
                np.testing.assert_array_equal(o1[a], o2[a])
            np.testing.assert_array_equal(ours.state(), ref.state())
            if len(rest1) == 4:  # a step's rewards, terminations, truncations, infos
                (r1, te1, tr1, i1), (r2, te2, tr2, i2) = rest1, rest2
                assert (dict(r1), te1, tr1) == (dict(r2), te2, tr2)
                assert {a: {k: v for k, v in i.items() if k != "reward_factors"}
                        for a, i in i1.items()} == i2
            if not ours.agents:
                break
            actions = {}
            for a in ours.agents:
                space = ours.action_space(a)
                actions[a] = (rng.uniform(-0.2, 1.2, space.shape).astype(np.float32)
                              if continuous else int(rng.integers(space.n)))
            results = [ours.step(actions), ref.step(actions)]
    ours.close()
    ref.close()


@pytest.mark.parametrize("continuous", [False, True])
def test_bad_actions_raise_one_line_errors(continuous: bool):
    env = envs.make(FAST_ID, continuous_actions=continuous)
    with pytest.raises(RobustRLError, match="call reset"):
        env.step({})
    env.reset(seed=0)
    bad = np.zeros(3, np.float32) if continuous else 7
    good = env.action_space("agent_0").sample()
    for actions, match in [({"agent_0": good}, "no action for agent"),
                           ({a: bad for a in env.agents}, "agent_0's action")]:
        with pytest.raises(RobustRLError, match=match) as err:
            env.step(actions)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("env_id", MPE_IDS)
def test_spaces_match_spec(env_id: str):
    env = envs.make(env_id)
    first = env.possible_agents[0]
    spec = envs.spec(env_id)
    assert str(env.observation_space(first)) == spec.observation_space
    assert str(env.action_space(first)) == spec.action_space
    assert spec.kind == "multi"
    env.close()


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("env_id", MPE_IDS)
def test_factors_every_step_and_rebuild_the_reward(env_id: str, continuous: bool):
    """Every agent reports every declared factor on every step, and they add up to its reward."""
    scenario = env_id.split("/")[1]
    names = {f.name for f in envs.spec(env_id).factors}
    env = envs.make(env_id, continuous_actions=continuous)
    steps = 0
    for _obs, rewards, factors in _rollout(env, seed=3)[1:]:
        assert set(factors) == set(rewards) == set(env.possible_agents)
        for agent, f in factors.items():
            assert set(f) == names
            assert all(isinstance(v, float) and np.isfinite(v) for v in f.values())
            assert _reward_from_factors(scenario, agent, f) == pytest.approx(
                rewards[agent], abs=1e-9), (agent, f)
        steps += 1
    assert steps == 25
    env.close()


@pytest.mark.parametrize(("env_id", "mover", "target", "agent", "name"), [
    ("mpe/simple_spread", "agent_1", "agent_0", "agent_0", "collisions"),
    ("mpe/simple_tag", "adversary_0", "agent_0", "adversary_0", "catches"),
    ("mpe/simple_tag", "adversary_0", "agent_0", "agent_0", "caught"),
    ("mpe/simple_world_comm", "adversary_0", "agent_0", "agent_0", "caught"),
    ("mpe/collect_treasure", "collector_0", "collector_1", "collector_0", "collisions"),
])
def test_contact_terms(env_id: str, mover: str, target: str, agent: str, name: str):
    """Rare events (contacts) show up in the factors and in the reward alike."""
    env = envs.make(env_id)
    env.reset(seed=0)
    world = env.unwrapped.world
    by_name = {a.name: a for a in world.agents}
    by_name[mover].state.p_pos = by_name[target].state.p_pos + 0.01
    _, rewards, _, _, infos = env.step({a: 0 for a in env.agents})
    f = infos[agent]["reward_factors"]
    assert f[name] >= 1
    assert _reward_from_factors(env_id.split("/")[1], agent, f) == pytest.approx(rewards[agent])


def test_treasure_pickup_is_counted():
    env = envs.make("mpe/collect_treasure")
    env.reset(seed=0)
    world = env.unwrapped.world
    world.agents[0].state.p_pos = world.landmarks[0].state.p_pos + 0.01
    _, rewards, _, _, infos = env.step({a: 0 for a in env.agents})
    f = infos["collector_0"]["reward_factors"]
    assert f["treasures_collected"] >= 1
    assert _reward_from_factors("collect_treasure", "collector_0", f) == pytest.approx(
        rewards["collector_0"])


@pytest.mark.parametrize("continuous", [False, True])
def test_seeding_gives_identical_rollouts(continuous: bool):
    runs = []
    for _ in range(2):
        env = envs.make(FAST_ID, continuous_actions=continuous)
        runs.append(_rollout(env, seed=7))
        env.close()
    (first_obs, *first), (second_obs, *second) = runs
    for agent in first_obs:
        np.testing.assert_array_equal(first_obs[agent], second_obs[agent])
    for (o1, r1, f1), (o2, r2, f2) in zip(first, second, strict=True):
        assert r1 == r2 and f1 == f2
        for agent in o1:
            np.testing.assert_array_equal(o1[agent], o2[agent])


def test_scenario_kwargs_pass_through():
    env = envs.make("mpe/simple_spread", N=4, max_cycles=5, continuous_actions=True,
                    local_ratio=0.25)
    env.reset(seed=0)
    assert len(env.agents) == 4
    assert str(env.action_space("agent_0")) == "Box(0.0, 1.0, (5,), float32)"
    steps = 0
    while env.agents:
        _, rewards, _, truncations, infos = env.step(
            {a: env.action_space(a).sample() for a in env.agents})
        steps += 1
        f = infos["agent_0"]["reward_factors"]
        assert rewards["agent_0"] == pytest.approx(
            _reward_from_factors("simple_spread", "agent_0", f, local_ratio=0.25))
    assert steps == 5 and all(truncations.values())


def test_infos_are_not_reused_between_steps():
    env = envs.make(FAST_ID)
    env.reset(seed=0)
    _, _, _, _, first = env.step({a: 0 for a in env.agents})
    kept = dict(first["agent_0"]["reward_factors"])
    env.step({a: 4 for a in env.agents})
    assert first["agent_0"]["reward_factors"] == kept


@pytest.mark.parametrize("kwargs", [{"bogus": 1}, {"local_ratio": 2.0}])
def test_bad_kwargs_raise_one_line_error(kwargs):
    with pytest.raises(RobustRLError) as err:
        envs.make(FAST_ID, **kwargs)
    assert "\n" not in str(err.value) and "mpe/simple_spread" in str(err.value)


def test_missing_mpe2_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpe2", None)
    monkeypatch.delitem(sys.modules, "robustrl.envs.mpe", raising=False)
    with pytest.raises(RobustRLError, match=r"pip install 'robustrl\[mpe\]'"):
        envs.make(FAST_ID)


def test_identity_of_a_parallel_env_through_wrappers():
    from pettingzoo.utils import BaseParallelWrapper

    env = envs.make(FAST_ID, N=2)
    assert envs.identity(env) == (FAST_ID, {"N": 2})
    assert envs.identity(BaseParallelWrapper(BaseParallelWrapper(env))) == (FAST_ID, {"N": 2})
    from robustrl.perturb import apply

    assert envs.identity(apply(env, "obs-gaussian:0.1")) == (FAST_ID, {"N": 2})
    assert envs.identity(env.unwrapped) is None  # below make's outermost layer: not marked
