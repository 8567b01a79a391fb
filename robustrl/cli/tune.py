"""`robustrl tune SPEC.toml [--workers N] [--backend local|ray] [--out DIR]`: Optuna search."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Tune an agent's hyperparameters with Optuna (TPE, median pruning on intermediate "
        "evaluation returns) at a fixed budget per trial; the objective is the clean return "
        "or the IQM of returns under listed perturbations. The study is stored in SQLite: "
        "rerun the same command to resume a killed run. Writes best.toml (an "
        "agents/<algo>.toml section) and best_set.txt (a --set line). Needs "
        "pip install 'robustrl[tune]'; the spec schema is in robustrl/bench/tune_spec.py.")
    parser.add_argument("spec", metavar="SPEC.toml", help="tuning spec, e.g. "
                        "experiments/tuning/cartpole_ppo_smoke.toml")
    parser.add_argument("--workers", type=int, default=1,
                        help="trials run in parallel (processes sharing the study; default 1)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: this process or --workers processes; ray: trials as Ray "
                        "tasks, --workers at a time (no shared file system needed)")
    parser.add_argument("--address", help="Ray cluster to join, e.g. auto (default: start "
                        "Ray locally)")
    parser.add_argument("--out", help="folder of the study, trial runs and outputs (default: "
                        "the spec's `out`, else runs/tune/<name>)")


def run(args: argparse.Namespace) -> int:
    from robustrl.bench.tune import run_tune

    for summary in run_tune(args.spec, workers=args.workers, out=args.out,
                            backend=args.backend, address=args.address):
        print(f"{summary.out}: {summary.finished} trials finished ({summary.failed} failed or "
              f"interrupted); best value {summary.best_value:.4g}")
        print(summary.agents_toml)
        print(summary.set_line)
        print(f"wrote best.toml, best_set.txt, trials.csv in {summary.out}\n")
    return 0
