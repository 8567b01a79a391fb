"""Table of the RL-from-preferences benchmark (experiments/reward/rlhf_mujoco.toml).

Reads the suites' results databases (clean cells = true-reward returns of each trained
policy) and each run's metrics.csv (reward-model diagnostics at the end of training), and
writes results/rl_from_preferences.md and .png:

    robustrl bench experiments/reward/rlhf_mujoco.toml --workers 15
    robustrl bench experiments/heron/heron_mujoco.toml --workers 6
    python experiments/reward/rl_from_preferences.py runs/bench/rlhf_mujoco/results.sqlite \
        runs/bench/heron_mujoco/results.sqlite

Normalized return = true return of the policy trained on the learned reward ÷ true return of
PPO trained on the true reward with the same seed. `--runs DIR` finds run folders by name
when the databases were written on another machine.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
from common import RESULTS, md_table, mean_std, run, write

REFERENCE = "true reward"
DIAGNOSTICS = ("rm/query_accuracy", "rm/label_noise", "rm/outlier_precision",
               "rm/outlier_recall", "rm/pairs")


def last_metrics(run_dir: Path) -> dict[str, float]:
    """The last logged value of each reward-model diagnostic of a run."""
    out: dict[str, float] = {}
    path = run_dir / "metrics.csv"
    if not path.exists():
        return out
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.update({k: float(row[k]) for k in DIAGNOSTICS if row.get(k)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("db", nargs="+", help="results databases (e.g. rlhf_mujoco and heron_mujoco)")
    p.add_argument("--runs", nargs="*", default=[],
                   help="folders holding the run folders (default: the paths stored)")
    args = p.parse_args()
    cells = []
    for db in args.db:
        if not Path(db).is_file():  # connect() would create an empty database
            raise SystemExit(f"missing results database {db}: run `robustrl bench "
                             "experiments/reward/rlhf_mujoco.toml` (and heron_mujoco.toml) first")
        cells += sqlite3.connect(db).execute(
            "SELECT c.agent, c.seed, c.return_mean, r.run_dir, r.train_seconds "
            "FROM cells c JOIN runs r ON c.run = r.run WHERE c.perturbation = 'none'").fetchall()
    if not cells:
        raise SystemExit(f"{args.db} hold no clean evaluations")
    by_label: dict[str, dict[int, tuple[float, Path, float]]] = {}
    for label, seed, ret, run_dir, seconds in cells:
        path = next((Path(d) / Path(run_dir).name for d in args.runs
                     if (Path(d) / Path(run_dir).name).is_dir()), Path(run_dir))
        by_label.setdefault(label, {})[seed] = (ret, path, seconds)
    ref = by_label.get(REFERENCE, {})
    rows, normalized = [], {}
    for label, seeds in by_label.items():
        returns = [seeds[s][0] for s in sorted(seeds)]
        norm = [seeds[s][0] / ref[s][0] for s in sorted(seeds) if s in ref]
        normalized[label] = norm
        diag = [last_metrics(seeds[s][1]) for s in sorted(seeds)]

        def avg(key: str, d: list[dict[str, float]] = diag) -> str:
            vals = [m[key] for m in d if key in m]
            return f"{np.mean(vals):.2f}" if vals else "-"

        rows.append([label, len(seeds), mean_std(returns, 0), mean_std(norm, 2),
                     avg("rm/query_accuracy"), avg("rm/label_noise"),
                     avg("rm/outlier_precision"), avg("rm/outlier_recall"),
                     f"{np.mean([seeds[s][2] for s in seeds]) / 60:.1f}"])
    text = (
        "# PPO on learned rewards, HalfCheetah-v5: BT vs R3M under corrupted labels; HERON\n\n"
        f"Commands: `robustrl bench experiments/reward/rlhf_mujoco.toml` (and "
        f"`heron_mujoco.toml`), then "
        f"`python experiments/reward/{Path(__file__).name} {' '.join(sys.argv[1:])}` "
        f"({time.strftime('%Y-%m-%d')}). Settings: the suite files' comments.\n\n"
        + md_table(["labels → reward model", "seeds", "true return", "normalized return",
                    "RM accuracy (clean labels, unseen pairs)", "label noise",
                    "outlier precision", "outlier recall", "train min"], rows)
        + "\n\nRM accuracy: the reward model's agreement with the clean preference on each "
        "refresh's new query pairs before training on them (last refresh). Outlier precision "
        "/ recall: R3M's flagged pairs (δ > 0) against the pairs the labeler corrupted.\n\n"
        "![normalized return](rl_from_preferences.png)\n"
    )
    write("rl_from_preferences.md", text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [lbl for lbl in normalized if lbl != REFERENCE]
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(labels), 3.4))
    vals = [normalized[lbl] for lbl in labels]
    ax.bar(labels, [np.mean(v) for v in vals], yerr=[np.std(v) for v in vals], capsize=3,
           color=["tab:gray" if lbl.startswith("BT") else "tab:green" if lbl.startswith("R3M")
                  else "tab:blue" for lbl in labels])
    for k, v in enumerate(vals):
        ax.scatter([k] * len(v), v, color="black", s=8, zorder=3)
    ax.axhline(1.0, ls="--", color="gray")
    ax.set_ylabel("normalized true return")
    ax.set_title("PPO on a learned reward, HalfCheetah-v5", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "rl_from_preferences.png", dpi=120)


if __name__ == "__main__":
    run(main)
