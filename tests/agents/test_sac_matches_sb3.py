"""robustrl's SAC update is Stable-Baselines3's: from the same weights, on the same replayed
batch and the same Gaussian noise, both give the same actor, critics and temperature after
several gradient steps. The learning-parity run (experiments/perf/learning_parity.py sac)
compares whole trainings, where the two libraries' random streams differ; this test pins
the update itself."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.agents import make_agent

sb3 = pytest.importorskip("stable_baselines3")


def _copy_weights(agent, model) -> None:
    """SB3's weights into robustrl's networks (twin critics stacked as one ensemble)."""
    actor = model.actor
    with torch.no_grad():
        agent.actor.torso[0].weight.copy_(actor.latent_pi[0].weight)
        agent.actor.torso[0].bias.copy_(actor.latent_pi[0].bias)
        agent.actor.torso[2].weight.copy_(actor.latent_pi[2].weight)
        agent.actor.torso[2].bias.copy_(actor.latent_pi[2].bias)
        agent.actor.head.weight.copy_(torch.cat([actor.mu.weight, actor.log_std.weight]))
        agent.actor.head.bias.copy_(torch.cat([actor.mu.bias, actor.log_std.bias]))
        for ours, theirs in ((agent.critic, model.critic), (agent.critic_target,
                                                              model.critic_target)):
            for k, layer in enumerate(ours.layers):
                linears = [q[2 * k] for q in theirs.q_networks]
                layer.weight.copy_(torch.stack([lin.weight.T for lin in linears]))
                layer.bias.copy_(torch.stack([lin.bias[None] for lin in linears]))


@pytest.mark.parametrize("env_id", [
    "mujoco/Hopper-v5",  # action bounds [-1, 1]: SB3's scaled actions are env actions
    "gym/Pendulum-v1",  # bounds [-2, 2]: SB3 stores and criticizes actions rescaled to [-1, 1]
])
def test_sac_update_equals_sb3_given_same_weights_batch_and_noise(env_id, monkeypatch):
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    torch.manual_seed(0)
    env = gym.make(env_id.split("/")[1])
    model = sb3.SAC("MlpPolicy", env, learning_rate=3e-4, batch_size=32, tau=0.005,
                    gamma=0.99, ent_coef="auto", policy_kwargs={"net_arch": [64, 64]},
                    device="cpu", seed=0)
    model.set_logger(configure(None, []))
    agent = make_agent("sac", env_id, seed=0, hidden=(64, 64), batch_size=32,
                       lr=3e-4, tau=0.005, gamma=0.99)
    _copy_weights(agent, model)

    rng = np.random.default_rng(0)
    obs_dim, act_dim, b = env.observation_space.shape[0], env.action_space.shape[0], 32
    half_range = torch.as_tensor(env.action_space.high, dtype=torch.float32)  # symmetric bounds
    for _ in range(3):
        batch = {"obs": rng.normal(size=(b, obs_dim)), "next_obs": rng.normal(size=(b, obs_dim)),
                 "actions": rng.uniform(-1, 1, (b, act_dim)), "rewards": rng.normal(size=b),
                 "terminated": (rng.random(b) < 0.2).astype(float)}
        batch = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in batch.items()}
        noise_obs, noise_next = (torch.as_tensor(rng.normal(size=(b, act_dim)), dtype=torch.float32)
                                 for _ in range(2))

        # SB3 draws the noise of the batch's observations first, then of the next ones
        draws = iter([noise_obs, noise_next])
        monkeypatch.setattr(torch.distributions.Normal, "rsample",
                            lambda self, shape=(), d=draws: self.loc + self.scale * next(d))
        samples = ReplayBufferSamples(batch["obs"], batch["actions"], batch["next_obs"],
                                      batch["terminated"][:, None], batch["rewards"][:, None])
        monkeypatch.setattr(model.replay_buffer, "sample", lambda *a, s=samples, **k: s)
        model.train(gradient_steps=1, batch_size=b)
        monkeypatch.undo()

        draws = iter([noise_next, noise_obs])  # robustrl: the target's first
        monkeypatch.setattr(torch, "randn_like", lambda t, d=draws: next(d))
        agent.update({**batch, "actions": batch["actions"] * half_range})  # env units
        monkeypatch.undo()

    pairs = [(agent.actor.torso[0].weight, model.actor.latent_pi[0].weight),
             (agent.actor.torso[2].weight, model.actor.latent_pi[2].weight),
             (agent.actor.head.weight, torch.cat([model.actor.mu.weight,
                                                  model.actor.log_std.weight]))]
    for k, layer in enumerate(agent.critic.layers):
        for m, q in enumerate(model.critic.q_networks):
            pairs.append((layer.weight[m], q[2 * k].weight.T))
    for k, layer in enumerate(agent.critic_target.layers):
        for m, q in enumerate(model.critic_target.q_networks):
            pairs.append((layer.weight[m], q[2 * k].weight.T))
    for ours, theirs in pairs:
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    assert agent.log_alpha.item() == pytest.approx(model.log_ent_coef.item(), rel=1e-4, abs=1e-7)
    assert agent.log_alpha.item() != 0.0  # the temperature did move
