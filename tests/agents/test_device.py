"""run.device: networks and replayed batches on the chosen torch device; no GPU needed here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustrl.agents import agent_class, resolve_config
from robustrl.core.errors import RobustRLError
from robustrl.train.offline import offline_worker_class
from robustrl.train.run import build_run, train


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal on a machine without GPU")
def test_cuda_without_gpu_is_one_line():
    with pytest.raises(RobustRLError, match="sees no GPU; use run.device=cpu"):
        agent_class("sac")("gym/Pendulum-v1", device="cuda")


def test_unknown_device_is_one_line():
    with pytest.raises(RobustRLError, match="unknown torch device 'gpu0'; use cpu or cuda"):
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
    cfg = build_run("idqn", "mpe/simple_spread", 64, overrides={"run.device": "gpu0"})
    with pytest.raises(RobustRLError, match="unknown torch device"):
        train(cfg, tmp_path / "r", show_progress=False)
    assert not (tmp_path / "r").exists()
    if not torch.cuda.is_available():
        cfg = build_run("sac", "gym/Pendulum-v1", 64, overrides={"run.device": "cuda"})
        with pytest.raises(RobustRLError, match="sees no GPU"):
            train(cfg, tmp_path / "r", show_progress=False)
        assert not (tmp_path / "r").exists()
    cfg = build_run("sac", "gym/Pendulum-v1", 40, overrides={"run.device": "cpu",
                                                             "learning_starts": 20})
    assert train(cfg, tmp_path / "cpu", show_progress=False).device == torch.device("cpu")


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch's meta device standing in for a GPU: like CUDA, its elementwise ops refuse an
    operand left on the CPU (0-dim scalars aside), so a missed `.to(device)` fails here as it
    would there (its matmul and index_select do accept one: those are not checked). Meta
    tensors have shapes but no data; fused Adam is let through (its kernels have meta shapes)."""
    from torch.optim import optimizer

    supported = getattr(optimizer, "_get_fused_kernels_supported_devices", None)
    if supported is None:
        pytest.skip("this torch has no list of fused-kernel devices to extend")
    monkeypatch.setattr(optimizer, "_get_fused_kernels_supported_devices",
                        lambda: [*supported(), "meta"])
    return "meta"


ERNIE = {"robust.method": "ernie", "robust.target": "both"}


@pytest.mark.parametrize(("name", "env_id", "settings"), [
    ("sac", "gym/Pendulum-v1", {}),
    ("sac", "gym/Pendulum-v1", {**ERNIE, "robust.stackelberg": True}),
    ("hybrid_sac", "hybrid/platform", {}),  # discrete choice + its parameters
    ("hybrid_sac", "gym/CartPole-v1", {}),  # discrete only
    ("hybrid_sac", "gym/Pendulum-v1", {}),  # continuous only
])
def test_gpu_learners_keep_every_tensor_on_the_device(name, env_id, settings, fake_gpu):
    cls = agent_class(name)
    config = resolve_config(name, env_id, {"learning_starts": 64, "batch_size": 32, **settings})
    agent = cls(env_id, config, seed=0, device=fake_gpu)
    agent.learn(64)  # uniform-random steps fill the replay; no network runs yet
    metrics = agent.update(agent.buffer.sample(32, agent.rng, agent.device))
    assert all(v.device.type == "meta" for v in metrics.values())
    for attr in agent.STATE:
        value = getattr(agent, attr, None)
        tensors = ([*value.parameters(), *value.buffers()] if isinstance(value, torch.nn.Module)
                   else [value] if isinstance(value, torch.Tensor) else [])
        assert all(t.device.type == "meta" for t in tensors), attr
    obs = agent.buffer.sample(8, agent.rng)["obs"].numpy()
    # acting runs on the device up to the copy back to the host, which meta cannot make
    for deterministic in (True, False):
        with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
            agent.act(obs, deterministic)


@pytest.mark.parametrize("name", ["awac", "cql", "iql", "td3bc"])
def test_offline_workers_update_and_act_on_the_device(name, fake_gpu):
    from robustrl.agents.offline import TransitionSampler

    cls = offline_worker_class(name)
    worker = cls(6, 2, cls.Config(hidden=(32, 32)), device=fake_gpu)
    rng = np.random.default_rng(0)
    sampler = TransitionSampler(rng.normal(size=(64, 6)), rng.uniform(-1, 1, (64, 2)),
                                rng.normal(size=64), rng.normal(size=(64, 6)), np.zeros(64),
                                device=fake_gpu)
    for _ in range(2):  # td3bc's actor steps every second update
        metrics = worker.update(sampler.sample(16))
        assert all(v.device.type == "meta" for v in metrics.values()), metrics
    assert all(p.device.type == "meta" for n in worker.modules
               for p in getattr(worker, n).parameters())
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        worker.act(np.zeros((4, 6), np.float32))


@pytest.mark.parametrize("env_id", ["gym/CartPole-v1", "gym/Pendulum-v1"])
def test_ppo_updates_and_acts_on_the_device(env_id, fake_gpu, monkeypatch):
    from robustrl.agents import ppo

    config = resolve_config("ppo", env_id, {"n_envs": 2, "n_steps": 32, "n_minibatches": 2,
                                            "n_epochs": 2})
    agent = agent_class("ppo")(env_id, config, seed=0, device=fake_gpu)
    assert all(p.device.type == "meta" for p in agent.net.parameters())
    on_cpu = agent_class("ppo")(env_id, config, seed=0)
    on_cpu.learn(64)
    batch = {k: v.to(fake_gpu) for k, v in on_cpu._collect().items()}  # a rollout's tensors
    # the update's last step reads its metrics back to the host, which meta cannot do
    monkeypatch.setattr(ppo, "update_metrics", lambda *args: {})
    agent.update(batch)
    assert all(p.device.type == "meta" for p in agent.net.parameters())
    assert agent.opt.flat.device.type == "meta"
    assert agent.policy_output(batch["obs"][:4]).device.type == "meta"  # attacks, ERNIE
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        agent.act(np.zeros((4, agent.obs_dim), np.float32))


@pytest.mark.parametrize(("name", "env_id"), [
    ("mappo", "mpe/simple_spread"),
    ("ippo", "mpe/simple_adversary"),  # observations of different sizes, padded
])
def test_mappo_ippo_update_and_act_on_the_device(name, env_id, fake_gpu, monkeypatch):
    from robustrl.agents import mappo

    config = resolve_config(name, env_id, {"n_envs": 2, "n_steps": 16, "n_minibatches": 2,
                                           "n_epochs": 2})
    agent = agent_class(name)(env_id, config, seed=0, device=fake_gpu)
    on_cpu = agent_class(name)(env_id, config, seed=0)
    on_cpu.learn(32)
    batch = {k: v.to(fake_gpu) for k, v in on_cpu._collect().items()}
    monkeypatch.setattr(mappo, "update_metrics", lambda *args: {})  # the host read-back
    agent.update(batch)
    assert all(p.device.type == "meta" for p in agent.net.parameters())
    obs = torch.zeros(4, agent.n_agents, agent.obs_dim, device=fake_gpu)
    assert agent.policy_output(obs).device.type == "meta"  # attacks, ERNIE
    assert agent.robust_scale(batch["obs"], "own").device.type == "meta"
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        agent.act_array(np.zeros((1, agent.n_agents, agent.obs_dim), np.float32))


def _on_device(agent, device) -> None:
    """Every network, optimizer state and tensor an agent checkpoints is on `device`."""
    for name in agent.state_names():
        value = getattr(agent, name, None)
        tensors = ([*value.parameters(), *value.buffers()] if isinstance(value, torch.nn.Module)
                   else [t for s in value.state.values() for t in s.values()
                         if isinstance(t, torch.Tensor) and t.dim()]
                   if isinstance(value, torch.optim.Optimizer)
                   else [value] if isinstance(value, torch.Tensor) else [])
        assert all(t.device.type == device for t in tensors), name


@pytest.mark.parametrize(("name", "env_id", "settings"), [
    ("maddpg", "mpe/simple_spread", {}),  # Gumbel-softmax actions
    ("maddpg", "mpe/simple_adversary", {"env.continuous_actions": True}),  # padded, Box
    ("maddpg", "mpe/simple_adversary", {**ERNIE, "robust.perturb_other_actions": True}),
    ("idqn", "mpe/simple_spread", {}),  # QCOMBO's global Q
    ("idqn", "mpe/simple_adversary", {**ERNIE, "robust.perturb_other_actions": True}),
    ("idqn", "mpe/simple_spread", {"mixer": "vdn"}),
    ("mfq", "mpe/simple_spread", {"dro_rho": 0.1}),  # the KL worst case, batched
    ("mfq", "mpe/simple_spread", ERNIE),
])
def test_multiagent_off_policy_learners_train_on_the_device(name, env_id, settings, fake_gpu):
    env_kwargs = {k.removeprefix("env."): v for k, v in settings.items() if k.startswith("env.")}
    overrides = {"learning_starts": 32, "batch_size": 16, "train_freq": 1, "log_interval": 8,
                 **{k: v for k, v in settings.items() if not k.startswith("env.")}}
    config = resolve_config(name, env_id, overrides)
    agent = agent_class(name)(env_id, config, seed=0, env_kwargs=env_kwargs, device=fake_gpu)
    agent.learn(32)  # random steps fill the replay (no network acts), then the first update
    assert agent.updates == 1
    metrics = agent.update()
    assert all(v.device.type == "meta" for v in metrics.values()), metrics
    _on_device(agent, "meta")
    obs = np.zeros((3, agent.n_agents, agent.obs_dim), np.float32)
    for deterministic in (True, False):  # on the device up to the copy back to the host
        with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
            agent.act_array(obs, deterministic)
    fn = agent.policy_fns[agent.agents[0]]  # attacks: CPU in, the output copied back to it
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        fn(torch.zeros(2, agent.obs_sizes[0]))


def test_attacks_run_on_the_agents_device(fake_gpu):
    from robustrl.perturb.pgd import policy_device

    agent = agent_class("sac")("gym/Pendulum-v1", device=fake_gpu)
    assert policy_device(agent.attack_policy) == (torch.device("meta"), torch.float32)
    assert policy_device(agent_class("sac")("gym/Pendulum-v1").attack_policy)[0].type == "cpu"


def test_sb3_agents_build_their_model_on_the_device(fake_gpu):
    pytest.importorskip("stable_baselines3")
    agent = agent_class("sb3:ppo")("gym/CartPole-v1", device=fake_gpu)
    assert agent.model.device.type == "meta"
    assert all(p.device.type == "meta" for p in agent.model.policy.parameters())


def test_tdmpc_manager_updates_on_the_device(fake_gpu):
    from robustrl.agents.tdmpc import IQLTDMPC, AbstractSequences, IQLTDMPCConfig

    rng = np.random.default_rng(0)
    ends = np.zeros(60, bool)
    ends[29::30] = True  # two episodes of 30 steps
    config = IQLTDMPCConfig(k=3, horizon=2, hidden=(32, 32))
    sequences = AbstractSequences(rng.normal(size=(60, 6)), rng.normal(size=60), ends, k=3,
                                  horizon=2, gamma=config.gamma, device=fake_gpu)
    manager = IQLTDMPC(6, config, device=fake_gpu)
    metrics = manager.update(*sequences.sample(8))
    assert all(v.device.type == "meta" for v in metrics.values()), metrics
