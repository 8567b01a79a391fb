"""MAPPO training throughput on mpe/simple_spread against the raw env's random-action speed.

    python experiments/perf/mappo_speed.py --steps 10000 --rounds 3 \\
        --out experiments/multiagent/results/multiagent_speed.md

Both are measured in the same process, interleaved in rounds (raw, MAPPO, raw, MAPPO, ...) so
drifting machine load hits both alike, in env steps per second (one env step = one joint step
of all N agents in one env copy); the median of the per-round ratios is reported and every
timing goes to results/mappo_speed.csv with the date and load average (timings.py). MAPPO
runs with the `mpe/*` settings of agents/mappo.toml; the script also splits its time into
rollout collection (env + acting) and the PPO update, so the gap to the raw env is explained.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from timings import load_1min, record

from robustrl.agents import hyperparameters
from robustrl.agents.mappo import MAPPO, MAPPOConfig
from robustrl.core.config import from_dict
from robustrl.envs import make

ENV_ID = "mpe/simple_spread"
ENV_KWARGS = {"N": 3, "max_cycles": 25}


def raw_env_speed(steps: int, seed: int = 0) -> tuple[int, float]:
    """Random joint actions through the registered env (factors included), resets counted."""
    env = make(ENV_ID, **ENV_KWARGS)
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
    raws, runs = [], []
    for r in range(args.rounds):
        raws.append(record("mappo_speed", what, "raw env", r, *raw_env_speed(args.steps, r)))
        runs.append(mappo_speed(args.steps, r))
        record("mappo_speed", what, "mappo", r, runs[-1]["steps"], runs[-1]["total_s"])
        print(f"round {r}: raw {raws[-1]:.0f}, MAPPO {runs[-1]['steps_per_second']:.0f} "
              f"env steps/s", flush=True)
    ratio = statistics.median(run["steps_per_second"] / x for run, x in zip(runs, raws))
    raw = statistics.median(raws)
    m = sorted(runs, key=lambda run: run["steps_per_second"])[len(runs) // 2]
    lines = [
        f"MAPPO vs raw env on {ENV_ID} {ENV_KWARGS}, {args.steps} env steps each, "
        f"torch threads 1, {platform.processor() or platform.machine()}, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, load {load_1min():.2f}, "
        f"median of {args.rounds} interleaved rounds",
        "",
        "| what | env steps/s |",
        "|---|---|",
        f"| raw env, random actions | {raw:.0f} |",
        f"| MAPPO training (n_envs={m['n_envs']}, n_steps={m['n_steps']}, "
        f"n_epochs={m['n_epochs']}) | {m['steps_per_second']:.0f} |",
        "",
        f"MAPPO / raw = {ratio:.2f} (median of the rounds' ratios). Median MAPPO run: rollouts "
        f"{m['collect']:.1f} s ({m['steps'] / m['collect']:.0f} env steps/s incl. acting), "
        f"updates {m['update']:.1f} s, of {m['total_s']:.1f} s. Every round's raw timings, "
        "with the load at measurement: experiments/perf/results/mappo_speed.csv.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
