"""PPO's and MAPPO's update is the textbook one: the fast path (one flat parameter buffer,
closed-form log-probabilities, the clipped surrogate as A * clamp(r, lo, hi), one permutation
per epoch) gives the parameters a plain implementation gives (torch.distributions, torch.min,
clip_grad_norm_, one torch Adam per network), and a per-parameter Adam state still loads."""

import copy

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from robustrl.agents import make_agent
from robustrl.core.flat import FlatAdam


def reference_update(net: nn.Module, batch: dict, cfg, critic_key: str) -> None:
    """PPO's update written plainly (the robustrl code before the flat buffer)."""
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, eps=1e-5)
    size = len(batch["obs"])
    mb = size // cfg.n_minibatches
    for _ in range(cfg.n_epochs):
        perm = torch.randperm(size)
        for start in range(0, size - mb + 1, mb):
            idx = perm[start:start + mb]
            out = net.actor(batch["obs"][idx])
            if net.discrete:
                dist = Categorical(logits=out)
                logp, entropy = dist.log_prob(batch["actions"][idx].long()), dist.entropy()
            else:
                dist = Normal(out, net.log_std.exp().expand_as(out))
                logp = dist.log_prob(batch["actions"][idx]).sum(-1)
                entropy = dist.entropy().sum(-1)
            ratio = (logp - batch["logp"][idx]).exp()
            adv = batch["advantages"][idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            policy_loss = -torch.min(ratio * adv,
                                     ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv).mean()
            value = net.critic(batch[critic_key][idx]).squeeze(-1)
            value_loss = 0.5 * ((value - batch["returns"][idx]) ** 2).mean()
            loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy.mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            opt.step()


def fixed_batch(agent, critic_key: str, size: int = 256) -> dict:
    g = torch.Generator().manual_seed(1)
    net = agent.net
    batch = {"obs": torch.randn(size, net.actor[0].in_features, generator=g),
             "logp": -torch.rand(size, generator=g) * 3,
             "advantages": torch.randn(size, generator=g),
             "returns": torch.randn(size, generator=g)}
    if net.discrete:
        batch["actions"] = torch.randint(0, net.actor[-1].out_features, (size,),
                                         generator=g).float()
    else:
        batch["actions"] = torch.randn(size, net.log_std.numel(), generator=g)
    if critic_key == "critic":
        batch["critic"] = torch.randn(size, net.critic[0].in_features, generator=g)
    return batch


@pytest.mark.parametrize("name,env_id,config", [
    ("ppo", "gym/CartPole-v1", {"ent_coef": 0.01}),
    ("ppo", "gym/Pendulum-v1", {"ent_coef": 0.0}),
    ("mappo", "mpe/simple_spread", {}),
])
def test_update_matches_the_plain_implementation(name, env_id, config):
    agent = make_agent(name, env_id, seed=0, hidden=(32, 32), n_epochs=3, n_minibatches=4,
                       lr=1e-3, **config)
    critic_key = "critic" if name == "mappo" else "obs"
    batch = fixed_batch(agent, critic_key)
    reference = copy.deepcopy(agent.net)
    torch.manual_seed(5)
    reference_update(reference, batch, agent.config, critic_key)
    torch.manual_seed(5)
    agent.update(batch)
    for (key, p), q in zip(agent.net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-5, msg=key)


def test_flat_adam_loads_a_per_parameter_adam_state():
    """A checkpoint written before the flat buffer (one Adam state per parameter) resumes into
    the same Adam state, so the next step matches torch's Adam."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    twin = copy.deepcopy(net)
    x = torch.randn(8, 3)
    per_param = torch.optim.Adam(net.parameters(), lr=1e-2, eps=1e-5)
    for _ in range(3):
        per_param.zero_grad()
        net(x).square().sum().backward()
        per_param.step()
    twin.load_state_dict(net.state_dict())
    flat = FlatAdam(twin, lr=1e-2, eps=1e-5)
    flat.load_state_dict(per_param.state_dict())
    per_param.zero_grad()
    net(x).square().sum().backward()
    per_param.step()
    flat.step(twin(x).square().sum())
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q)
    assert float(flat.opt.state[flat.flat]["step"]) == 4


def test_joint_numpy_snapshot_gives_both_networks_outputs():
    """PPO's rollouts run actor and critic as one block network (NumpyMLP.joint)."""
    from robustrl.core.networks import NumpyMLP, mlp

    torch.manual_seed(0)
    actor, critic = mlp(5, (8, 8), 3, nn.Tanh), mlp(5, (8, 8), 1, nn.Tanh)
    x = torch.randn(4, 5)
    both = NumpyMLP.joint(actor, critic)(x.numpy())
    torch.testing.assert_close(torch.from_numpy(both[:, :3]), actor(x).detach())
    torch.testing.assert_close(torch.from_numpy(both[:, 3:]), critic(x).detach())
    with pytest.raises(TypeError, match="same depth"):
        NumpyMLP.joint(actor, mlp(5, (8,), 1, nn.Tanh))
