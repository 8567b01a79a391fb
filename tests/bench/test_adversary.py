"""The bench's trained adversary (adversary-agents,policy=adversary): PPO best response."""

from __future__ import annotations

import pytest
import torch
from pettingzoo.utils import BaseParallelWrapper

from robustrl.agents import make_agent
from robustrl.bench.adversary import train_adversary
from robustrl.core.errors import RobustRLError
from robustrl.perturb import apply
from robustrl.perturb.adversary import adversary_fn, spec_target

pytest.importorskip("mpe2")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Recorder(BaseParallelWrapper):
    """Records the joint actions the inner env really receives."""

    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def step(self, actions):
        self.actions.append(dict(actions))
        return self.env.step(actions)


def test_train_adversary_is_seeded_and_plays_through_apply():
    learner = make_agent("mappo", "mpe/simple_spread", seed=0, n_envs=1, n_steps=25, hidden=[16])
    small = {"n_envs": 2, "n_steps": 64, "n_epochs": 2}
    a = train_adversary(learner, "agent_1", steps=200, seed=5, **small)
    b = train_adversary(learner, "agent_1", steps=200, seed=5, **small)
    assert a.num_steps == 256  # whole rollouts
    for p, q in zip(a.net.parameters(), b.net.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    rec = Recorder(learner.env_fn())
    fn = adversary_fn(a)
    env = apply(rec, "adversary-agents:1,agents=agent_1,policy=adversary", adversary=fn)
    obs, _ = env.reset(seed=0)
    env.step(learner.act(obs))
    assert rec.actions[-1]["agent_1"] == fn(obs["agent_1"], "agent_1")
    assert isinstance(rec.actions[-1]["agent_1"], int)
    assert spec_target("adversary-agents,policy=adversary", learner.agents) == "agent_2"
    with pytest.raises(RobustRLError, match=r"^[^\n]*trains one adversary, so k must be 1"):
        spec_target("adversary-agents:2,policy=adversary", learner.agents)
    with pytest.raises(RobustRLError, match="single-agent"):
        train_adversary(make_agent("ppo", "gym/CartPole-v1", n_envs=1), "agent_0")
