"""Random-action steps/s of robustrl's traffic adapters against raw sumo-rl `SumoEnvironment`.

Both sides run the same network, the same SUMO seed and the same action sequence, so they
simulate exactly the same traffic. Time is this process's CPU time; each repeat runs raw and
ours back to back (order alternating) and the overhead is the median of the per-pair time
ratios, which cancels most of the noise of a shared machine. Ours computes the
reward factors and the PettingZoo/Gymnasium bookkeeping; raw sumo-rl computes its default
info (system and per-agent metrics). Ours is measured twice: with its defaults (reward factors
instead of sumo-rl's per-agent metrics, which they supersede) and with the per-agent metrics
as well (`add_per_agent_info=True`, the same info as raw plus the factors). One "step" is one
decision of every light (5 s simulated).

    python experiments/perf/env_speed_traffic.py            # single-intersection and 2x2grid
    python experiments/perf/env_speed_traffic.py --seconds 7200 --repeats 12

Measured on the project's 2-core machine (shared, so +-5% run to run), 720 steps per run:
single-intersection raw 611 / ours 610 steps/s (+0.0%; +5.3% with per-agent info too),
2x2grid raw 183 / ours 186 steps/s (-3.4%; -2.9% with per-agent info too).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from robustrl.envs import make, spec
from robustrl.envs.traffic import load_sumo_rl, resolve_file


def raw_env(env_id: str, seconds: int, single: bool):
    """sumo-rl's own env with its defaults, on the same files as `env_id`."""
    sumo_rl = load_sumo_rl()
    kw = spec(env_id).kwargs
    return sumo_rl.SumoEnvironment(
        net_file=resolve_file(kw["net_file"], "network file"),
        route_file=resolve_file(kw["route_file"], "route file"),
        num_seconds=seconds, single_agent=single, sumo_warnings=False)


def run_raw(env_id: str, seconds: int, seed: int) -> tuple[int, float]:
    env = raw_env(env_id, seconds, single=spec(env_id).kind == "single")
    try:
        if env.single_agent:
            env.reset(seed=seed)
            env.action_space.seed(seed)
            steps, t0, done = 0, time.process_time(), False
            while not done:
                *_, truncated, _ = env.step(env.action_space.sample())
                steps, done = steps + 1, truncated
            return steps, time.process_time() - t0
        env.reset(seed=seed)
        act = {t: env.action_spaces(t) for t in env.ts_ids}
        for i, a in enumerate(act.values()):
            a.seed(seed + i)
        steps, t0, done = 0, time.process_time(), False
        while not done:
            _, _, dones, _ = env.step({t: a.sample() for t, a in act.items()})
            steps, done = steps + 1, dones["__all__"]
        return steps, time.process_time() - t0
    finally:
        env.close()


def run_ours(env_id: str, seconds: int, seed: int, **kwargs: bool) -> tuple[int, float]:
    env = make(env_id, num_seconds=seconds, **kwargs)
    try:
        if spec(env_id).kind == "single":
            env.reset(seed=seed)
            env.action_space.seed(seed)
            steps, t0, done = 0, time.process_time(), False
            while not done:
                *_, truncated, info = env.step(env.action_space.sample())
                steps, done = steps + 1, truncated
            assert "reward_factors" in info
            return steps, time.process_time() - t0
        env.reset(seed=seed)
        act = {a: env.action_space(a) for a in env.possible_agents}
        for i, a in enumerate(act.values()):
            a.seed(seed + i)
        steps, t0 = 0, time.process_time()
        while env.agents:
            env.step({a: space.sample() for a, space in act.items()})
            steps += 1
        return steps, time.process_time() - t0
    finally:
        env.close()


def measure(env_id: str, seconds: int, repeats: int, seed: int,
            same_info: bool = False) -> dict[str, float]:
    """Median over `repeats` back-to-back (raw, ours) pairs, order alternating (ABBA) so drift
    in the machine's load cancels; `same_info` also computes sumo-rl's per-agent info in ours."""
    ours = partial(run_ours, add_per_agent_info=same_info)
    raw_rates, our_rates, ratios = [], [], []
    for r in range(repeats):
        order: list[tuple[str, Callable[..., tuple[int, float]]]] = [("raw", run_raw),
                                                                      ("ours", ours)]
        times = {}
        for name, fn in order if r % 2 == 0 else order[::-1]:
            steps, times[name] = fn(env_id, seconds, seed)
        raw_rates.append(steps / times["raw"])
        our_rates.append(steps / times["ours"])
        ratios.append(times["ours"] / times["raw"])
    return {"steps": steps, "raw_steps_per_s": float(np.median(raw_rates)),
            "ours_steps_per_s": float(np.median(our_rates)),
            "overhead_pct": 100.0 * (float(np.median(ratios)) - 1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="+",
                        default=["traffic/single-intersection", "traffic/2x2grid"])
    parser.add_argument("--seconds", type=int, default=3600, help="simulated seconds per run")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'id':32s} {'ours computes':24s} {'steps':>6s} {'raw/s':>8s} {'ours/s':>8s} "
          f"{'overhead':>9s}")
    for env_id in args.ids:
        for same_info, label in ((False, "factors (default)"),
                                 (True, "factors + per-agent info")):
            r = measure(env_id, args.seconds, args.repeats, args.seed, same_info)
            print(f"{env_id:32s} {label:24s} {r['steps']:6d} {r['raw_steps_per_s']:8.1f} "
                  f"{r['ours_steps_per_s']:8.1f} {r['overhead_pct']:+8.1f}%")


if __name__ == "__main__":
    main()
