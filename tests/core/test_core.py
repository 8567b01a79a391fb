"""core/: GAE, the squashed-Gaussian log-density, the replay buffer (agent axis, extras,
relabelling), the normalizer in numpy and torch, checkpointed state, shared multi-agent spaces."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from robustrl.core.buffer import ReplayBuffer
from robustrl.core.checkpoint import load_state, state_of
from robustrl.core.distributions import squashed_gaussian_log_prob
from robustrl.core.errors import RobustRLError
from robustrl.core.normalizer import RunningMeanStd
from robustrl.core.parallel import shared_spaces, stack_obs
from robustrl.core.returns import gae


def test_gae_matches_loop():
    rng = np.random.default_rng(0)
    r, v, d = rng.normal(size=(5, 2)), rng.normal(size=(6, 2)), rng.random((5, 2)) < 0.3
    adv = gae(r, v, d.astype(float), 0.9, 0.8)
    for j in range(2):
        expected, last = [], 0.0
        for t in reversed(range(5)):
            delta = r[t, j] + 0.9 * v[t + 1, j] * (1 - d[t, j]) - v[t, j]
            last = delta + 0.9 * 0.8 * (1 - d[t, j]) * last
            expected.insert(0, last)
        np.testing.assert_allclose(adv[:, j], expected)


def test_squashed_gaussian_log_prob_matches_torch_and_stays_finite():
    torch.manual_seed(0)
    mean, log_std = torch.randn(64, 3, dtype=torch.float64), torch.randn(64, 3).double() * 0.5
    u = mean + log_std.exp() * torch.randn_like(mean)
    reference = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    per_dim = squashed_gaussian_log_prob(u, mean, log_std, reduce=False)
    torch.testing.assert_close(per_dim, reference.log_prob(torch.tanh(u)))
    torch.testing.assert_close(squashed_gaussian_log_prob(u, mean, log_std), per_dim.sum(-1))
    far = torch.full((1, 2), 30.0)  # tanh(30) rounds to 1: the naive form is -inf
    assert torch.isfinite(squashed_gaussian_log_prob(far, far, torch.zeros(1, 2))).all()


def test_buffer_agent_axis_extras_relabel_and_state():
    buf = ReplayBuffer(4, (2, 3), (2,), np.int64, reward_shape=(2,), extras={"mean": (2, 5)})
    for t in range(6):  # wraps around
        buf.add(np.full((1, 2, 3), t), np.full((1, 2), t), np.full((1, 2), -t),
                np.full((1, 2, 3), t + 1), np.zeros((1, 2)), mean=np.full((1, 2, 5), t / 10))
    assert len(buf) == 4 and buf.rewards.shape == (4, 2)
    batch = buf.sample(8, np.random.default_rng(0))
    assert batch["mean"].shape == (8, 2, 5) and batch["rewards"].shape == (8, 2)
    np.testing.assert_allclose(batch["mean"][:, 0, 0].numpy(), batch["obs"][:, 0, 0] / 10,
                               rtol=1e-6)
    buf.relabel(lambda o, a, n: o.sum(-1) + a)  # keeps the agent axis
    np.testing.assert_array_equal(buf.rewards, buf.obs.sum(-1) + buf.actions)
    copy = ReplayBuffer(4, (2, 3), (2,), np.int64, reward_shape=(2,), extras={"mean": (2, 5)})
    copy.load_state_dict(buf.state_dict())
    for key in ("obs", "actions", "rewards", "next_obs", "terminated"):
        np.testing.assert_array_equal(getattr(copy, key), getattr(buf, key))
    np.testing.assert_array_equal(copy.extras["mean"], buf.extras["mean"])
    empty = ReplayBuffer(4, (3,), (1,))
    empty.relabel(lambda *a: pytest.fail("called on an empty buffer"))


def test_running_mean_std_normalizes_numpy_and_torch_alike():
    rms = RunningMeanStd((3,), clip=2.0)
    rms.update(np.random.default_rng(0).normal(5.0, 3.0, size=(100, 3)))
    x = np.random.default_rng(1).normal(5.0, 6.0, size=(10, 3)).astype(np.float32)
    t = torch.from_numpy(x).requires_grad_()
    out = rms.normalize(t)
    np.testing.assert_allclose(out.detach().numpy(), rms.normalize(x), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert t.grad is not None and out.abs().max() <= 2.0


def test_state_of_and_load_state():
    class Owner:
        def __init__(self, seed: int):
            torch.manual_seed(seed)
            self.net = torch.nn.Linear(2, 2)
            self.log_alpha = torch.tensor(float(seed), requires_grad=True)
            self.stats = type("S", (), {"episodes": seed})()
            self.updates = seed

    a, b = Owner(1), Owner(2)
    state = state_of(a, ("net", "log_alpha", "stats.episodes", "updates"))
    assert set(state) == {"net", "log_alpha", "episodes", "updates"}
    load_state(b, state, ("net", "log_alpha", "stats.episodes", "updates"), optional=("buffer",))
    torch.testing.assert_close(b.net.weight, a.net.weight)
    assert b.log_alpha.item() == 1.0 and b.log_alpha.requires_grad
    assert (b.stats.episodes, b.updates) == (1, 1)


class Stub:
    possible_agents = ["a", "b"]

    def __init__(self, obs, act):
        self.obs, self.act = obs, act

    def observation_space(self, agent):
        return self.obs[agent]

    def action_space(self, agent):
        return self.act[agent]


def test_shared_spaces_pad_1d_boxes_and_refuse_the_rest():
    box = gym.spaces.Box(-1, 1, (3,))
    env = Stub({"a": gym.spaces.Box(-2, 2, (2,)), "b": box}, {"a": box, "b": box})
    obs_space, act_space = shared_spaces(env, "mappo")
    assert obs_space.shape == (3,) and act_space == box
    np.testing.assert_array_equal(obs_space.low, [-2, -2, -1])  # the union of the bounds
    np.testing.assert_array_equal(stack_obs({"a": [1, 2]}, ["a", "b"], 3), [[1, 2, 0], [0, 0, 0]])
    with pytest.raises(RobustRLError, match="needs the same action space for every agent"):
        shared_spaces(Stub({"a": box, "b": box}, {"a": box, "b": gym.spaces.Discrete(2)}), "x")
