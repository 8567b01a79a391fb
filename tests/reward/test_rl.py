"""RL from preferences: wrappers, schedule, relabelling, config round trip, and learning."""

from __future__ import annotations

import csv
import tomllib
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from robustrl.agents import agent_class, make_agent
from robustrl.core.errors import RobustRLError
from robustrl.envs import make, register
from robustrl.reward.heron import HeronConfig
from robustrl.reward.preference_loop import (
    PreferenceLoop,
    RewardConfig,
    build_loop,
    check_vectorization,
)
from robustrl.reward.segment_model import FeatureEncoder
from robustrl.reward.wrappers import LearnedRewardEnv, ParallelLearnedRewardEnv
from robustrl.train import build_run, evaluate, load_run_config, train


class Toy(gym.Env):
    """Observation x ∈ [-1, 1]²; the right action is 1 iff x₀ > 0. Factors: ``correct``
    (the env reward) and ``noise`` (uniform, uninformative); 20-step episodes."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 20) -> None:
        self.length = length

    def _draw(self) -> np.ndarray:
        self.x = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.x

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._draw(), {}

    def step(self, action):
        correct = float(int(action) == int(self.x[0] > 0))
        self.t += 1
        info = {"reward_factors": {"correct": correct, "noise": float(self.np_random.random())}}
        return self._draw(), correct, False, self.t >= self.length, info


TOY = "test/toy-factors"
register(TOY, Toy, factors={"correct": "higher", "noise": "higher"},
         ranking=["correct", "noise"])

FAST_PPO = {"n_envs": 4, "n_steps": 64, "n_epochs": 4, "n_minibatches": 2, "lr": 3e-3,
            "hidden": [32]}


def _reward(**kw) -> RewardConfig:
    base = dict(features=("obs", "act"), segment_length=5, queries=60, first_refresh=256,
                refresh_every=512, epochs=20, hidden=(32,))
    return RewardConfig(**{**base, **kw})


def _toy_loop(reward: RewardConfig, heron: HeronConfig | None = None, n_agents: int = 1,
              seed: int = 0) -> PreferenceLoop:
    return build_loop(reward, heron, env_id=TOY, observation_space=Toy.observation_space,
                      action_space=Toy.action_space, n_agents=n_agents, seed=seed)


def _first_then(first, make_next):
    """The factory a run hands an agent: the env it already made first, then fresh ones."""
    pending = [first]
    return lambda: pending.pop() if pending else make_next()


def test_feature_encoder_one_hots_discrete_actions() -> None:
    box = gym.spaces.Box(-1, 1, (2,))
    enc = FeatureEncoder(box, gym.spaces.Discrete(3), ("obs", "act", "next_obs"))
    x = enc(np.ones((2, 2)), np.array([0, 2]), np.zeros((2, 2)))
    assert enc.dim == 7 and x.shape == (2, 7)
    assert x[:, 2:5].tolist() == [[1, 0, 0], [0, 0, 1]]
    enc = FeatureEncoder(box, gym.spaces.MultiDiscrete([2, 3]), ("act",))
    assert enc(np.ones((1, 2)), np.array([[1, 2]]), None).tolist() == [[0, 1, 0, 0, 1]]
    enc = FeatureEncoder(box, gym.spaces.Box(-1, 1, (3,)), ("obs", "act"))
    assert enc(np.zeros((1, 2)), np.array([[0.5, 0.1, 0.2]]), None)[0, 2:].tolist() == \
        pytest.approx([0.5, 0.1, 0.2])
    with pytest.raises(RobustRLError, match="actions"):
        FeatureEncoder(box, gym.spaces.Tuple([box]), ("act",))


def test_config_validation() -> None:
    with pytest.raises(RobustRLError, match="method"):
        RewardConfig(method="magic")  # type: ignore[arg-type]
    with pytest.raises(RobustRLError, match="features"):
        RewardConfig(features=("obs", "reward"))
    with pytest.raises(RobustRLError, match="ensemble"):
        RewardConfig(active=True)


def test_wrapper_reward_before_and_after_refresh() -> None:
    loop = _toy_loop(_reward(method="learned", segment_length=4))
    env = loop.wrap(make(TOY))
    assert isinstance(env, LearnedRewardEnv) and loop.wrap(env) is env
    obs, _ = env.reset(seed=0)
    for _ in range(42):
        _, r, _, truncated, info = env.step(1)
        assert r == 0.0  # no model yet
        assert info["env_reward"] in (0.0, 1.0)
        if truncated:
            env.reset()
    assert len(loop.buffer) == 10  # 2 episodes of 5 segments; the 2 steps after are partial
    assert loop.refresh()["rm/pairs"] > 0 and loop.model.trained
    x = env.unwrapped.x.copy()
    _, r, _, _, _ = env.step(0)
    expected = loop.model.predict(loop.encoder(x[None], np.array([0]), None))[0]
    assert r == pytest.approx(float(expected))
    # the model's input normalization is fitted to the segment buffer and saved with it
    state = loop.model.state_dict()
    loop.model.fit_inputs(np.zeros((3, loop.encoder.dim), np.float32))
    loop.model.load_state_dict(state)
    assert loop.model.predict(loop.encoder(x[None], np.array([0]), None))[0] == \
        pytest.approx(float(expected))


def test_weighted_method_is_the_ranked_weighted_sum() -> None:
    loop = _toy_loop(_reward(method="weighted", beta=0.5))
    env = loop.wrap(make(TOY))
    env.reset(seed=0)
    for _ in range(5):
        _, r, _, _, info = env.step(0)
    f = info["reward_factors"]
    std = loop.factor_rms.std
    assert r == pytest.approx(f["correct"] / std[0] + 0.5 * f["noise"] / std[1], rel=1e-5)


def test_heron_ties_skipped_or_kept() -> None:
    for ties, expected in (("skip", 0), ("soft", 40)):
        loop = _toy_loop(_reward(method="heron", queries=40), HeronConfig(
            ranking=("correct",), sigmas=(100.0,), ties=ties))  # huge margin: all tie
        env = loop.wrap(make(TOY))
        env.reset(seed=0)
        for _ in range(60):
            env.step(0)
        loop.refresh()
        assert len(loop.labels) == expected
        if expected:
            assert set(loop.labels.tolist()) == {0.5}
        assert loop.labeler.stats.ties == 40


def test_unknown_ranking_factor_is_one_line() -> None:
    with pytest.raises(RobustRLError, match="unknown factors"):
        _toy_loop(_reward(method="heron"), HeronConfig(ranking=("speed",)))
    # an env not made from an id has the single factor env_reward
    loop = build_loop(_reward(method="heron"), None, env_id=None,
                      observation_space=Toy.observation_space, action_space=Toy.action_space,
                      n_agents=1)
    assert loop.factor_names == ("env_reward",)


def _trained_loop(n_agents: int, mode: str) -> PreferenceLoop:
    """A loop whose model was refreshed on random segments (features of the right width)."""
    loop = _toy_loop(_reward(method="learned", multiagent=mode, queries=30, epochs=2),
                     n_agents=n_agents)
    rng = np.random.default_rng(0)
    for t in range(200):
        feat = rng.normal(size=loop.buffer.feats.shape[-1]).astype(np.float32)
        loop.step(t % 3, feat, float(feat[0] > 0), np.array([feat[0] > 0, rng.random()]), False)
    assert loop.refresh()["rm/pairs"] > 0
    return loop


@pytest.mark.parametrize("mode", ["agent", "global"])
def test_learned_rewards_for_relabelling(mode: str) -> None:
    rng = np.random.default_rng(1)
    obs, act = rng.uniform(-1, 1, (6, 3, 2)).astype(np.float32), rng.integers(0, 2, (6, 3))
    # with an agent axis: each agent's own reward, or the team reward split evenly
    loop = _trained_loop(3, mode)
    per = np.stack([loop.encoder(obs[:, a], act[:, a], None) for a in range(3)], 1)  # (6, 3, D)
    got = loop.learned_rewards(obs, act, obs)
    if mode == "global":
        expected = np.repeat(loop.model.predict(per.reshape(6, -1))[:, None] / 3, 3, 1)
    else:
        expected = loop.model.predict(per.reshape(18, -1)).reshape(6, 3)
    assert got.shape == (6, 3) and np.allclose(got, expected, atol=1e-6)
    # a single agent: (N, ...) in, (N,) out
    loop = _trained_loop(1, mode)
    got = loop.learned_rewards(obs[:, 0], act[:, 0], obs[:, 0])
    assert np.allclose(got, loop.model.predict(loop.encoder(obs[:, 0], act[:, 0], None)))


def test_refresh_relabels_through_the_buffer_method() -> None:
    class Buffer:
        def __init__(self) -> None:
            self.calls: list = []

        def __len__(self) -> int:
            return 10

        def relabel(self, reward_fn) -> None:
            self.calls.append(reward_fn)

    class Agent:
        num_steps = 0
        buffer = Buffer()
        capabilities = SimpleNamespace(relabel=True)

    loop = _toy_loop(_reward(method="learned", first_refresh=20, refresh_every=20))
    agent = Agent()
    agent.num_steps = 10
    loop.on_callback(agent)
    assert agent.buffer.calls == []  # not due yet
    env = loop.wrap(make(TOY))
    env.reset(seed=0)
    for _ in range(40):
        env.step(1)
    agent.num_steps = 40
    metrics = loop.on_callback(agent)
    assert metrics["rm/refreshes"] == 1 and agent.buffer.calls == [loop.learned_rewards]
    assert vars(agent) == {"num_steps": 40}  # the loop assigned nothing on the agent
    # a learner whose buffer holds its critic's action format (maddpg) keeps its rewards
    Agent.capabilities = SimpleNamespace(relabel=False)
    agent.buffer.calls.clear()
    agent.num_steps = 80
    loop.on_callback(agent)
    assert loop.metrics()["rm/refreshes"] == 2 and agent.buffer.calls == []


def test_async_vector_refused(tmp_path) -> None:
    with pytest.raises(RobustRLError, match="vector=sync"):
        check_vectorization("async")
    check_vectorization("sync")
    overrides = {**FAST_PPO, "vector": "async", "reward.method": "learned",
                 "run.tensorboard": False}
    with pytest.raises(RobustRLError, match="vector=sync"):
        train(build_run("ppo", TOY, 256, overrides=overrides), tmp_path / "run")


@pytest.mark.parametrize("method", ["learned", "heron"])
def test_ppo_learns_from_preferences_only(method: str) -> None:
    heron = HeronConfig(sigmas=(0.0,))
    loop = _toy_loop(_reward(method=method, ensemble=2, active=True), heron, seed=1)
    factory = _first_then(loop.wrap(make(TOY)), lambda: loop.wrap(make(TOY)))
    agent = make_agent("ppo", factory, seed=1, **FAST_PPO)
    agent.learn(6144, lambda a, m: loop.on_callback(a) and None)
    m = loop.metrics()
    assert m["rm/refreshes"] >= 10
    if method == "learned":  # HERON's ties on `correct` go to the pure-noise level: unlearnable
        assert m["rm/query_accuracy"] > 0.8
    else:
        assert m["heron/level1_correct"] > 0.5 and m["heron/level2_noise"] > 0.1
    assert "factor/noise" in m and "env/return" in m
    # true reward: 20 = always right
    result = evaluate(agent, episodes=5, seed=123, env=make(TOY))
    assert result["return_mean"] >= 17.0, result


def test_replay_buffer_relabelled_and_run_resumes(tmp_path) -> None:
    overrides = {"hidden": [32, 32], "learning_starts": 100, "log_interval": 100,
                 "run.checkpoint_every": 200, "run.tensorboard": False,
                 "reward.method": "learned", "reward.labeler": "oracle+flip:0.2",
                 "reward.loss": "r3m", "reward.loss_params": {"lam": 0.4},
                 "reward.first_refresh": 200, "reward.refresh_every": 200,
                 "reward.segment_length": 10, "reward.queries": 20, "reward.epochs": 3}
    cfg = build_run("sac", "gym/Pendulum-v1", 400, overrides=overrides)
    run = tmp_path / "run"
    agent = train(cfg, run)
    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["reward"]["labeler"] == "oracle+flip:0.2"
    assert saved["reward"]["loss_params"] == {"lam": 0.4}
    restored = load_run_config(run)
    assert restored.reward == cfg.reward and restored.heron == cfg.heron
    assert (run / "reward.pt").exists()
    # the replay buffer holds the final model's rewards (PEBBLE relabelling at each refresh)
    loop = build_loop(cfg.reward, cfg.heron, env_id="gym/Pendulum-v1",
                      observation_space=agent.observation_space,
                      action_space=agent.action_space, n_agents=1)
    loop.load(run / "reward.pt")
    b = agent.buffer
    n = len(b)
    feats = loop.encoder(b.obs[:n], b.actions[:n], b.next_obs[:n])
    assert np.allclose(b.rewards[:n], loop.model.predict(feats), atol=1e-5)
    # resume with a larger budget: the reward loop continues from its saved state
    train(build_run("sac", "gym/Pendulum-v1", 600, overrides=overrides), run, resume=True)
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["rm/refreshes"]) for r in rows[-3:]] == [2.0, 2.0, 3.0]
    assert all(r["env/return"] for r in rows[-2:])  # the env reward is logged too


@pytest.mark.parametrize("mode", ["agent", "global"])
def test_pettingzoo_wrapper_and_ippo(mode: str) -> None:
    pytest.importorskip("mpe2")
    probe = make("mpe/simple_spread")
    obs_space, action_space, n_agents = agent_class("ippo").spaces_of(probe)
    loop = build_loop(_reward(method="heron", multiagent=mode, first_refresh=100,
                              refresh_every=100, features=("obs",)), None,
                      env_id="mpe/simple_spread", observation_space=obs_space,
                      action_space=action_space, n_agents=n_agents)
    factory = _first_then(loop.wrap(probe), lambda: loop.wrap(make("mpe/simple_spread")))
    agent = make_agent("ippo", factory, n_envs=1, n_steps=50, n_epochs=1, hidden=[16])
    env = factory()
    assert isinstance(env, ParallelLearnedRewardEnv)
    agent.learn(300, lambda a, m: loop.on_callback(a) and None)
    m = loop.metrics()
    assert m["rm/refreshes"] >= 2 and "factor/coverage_distance" in m
    obs, _ = env.reset(seed=0)
    _, rewards, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
    assert all("env_reward" in infos[a] for a in rewards)
    if mode == "global":
        assert len(set(rewards.values())) == 1  # the team reward, split evenly
        assert loop.model.nets[0].cfg.in_dim == 3 * loop.encoder.dim
    env.close()
    agent.close()


def test_cli_flags_reach_the_config(tmp_path) -> None:
    from robustrl.cli import main

    out = tmp_path / "run"
    code = main(["train", "--agent", "ppo", "--env", TOY, "--steps", "256",
                 "--out", str(out), "--reward", "heron", "--set", "n_envs=1",
                 "--set", "heron.ranking=['noise', 'correct']", "--set", "run.tensorboard=false",
                 "--set", "reward.first_refresh=100", "--set", "reward.segment_length=5"])
    assert code == 0
    saved = tomllib.loads((out / "config.toml").read_text())
    assert saved["reward"]["method"] == "heron"
    assert saved["heron"]["ranking"] == ["noise", "correct"]
    with open(out / "metrics.csv", newline="") as f:
        row = list(csv.DictReader(f))[-1]
    assert float(row["heron/level1_noise"]) > 0.5 and "factor/correct" in row
    assert main(["train", "--resume", str(out), "--reward", "learned"]) == 2
    assert make(TOY) is not None
