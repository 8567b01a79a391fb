"""run.device: networks and replayed batches on the chosen torch device; no GPU needed here."""

from __future__ import annotations

import pytest
import torch

from robustrl.agents import agent_class
from robustrl.core.errors import RobustRLError
from robustrl.train.run import build_run, train


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal on a machine without GPU")
def test_cuda_without_gpu_is_one_line():
    with pytest.raises(RobustRLError, match="sees no GPU; use run.device=cpu"):
        agent_class("sac")("gym/Pendulum-v1", device="cuda")


def test_cpu_only_learner_refuses_cuda():
    with pytest.raises(RobustRLError, match="ppo runs on the CPU only|sees no GPU"):
        agent_class("ppo")("gym/CartPole-v1", device="cuda")
    with pytest.raises(RobustRLError, match="unknown torch device"):
        agent_class("sac")("gym/Pendulum-v1", device="gpu0")


def test_explicit_cpu_matches_default():
    def trained(**device):
        agent = agent_class("sac")("gym/Pendulum-v1", seed=1, **device)
        agent.config.learning_starts, agent.config.batch_size = 50, 32
        agent.learn(80)
        return agent

    default, cpu = trained(), trained(device="cpu")
    assert cpu.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in cpu.critic.parameters())
    for a, b in zip(default.actor.parameters(), cpu.actor.parameters(), strict=True):
        assert torch.equal(a, b)


def test_run_device_is_checked_before_anything_is_written(tmp_path):
    with pytest.raises(RobustRLError, match="runs on the CPU only"):
        build_run("ppo", "gym/CartPole-v1", 64, overrides={"run.device": "cuda"})
    if not torch.cuda.is_available():
        cfg = build_run("sac", "gym/Pendulum-v1", 64, overrides={"run.device": "cuda"})
        with pytest.raises(RobustRLError, match="sees no GPU"):
            train(cfg, tmp_path / "r", show_progress=False)
        assert not (tmp_path / "r").exists()
    cfg = build_run("sac", "gym/Pendulum-v1", 40, overrides={"run.device": "cpu",
                                                             "learning_starts": 20})
    assert train(cfg, tmp_path / "cpu", show_progress=False).device == torch.device("cpu")
