"""Random-action env steps/s of our adapters vs the raw envs they wrap, in one run.

    python experiments/perf/env_speed_mpe_maze.py [--steps 5000] [--rounds 5]
    python experiments/perf/env_speed_mpe_maze.py --from-csv   # only rebuild the speed.md cell

Pairs (one id per family): `mpe/simple_spread` vs mpe2's `simple_spread_v3.parallel_env()`,
`maze/PointMaze_UMaze-v3` vs `gymnasium.make("PointMaze_UMaze-v3")` (flattened and not), and
`hybrid/platform` / `hybrid/goal` as `robustrl.envs.make` returns them vs the bare env
classes (our own domains: what is measured is the registry's factor wrapper).

Both sides get the same pre-drawn random actions from the same seed and are stepped in
lockstep, one step each in turn, every step timed on its own. Interleaving step by step makes
the comparison fair on a busy, shared machine (load changes hit both sides alike), where
timing long runs one after the other swings by +-15%. Resets at episode ends are not timed.
The timed steps are split into `--rounds` rounds; each side's round is one row of
results/env_speed_mpe_maze.csv (steps, summed step time, median step time, date and load:
timings.py), appended as the round finishes. The overhead is the median over the rounds of
ours / raw median step time - 1, steps/s 1e9 / the median of the rounds' median step ns; the
result cell of this script's row in results/speed.md is rebuilt from the CSV alone (`cell`,
the latest run unless `--run`), which experiments/check_results.py recomputes. The budget:
adapters add <= 10%.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from timings import add_run_arguments, load_range, median, record, time_and_publish

from robustrl import envs


def _stepper(env: Any, parallel: bool) -> Callable[[Any], int]:
    """A function that steps `env` once (resetting first if the episode ended) -> ns taken."""
    env.reset(seed=0)
    clock = time.perf_counter_ns
    done = [False]

    def step(action: Any) -> int:
        if parallel:
            if not env.agents:
                env.reset()
            start = clock()
            env.step(action)
            return clock() - start
        if done[0]:
            env.reset()
        start = clock()
        _, _, terminated, truncated, _ = env.step(action)
        elapsed = clock() - start
        done[0] = terminated or truncated
        return elapsed

    return step


NAME = "env_speed_mpe_maze"


def compare(name: str, raw: Any, ours: Any, actions: list[Any], steps: int, rounds: int,
            run: str, parallel: bool = False) -> None:
    """Step both envs in lockstep through `actions` (cycled), `steps` per side split into
    `rounds` rounds; each side's round is a row."""
    step_raw, step_ours = _stepper(raw, parallel), _stepper(ours, parallel)
    for action in actions[:100]:  # warm-up
        step_raw(action)
        step_ours(action)
    per_round = steps // rounds
    for r in range(rounds):
        raw_ns, our_ns = [], []
        for i in range(r * per_round, (r + 1) * per_round):
            action = actions[i % len(actions)]
            if i % 2:  # alternate who goes first
                our_ns.append(step_ours(action))
                raw_ns.append(step_raw(action))
            else:
                raw_ns.append(step_raw(action))
                our_ns.append(step_ours(action))
        for side, ns in (("raw", raw_ns), ("ours", our_ns)):
            record(NAME, name, side, r, len(ns), sum(ns) / 1e9,
                   median_step_ns=f"{np.median(ns):.1f}", run=run)
        print(f"{name} round {r}: raw {np.median(raw_ns):.0f} ns, ours {np.median(our_ns):.0f} "
              "ns per step (median)", flush=True)


def summary(rows: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    """Per env: rounds, steps per round, steps/s of each side (1e9 / the median of its rounds'
    median step ns) and the overhead in % (median over rounds of ours / raw - 1)."""
    rounds: dict[str, dict[int, dict[str, float]]] = {}
    steps: dict[str, set[int]] = {}
    for r in rows:
        rounds.setdefault(r["what"], {}).setdefault(int(r["round"]), {})[r["side"]] = float(
            r["median_step_ns"])
        steps.setdefault(r["what"], set()).add(int(r["steps"]))
    out = {}
    for env, by_round in rounds.items():
        done = [x for x in by_round.values() if len(x) == 2]  # an interrupted round: skipped
        if done:
            out[env] = {"rounds": len(done), "steps": max(steps[env]),
                        "raw": 1e9 / median([x["raw"] for x in done]),
                        "ours": 1e9 / median([x["ours"] for x in done]),
                        "overhead": 100 * (median([x["ours"] / x["raw"] for x in done]) - 1)}
    return out


def cell(rows: list[dict[str, str]]) -> str:
    """The result cell of speed.md's adapters row, a pure function of one run's rows."""
    if not rows:
        return "not rerun since the earlier figures, which had no raw timings, were removed"
    s = summary(rows)
    parts = [f"{env} {v['overhead']:+.1f}% (ours {v['ours']:.0f} vs raw {v['raw']:.0f} steps/s)"
             for env, v in s.items()]
    n_rounds = " or ".join(map(str, sorted({v["rounds"] for v in s.values()})))
    steps = " or ".join(map(str, sorted({v["steps"] for v in s.values()})))
    return ("; ".join(parts) + " overhead vs the raw env (mpe2 `parallel_env`, `gymnasium.make`, "
            f"the bare Platform/Goal classes; median over {n_rounds} rounds of the ratio of "
            f"median step times, {steps} lockstep steps per side and round; run {rows[0]['run']}, "
            f"load {load_range(rows)}; raw rows `{NAME}.csv`)")


def measure(steps: int, rounds: int, run: str) -> None:
    rng = np.random.default_rng(0)
    from mpe2 import simple_spread_v3

    raw_mpe = simple_spread_v3.parallel_env()
    actions = [{a: int(rng.integers(5)) for a in raw_mpe.possible_agents} for _ in range(1000)]
    compare("mpe/simple_spread", raw_mpe, envs.make("mpe/simple_spread"), actions, steps, rounds,
            run, parallel=True)

    import robustrl.envs.maze  # noqa: F401  (registers the mazes with Gymnasium, quietly)

    actions = list(rng.uniform(-1, 1, (1000, 2)).astype(np.float32))
    for flatten in (False, True):
        compare(f"maze/PointMaze_UMaze-v3{' flatten=True' if flatten else ''}",
                gym.make("PointMaze_UMaze-v3"),
                envs.make("maze/PointMaze_UMaze-v3", flatten=flatten), actions, steps, rounds,
                run)

    from robustrl.envs.goal import GoalEnv
    from robustrl.envs.platform import PlatformEnv

    for env_id, cls in (("hybrid/platform", PlatformEnv), ("hybrid/goal", GoalEnv)):
        raw = cls()
        raw.action_space.seed(0)
        actions = [raw.action_space.sample() for _ in range(1000)]
        compare(env_id, raw, envs.make(env_id), actions, steps, rounds, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="timed steps per side and env")
    parser.add_argument("--rounds", type=int, default=5, help="rounds the steps are split into")
    add_run_arguments(parser)
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < args.rounds:
        parser.error("need --rounds >= 1 and --steps >= --rounds")
    torch.set_num_threads(1)
    time_and_publish(NAME, args, lambda run: measure(args.steps, args.rounds, run), cell)


if __name__ == "__main__":
    main()
