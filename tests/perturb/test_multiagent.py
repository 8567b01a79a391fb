"""Perturbation wrappers on PettingZoo parallel envs (mpe2 particle worlds)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test
from pettingzoo.utils import BaseParallelWrapper

from robustrl.core.errors import RobustRLError
from robustrl.perturb import apply

mpe2 = pytest.importorskip("mpe2")
from mpe2 import simple_spread_v3, simple_tag_v3  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def spread(**kwargs):
    return simple_spread_v3.parallel_env(max_cycles=25, **kwargs)


class Recorder(BaseParallelWrapper):
    """Records the joint actions the inner env really receives."""

    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def step(self, actions):
        self.actions.append(dict(actions))
        return self.env.step(actions)


def run(env, steps=5, seed=0, action=0):
    obs, infos = env.reset(seed=seed)
    trace = [(obs, None, infos)]
    for _ in range(steps):
        obs, rew, _, _, infos = env.step(dict.fromkeys(env.agents, action))
        trace.append((obs, rew, infos))
    return trace


ALL_KINDS = ["obs-gaussian:0.1", "obs-uniform:0.1,prob=0.5", "obs-shift:0.05",
             "act-replace:0.05", "act-pra:0.15", "reward-gaussian:0.1,start=10",
             "adversary-agents:1", "dyn-mass:1.5", "dyn-damping:2", "obs-pgd:0.05"]


def test_parallel_api_test_passes_on_wrapped_env():
    policy = torch.nn.Linear(18, 5)
    parallel_api_test(apply(spread(), ALL_KINDS, policy_fn=policy, seed=0), num_cycles=30)
    cont = apply(spread(continuous_actions=True), ["act-gaussian:0.2", "act-pra:0.3,mode=mix"])
    parallel_api_test(cont, num_cycles=30)


def test_every_agent_info_reports_every_perturbation():
    env = apply(spread(), ALL_KINDS, policy_fn=torch.nn.Linear(18, 5))
    for _, _, infos in run(env, steps=3):
        for agent in env.possible_agents:
            assert set(infos[agent]["perturbation"]) == {s.split(":")[0] for s in ALL_KINDS}
    rep = infos["agent_2"]["perturbation"]["adversary-agents"]
    assert rep["agents"] == ["agent_2"] and rep["replaced"] is True
    assert "replaced" not in infos["agent_0"]["perturbation"]["adversary-agents"]


@pytest.mark.parametrize("spec", ["obs-gaussian:0", "obs-uniform:0", "obs-shift:0",
                                  "act-replace:0", "act-pra:0", "reward-gaussian:0",
                                  "adversary-agents:0", "dyn-mass:1", "dyn-damping:1",
                                  "obs-pgd:0"])
def test_identity_strength_is_a_no_op(spec):
    clean = run(spread(), steps=6)
    perturbed = run(apply(spread(), spec, policy_fn=torch.nn.Linear(18, 5)), steps=6)
    for (o1, r1, _), (o2, r2, _) in zip(clean, perturbed, strict=True):
        assert r1 == r2
        for agent in o1:
            np.testing.assert_array_equal(o1[agent], o2[agent])


def test_agents_option_limits_the_perturbation():
    clean = run(spread(), steps=2)
    env = apply(spread(), "obs-shift:0.5,agents=agent_1")
    pert = run(env, steps=2)
    for (o1, _, _), (o2, _, _infos) in zip(clean, pert, strict=True):
        np.testing.assert_array_equal(o1["agent_0"], o2["agent_0"])
        assert not np.allclose(o1["agent_1"], o2["agent_1"])
    with pytest.raises(RobustRLError, match="unknown agent.*agent_9.*agent_0, agent_1, agent_2"):
        apply(spread(), "obs-gaussian:0.1,agents=agent_9")


def test_act_replace_is_per_agent_and_seeded():
    def received(seed):
        rec = Recorder(spread())
        env = apply(rec, "act-replace:0.5")
        run(env, steps=20, seed=seed)  # reset(seed=...) seeds the wrapper too
        return [tuple(a.values()) for a in rec.actions]

    a = received(1)
    assert a == received(1) and a != received(2)
    changed = np.array([[x != 0 for x in step] for step in a])
    assert 0.2 < changed.mean() < 0.6  # p=0.5 of a random action, 1/5 of which is 0 again
    assert changed.any(axis=0).all()


def test_adversary_agents_random_and_given_policy():
    rec = Recorder(spread())
    env = apply(rec, "adversary-agents:2", seed=0)
    run(env, steps=20)
    acts = np.array([[a[k] for k in ("agent_0", "agent_1", "agent_2")] for a in rec.actions])
    assert np.all(acts[:, 0] == 0) and len(set(acts[:, 1])) > 1 and len(set(acts[:, 2])) > 1

    seen = []

    def frozen(obs, agent):
        seen.append((agent, np.shape(obs)))
        return 3

    rec = Recorder(spread())
    env = apply(rec, "adversary-agents:1,policy=frozen,agents=agent_0", adversary=frozen)
    _, _, infos = run(env, steps=3)[-1]
    assert [a["agent_0"] for a in rec.actions] == [3, 3, 3]
    assert [a["agent_1"] for a in rec.actions] == [0, 0, 0]
    assert seen[0] == ("agent_0", (18,))
    assert infos["agent_0"]["perturbation"]["adversary-agents"]["policy"] == "frozen"


@pytest.mark.parametrize(("spec", "pattern"), [
    ("adversary-agents:3", r"leaves no evaluated agent; .* use k <= 2"),
    ("adversary-agents:1,policy=adversary", r"pass adversary="),
    ("adversary-agents:2,agents=agent_0", r"names 1 agent"),
    ("dyn-maxspeed:0.5", r"have no max speed to scale"),
    ("dyn-damping:5", r"damping 1.25; it must stay in \[0, 1\], use a factor <= 4"),
    ("dyn-damping:2,agents=agent_0", r"dyn-damping has no option 'agents'"),
    ("dyn-gravity:2", r"dyn-gravity does not apply to .*needs a MuJoCo env"),
    ("dyn-mass:2,bodies=torso", r"bodies= is for MuJoCo"),
    ("dyn-speed:0.5", r"needs a sumo-rl traffic env"),
    ("act-gaussian:0.1", r"needs Box actions"),
    ("obs-pgd:0.1", r"pass policy_fn="),
])
def test_not_applicable_errors(spec, pattern):
    with pytest.raises(RobustRLError, match=pattern):
        apply(spread(), spec)


def test_particle_dynamics_scaled_and_restored():
    env = apply(spread(), ["dyn-mass:2,agents=agent_0", "dyn-damping:3"])
    world = env.unwrapped.world
    masses = [a.initial_mass for a in world.agents]
    damping = world.damping
    for seed in range(3):
        env.reset(seed=seed)
        assert [a.initial_mass for a in world.agents] == [2 * masses[0], *masses[1:]]
        assert world.damping == pytest.approx(3 * damping)
    env.close()
    assert [a.initial_mass for a in world.agents] == masses and world.damping == damping


def test_particle_mass_and_max_speed_change_motion():
    clean = run(simple_tag_v3.parallel_env(max_cycles=25), steps=8, action=1)
    heavy = run(apply(simple_tag_v3.parallel_env(max_cycles=25), "dyn-mass:4"), steps=8,
                action=1)
    assert not np.allclose(clean[-1][0]["agent_0"], heavy[-1][0]["agent_0"])
    env = apply(simple_tag_v3.parallel_env(max_cycles=25), "dyn-maxspeed:0.1")
    world = env.unwrapped.world
    nominal = [a.max_speed for a in world.agents]
    slow = run(env, steps=8, action=1)
    assert [a.max_speed for a in world.agents] == pytest.approx([0.1 * s for s in nominal])
    speed = np.linalg.norm(slow[-1][0]["agent_0"][:2])  # self velocity
    assert speed <= 0.1 * nominal[-1] + 1e-6


def test_obs_pgd_batches_agents_and_stays_in_ball():
    policy = torch.nn.Sequential(torch.nn.Linear(18, 32), torch.nn.Tanh(), torch.nn.Linear(32, 5))
    clean = run(spread(), steps=3)
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return policy(x)

    attacked = run(apply(spread(), "obs-pgd:0.05,steps=2,norm=l2,restarts=1", policy_fn=fn,
                         seed=0), steps=3)
    assert set(calls) == {3}  # the three agents form one batch
    for (o1, _, _), (o2, _, _) in zip(clean, attacked, strict=True):
        for agent in o1:
            assert 0 < np.linalg.norm(o2[agent] - o1[agent]) <= 0.05 + 1e-5


def test_obs_pgd_attacks_a_multiagent_learner_in_one_batch_per_step():
    """A learner's per-agent policies come with `rows`: obs-pgd makes one policy call per
    ascent pass for all agents (not one per agent), each agent's row its own sample."""
    from robustrl.agents import make_agent

    agent = make_agent("idqn", "mpe/simple_spread", seed=0,
                       env_kwargs={"N": 3, "max_cycles": 25})
    policies, names = agent.attack_policy, list(agent.agents)
    x = torch.randn(4, len(names), agent.obs_sizes[0])
    rows = policies.rows(names)(x.reshape(-1, x.shape[-1])).reshape(4, len(names), -1)
    for i, name in enumerate(names):  # the batched function is the per-agent one, row by row
        torch.testing.assert_close(rows[:, i], policies[name](x[:, i]))

    batches = []
    rows_of = policies.rows
    policies.rows = lambda agents: (lambda x: batches.append(x.shape[0]) or rows_of(agents)(x))
    spec = "obs-pgd:0.2,steps=10,restarts=2,objective=action"
    clean, attacked = run(spread(), steps=4), run(
        apply(spread(), spec, policy_fn=policies, obs_scale=agent.obs_scale, seed=0), steps=4)
    # per observation (reset + 4 steps): the clean target, then K + 1 passes over both starts
    assert batches == [3, *[2 * 3] * 11] * 5
    flips, scale = 0, agent.obs_scale  # one normalizer for all agents
    for (o1, _, _), (o2, _, _) in zip(clean, attacked, strict=True):
        for name in o1:
            assert np.all(np.abs(o2[name] - o1[name]) <= 0.2 * scale + 1e-5)
            q1, q2 = (policies[name](torch.as_tensor(o, dtype=torch.float32)[None])
                      for o in (o1[name], o2[name]))
            flips += int(q1.argmax() != q2.argmax())
    assert flips > 0  # the attack changes greedy actions


# --------------------------------------------------------------------------- trained adversary
def test_adversary_env_reward_is_minus_scored_team_and_others_act_by_the_team_policy():
    """AdversaryEnv plays the given action for the target, the team policy (given every
    agent's observation) for the others; its reward is minus the scored agents' reward."""
    from robustrl.perturb.adversary import AdversaryEnv

    seen = []

    def team(obs):
        seen.append(sorted(obs))
        return {a: 4 if a == "agent_2" else 1 + int(a[-1]) for a in obs}  # agent_2's is dropped

    for scored, names in ((None, ["agent_0", "agent_1"]),
                          (["agent_0", "agent_1", "agent_2"], ["agent_0", "agent_1", "agent_2"])):
        rec = Recorder(spread())
        env, ref = AdversaryEnv(rec, team, "agent_2", scored), spread()
        obs, _ = env.reset(seed=3)
        ref_obs, _ = ref.reset(seed=3)
        np.testing.assert_array_equal(obs, ref_obs["agent_2"])
        assert env.observation_space == ref.observation_space("agent_2")
        assert env.action_space == ref.action_space("agent_2")
        for t in range(25):
            obs, reward, terminated, truncated, info = env.step(t % 5)
            joint = {"agent_0": 1, "agent_1": 2, "agent_2": t % 5}
            ref_obs, ref_rew, *_ = ref.step(joint)
            assert rec.actions[-1] == joint
            assert reward == pytest.approx(-sum(ref_rew[a] for a in names))
            assert info["team_reward"] == pytest.approx(-reward)
            np.testing.assert_array_equal(obs, ref_obs["agent_2"])
            assert not terminated and truncated == (t == 24)
        assert seen[0] == ["agent_0", "agent_1", "agent_2"]
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mpe2's unbounded Box observation spaces
        check_env(AdversaryEnv(spread(), team, "agent_0"), skip_render_check=True)
    with pytest.raises(RobustRLError, match="unknown agent agent_9"):
        AdversaryEnv(spread(), team, "agent_9")
    with pytest.raises(RobustRLError, match="unknown scored agent.* agent_7"):
        AdversaryEnv(spread(), team, "agent_0", ["agent_7"])
