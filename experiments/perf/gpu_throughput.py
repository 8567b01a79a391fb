"""Throughput of a learner on the GPU (run.device=cuda) vs the CPU.

Skips without a GPU. For each device: updates per second (SAC, Hybrid SAC: gradient steps at
batch 256, networks 256x256, replay batches moved to the device once each; MADDPG, IDQN, MF-Q:
gradient steps at their configs' batch sizes, each sampling its own batch; PPO, MAPPO, IPPO:
whole updates of the env's settings, every epoch and minibatch of one rollout) and env steps
per second of a short training run. Appends to results/gpu_throughput.csv.

    python experiments/perf/gpu_throughput.py --updates 500 [--agent hybrid_sac]
    python experiments/perf/gpu_throughput.py --agent ppo --updates 5
    python experiments/perf/gpu_throughput.py --agent mappo --env mpe/simple_spread --updates 5
    python experiments/perf/gpu_throughput.py --agent maddpg --env mpe/simple_spread
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import time
from pathlib import Path

import torch

from robustrl.agents import agent_class, resolve_config

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_throughput.csv"
ON_POLICY = ("ppo", "mappo", "ippo")
SELF_SAMPLING = ("maddpg", "idqn", "mfq")
"""Off-policy learners whose `update()` samples its own replay batch."""


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, env: str, device: str, updates: int) -> tuple[float, float]:
    if name in ON_POLICY:
        return measure_on_policy(name, env, device, updates)
    cfg = resolve_config(name, env, {"learning_starts": 300})
    agent = agent_class(name)(env, cfg, seed=0, device=device)
    agent.learn(300)  # random warm-up fills the replay; its last step updates once

    def update() -> None:
        if name in SELF_SAMPLING:
            agent.update()
        else:
            agent.update(agent.buffer.sample(256, agent.rng, agent.device))

    update()
    synchronize(agent.device)
    t0 = time.perf_counter()
    for _ in range(updates):
        update()
    synchronize(agent.device)
    per_update = (time.perf_counter() - t0) / updates
    t0 = time.perf_counter()
    agent.learn(300 + updates)
    steps = updates / (time.perf_counter() - t0)
    agent.close()
    return 1 / per_update, steps


def measure_on_policy(name: str, env: str, device: str, updates: int) -> tuple[float, float]:
    """Updates per second on one rollout's batch, then env steps per second of `updates`
    rollouts with their updates (the rollouts' networks run on CPU snapshots)."""
    agent = agent_class(name)(env, resolve_config(name, env), seed=0, device=device)
    size = agent.config.n_envs * agent.config.n_steps
    agent.learn(size)  # opens the envs; first rollout + update as the warm-up
    batch = agent._collect()
    agent.num_steps += size
    synchronize(agent.device)
    t0 = time.perf_counter()
    for _ in range(updates):
        agent.update(batch)
    synchronize(agent.device)
    per_update = (time.perf_counter() - t0) / updates
    t0 = time.perf_counter()
    agent.learn(agent.num_steps + updates * size)
    steps = updates * size / (time.perf_counter() - t0)
    agent.close()
    return 1 / per_update, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mujoco/HalfCheetah-v5")
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--agent", choices=["sac", "hybrid_sac", *SELF_SAMPLING, *ON_POLICY],
                        default="sac")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_throughput: skipped, this torch build sees no GPU")
        return
    torch.set_num_threads(1)
    rows = []
    for device in ("cpu", "cuda"):
        ups, sps = measure(args.agent, args.env, device, args.updates)
        rows.append((device, ups, sps))
        print(f"{device}: {ups:.0f} {args.agent} updates/s, {sps:.0f} env steps/s "
              f"({torch.cuda.get_device_name() if device == 'cuda' else 'one thread'})")
    load = os.getloadavg()[0]
    RESULTS.parent.mkdir(exist_ok=True)
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "agent", "env", "device", "updates_per_s", "env_steps_per_s", "gpu",
                        "load_average"])
        date = datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes")
        for device, ups, sps in rows:
            w.writerow([date, args.agent, args.env, device, f"{ups:.1f}", f"{sps:.1f}",
                        torch.cuda.get_device_name(), f"{load:.1f}"])


if __name__ == "__main__":
    main()
