"""Episodes per second of batched vs one-at-a-time evaluation, side by side.

A SAC agent (briefly trained, so its episodes are full length) on HalfCheetah-v5 is scored on
20 episodes under obs-gaussian:0.1, alternately one episode at a time (an env instance) and
batched (an env factory); the per-episode returns must be identical. The speedup is the median
of the rounds' ratios (each round's pair runs back to back, under the same machine load).

The sequential runs also time their env steps (wrappers included): the batched path steps the
same envs with the same actions, so even with free batched acting its speedup cannot exceed
sequential time / env-step time, the ceiling the script reports beside the speedup.

    python experiments/perf/batched_eval.py --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import statistics
import time
from functools import partial
from pathlib import Path

import torch

from robustrl.agents import make_agent
from robustrl.train import eval_env, evaluate

RESULTS = Path(__file__).resolve().parent / "results" / "batched_eval.csv"


def _timed(step, total: list[float]):
    """`step`, adding the seconds each call takes to total[0]."""
    def timed(action):
        t0 = time.perf_counter()
        out = step(action)
        total[0] += time.perf_counter() - t0
        return out
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mujoco/HalfCheetah-v5")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--perturb", default="obs-gaussian:0.1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent = make_agent("sac", args.env, seed=0, learning_starts=200)
    agent.learn(400)
    perturb = (args.perturb,)
    rates: dict[str, list[float]] = {"sequential": [], "batched": []}
    ceilings: list[float] = []
    returns: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for mode in ("sequential", "batched"):
            env_seconds = [0.0]
            if mode == "sequential":
                env = eval_env(agent, perturb, seed=1)
                env.step = _timed(env.step, env_seconds)
            else:
                env = partial(eval_env, agent, perturb, seed=1)
            t0 = time.perf_counter()
            result = evaluate(agent, args.episodes, seed=1, env=env)
            seconds = time.perf_counter() - t0
            rates[mode].append(args.episodes / seconds)
            if mode == "sequential":
                ceilings.append(seconds / env_seconds[0])
            returns[mode] = result["returns"]
            print(f"round {r} {mode}: {rates[mode][-1]:.2f} episodes/s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    if returns["sequential"] != returns["batched"]:
        raise SystemExit("batched returns differ from sequential ones")
    seq, bat = statistics.median(rates["sequential"]), statistics.median(rates["batched"])
    speedup = statistics.median(b / s for s, b in zip(rates["sequential"], rates["batched"],
                                                      strict=True))
    ceiling = statistics.median(ceilings)
    load = os.getloadavg()[0]
    print(f"batched vs sequential on {args.env}, {args.episodes} episodes, {args.perturb}: "
          f"{speedup:.2f}x (median {bat:.2f} vs {seq:.2f} episodes/s, identical returns, "
          f"load average {load:.1f}); ceiling with free batched acting {ceiling:.2f}x "
          "(sequential time / its env-step time)")
    RESULTS.parent.mkdir(exist_ok=True)
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "env", "episodes", "perturb", "sequential_eps_per_s",
                        "batched_eps_per_s", "speedup", "load_average", "ceiling"])
        w.writerow([datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
                    args.env, args.episodes, args.perturb, f"{seq:.3f}", f"{bat:.3f}",
                    f"{speedup:.2f}", f"{load:.1f}", f"{ceiling:.2f}"])


if __name__ == "__main__":
    main()
