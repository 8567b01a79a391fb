"""Off-policy learning on several env copies stepped together (Agent._vector_off_policy_learn)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robustrl.agents import make_agent
from robustrl.core.errors import RobustRLError
from robustrl.core.vector import SyncEnvs
from robustrl.train import evaluate


class Countdown(gym.Env):
    """obs = (step in episode, episode length): episodes of 3-5 steps, the last one terminated
    when the length is odd and time-limit truncated when even."""

    observation_space = gym.spaces.Box(0.0, 10.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(3, 6))
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t, self.length], np.float32)

    def step(self, action):
        self.t += 1
        end = self.t == self.length
        return self._obs(), 1.0, end and self.length % 2 == 1, end and self.length % 2 == 0, {}


@pytest.mark.parametrize("env_id", ["Countdown", "Hopper-v5"])
def test_sync_envs_step_like_gymnasium_sync_vector_env(env_id):
    """SyncEnvs (the sync mode's vector) hands back what Gymnasium's SyncVectorEnv with
    same-step autoreset does: observations, rewards, flags and every final observation."""
    make = Countdown if env_id == "Countdown" else lambda: gym.make(env_id)
    ours = SyncEnvs([make() for _ in range(3)])
    theirs = gym.vector.SyncVectorEnv([make] * 3,
                                      autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    a, b = ours.reset(seed=7)[0], theirs.reset(seed=7)[0]
    np.testing.assert_array_equal(a, b)
    rng, ends = np.random.default_rng(0), 0
    for _ in range(400):
        action = rng.uniform(-1, 1, theirs.action_space.shape).astype(np.float32)
        *x, info_x = ours.step(action)
        *y, info_y = theirs.step(action)
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(info_x.get("_final_obs", np.zeros(3, bool)),
                                      info_y.get("_final_obs", np.zeros(3, bool)))
        for i in np.flatnonzero(info_y.get("_final_obs", [])):
            np.testing.assert_array_equal(info_x["final_obs"][i], info_y["final_obs"][i])
            ends += 1
    assert ends >= 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_buffer_transitions_across_autoreset(mode):
    agent = make_agent("sac", Countdown, seed=0, n_envs=3, vector_mode=mode,
                       learning_starts=10_000, hidden=[16])
    agent.learn(61)  # not a multiple of 3: the last vector step stores one transition
    agent.close()
    b, n = agent.buffer, agent.buffer.size
    assert n == 61 and agent.num_steps == 61
    obs, next_obs, term = b.obs[:n], b.next_obs[:n], b.terminated[:n]
    assert np.all(next_obs[:, 0] == obs[:, 0] + 1)  # never a step into the next episode
    assert np.all(next_obs[:, 1] == obs[:, 1])
    ended = next_obs[:, 0] == next_obs[:, 1]
    assert np.array_equal(term == 1, ended & (next_obs[:, 1] % 2 == 1))  # truncation bootstraps
    assert ended.sum() >= 10 and np.any(obs[:, 0] == 0)
    assert len(agent.stats.finished_lengths) > 0 and set(agent.stats.finished_lengths) <= {3, 4, 5}


def test_updates_per_step_and_bad_mode():
    agent = make_agent("sac", "gym/Pendulum-v1", seed=0, n_envs=2, learning_starts=20,
                       batch_size=8, hidden=[16], updates_per_step=0.5)
    calls = []
    update = agent.update
    agent.update = lambda batch: calls.append(1) or update(batch)
    agent.learn(40)
    assert len(calls) == 11  # vector steps reaching 20, 22, ..., 40: one update each (2 x 0.5)
    with pytest.raises(RobustRLError, match="vector_mode"):
        make_agent("sac", "gym/Pendulum-v1", n_envs=2, vector_mode="threads").learn(4)


@pytest.mark.slow
def test_sac_learns_pendulum_on_two_envs():
    agent = make_agent("sac", "gym/Pendulum-v1", seed=0, n_envs=2, learning_starts=1000,
                       hidden=[64, 64], batch_size=128, lr=1e-3)
    agent.learn(6000)
    assert evaluate(agent, 5, seed=1)["return_mean"] > -400  # random: about -1200


def test_hybrid_sac_on_two_envs():
    agent = make_agent("hybrid_sac", "hybrid/platform", seed=0, n_envs=2, learning_starts=30,
                       batch_size=16, hidden=[32], updates_per_step=0.25)
    agent.learn(60)  # random actions, then sampled ones: both batched
    agent.close()
    assert agent.num_steps == 60 and agent.buffer.size == 60
    stored = agent.buffer.actions[:60]
    assert np.all(stored[:, 0] == np.round(stored[:, 0]))  # joint index, then parameters
    assert len(np.unique(stored[:, 1:], axis=0)) > 50


@pytest.mark.parametrize(("name", "continuous", "ratio", "expected"), [
    ("idqn", False, None, 40),      # gradient_steps / train_freq = 1: 4 per vector step
    ("maddpg", True, None, 10),     # train_freq 4: one per vector step of 4 copies
    ("maddpg", True, 0.5, 20),
])
def test_multiagent_updates_per_env_step(name, continuous, ratio, expected):
    agent = make_agent(name, "mpe/simple_spread", seed=0, n_envs=4, learning_starts=40,
                       batch_size=16, hidden=[16], updates_per_step=ratio,
                       env_kwargs={"N": 2, "max_cycles": 10, "continuous_actions": continuous})
    calls = []
    update = agent.update
    agent.update = lambda: calls.append(1) or update()
    agent.learn(76)  # vector steps reaching 40, 44, ..., 76: ten of them
    assert len(calls) == expected
