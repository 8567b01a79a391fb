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
    python experiments/perf/env_speed_traffic.py --from-csv  # only rebuild the speed.md cell

Every timed run (one side of one pair: env, variant, side, pair index, steps, CPU seconds)
is appended to results/env_speed_traffic.csv as it finishes, with the date and load average
(timings.py); the result cell of this script's row in results/speed.md is then rebuilt from
the CSV alone (`cell`, the latest run unless `--run`), which experiments/check_results.py
recomputes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import torch
from timings import add_run_arguments, load_range, median, record, time_and_publish

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


VARIANTS = {False: "factors", True: "factors + per-agent info"}
NAME = "env_speed_traffic"


def measure(env_id: str, seconds: int, repeats: int, seed: int, same_info: bool,
            run: str) -> None:
    """`repeats` back-to-back (raw, ours) pairs, order alternating (ABBA) so drift in the
    machine's load cancels, each run a row; `same_info` also computes sumo-rl's per-agent info
    in ours."""
    ours = partial(run_ours, add_per_agent_info=same_info)
    for r in range(repeats):
        order: list[tuple[str, Callable[..., tuple[int, float]]]] = [("raw", run_raw),
                                                                      ("ours", ours)]
        for side, fn in order if r % 2 == 0 else order[::-1]:
            steps, cpu_s = fn(env_id, seconds, seed)
            rate = record(NAME, env_id, side, r, steps, cpu_s, variant=VARIANTS[same_info],
                          run=run)
            print(f"{env_id} {VARIANTS[same_info]} pair {r} {side}: {rate:.1f} steps/s",
                  flush=True)


def summary(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, float]]:
    """Per (env, variant): pairs, steps per run, median raw and ours steps/s, and the overhead
    in % = 100 * (median over the pairs of ours / raw CPU time - 1)."""
    pairs: dict[tuple[str, str], dict[int, dict[str, dict[str, str]]]] = {}
    for r in rows:
        pairs.setdefault((r["what"], r["variant"]), {}).setdefault(int(r["round"]), {})[
            r["side"]] = r
    out = {}
    for key, by_round in pairs.items():
        done = [p for p in by_round.values() if len(p) == 2]  # an interrupted pair: skipped
        if not done:
            continue
        rate = {side: median([int(p[side]["steps"]) / float(p[side]["seconds"]) for p in done])
                for side in ("raw", "ours")}
        ratio = median([float(p["ours"]["seconds"]) / float(p["raw"]["seconds"]) for p in done])
        out[key] = {"pairs": len(done), "steps": int(done[0]["raw"]["steps"]),
                    "raw": rate["raw"], "ours": rate["ours"], "overhead": 100 * (ratio - 1)}
    return out


def cell(rows: list[dict[str, str]]) -> str:
    """The result cell of speed.md's traffic row, a pure function of one run's rows."""
    if not rows:
        return "not rerun since the earlier figures, which had no raw timings, were removed"
    s = summary(rows)
    envs = [e for e in dict.fromkeys(r["what"] for r in rows)  # both variants timed
            if all((e, v) in s for v in VARIANTS.values())]
    parts = [f"{env.removeprefix('traffic/')}: ours {s[(env, VARIANTS[False])]['ours']:.0f} vs "
             f"raw {s[(env, VARIANTS[False])]['raw']:.0f} steps/s, overhead "
             f"{s[(env, VARIANTS[False])]['overhead']:+.1f}% "
             f"({s[(env, VARIANTS[True])]['overhead']:+.1f}% with per-agent info too)"
             for env in envs]
    pairs = " or ".join(map(str, sorted({v["pairs"] for v in s.values()})))
    steps = " or ".join(map(str, sorted({v["steps"] for v in s.values()})))
    return ("; ".join(parts) + f" (vs raw sumo-rl `SumoEnvironment`; median of {pairs} "
            f"interleaved pairs' CPU-time ratios, {steps} steps per run; run {rows[0]['run']}, "
            f"load {load_range(rows)}; raw rows `{NAME}.csv`)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="+",
                        default=["traffic/single-intersection", "traffic/2x2grid"])
    parser.add_argument("--seconds", type=int, default=3600, help="simulated seconds per run")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    add_run_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the rows' `threads` column; SUMO itself is single-threaded

    def measure_all(run: str) -> None:
        for env_id in args.ids:
            for same_info in VARIANTS:
                measure(env_id, args.seconds, args.repeats, args.seed, same_info, run)

    time_and_publish(NAME, args, measure_all, cell)


if __name__ == "__main__":
    main()
