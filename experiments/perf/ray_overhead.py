"""Ray backend overhead vs the local pool, and throughput of a 2-node vs a 1-node Ray cluster.

A suite of short jobs (PPO on CartPole, `--jobs` seeds, `--steps` steps, clean evaluation
only) runs four ways, each into a fresh folder:
  local    the local 'spawn' pool, 2 workers
  ray      Ray started in this process with 2 CPUs (its start-up timed separately)
  1 node   a ray.cluster_utils.Cluster with a head of 1 CPU
  2 nodes  the same head plus a second node of 1 CPU (a simulated cluster on this machine)
Overhead = ray / local wall time - 1; throughput = jobs per second. Meaningful on an idle
machine (every row carries the load average at its end).

    python experiments/perf/ray_overhead.py --jobs 8 --steps 512
    python experiments/perf/ray_overhead.py --from-csv   # only rebuild results/ray_overhead.md

Every timed suite run (backend, jobs, steps, wall seconds; the Ray run also its start-up) is
appended to results/ray_overhead.csv as it finishes (timings.py); results/ray_overhead.md is
a pure function of that CSV (`render`: one table row per complete run), which
experiments/check_results.py recomputes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from timings import RESULTS, load_range, now_utc, read, record

NAME = "ray_overhead"
MD = RESULTS / f"{NAME}.md"
LOCAL, RAY = "local pool, 2 workers", "ray, 2 CPUs (one node)"
NODES = {n: f"ray cluster, {n} node(s) x 1 CPU" for n in (1, 2)}
SIDES = (LOCAL, RAY, *NODES.values())
COMMAND = "python experiments/perf/ray_overhead.py --jobs 8 --steps 512"
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


def _timed(suite: Path, out: Path, side: str, jobs: int, steps: int, run: str,
           startup_s: str = "", **kwargs) -> None:
    from robustrl.bench import run_suite

    summary = run_suite(suite, out=out, **kwargs)
    if summary.failures or summary.ran != summary.cells:
        raise SystemExit(f"{side}: {summary}")
    record(NAME, f"{jobs} jobs x {steps} steps", side, 0, jobs, summary.seconds, jobs=jobs,
           job_steps=steps, startup_s=startup_s, cores=os.cpu_count(), run=run)
    print(f"{side}: {summary.seconds:.1f} s", flush=True)


def measure(jobs: int, steps: int, run: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "suite.toml"
        suite.write_text(SUITE.format(seeds=list(range(jobs)), steps=steps))
        args = (jobs, steps, run)
        _timed(suite, Path(tmp) / "local", LOCAL, *args, workers=2)
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        startup = f"{time.perf_counter() - t0:.4f}"
        try:
            _timed(suite, Path(tmp) / "ray", RAY, *args, startup_s=startup, backend="ray")
        finally:
            ray.shutdown()
        for nodes, side in NODES.items():
            cluster = Cluster(initialize_head=True,
                              head_node_args={"num_cpus": 1, "include_dashboard": False})
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False)
            try:
                _timed(suite, Path(tmp) / f"nodes{nodes}", side, *args, backend="ray")
            finally:
                ray.shutdown()
                cluster.shutdown()


def runs(rows: list[dict[str, str]]) -> dict[str, dict[str, dict[str, str]]]:
    """run -> side -> row, complete runs only (an interrupted run has no ratios)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for r in rows:
        out.setdefault(r["run"], {})[r["side"]] = r
    return {run: sides for run, sides in sorted(out.items()) if set(SIDES) <= set(sides)}


def render(rows: list[dict[str, str]]) -> str:
    """results/ray_overhead.md, a pure function of the CSV rows."""
    lines = ["# Ray backend overhead and 2-node throughput", "", f"    {COMMAND}", ""]
    done = runs(rows)
    if not done:
        return "\n".join(lines + [
            "Not rerun since its earlier figures, which had no committed raw timings, were "
            "removed: no measurement stands here. The script appends one row per timed suite "
            f"run to `{NAME}.csv`; `--from-csv` rebuilds this file from it.", ""])
    cores = " or ".join(sorted({r["cores"] for sides in done.values() for r in sides.values()}))
    lines += [
        f"One row per complete run of the script (its rows in `{NAME}.csv`: wall seconds of "
        f"`run_suite` per backend; load = the 1-minute load average at the end of each of the "
        f"run's four suite runs; {cores} cores). Ray vs pool = ray 2 CPUs / local pool wall "
        "time - 1 (Ray's start-up not counted, its own column); 2 nodes vs 1 = the 1-node "
        "cluster's wall time / the 2-node cluster's (throughput ratio).",
        "",
        "| run | jobs × steps | load | local pool s | ray 2 CPUs s | cluster 1 node s | "
        "cluster 2 nodes s | Ray start-up s | Ray vs pool | 2 nodes vs 1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run, sides in done.items():
        s = {side: float(r["seconds"]) for side, r in sides.items()}
        r = sides[LOCAL]
        lines.append(
            f"| {run} | {r['jobs']} × {r['job_steps']} | {load_range(list(sides.values()))} | "
            f"{s[LOCAL]:.1f} | {s[RAY]:.1f} | {s[NODES[1]]:.1f} | {s[NODES[2]]:.1f} | "
            f"{float(sides[RAY]['startup_s']):.1f} | {100 * (s[RAY] / s[LOCAL] - 1):+.1f}% | "
            f"{s[NODES[1]] / s[NODES[2]]:.2f}× |")
    lines += [
        "",
        "Both backends reuse their worker processes across these jobs (the local pool starts "
        "a fresh interpreter per job only when the suite runs SUMO: libsumo holds one "
        "simulation per process). On one machine a second simulated node adds "
        "processes, not cores: the 2-node ratio means something only with free cores (see the "
        "load column).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--from-csv", action="store_true",
                        help=f"only rebuild {MD.name} from the CSV (no timing)")
    args = parser.parse_args()
    if args.jobs < 1 or args.steps < 1:
        parser.error("need --jobs >= 1 and --steps >= 1")
    if not args.from_csv:
        measure(args.jobs, args.steps, now_utc())
    from robustrl.core.io import atomic_write_text

    text = render(read(NAME))
    print(text)
    atomic_write_text(MD, text)


if __name__ == "__main__":
    main()
