"""The `robustrl` command: train | eval | envs | perturbations | agents | bench | tune | reward |
data | quickstart."""

from __future__ import annotations

import argparse
import json
import sys

from robustrl.cli.table import table
from robustrl.core.errors import RobustRLError


# ----------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from robustrl.cli import data as offline_cli

    if offline_cli.wants_offline(args):  # --dataset FILE: offline training (iql, td3bc, ...)
        return offline_cli.train(args)
    from robustrl.cli.budget import check_budget
    from robustrl.core.config import parse_assignments
    from robustrl.core.io import check_writable_dir
    from robustrl.train import build_run, resume, train

    if args.resume:
        if args.agent or args.env or args.set or args.imports or args.reward or args.labeler:
            raise RobustRLError("--resume continues a run with its saved config; "
                                "drop --agent/--env/--set/--import/--reward/--labeler")
        check_writable_dir(args.resume, "run directory")
        agent = resume(args.resume)
        out, notes = args.resume, []
    else:
        missing = [f"--{n}" for n in ("agent", "env", "steps", "out") if getattr(args, n) is None]
        if missing:
            raise RobustRLError(f"train needs {', '.join(missing)} (or --resume RUN_DIR)")
        overrides = parse_assignments(args.set)
        if args.imports:
            overrides["run.imports"] = args.imports
        if args.reward:
            overrides["reward.method"] = args.reward
        if args.labeler:
            overrides["reward.labeler"] = args.labeler
        check_writable_dir(args.out, "--out")
        # unknown ids and unsupported combinations fail here, before a run directory exists
        cfg = build_run(args.agent, args.env, args.steps, args.seed, overrides)
        notes = check_budget(cfg)
        agent = train(cfg, args.out)
        out = args.out
    print(f"trained {agent.name} for {agent.num_steps} steps -> {out}")
    for note in notes:
        print(note)
    return 0


# ----------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    from robustrl.train import evaluate_run, evaluate_sb3

    if args.sb3:  # an SB3 model file: no run directory, so the env is named
        if not args.env:
            raise RobustRLError("--sb3 needs --env ID, the env the model was trained on")
        if args.which != "final":
            raise RobustRLError("--which picks an agent of a run directory; an SB3 model file "
                                "holds one")
        result = evaluate_sb3(args.run_dir, args.sb3, args.env, args.episodes,
                              args.perturb or [], args.seed, video=args.video)
    elif args.env:
        raise RobustRLError("--env is for an SB3 model file (with --sb3 ALGO); a run directory "
                            "knows its env")
    else:
        result = evaluate_run(args.run_dir, args.episodes, args.perturb or [], args.seed,
                              which=args.which, video=args.video)
    if "note" in result:
        print(f"robustrl: note: {result['note']}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(table(
        ["run", "agent", "env", "perturbation", "episodes", "return", "length"],
        [[result["run"], result["agent"], result["env"], " ".join(result["perturbations"]) or
          "none", result["episodes"], f"{result['return_mean']:.2f} ± {result['return_std']:.2f}",
          f"{result['length_mean']:.1f} ± {result['length_std']:.1f}"]]))
    if args.video:
        print(f"videos -> {args.video}")
    return 0


# ----------------------------------------------------------------------------- envs
def cmd_envs(args: argparse.Namespace) -> int:
    from robustrl.cli import listing
    from robustrl.envs import list_envs
    from robustrl.train import import_user_modules

    import_user_modules(tuple(args.imports))

    if args.action == "show":
        if not args.id:
            raise RobustRLError("usage: robustrl envs show ID")
        print(listing.env_details(args.id))
        return 0
    if args.action == "check":
        return check_env(args.id)
    if args.action is not None:
        raise RobustRLError(f"unknown envs action '{args.action}'; use `robustrl envs show ID`")
    print(listing.envs_listing(list_envs(args.family)))
    print("\n`gym/<id>` also accepts any id in Gymnasium's registry; details: "
          "`robustrl envs show ID`.")
    return 0


def check_env(env_id: str | None) -> int:
    """`robustrl envs check ID`: one line per problem (exit 1), the checker's notes after."""
    from robustrl.envs import check_id

    if not env_id:
        raise RobustRLError("usage: robustrl envs check ID")
    result = check_id(env_id)
    for line in result.problems:
        print(f"{env_id}: problem: {line}")
    for line in result.notes:
        print(f"{env_id}: note: {line}")
    print(f"{env_id}: {len(result.problems)} problem(s)" if result.problems else f"{env_id}: ok")
    return 1 if result.problems else 0


# ----------------------------------------------------------------------------- perturbations
def cmd_perturbations(args: argparse.Namespace) -> int:
    from robustrl.cli.listing import perturbations_listing

    print(perturbations_listing())
    return 0


# ----------------------------------------------------------------------------- agents
AGENT_COLUMNS = {"agent": "agent", "agents": "agents", "learning": "learning",
                 "actions": "action spaces", "ernie": "ernie", "relabel": "relabel",
                 "learned reward": "reward"}
"""capability_rows() key -> column header; short, so the table fits 100 columns."""


def agents_table() -> str:
    """The registry's capability table, then each learner's one-line summary."""
    from robustrl.agents import capability_rows

    rows = capability_rows()
    flags = [[row[key].replace(", ", "/") for key in AGENT_COLUMNS] for row in rows]
    summaries = [[row["agent"], row["summary"]] for row in rows]
    return "\n\n".join([table(list(AGENT_COLUMNS.values()), flags),
                         table(["agent", "summary"], summaries)])


def cmd_agents(args: argparse.Namespace) -> int:
    print(agents_table())
    print("\nernie: accepts robust.method=ernie; relabel: a learned reward also rewrites its "
          "replay buffer;\nreward: accepts --reward learned/heron/weighted; gpu: accepts "
          "run.device=cuda.\nSB3 agents (pip install robustrl[sb3]): sb3:ppo, sb3:sac, "
          "sb3:td3, sb3:a2c, sb3:ddpg, sb3:dqn.")
    return 0


# ----------------------------------------------------------------------------- quickstart
def cmd_quickstart(args: argparse.Namespace) -> int:
    from robustrl.cli.quickstart import quickstart

    quickstart(args.out, steps=args.steps, episodes=args.episodes)
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser(reward_commands: bool = True) -> argparse.ArgumentParser:
    """The full parser; `reward_commands=False` skips importing the (torch-heavy) reward CLI."""
    from robustrl import __version__

    parser = argparse.ArgumentParser(
        prog="robustrl", description="Robust single- and multi-agent RL: train agents, "
        "evaluate them under perturbations, learn rewards from preferences.")
    parser.add_argument("--version", action="version", version=f"robustrl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train an agent into a run directory",
                       description="Train an agent; writes config.toml, metrics.csv, "
                       "TensorBoard events and atomic checkpoints into --out.")
    p.add_argument("--agent", help="algorithm: sac, ppo, hybrid_sac; multi-agent mappo, ippo, "
                   "maddpg, idqn, mfq; offline (with --dataset) iql, td3bc, awac, cql, tdmpc "
                   "(`robustrl agents` lists what each supports)")
    p.add_argument("--env", help="environment id (see `robustrl envs`)")
    p.add_argument("--steps", type=int, help="total environment steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting: agent hyperparameter (lr=1e-3), run.KEY or env.KEY")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--dataset", metavar="FILE", help="train offline from this dataset "
                   "(agents iql, td3bc, awac, cql, tdmpc; `robustrl data generate` makes one)")
    p.add_argument("--reward", choices=["none", "learned", "heron", "weighted"],
                   help="train on the env reward (none), a reward model learned from --labeler's "
                   "preferences, HERON's hierarchical preferences over the env's ranked factors, "
                   "or a weighted sum of them (reward.* / heron.* settings via --set)")
    p.add_argument("--labeler", metavar="SPEC",
                   help="preference labeler of --reward learned, e.g. oracle, flip:0.2, "
                   "irrational:0.5, boltzmann:1 (joined by '+')")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers your own envs); repeatable")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a trained run (optionally perturbed)",
                       description="Evaluate a run's agent (or an SB3 model file with --sb3) "
                       "deterministically; prints mean ± std return and episode length.")
    p.add_argument("run_dir", metavar="RUN", help="run directory, or an SB3 .zip with --sb3")
    p.add_argument("--which", choices=["final", "best"], default="final",
                   help="the final agent, or the best of the evaluations during training "
                   "(run.eval_every)")
    p.add_argument("--video", metavar="DIR", help="record every episode as mp4 into DIR "
                   "(headless MuJoCo: MUJOCO_GL=egl or osmesa)")
    p.add_argument("--sb3", metavar="ALGO", help="RUN is a Stable-Baselines3 model file of "
                   "this algorithm (ppo, sac, td3, a2c, ddpg, dqn); needs --env")
    p.add_argument("--env", help="with --sb3: the robustrl env id to evaluate on")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=10_000, help="seed of the first episode")
    p.add_argument("--perturb", action="append", metavar="SPEC",
                   help="perturbation spec, e.g. obs-gaussian:0.1 (repeatable; "
                   "`robustrl perturbations` lists every kind)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("envs", help="list environment ids, `envs show ID`, `envs check ID`",
                       description="List every registered environment id with its kind, "
                       "spaces and reward factors; `robustrl envs show ID` prints one spec; "
                       "`robustrl envs check ID` runs Gymnasium's env checker (PettingZoo's "
                       "parallel API test) and robustrl's checks, one line per problem.")
    p.add_argument("action", nargs="?", choices=["show", "check"])
    p.add_argument("id", nargs="?")
    p.add_argument("--family", help="only this family (mujoco, traffic, mpe, ...)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers your own envs); repeatable")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("perturbations", help="list the perturbation kinds, their ranges, options",
                       description="Every perturbation kind with what it does, the valid "
                       "range and units of its strength, and its options.")
    p.set_defaults(func=cmd_perturbations)

    p = sub.add_parser("agents", help="list the learners and what each supports",
                       description="Every registered learner with what it supports: single- "
                       "or multi-agent, on-/off-policy or offline, action spaces, ERNIE, "
                       "reward relabelling, learned rewards, GPU.")
    p.set_defaults(func=cmd_agents)

    p = sub.add_parser("quickstart", help="train PPO on a MuJoCo task, evaluate, table + plot",
                       description="The README's first command: trains PPO on "
                       "mujoco/InvertedPendulum-v5, evaluates it clean and perturbed, prints a "
                       "table and writes a plot.")
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--steps", type=int, default=80_000)
    p.add_argument("--episodes", type=int, default=10)
    p.set_defaults(func=cmd_quickstart)

    from robustrl.cli import bench as bench_cli

    p = sub.add_parser("bench", help="run a perturbation benchmark suite, or `bench report DB`",
                       description=bench_cli.__doc__)
    bench_cli.add_arguments(p)
    p.set_defaults(func=bench_cli.run)

    from robustrl.cli import tune as tune_cli

    p = sub.add_parser("tune", help="tune hyperparameters with Optuna (SPEC.toml)",
                       description=tune_cli.__doc__)
    tune_cli.add_arguments(p)
    p.set_defaults(func=tune_cli.run)

    from robustrl.cli import data as offline_cli

    p = sub.add_parser("data", help="generate or inspect offline datasets",
                       description=offline_cli.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    offline_cli.add_data_arguments(p)
    p.set_defaults(func=offline_cli.run_data)

    p = sub.add_parser("reward", help="train / evaluate preference reward models",
                       description="Preference-based reward models for text and RL segments.")
    if reward_commands:
        from robustrl.cli import reward as reward_cli

        reward_cli.add_arguments(p)
        p.set_defaults(func=reward_cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(reward_commands=bool(argv) and argv[0] == "reward")
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RobustRLError as e:
        print(f"robustrl: error: {e}", file=sys.stderr)
        return 2
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as e:
        # a file system that refuses a write: the path and the reason, not a traceback
        print(f"robustrl: error: cannot write {e.filename or ''}: {e.strerror}; choose a "
              "writable location", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robustrl: interrupted (finished checkpoints are kept; --resume continues)",
              file=sys.stderr)
        return 130
