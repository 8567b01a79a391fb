"""Perturbation wrappers on Gymnasium envs (classic control and MuJoCo)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from robustrl.core.errors import RobustRLError
from robustrl.perturb import applied, apply, parse


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Recorder(gym.Wrapper):
    """Records the actions the inner env really receives."""

    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def step(self, action):
        self.actions.append(np.copy(action))
        return self.env.step(action)


def rollout(env, actions, seed=0):
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, info)]
    for a in actions:
        obs, r, terminated, truncated, info = env.step(a)
        out.append((obs, r, info))
        if terminated or truncated:
            break
    return out


def pendulum_actions(n=20):
    return [np.array([np.sin(i)], np.float32) for i in range(n)]


def cartpole_actions(n=20):
    return [i % 2 for i in range(n)]


def test_info_reports_parameters_and_activity():
    env = apply(gym.make("Pendulum-v1"), ["obs-gaussian:0.1", "reward-gaussian:0.5,start=3"])
    _, info = env.reset(seed=0)
    rep = info["perturbation"]
    assert rep["obs-gaussian"] == {"strength": 0.1, "active": True, "start": 0, "prob": 1.0,
                                   "normalized": False}
    assert rep["reward-gaussian"]["active"] is False
    for _ in range(4):
        *_, info = env.step(np.zeros(1, np.float32))
    assert info["perturbation"]["reward-gaussian"]["active"] is True
    assert [str(s) for s in applied(env)] == ["obs-gaussian:0.1", "reward-gaussian:0.5,start=3"]


@pytest.mark.parametrize("spec", ["obs-gaussian:0", "obs-uniform:0", "obs-shift:0",
                                  "act-gaussian:0", "act-pra:0", "act-pra:0,mode=mix",
                                  "act-replace:0", "reward-gaussian:0", "obs-pgd:0"])
def test_identity_strength_is_a_no_op(spec):
    clean = rollout(gym.make("Pendulum-v1"), pendulum_actions())
    policy = torch.nn.Linear(3, 1)
    perturbed = rollout(apply(gym.make("Pendulum-v1"), spec, policy_fn=policy),
                        pendulum_actions())
    for (o1, r1, _), (o2, r2, _) in zip(clean, perturbed, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


@pytest.mark.parametrize("spec", ["dyn-mass:1", "dyn-friction:1", "dyn-gravity:1",
                                  "dyn-gain:1", "dyn-damping:1"])
def test_identity_dynamics_is_a_no_op(spec):
    acts = [np.full(3, 0.5 * np.sin(i), np.float32) for i in range(15)]
    clean = rollout(gym.make("Hopper-v5"), acts)
    perturbed = rollout(apply(gym.make("Hopper-v5"), spec), acts)
    for (o1, r1, _), (o2, r2, _) in zip(clean, perturbed, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


def test_noise_is_seeded_and_reproducible():
    def obs_seq(seed, wrapper_seed=None):
        env = apply(gym.make("Pendulum-v1"), ["obs-gaussian:0.1", "act-gaussian:0.3"],
                    seed=wrapper_seed)
        return np.stack([o for o, _, _ in rollout(env, pendulum_actions(10), seed=seed)])

    np.testing.assert_array_equal(obs_seq(1), obs_seq(1))
    assert not np.allclose(obs_seq(1), obs_seq(2))
    clean = np.stack([o for o, _, _ in rollout(gym.make("Pendulum-v1"), pendulum_actions(10),
                                               seed=1)])
    assert not np.allclose(obs_seq(1)[:1], clean[:1])
    # later resets without a seed continue the stream, deterministically
    def later_resets():
        env = apply(gym.make("Pendulum-v1"), "obs-uniform:0.2")
        return np.stack([env.reset(seed=5)[0], env.reset()[0], env.reset()[0]])

    np.testing.assert_array_equal(later_resets(), later_resets())

    # apply(seed=...) seeds the perturbation before any reset(seed=...)
    def actions_received(seed):
        rec = Recorder(gym.make("Pendulum-v1"))
        env = apply(rec, "act-gaussian:0.3", seed=seed)
        env.reset()
        for _ in range(5):
            env.step(np.zeros(1, np.float32))
        return np.concatenate(rec.actions)

    np.testing.assert_array_equal(actions_received(7), actions_received(7))
    assert not np.array_equal(actions_received(7), actions_received(8))


def test_stacked_wrappers_draw_independent_noise():
    env = apply(gym.make("Hopper-v5"), ["obs-gaussian:1", "obs-gaussian:1"])
    raw = gym.make("Hopper-v5").reset(seed=0)[0]
    inner = env.env.reset(seed=0)[0] - raw
    total = env.reset(seed=0)[0] - raw
    assert not np.allclose(total - inner, inner)  # not the same draw twice
    assert set(env.reset(seed=0)[1]["perturbation"]) == {"obs-gaussian", "obs-gaussian#2"}


def test_observation_noise_magnitude_bounds_and_scale():
    scale = np.array([1.0, 1.0, 0.1], np.float32)
    env = apply(gym.make("Pendulum-v1"), "obs-uniform:0.05", obs_scale=scale, seed=0)
    raw = gym.make("Pendulum-v1")
    for seed in range(20):
        noisy, info = env.reset(seed=seed)
        clean, _ = raw.reset(seed=seed)
        assert np.all(np.abs(noisy - clean) <= 0.05 * scale + 1e-6)
        assert env.observation_space.contains(noisy)
    assert info["perturbation"]["obs-uniform"]["normalized"] is True
    shifted = apply(gym.make("Pendulum-v1"), "obs-shift:0.5")
    obs, _ = shifted.reset(seed=0)
    clean, _ = raw.reset(seed=0)
    np.testing.assert_allclose(obs, np.clip(clean + 0.5, raw.observation_space.low,
                                            raw.observation_space.high), rtol=1e-6)
    big = apply(gym.make("Pendulum-v1"), "obs-gaussian:100")
    assert all(big.observation_space.contains(big.reset(seed=s)[0]) for s in range(5))
    with pytest.raises(RobustRLError, match="obs_scale has shape"):
        apply(gym.make("Pendulum-v1"), "obs-gaussian:0.1", obs_scale=np.ones(4))


@pytest.mark.parametrize("specs", [
    ["obs-gaussian:0.1", "act-gaussian:0.2", "reward-gaussian:0.1", "act-pra:0.2,mode=mix"],
    ["obs-uniform:0.1", "obs-shift:0.1", "act-replace:0.1", "act-pra:0.5,prob=0.5"],
])
def test_check_env_passes_on_pendulum(specs):
    check_env(apply(gym.make("Pendulum-v1").unwrapped, specs), skip_render_check=True)


def test_check_env_passes_on_discrete_and_mujoco():
    check_env(apply(gym.make("CartPole-v1").unwrapped,
                    ["act-replace:0.3", "act-pra:0.2", "obs-gaussian:0.1"]),
              skip_render_check=True)
    check_env(apply(gym.make("Hopper-v5").unwrapped,
                    ["dyn-mass:1.5", "dyn-friction:0.7,prob=0.5", "act-gaussian:0.1"]),
              skip_render_check=True)


def test_act_replace_and_pra_change_what_the_env_receives():
    rec = Recorder(gym.make("CartPole-v1"))
    env = apply(rec, "act-replace:1")
    env.reset(seed=0)
    infos = [env.step(0)[-1] for _ in range(30)]
    assert set(np.asarray(rec.actions).tolist()) == {0, 1}
    assert all(i["perturbation"]["act-replace"]["replaced"] for i in infos)

    rec = Recorder(gym.make("CartPole-v1"))
    env = apply(rec, "act-pra:1,source=adversary", adversary=lambda obs, agent: 1)
    env.reset(seed=0)
    env.step(0)
    assert rec.actions == [1]

    rec = Recorder(gym.make("Pendulum-v1"))
    env = apply(rec, "act-pra:0.25,mode=mix,source=adversary",
                adversary=lambda obs, agent: np.array([-2.0], np.float32))
    env.reset(seed=0)
    env.step(np.array([2.0], np.float32))
    np.testing.assert_allclose(rec.actions[0], [0.75 * 2.0 - 0.25 * 2.0])

    rec = Recorder(gym.make("Pendulum-v1"))
    env = apply(rec, "act-pra:0.15", seed=0)
    env.reset(seed=0)
    hits = [env.step(np.zeros(1, np.float32))[-1]["perturbation"]["act-pra"]["adversarial"]
            for _ in range(200)]
    assert 0.05 < np.mean(hits) < 0.3
    changed = [not np.all(a == 0) for a in rec.actions]
    assert changed == hits


def test_act_gaussian_noise_is_relative_to_range_and_clipped():
    rec = Recorder(gym.make("Pendulum-v1"))  # actions in [-2, 2]: half range 2
    env = apply(rec, "act-gaussian:0.1", seed=0)
    env.reset(seed=0)
    for _ in range(200):
        env.step(np.zeros(1, np.float32))
    acts = np.concatenate(rec.actions)
    assert 0.15 < acts.std() < 0.25
    assert acts.dtype == np.float32


def test_reward_noise():
    acts = pendulum_actions(100)
    clean = [r for _, r, _ in rollout(gym.make("Pendulum-v1"), acts)[1:]]
    noisy = [r for _, r, _ in rollout(apply(gym.make("Pendulum-v1"), "reward-gaussian:0.5"),
                                      acts)[1:]]
    diff = np.asarray(noisy) - np.asarray(clean)
    assert 0.35 < diff.std() < 0.65


def test_start_schedule_counts_lifetime_steps():
    env = apply(gym.make("Pendulum-v1"), "obs-shift:0.3,start=5")
    raw = gym.make("Pendulum-v1")
    env.reset(seed=0)
    raw.reset(seed=0)
    for t in range(8):
        obs, *_, info = env.step(np.zeros(1, np.float32))
        ref, *_ = raw.step(np.zeros(1, np.float32))
        assert info["perturbation"]["obs-shift"]["active"] is (t >= 5)
        assert np.allclose(obs, ref) is (t < 5)
    _, info = env.reset(seed=1)  # the counter spans episodes
    assert info["perturbation"]["obs-shift"]["active"] is True


def test_probability_schedule_per_episode():
    def draws(seed):
        env = apply(gym.make("Pendulum-v1"), "obs-gaussian:0.1,prob=0.5", seed=seed)
        return [env.reset()[1]["perturbation"]["obs-gaussian"]["active"] for _ in range(40)]

    assert draws(0) == draws(0)
    assert 8 < sum(draws(0)) < 32
    env = apply(gym.make("Pendulum-v1"), "obs-gaussian:0.1,prob=0")
    assert not any(env.reset(seed=s)[1]["perturbation"]["obs-gaussian"]["active"]
                   for s in range(5))


def test_obs_pgd_stays_in_ball_and_hurts_more_than_noise():
    torch.manual_seed(0)
    policy = torch.nn.Sequential(torch.nn.Linear(11, 64), torch.nn.Tanh(),
                                 torch.nn.Linear(64, 3))
    scale = np.linspace(0.5, 2.0, 11)
    eps = 0.1
    attacked = apply(gym.make("Hopper-v5"), f"obs-pgd:{eps},steps=5", policy_fn=policy,
                     obs_scale=scale, seed=0)
    noisy = apply(gym.make("Hopper-v5"), f"obs-uniform:{eps}", obs_scale=scale, seed=0)
    raw = gym.make("Hopper-v5")
    gap_pgd, gap_noise = [], []
    for seed in range(16):
        clean, _ = raw.reset(seed=seed)
        adv, info = attacked.reset(seed=seed)
        rnd, _ = noisy.reset(seed=seed)
        assert np.all(np.abs(adv - clean) <= eps * scale + 1e-6)
        with torch.no_grad():
            def f(o):
                return policy(torch.as_tensor(o, dtype=torch.float32))

            gap_pgd.append(float((f(adv) - f(clean)).pow(2).sum()))
            gap_noise.append(float((f(rnd) - f(clean)).pow(2).sum()))
    assert np.mean(gap_pgd) > 2 * np.mean(gap_noise)
    assert info["perturbation"]["obs-pgd"] == {
        "strength": eps, "active": True, "start": 0, "prob": 1.0, "eps": eps, "steps": 5,
        "restarts": 2, "norm": "linf", "objective": "auto", "normalized": True}


def test_obs_pgd_discrete_uses_kl_and_runs():
    policy = torch.nn.Linear(4, 2)
    env = apply(gym.make("CartPole-v1"), "obs-pgd:0.05,norm=l2", policy_fn=policy)
    env.reset(seed=0)
    obs, *_ = env.step(0)
    assert env.observation_space.contains(obs)
    assert env.perturbation.distances[None] == "kl"


def _model(env):
    return env.unwrapped.model


@pytest.mark.parametrize(("spec", "field"), [
    ("dyn-mass:2", "body_mass"), ("dyn-friction:0.5", "geom_friction"),
    ("dyn-gravity:1.2", "opt.gravity"), ("dyn-gain:0.8", "actuator_gainprm"),
    ("dyn-damping:3", "dof_damping"),
])
def test_mujoco_dynamics_scaled_while_on_and_restored(spec, field):
    env = apply(gym.make("HalfCheetah-v5" if "gain" in spec else "Hopper-v5"),
                f"{spec},prob=0.5", seed=0)
    model = _model(env)

    def get():
        obj = model
        for part in field.split("."):
            obj = getattr(obj, part)
        return np.array(obj, copy=True)

    nominal = get()
    factor = parse(spec).strength
    seen = set()
    for _ in range(12):  # never compounds across episodes, on or off
        _, info = env.reset()
        on = info["perturbation"][parse(spec).kind]["active"]
        seen.add(on)
        np.testing.assert_allclose(get(), nominal * factor if on else nominal)
        env.step(env.action_space.sample())
    assert seen == {True, False}
    env.close()
    np.testing.assert_array_equal(get(), nominal)


def test_mujoco_mass_changes_the_dynamics_and_inertia():
    acts = [np.full(3, 0.8, np.float32)] * 20
    clean = rollout(gym.make("Hopper-v5"), acts)
    env = apply(gym.make("Hopper-v5"), "dyn-mass:2,bodies=torso")
    model = _model(env)
    mass, inertia = model.body_mass.copy(), model.body_inertia.copy()
    heavy = rollout(env, acts)
    torso = model.body("torso").id
    assert model.body_mass[torso] == 2 * mass[torso]
    np.testing.assert_allclose(model.body_inertia[torso], 2 * inertia[torso])
    others = np.arange(model.nbody) != torso
    np.testing.assert_array_equal(model.body_mass[others], mass[others])
    assert not np.allclose(clean[-1][0], heavy[-1][0])
    assert heavy[-1][2]["perturbation"]["dyn-mass"]["bodies"] == ["torso"]


def test_stacked_dynamics_multiply_and_close_restores():
    env = apply(gym.make("Hopper-v5"), ["dyn-mass:1.5", "dyn-mass:2,start=3"])
    model = _model(env)
    nominal = model.body_mass.copy()
    env.reset(seed=0)
    np.testing.assert_allclose(model.body_mass, 1.5 * nominal)
    for _ in range(4):
        env.step(env.action_space.sample())
    np.testing.assert_allclose(model.body_mass, 3 * nominal)
    env.reset(seed=1)
    np.testing.assert_allclose(model.body_mass, 3 * nominal)
    env.close()
    np.testing.assert_array_equal(model.body_mass, nominal)


@pytest.mark.parametrize(("env_id", "spec", "pattern"), [
    ("Pendulum-v1", "dyn-mass:1.5", r"dyn-mass does not apply to Pendulum-v1: it needs a MuJoCo"),
    ("Hopper-v5", "dyn-maxspeed:0.5", r"needs a particle world"),
    ("Hopper-v5", "dyn-inflow:1.5", r"needs a sumo-rl traffic env"),
    ("Hopper-v5", "dyn-mass:1.5,bodies=tors", r"unknown body tors; .*torso"),
    ("Hopper-v5", "dyn-mass:1.5,agents=agent_0", r"agents= only applies to multi-agent"),
    ("Hopper-v5", "adversary-agents:1", r"needs a multi-agent .* Hopper-v5 is single-agent"),
    ("Hopper-v5", "obs-pgd:0.1", r"pass policy_fn="),
    ("CartPole-v1", "act-gaussian:0.1", r"needs Box actions; .*use act-replace or act-pra"),
    ("CartPole-v1", "act-pra:0.1,mode=mix", r"mode=mix needs Box actions"),
    ("CartPole-v1", "act-pra:0.1,source=adversary", r"pass adversary="),
    ("CartPole-v1", "obs-gaussian:0.1,agents=a", r"agents= only applies to multi-agent"),
])
def test_not_applicable_is_one_clear_error(env_id, spec, pattern):
    with pytest.raises(RobustRLError, match=pattern) as err:
        apply(gym.make(env_id), spec)
    assert "\n" not in str(err.value)


def test_non_box_observations_and_non_envs_are_rejected():
    with pytest.raises(RobustRLError, match="needs Box observations"):
        apply(gym.make("FrozenLake-v1"), "obs-gaussian:0.1")
    with pytest.raises(RobustRLError, match="cannot wrap int"):
        apply(3, "obs-gaussian:0.1")
    with pytest.raises(RobustRLError, match="unknown perturbation"):
        apply(gym.make("Pendulum-v1"), ["obs-gaussian:0.1", "obs-typo:1"])


class Composite(gym.Env):
    """A tiny env with a Tuple(Discrete, MultiDiscrete, Box) action space."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.MultiDiscrete([2, 4]),
                                     gym.spaces.Box(-1.0, 1.0, (2,), np.float32)))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.received = []
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.received.append(action)
        return np.zeros(2, np.float32), 0.0, False, False, {}


@pytest.mark.parametrize("spec", ["act-replace:1", "act-pra:1"])
def test_random_actions_sample_composite_spaces_reproducibly(spec):
    def received(seed):
        env = apply(Composite(), spec)
        env.reset(seed=seed)
        nominal = (0, np.zeros(2, np.int64), np.zeros(2, np.float32))
        for _ in range(10):
            env.step(nominal)
        return env.unwrapped.received

    a, b = received(0), received(0)
    assert all(Composite.action_space.contains(x) for x in a)
    assert repr(a) == repr(b) and repr(a) != repr(received(1))
    with pytest.raises(RobustRLError, match="needs Box actions"):
        apply(Composite(), "act-gaussian:0.1")


def test_mass_change_updates_derived_constants_exactly():
    env = apply(gym.make("Hopper-v5"), "dyn-mass:2,bodies=torso+thigh")
    model = _model(env)
    subtree, invweight = model.body_subtreemass.copy(), model.dof_invweight0.copy()
    env.reset(seed=0)
    assert model.body_subtreemass[0] > subtree[0]
    assert not np.allclose(model.dof_invweight0, invweight)
    env.close()
    np.testing.assert_array_equal(model.body_subtreemass, subtree)
    np.testing.assert_array_equal(model.dof_invweight0, invweight)
