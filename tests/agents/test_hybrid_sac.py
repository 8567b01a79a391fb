"""Hybrid SAC: probabilities against brute force, losses against the written formula, every
supported action space end to end, refusal, determinism, save/load/resume."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from robustrl.agents.base import read_checkpoint
from robustrl.agents.hybrid_sac import HybridSAC, HybridSACConfig
from robustrl.core.errors import RobustRLError

PARAMETERIZED = spaces.Tuple((spaces.Discrete(3), spaces.Tuple((
    spaces.Box(0.0, 1.0, (1,)), spaces.Box(0.0, 5.0, (2,)), spaces.Box(-1.0, 1.0, (1,))))))
SPACES = {
    "box": spaces.Box(-2.0, 3.0, (2,)),
    "discrete": spaces.Discrete(3, start=1),
    "multidiscrete": spaces.MultiDiscrete([2, 3]),
    "dict": spaces.Dict({"gear": spaces.Discrete(2), "steer": spaces.Box(-1.0, 1.0, (1,))}),
    "tuple": spaces.Tuple((spaces.MultiDiscrete([2, 2]), spaces.Box(0.0, 1.0, (2,)))),
    "parameterized": PARAMETERIZED,
}
TINY = dict(learning_starts=20, batch_size=8, hidden=(16,), log_interval=10)


class ToyEnv(gym.Env):
    """Random 3-d observations, 6-step episodes; rewards the discrete part's first value
    (contextual: matching sign of obs[0]) and any continuous parameter near the box center."""

    def __init__(self, action_space: gym.Space, horizon: int = 6):
        self.action_space = action_space
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.horizon = horizon

    def _obs(self) -> np.ndarray:
        self.state = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return self.state

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(action), (action, self.action_space)
        leaves = [action] if not isinstance(action, (tuple, dict)) else (
            list(action.values()) if isinstance(action, dict) else list(action))
        if isinstance(self.action_space, spaces.Tuple) and isinstance(leaves[1], tuple):
            leaves = [leaves[0], leaves[1][leaves[0]]]  # parameterized: chosen params only
        reward = 0.0
        for leaf in leaves:
            if isinstance(leaf, (int, np.integer)) or np.asarray(leaf).dtype.kind == "i":
                first = int(np.atleast_1d(leaf)[0])
                reward += float(first == (1 if self.state[0] > 0 else 0))
            else:
                reward -= float(np.mean(np.abs(np.asarray(leaf))))
        self.t += 1
        return self._obs(), reward, False, self.t >= self.horizon, {}


def make(kind: str, seed: int = 0, **cfg) -> HybridSAC:
    space = SPACES[kind]
    return HybridSAC(lambda: ToyEnv(space), HybridSACConfig(**{**TINY, **cfg}), seed=seed)


# ------------------------------------------------------------------ probabilities
def test_joint_discrete_log_probs_match_enumeration():
    agent = make("tuple")  # two discrete components (2 x 2) + 2 continuous dims
    obs = torch.randn(5, 3)
    logits, _, _ = agent.actor(obs)
    logp = agent.actor.joint_log_probs(logits)
    assert logp.shape == (5, 4)
    probs = [torch.softmax(lg, -1) for lg in logits]
    for k in range(4):  # each joint index decodes to the components whose probs multiply
        action = agent.layout.decode(k, np.zeros(2))
        a0, a1 = action[0]
        expected = probs[0][:, a0] * probs[1][:, a1]
        torch.testing.assert_close(logp[:, k].exp(), expected)
        assert agent.layout.encode(action)[0] == k
    brute_entropy = -sum(p * p.log() for p in (probs[0][:, a] * probs[1][:, b]
                                               for a in range(2) for b in range(2)))
    torch.testing.assert_close(-(logp.exp() * logp).sum(-1), brute_entropy)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(5))


def test_sampled_discrete_frequencies_match_probabilities():
    agent = make("multidiscrete")
    obs = torch.zeros(20_000, 3)
    joint, _ = agent.actor.sample(obs)
    freq = torch.bincount(joint, minlength=6).float() / len(joint)
    logits, _, _ = agent.actor(obs[:1])
    torch.testing.assert_close(freq, agent.actor.joint_log_probs(logits)[0].exp(), atol=0.015,
                               rtol=0)


def test_squashed_gaussian_log_prob_matches_torch_distributions():
    agent = make("parameterized")
    obs = torch.randn(6, 3)
    noise = torch.randn(6, 4)
    _, cont, logp_c = agent.actor.evaluate(obs, noise)
    _, mean, log_std = agent.actor(obs)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()])
    per_dim = dist.log_prob(cont.clamp(-1 + 1e-6, 1 - 1e-6))
    # parameterized: choice k's density covers only Box_k's dims (1, 2 and 1 of them)
    expected = torch.stack([per_dim[:, 0], per_dim[:, 1:3].sum(-1), per_dim[:, 3]], -1)
    torch.testing.assert_close(logp_c, expected, atol=2e-3, rtol=1e-3)
    dict_agent = make("dict")  # independent parts: every discrete choice shares the one vector
    _, cont, logp_c = dict_agent.actor.evaluate(obs, noise[:, :1])
    assert torch.equal(logp_c[:, 0], logp_c[:, 1])


def test_squashed_gaussian_entropy_matches_numerical_integral():
    mean, std = 0.3, 0.7
    y = torch.linspace(-1 + 1e-6, 1 - 1e-6, 400_001, dtype=torch.float64)
    u = torch.atanh(y)
    density = torch.exp(-0.5 * ((u - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi)) / (
        1 - y ** 2)
    integrand = torch.where(density > 0, -density * density.log(), torch.zeros_like(density))
    exact = torch.trapezoid(integrand, y).item()

    agent = make("box")
    with torch.no_grad():
        agent.actor.head.weight.zero_()
        agent.actor.head.bias.copy_(torch.tensor([mean, mean, math.log(std), math.log(std)]))
        torch.manual_seed(0)
        _, _, logp_c = agent.actor.evaluate(torch.zeros(200_000, 3))
    # two identical dims: the entropy of the pair is twice the 1-d entropy
    assert -logp_c.mean().item() == pytest.approx(2 * exact, abs=0.01)


# ------------------------------------------------------------------ losses
def _batch(agent: HybridSAC, n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    joint = torch.randint(0, agent.layout.n_joint, (n, 1), generator=g).float()
    cont = torch.rand(n, agent.layout.cont_dim, generator=g) * 2 - 1
    return {"obs": torch.randn(n, 3, generator=g), "next_obs": torch.randn(n, 3, generator=g),
            "actions": torch.cat([joint, cont], 1), "rewards": torch.randn(n, generator=g),
            "terminated": torch.tensor([0.0, 1.0, 0.0, 0.0])}


def _direct(agent: HybridSAC, obs: torch.Tensor, noise: torch.Tensor, critic):
    """Per-choice log pi_d, log pi_c and min_i Q written out with explicit sums over k."""
    logits, mean, log_std = agent.actor(obs)
    logp_d = torch.log_softmax(logits[0], -1)
    u = mean + log_std.exp() * noise
    a = torch.tanh(u)
    per_dim = (torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
               - torch.log(1 - a ** 2))
    dims = [[0], [1, 2], [3]]  # Box_k's dims in the flattened parameter vector
    logp_c = torch.stack([per_dim[:, d].sum(-1) for d in dims], -1)
    qs = [critic(torch.cat([obs, a], -1))[i] for i in range(agent.config.n_critics)]
    return logp_d, logp_c, torch.minimum(qs[0], qs[1])


def test_critic_and_actor_losses_match_the_formula():
    agent = make("parameterized", alpha_init=0.3)
    with torch.no_grad():
        agent.log_alpha_c.fill_(math.log(0.7))
    batch = _batch(agent)
    gamma = agent.config.gamma
    alpha_d, alpha_c = 0.3, 0.7

    torch.manual_seed(11)
    loss = agent.critic_loss(batch)
    torch.manual_seed(11)
    noise = torch.randn(4, 4)
    with torch.no_grad():
        logp_d, logp_c, q_next = _direct(agent, batch["next_obs"], noise, agent.critic_target)
        pi = logp_d.exp()
        v = sum(pi[:, k] * (q_next[:, k] - alpha_c * logp_c[:, k] - alpha_d * logp_d[:, k])
                for k in range(3))
        y = batch["rewards"] + gamma * (1 - batch["terminated"]) * v
        q = agent.critic(torch.cat([batch["obs"], batch["actions"][:, 1:]], -1))
        chosen = batch["actions"][:, 0].long()
        expected = sum(0.5 * ((q[i, torch.arange(4), chosen] - y) ** 2).mean() for i in range(2))
    torch.testing.assert_close(loss, expected)

    torch.manual_seed(12)
    actor_loss, entropy_d, entropy_c, target_c = agent.actor_loss(batch["obs"])
    torch.manual_seed(12)
    noise = torch.randn(4, 4)
    with torch.no_grad():
        logp_d, logp_c, q_pi = _direct(agent, batch["obs"], noise, agent.critic)
        pi = logp_d.exp()
        expected = sum(pi[:, k] * (alpha_d * logp_d[:, k] + alpha_c * logp_c[:, k] - q_pi[:, k])
                       for k in range(3)).mean()
    torch.testing.assert_close(actor_loss, expected)
    torch.testing.assert_close(entropy_d, -(pi * logp_d).sum(-1))
    # pi_d weighs the continuous entropy exactly once; targets are -dim(Box_k)
    torch.testing.assert_close(entropy_c, -(pi * logp_c).sum(-1))
    torch.testing.assert_close(target_c, (pi * torch.tensor([-1.0, -2.0, -1.0])).sum(-1))


def test_temperatures_move_toward_their_targets():
    agent = make("parameterized", alpha_lr=0.05)
    agent.target_entropy_d = 10.0  # far above any entropy over 3 choices: alpha_d must rise
    agent.target_entropy_c = torch.full((3,), -50.0)  # far below: alpha_c must fall
    batch = _batch(agent, 4)
    for _ in range(5):
        agent.update(batch)
    alpha_d, alpha_c = agent.alphas()
    assert alpha_d > 1.0 > alpha_c


def test_default_targets_and_policy_output():
    agent = make("parameterized")
    assert agent.target_entropy_d == pytest.approx(0.6 * math.log(3))
    assert agent.target_entropy_c.tolist() == [-1.0, -2.0, -1.0]
    obs = torch.randn(2, 3, requires_grad=True)
    out = agent.policy_output(obs)
    assert out.shape == (2, 3 + 4)
    out.sum().backward()
    assert obs.grad is not None and obs.grad.abs().sum() > 0


# ------------------------------------------------------------------ every space end to end
@pytest.mark.parametrize("kind", list(SPACES))
def test_each_space_learns_acts_saves_loads(kind, tmp_path):
    agent = make(kind)
    seen = []
    agent.learn(40, lambda a, m: seen.append(m))
    assert agent.num_steps == 40 and "critic_loss" in seen[-1]
    space = SPACES[kind]
    obs = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)
    for deterministic in (True, False):
        assert space.contains(agent.act(obs[0], deterministic))
        batch = agent.act(obs, deterministic)
        assert len(batch) == 4 and all(space.contains(a) for a in batch)
    path = tmp_path / "agent.pt"
    agent.save(path, include_buffer=True)
    clone = make(kind, seed=1)
    clone.restore(read_checkpoint(path))
    x = torch.as_tensor(obs)
    torch.testing.assert_close(clone.policy_output(x), agent.policy_output(x))
    assert clone.num_steps == 40 and len(clone.buffer) == len(agent.buffer)
    assert clone.log_alpha_d.item() == agent.log_alpha_d.item()
    clone.learn(50)  # resumes from step 40 to the same total
    assert clone.num_steps == 50


def test_platform_env_runs_with_toml_defaults():
    from robustrl.agents import hyperparameters
    from robustrl.core.config import from_dict

    cfg = from_dict(HybridSACConfig, hyperparameters("hybrid_sac", "hybrid/platform"),
                    prefix="agent.")
    assert cfg.hidden == (128,) and cfg.gamma == 0.9 and cfg.log_std_max == 0.0
    agent = HybridSAC("hybrid/platform", HybridSACConfig(**{**vars(cfg), **TINY}), seed=0)
    agent.learn(30)
    action = agent.act(np.zeros(9, np.float32))
    assert agent.action_space.contains(action)


# ------------------------------------------------------------------ refusal, determinism
@pytest.mark.parametrize("space", [
    spaces.MultiBinary(3),
    spaces.Tuple((spaces.Discrete(2), spaces.Text(5))),
    spaces.Tuple((spaces.Discrete(2), spaces.Tuple((spaces.Box(0, 1, (1,)),)))),  # K != #boxes
])
def test_refuses_unsupported_spaces_with_one_line(space):
    with pytest.raises(RobustRLError) as err:
        HybridSAC(lambda: ToyEnv(space), HybridSACConfig(**TINY))
    message = str(err.value)
    assert "\n" not in message and "hybrid_sac cannot handle" in message
    assert "parameterized Tuple(Discrete(K), Tuple(Box_1, ..., Box_K))" in message


def test_refuses_too_many_joint_actions():
    space = spaces.MultiDiscrete([10, 10, 10, 10])
    with pytest.raises(RobustRLError, match="max_joint_actions"):
        HybridSAC(lambda: ToyEnv(space), HybridSACConfig(**TINY))


@pytest.mark.parametrize("kind", ["parameterized", "multidiscrete"])
def test_same_seed_same_actions_and_losses(kind):
    runs = []
    for _ in range(2):
        agent = make(kind, seed=7)
        metrics: list[dict[str, float]] = []
        agent.learn(40, lambda a, m, out=metrics: out.append(m))
        obs = np.linspace(-1, 1, 3, dtype=np.float32)
        runs.append((str(agent.act(obs, deterministic=False)), metrics[-1]["critic_loss"],
                     metrics[-1]["actor_loss"], agent.buffer.actions[:40].copy()))
    assert runs[0][:3] == runs[1][:3]
    np.testing.assert_array_equal(runs[0][3], runs[1][3])


# ------------------------------------------------------------------ learning (slow)
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parameterized", "dict", "multidiscrete"])
def test_learns_toy_task(kind):
    """One-step contextual task: pick the discrete value matching obs[0]'s sign and keep
    continuous parameters near 0 (the optimum, 1.0, needs them at a bound, which a tanh policy
    only approaches). Random play scores at most 0.5 minus the parameters' cost."""
    space = SPACES[kind]
    agent = HybridSAC(lambda: ToyEnv(space, horizon=1),
                      HybridSACConfig(learning_starts=200, batch_size=64, hidden=(64,),
                                      gamma=0.0, lr=1e-3),
                      seed=0)
    agent.learn(2500)
    env = ToyEnv(space, horizon=1)
    total = 0.0
    for ep in range(100):
        obs, _ = env.reset(seed=1000 + ep)
        total += env.step(agent.act(obs))[1]
    assert total / 100 > 0.7
