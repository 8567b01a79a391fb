"""MAPPO training throughput on mpe/simple_spread against the env's random-action speed.

    python experiments/perf/mappo_speed.py --steps 10000 --rounds 3 \\
        --out experiments/multiagent/results/multiagent_speed.md

Two references, both stepped with random joint actions: mpe2's own parallel env (the particle
world as shipped: its AEC env behind PettingZoo's conversion) and robustrl's registered env
(`make`, which steps the same world without that conversion and adds reward factors). All
three are measured in the same process, interleaved in rounds (mpe2, robustrl env, MAPPO,
...) so drifting machine load hits them alike, in env steps per second (one env step = one
joint step of all N agents in one env copy); the median of the per-round ratios is reported
and every timing goes to results/mappo_speed.csv with the date and load average
(timings.py). MAPPO runs with the `mpe/*` settings of agents/mappo.toml; the script also
splits its time into rollout collection (env + acting) and the PPO update.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

import numpy as np
import torch
from timings import load_1min, record

from robustrl.agents import hyperparameters
from robustrl.agents.mappo import MAPPO, MAPPOConfig
from robustrl.core.config import from_dict
from robustrl.envs import make

ENV_ID = "mpe/simple_spread"
ENV_KWARGS = {"N": 3, "max_cycles": 25}


def mpe2_env() -> Any:
    """mpe2's own parallel simple_spread (AEC env + PettingZoo's aec_to_parallel)."""
    from mpe2 import simple_spread_v3

    return simple_spread_v3.parallel_env(**ENV_KWARGS)


def raw_env_speed(steps: int, seed: int = 0, env: Any = None) -> tuple[int, float]:
    """Random joint actions through `env` (default: the registered env, factors included),
    resets counted."""
    env = make(ENV_ID, **ENV_KWARGS) if env is None else env
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    n_actions = env.action_space(env.possible_agents[0]).n
    start = time.perf_counter()
    for i in range(steps):
        env.step({a: int(rng.integers(n_actions)) for a in env.agents})
        if not env.agents:
            env.reset(seed=seed + i)
    return steps, time.perf_counter() - start


def mappo_speed(steps: int, seed: int = 0) -> dict[str, float]:
    config = from_dict(MAPPOConfig, hyperparameters("mappo", ENV_ID))
    agent = MAPPO(ENV_ID, config, seed=seed, env_kwargs=ENV_KWARGS)
    timing = {"collect": 0.0, "update": 0.0}
    collect, update = agent._collect, agent.update

    def timed(name, fn):
        def run(*args):
            t = time.perf_counter()
            out = fn(*args)
            timing[name] += time.perf_counter() - t
            return out
        return run

    agent._collect, agent.update = timed("collect", collect), timed("update", update)
    start = time.perf_counter()
    agent.learn(steps)
    total = time.perf_counter() - start
    return {"steps_per_second": agent.num_steps / total, "total_s": total, **timing,
            "steps": agent.num_steps, "n_envs": config.n_envs, "n_steps": config.n_steps,
            "n_epochs": config.n_epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="env steps per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    what = f"mappo {ENV_ID}"
    refs = {"mpe2 env": "mpe2's own parallel env", "raw env": "robustrl's env (`make`)"}
    speeds: dict[str, list[float]] = {side: [] for side in refs}
    runs = []
    for r in range(args.rounds):
        speeds["mpe2 env"].append(record("mappo_speed", what, "mpe2 env", r,
                                         *raw_env_speed(args.steps, r, mpe2_env())))
        speeds["raw env"].append(record("mappo_speed", what, "raw env", r,
                                        *raw_env_speed(args.steps, r)))
        runs.append(mappo_speed(args.steps, r))
        record("mappo_speed", what, "mappo", r, runs[-1]["steps"], runs[-1]["total_s"])
        print(f"round {r}: mpe2 {speeds['mpe2 env'][-1]:.0f}, robustrl env "
              f"{speeds['raw env'][-1]:.0f}, MAPPO {runs[-1]['steps_per_second']:.0f} "
              "env steps/s", flush=True)
    m = sorted(runs, key=lambda run: run["steps_per_second"])[len(runs) // 2]
    lines = [
        f"MAPPO vs random actions on {ENV_ID} {ENV_KWARGS}, {args.steps} env steps each, "
        f"torch threads 1, {platform.processor() or platform.machine()}, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, load {load_1min():.2f}, "
        f"median of {args.rounds} interleaved rounds",
        "",
        "| what | env steps/s | MAPPO / this (median of the rounds' ratios, range) |",
        "|---|---|---|",
    ]
    for side, label in refs.items():
        ratios = [run["steps_per_second"] / x for run, x in zip(runs, speeds[side])]
        lines.append(f"| {label}, random actions | {statistics.median(speeds[side]):.0f} | "
                     f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) |")
    lines += [
        f"| MAPPO training (n_envs={m['n_envs']}, n_steps={m['n_steps']}, "
        f"n_epochs={m['n_epochs']}) | {statistics.median(r['steps_per_second'] for r in runs):.0f} "
        "| |",
        "",
        f"Median MAPPO run: rollouts {m['collect']:.1f} s ({m['steps'] / m['collect']:.0f} env "
        f"steps/s incl. acting), updates {m['update']:.1f} s, of {m['total_s']:.1f} s. Every "
        "round's raw timings, with the load at measurement: "
        "experiments/perf/results/mappo_speed.csv.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
