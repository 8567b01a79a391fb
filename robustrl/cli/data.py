"""Offline datasets from the command line.

  robustrl data generate maze/PointMaze_Medium-v3 --steps 1000000 --out medium.npz [--seed 0]
      the D4RL/Minari PointMaze recipe (planner + PD controller + noise), with the reference
      returns of the random policy and the planner-controller stored in the file
  robustrl data info FILE
      size, episodes, goals reached, reference returns and key shapes of a dataset
  robustrl train --agent iql --dataset FILE --steps N --out DIR
      offline training (iql, td3bc, awac, cql); evaluates in the dataset's env
  robustrl train --agent tdmpc --dataset FILE --steps N --out MANAGER_DIR
  robustrl train --agent iql --dataset FILE --steps N --out DIR --set run.manager=MANAGER_DIR
      the IQL-TD-MPC manager, then a worker on [observation, goal, intent]
"""

from __future__ import annotations

import argparse
from typing import Any

from robustrl.core.errors import RobustRLError

# Imports stay inside the functions: the parser is built on every `robustrl` call.


# ----------------------------------------------------------------------------- data
def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = sub.add_parser("generate", help="generate a PointMaze dataset (D4RL/Minari recipe)",
                       description="Generate a PointMaze dataset: Q-iteration waypoint planner, "
                       "PD controller, Gaussian action noise, a new goal when one is reached. "
                       "Writes a .npz with D4RL key names (robustrl.data.dataset).")
    p.add_argument("env", help="maze env id, e.g. maze/PointMaze_Medium-v3")
    p.add_argument("--steps", type=int, required=True, help="transitions to record")
    p.add_argument("--out", required=True, help="dataset file to write (.npz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe setting, e.g. noise=0.3, waypoint_speed=inf, ref_episodes=20")
    p = sub.add_parser("info", help="summarize a dataset file",
                       description="Print a dataset's size, episodes, reference returns and "
                       "array shapes (robustrl .npz, D4RL .hdf5, Minari folder).")
    p.add_argument("file")


def run_data(args: argparse.Namespace) -> int:
    if args.data_command == "generate":
        return _generate(args)
    return _info(args.file)


def _generate(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    from robustrl.core.config import parse_assignments, replace
    from robustrl.core.io import check_writable_dir
    from robustrl.data.generate import GenerateConfig, generate_dataset

    overrides = parse_assignments(args.set)
    for key, value in overrides.items():  # TOML writes infinity as `inf`; accept "inf" too
        if isinstance(value, str) and value.lower() in ("inf", "+inf"):
            overrides[key] = math.inf
    cfg = replace(GenerateConfig(steps=args.steps, seed=args.seed), overrides)
    check_writable_dir(Path(args.out).resolve().parent, "--out directory")
    if Path(args.out).is_dir():
        raise RobustRLError(f"--out {args.out} is a directory; name the .npz file to write")
    data = generate_dataset(args.env, cfg, out=args.out)
    m = data.metadata
    rate = len(data) / max(m["generation_seconds"], 1e-9)
    print(f"wrote {args.out}: {len(data)} steps ({rate:,.0f} steps/s), {m['num_episodes']} "
          f"episodes, {m['goals_reached']} goals reached; reference returns: random "
          f"{m['ref_min_score']:.1f}, planner {m['ref_max_score']:.1f} "
          f"({m['ref_episodes']} episodes)")
    return 0


def _info(path: str) -> int:
    from robustrl.data.dataset import load_dataset

    data = load_dataset(path)
    m = data.metadata
    print(f"{path}\n  env: {data.env_id or '-'}\n  transitions: {len(data)}\n"
          f"  episodes: {data.num_episodes}\n  goal-conditioned: {data.goals is not None}")
    if "goals_reached" in m:
        print(f"  goals reached: {m['goals_reached']}")
    if m.get("ref_min_score") is not None:
        print(f"  reference returns: random {m['ref_min_score']:.2f}, "
              f"expert {m['ref_max_score']:.2f}")
    arrays: dict[str, Any] = {"observations": data.observations, "actions": data.actions,
                              "rewards": data.rewards,
                              "next_observations": data.next_observations,
                              "terminals": data.terminals, "timeouts": data.timeouts,
                              **{f"infos/{k}": v for k, v in data.infos.items()}}
    for key, value in arrays.items():
        print(f"  {key:<22} {str(value.shape):<14} {value.dtype}")
    return 0


# ----------------------------------------------------------------------------- train
def wants_offline(args: argparse.Namespace) -> bool:
    """`robustrl train` goes offline: --dataset given, an offline agent, or an offline run."""
    from robustrl.agents import AGENTS, capabilities

    if getattr(args, "dataset", None) is not None:
        return True
    if args.agent in AGENTS and capabilities(args.agent).learning == "offline":
        return True
    if args.resume:
        from robustrl.train.offline import is_offline_run

        return is_offline_run(args.resume)
    return False


def train(args: argparse.Namespace) -> int:
    """`robustrl train --agent iql --dataset FILE --steps N --out DIR [--env ID] [--set k=v]`."""
    from robustrl.agents import AGENTS
    from robustrl.core.config import parse_assignments
    from robustrl.train.offline import offline_agents, train_offline, worker_names

    if args.resume:
        if args.agent or args.env or args.set or args.dataset:
            raise RobustRLError("--resume continues a run with its saved config; "
                                "drop --agent/--env/--set/--dataset")
        result = train_offline("", resume=True, out=args.resume)
        out = args.resume
    else:
        missing = [f"--{n}" for n in ("agent", "steps", "out") if getattr(args, n) is None]
        if missing:
            raise RobustRLError(f"train --dataset needs {', '.join(missing)}")
        from robustrl.core.io import check_writable_dir

        check_writable_dir(args.out, "--out")
        offline = offline_agents()
        if args.agent not in offline:
            raise RobustRLError(f"'{args.agent}' is not an offline agent; with --dataset "
                                f"choose one of: {', '.join(offline)}")
        if args.dataset is None:
            online = ", ".join(sorted(set(AGENTS) - set(offline)))
            raise RobustRLError(f"{args.agent} is an offline agent: add --dataset FILE (make one "
                                "with `robustrl data generate ENV --steps N --out FILE.npz`), "
                                f"or train with --env one of: {online}")
        for flag in ("reward", "labeler", "imports"):
            if getattr(args, flag, None):
                raise RobustRLError(f"--{flag.rstrip('s')} does not apply to offline training")
        if args.agent not in worker_names():  # the tdmpc manager
            from robustrl.train.manager import train_manager

            manager = train_manager(args.dataset, args.steps, out=args.out, seed=args.seed,
                                    overrides=parse_assignments(args.set))
            print(f"trained {manager.name} for {manager.num_updates} updates -> {args.out}; "
                  f"train a worker with --set run.manager={args.out}")
            return 0
        result = train_offline(args.dataset, args.agent, args.steps, out=args.out,
                               seed=args.seed, env=args.env,
                               overrides=parse_assignments(args.set))
        out = args.out
    e = result.evaluation
    score = f", normalized score {e['normalized_score']:.1f}" if "normalized_score" in e else ""
    print(f"trained {result.worker.name} for {result.worker.num_updates} updates -> {out}: "
          f"return {e['eval_return']:.1f}{score}, success {e['success']:.2f}")
    return 0
