"""Ray backend overhead vs the local pool, and throughput of a 2-node vs a 1-node Ray cluster.

A suite of short jobs (PPO on CartPole, `--jobs` seeds, `--steps` steps, clean evaluation
only) runs four ways, each into a fresh folder:
  local    the local 'spawn' pool, 2 workers
  ray      Ray started in this process with 2 CPUs (its start-up timed separately)
  1 node   a ray.cluster_utils.Cluster with a head of 1 CPU
  2 nodes  the same head plus a second node of 1 CPU (a simulated cluster on this machine)
Overhead = ray / local wall time - 1; throughput = jobs per second. Meaningful on an idle
machine; the load average before and after is printed with the results.

    python experiments/perf/ray_overhead.py --jobs 8 --steps 512 \
        --out experiments/perf/results/ray_overhead.md
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SUITE = """
name = "ray_overhead"
seeds = {seeds}
episodes = 2
lipschitz_obs = 16

[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = {steps}

[train.set]
n_envs = 1
n_steps = 128
n_epochs = 4
hidden = [32, 32]
run = {{ tensorboard = false }}
env = {{ max_episode_steps = 200 }}
"""


def _timed(suite: Path, out: Path, **kwargs) -> float:
    from robustrl.bench import run_suite

    summary = run_suite(suite, out=out, **kwargs)
    assert not summary.failures and summary.ran == summary.cells, summary
    return summary.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--out", help="also write the results as Markdown here")
    args = parser.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    load_before = os.getloadavg()[0]
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "suite.toml"
        suite.write_text(SUITE.format(seeds=list(range(args.jobs)), steps=args.steps))
        seconds["local pool, 2 workers"] = _timed(suite, Path(tmp) / "local", workers=2)
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        try:
            seconds["ray, 2 CPUs (one node)"] = _timed(suite, Path(tmp) / "ray", backend="ray")
        finally:
            ray.shutdown()
        for nodes in (1, 2):
            cluster = Cluster(initialize_head=True,
                              head_node_args={"num_cpus": 1, "include_dashboard": False})
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False)
            try:
                seconds[f"ray cluster, {nodes} node(s) x 1 CPU"] = _timed(
                    suite, Path(tmp) / f"nodes{nodes}", backend="ray")
            finally:
                ray.shutdown()
                cluster.shutdown()
    local, on_ray = seconds["local pool, 2 workers"], seconds["ray, 2 CPUs (one node)"]
    one, two = (seconds[f"ray cluster, {n} node(s) x 1 CPU"] for n in (1, 2))
    lines = [f"{args.jobs} jobs (PPO CartPole-v1, {args.steps} steps, clean evaluation); "
             f"{os.cpu_count()} cores, load average {load_before:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after", "",
             "| backend | wall s | jobs/s |", "|---|---|---|"]
    lines += [f"| {name} | {s:.1f} | {args.jobs / s:.3f} |" for name, s in seconds.items()]
    lines += ["", f"Ray overhead vs the local pool: {100 * (on_ray / local - 1):+.1f}% "
              f"(Ray start-up, not counted: {ray_start:.1f} s)",
              f"2 nodes vs 1: {one / two:.2f}x throughput"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Ray backend overhead and 2-node throughput\n\n"
                                  "`python experiments/perf/ray_overhead.py`\n\n" + text + "\n")


if __name__ == "__main__":
    main()
