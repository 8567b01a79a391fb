"""Env steps per second of SAC training on n_envs = 1, 2, 4 env copies, side by side.

Each round trains a fresh SAC (seed 0) for `--steps` env steps on HalfCheetah-v5 at every
n_envs and updates-per-env-step ratio, in interleaved order, so drifting machine load hits
all alike; the median rate per setting is written to results/offpolicy_vector.csv. At ratio
1.0 the updates dominate and vectorizing saves only the per-step policy calls; the gain
shows at lower ratios (n_envs = 1 reaches ratio 1/k with train_freq = k).

    python experiments/perf/offpolicy_vector.py --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import statistics
import time
from pathlib import Path

import torch

from robustrl.agents import make_agent

RESULTS = Path(__file__).resolve().parent / "results" / "offpolicy_vector.csv"


def rate(env: str, n_envs: int, ratio: float, steps: int, learning_starts: int) -> float:
    per_step = ({"n_envs": n_envs, "updates_per_step": ratio} if n_envs > 1
                else {"train_freq": round(1 / ratio)} if ratio < 1
                else {"gradient_steps": round(ratio)})
    agent = make_agent("sac", env, seed=0, learning_starts=learning_starts, **per_step)
    agent.learn(learning_starts)  # the random-action warm-up is not what is measured
    t0 = time.perf_counter()
    agent.learn(steps)
    elapsed = time.perf_counter() - t0
    agent.close()
    return (steps - learning_starts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mujoco/HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--learning-starts", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ratios", type=float, nargs="+", default=[1.0, 0.25])
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = [(n, r) for r in args.ratios for n in (1, 2, 4)]
    rates: dict[tuple[int, float], list[float]] = {s: [] for s in settings}
    for rnd in range(args.rounds):
        for n, r in settings:
            rates[n, r].append(rate(args.env, n, r, args.steps, args.learning_starts))
            print(f"round {rnd} n_envs={n} updates/step={r}: {rates[n, r][-1]:.1f} steps/s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    load = os.getloadavg()[0]
    RESULTS.parent.mkdir(exist_ok=True)
    new = not RESULTS.exists()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes")
    with RESULTS.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "env", "n_envs", "updates_per_step", "env_steps_per_s",
                        "vs_n_envs_1", "load_average"])
        for n, r in settings:
            med, base = statistics.median(rates[n, r]), statistics.median(rates[1, r])
            w.writerow([date, args.env, n, r, f"{med:.1f}", f"{med / base:.2f}", f"{load:.1f}"])
            print(f"n_envs={n} updates/step={r}: {med:.1f} env steps/s, {med / base:.2f}x "
                  f"n_envs=1 (median of {args.rounds}, load average {load:.1f})")


if __name__ == "__main__":
    main()
