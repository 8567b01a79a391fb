"""Random-action env steps/s of our adapters vs the raw envs they wrap, in one run.

    python experiments/perf/env_speed_mpe_maze.py [--steps 5000] [--json out.json]

Pairs (one id per family): `mpe/simple_spread` vs mpe2's `simple_spread_v3.parallel_env()`,
`maze/PointMaze_UMaze-v3` vs `gymnasium.make("PointMaze_UMaze-v3")` (flattened and not), and
`hybrid/platform` / `hybrid/goal` as `robustrl.envs.make` returns them vs the bare env
classes (our own domains: what is measured is the registry's factor wrapper).

Both sides get the same pre-drawn random actions from the same seed and are stepped in
lockstep, one step each in turn, every step timed on its own; steps/s come from the median
step time. Interleaving step by step makes the comparison fair on a busy, shared machine
(load changes hit both sides alike), where timing long runs one after the other swings by
+-15%. Resets at episode ends are not timed. The budget: adapters add <= 10%.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

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


def compare(name: str, raw: Any, ours: Any, actions: list[Any], steps: int,
            parallel: bool = False) -> dict[str, Any]:
    """Step both envs in lockstep through `actions` (cycled); compare median step times."""
    step_raw, step_ours = _stepper(raw, parallel), _stepper(ours, parallel)
    for action in actions[:100]:  # warm-up
        step_raw(action)
        step_ours(action)
    raw_ns, our_ns = [], []
    for i in range(steps):
        action = actions[i % len(actions)]
        if i % 2:  # alternate who goes first
            our_ns.append(step_ours(action))
            raw_ns.append(step_raw(action))
        else:
            raw_ns.append(step_raw(action))
            our_ns.append(step_ours(action))
    raw_med, our_med = float(np.median(raw_ns)), float(np.median(our_ns))
    return {"env": name, "raw_steps_per_s": round(1e9 / raw_med),
            "ours_steps_per_s": round(1e9 / our_med),
            "overhead_pct": round(100 * (our_med / raw_med - 1), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="timed steps per side and env")
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = []

    from mpe2 import simple_spread_v3

    raw_mpe = simple_spread_v3.parallel_env()
    actions = [{a: int(rng.integers(5)) for a in raw_mpe.possible_agents} for _ in range(1000)]
    results.append(compare("mpe/simple_spread", raw_mpe, envs.make("mpe/simple_spread"),
                           actions, args.steps, parallel=True))

    import robustrl.envs.maze  # noqa: F401  (registers the mazes with Gymnasium, quietly)

    actions = list(rng.uniform(-1, 1, (1000, 2)).astype(np.float32))
    for flatten in (False, True):
        results.append(compare(
            f"maze/PointMaze_UMaze-v3{' flatten=True' if flatten else ''}",
            gym.make("PointMaze_UMaze-v3"),
            envs.make("maze/PointMaze_UMaze-v3", flatten=flatten), actions, args.steps))

    from robustrl.envs.goal import GoalEnv
    from robustrl.envs.platform import PlatformEnv

    for env_id, cls in (("hybrid/platform", PlatformEnv), ("hybrid/goal", GoalEnv)):
        raw = cls()
        raw.action_space.seed(0)
        actions = [raw.action_space.sample() for _ in range(1000)]
        results.append(compare(env_id, raw, envs.make(env_id), actions, args.steps))

    print(f"{'env':36} {'raw steps/s':>12} {'ours steps/s':>13} {'overhead':>9}")
    for r in results:
        print(f"{r['env']:36} {r['raw_steps_per_s']:>12} {r['ours_steps_per_s']:>13} "
              f"{r['overhead_pct']:>8}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
