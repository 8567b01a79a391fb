"""Table of the RL-from-preferences benchmark (experiments/reward/rlhf_mujoco.toml).

Reads the suites' results databases (clean cells = true-reward returns of each trained
policy) and each run's metrics.csv (reward-model diagnostics at the end of training), writes
their raw rows into results/ and builds results/rl_from_preferences.md and .png from those
rows alone:

    robustrl bench experiments/reward/rlhf_mujoco.toml --workers 15
    robustrl bench experiments/heron/heron_mujoco.toml --workers 6
    python experiments/reward/rl_from_preferences.py runs/bench/rlhf_mujoco/results.sqlite \
        runs/bench/heron_mujoco/results.sqlite
    python experiments/reward/rl_from_preferences.py --table-only   # .md/.png from the CSVs

Raw rows: `rl_from_preferences_runs.csv` (one row per trained policy: label, seed, mean clean
true return, training seconds, the reward model's last diagnostics) and
`rl_from_preferences_episodes.csv` (every clean evaluation episode of those policies); the
runs' return is the mean of their episodes, and `experiments/check_results.py` recomputes
the table from them. Normalized return = true return of the policy trained on the learned
reward ÷ true return of PPO trained on the true reward with the same seed. `--runs DIR`
finds run folders by name when the databases were written on another machine.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
from pathlib import Path

import numpy as np
from common import RESULTS, RawRows, md_table, mean_std, read_rows, run, write

from robustrl.core.io import atomic_save_figure

REFERENCE = "true reward"
ORDER = (REFERENCE, "BT, flip 20%", "R3M, flip 20%", "BT, irrational", "R3M, irrational",
         "weighted, beta 0.5", "HERON")  # the suites' labels, table order (others after)
DIAGNOSTICS = ("rm/query_accuracy", "rm/label_noise", "rm/outlier_precision",
               "rm/outlier_recall", "rm/pairs")
RUN_FIELDS = ["label", "seed", "env", "run", "episodes", "return_mean", "train_seconds",
              "finished_at", *DIAGNOSTICS]
EPISODE_FIELDS = ["label", "seed", "run", "episode", "eval_seed", "return", "length"]
NAME = "rl_from_preferences"


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


def extract(dbs: list[str], run_folders: list[str]) -> None:
    """The raw rows of every clean evaluation in the databases, into results/*.csv."""
    cells, episodes = [], []
    for db in dbs:
        if not Path(db).is_file():  # connect() would create an empty database
            raise SystemExit(f"missing results database {db}: run `robustrl bench "
                             "experiments/reward/rlhf_mujoco.toml` (and heron_mujoco.toml) first")
        conn = sqlite3.connect(db)
        cells += conn.execute(
            "SELECT c.agent, c.seed, c.env, c.run, c.episodes, c.return_mean, r.run_dir, "
            "r.train_seconds, c.finished_at FROM cells c JOIN runs r ON c.run = r.run "
            "WHERE c.perturbation = 'none' ORDER BY c.agent, c.seed").fetchall()
        episodes += conn.execute(
            "SELECT agent, seed, run, episode, eval_seed, return, length FROM episodes "
            "WHERE perturbation = 'none' ORDER BY agent, seed, episode").fetchall()
        conn.close()
    if not cells:
        raise SystemExit(f"{dbs} hold no clean evaluations")
    runs = RawRows(f"{NAME}_runs", RUN_FIELDS)
    for label, seed, env, run_name, n, ret, run_dir, seconds, finished in cells:
        path = next((Path(d) / Path(run_dir).name for d in run_folders
                     if (Path(d) / Path(run_dir).name).is_dir()), Path(run_dir))
        runs.add({"label": label, "seed": seed, "env": env, "run": run_name, "episodes": n,
                  "return_mean": ret, "train_seconds": seconds, "finished_at": finished,
                  **last_metrics(path)})
    RawRows(f"{NAME}_episodes", EPISODE_FIELDS).add(
        dict(zip(EPISODE_FIELDS, e, strict=True)) for e in episodes)


def table(rows: list[dict[str, str]]) -> tuple[str, dict[str, list[float]]]:
    """The Markdown table (a pure function of the per-run rows) and each label's normalized
    returns, seed order."""
    by_label: dict[str, dict[int, dict[str, str]]] = {}
    rank = {label: i for i, label in enumerate(ORDER)}
    for r in sorted(rows, key=lambda r: rank.get(r["label"], len(ORDER))):  # stable
        by_label.setdefault(r["label"], {})[int(r["seed"])] = r
    ref = {s: float(r["return_mean"]) for s, r in by_label.get(REFERENCE, {}).items()}
    out, normalized = [], {}
    for label, seeds in by_label.items():
        order = sorted(seeds)
        returns = [float(seeds[s]["return_mean"]) for s in order]
        norm = [float(seeds[s]["return_mean"]) / ref[s] for s in order if s in ref]
        normalized[label] = norm

        def avg(key: str, order: list[int] = order, seeds: dict = seeds) -> str:
            vals = [float(seeds[s][key]) for s in order if seeds[s][key]]
            return f"{np.mean(vals):.2f}" if vals else "-"

        out.append([label, len(order), mean_std(returns, 0), mean_std(norm, 2),
                    avg("rm/query_accuracy"), avg("rm/label_noise"),
                    avg("rm/outlier_precision"), avg("rm/outlier_recall"),
                    f"{np.mean([float(seeds[s]['train_seconds']) for s in order]) / 60:.1f}"])
    return md_table(["labels → reward model", "seeds", "true return", "normalized return",
                     "RM accuracy (clean labels, unseen pairs)", "label noise",
                     "outlier precision", "outlier recall", "train min"], out), normalized


def plot(normalized: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [lbl for lbl in normalized if lbl != REFERENCE]
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(labels), 3.4))
    vals = [normalized[lbl] for lbl in labels]
    ax.bar(labels, [np.mean(v) for v in vals], yerr=[np.std(v, ddof=1) for v in vals],
           capsize=3, color=["tab:gray" if lbl.startswith("BT") else "tab:green"
                             if lbl.startswith("R3M") else "tab:blue" for lbl in labels])
    for k, v in enumerate(vals):
        ax.scatter([k] * len(v), v, color="black", s=8, zorder=3)
    ax.axhline(1.0, ls="--", color="gray")
    ax.set_ylabel("normalized true return (bar: mean ± sample std)")
    ax.set_title("PPO on a learned reward, HalfCheetah-v5", fontsize=9)
    fig.tight_layout()
    atomic_save_figure(fig, RESULTS / f"{NAME}.png", dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("db", nargs="*", help="results databases (e.g. rlhf_mujoco and heron_mujoco)")
    p.add_argument("--runs", nargs="*", default=[],
                   help="folders holding the run folders (default: the paths stored)")
    p.add_argument("--table-only", action="store_true",
                   help="only rebuild the .md and .png from the committed CSVs")
    args = p.parse_args()
    if args.table_only == bool(args.db):
        p.error("give the results databases, or --table-only (not both)")
    if args.db:
        extract(args.db, args.runs)
    rows = read_rows(f"{NAME}_runs")
    text, normalized = table(rows)
    evaluated = max(r["finished_at"] for r in rows)[:10]
    write(f"{NAME}.md", (
        "# PPO on learned rewards, HalfCheetah-v5: BT vs R3M under corrupted labels; HERON\n\n"
        "Commands: `robustrl bench experiments/reward/rlhf_mujoco.toml` (and "
        "`experiments/heron/heron_mujoco.toml`), then `python experiments/reward/"
        f"{NAME}.py runs/bench/rlhf_mujoco/results.sqlite "
        f"runs/bench/heron_mujoco/results.sqlite` (last evaluation {evaluated}). "
        "Settings: the suite files' comments.  \n"
        f"Raw rows: `{NAME}_runs.csv` (one row per trained policy) and "
        f"`{NAME}_episodes.csv` (its clean evaluation episodes); `experiments/check_results.py` "
        "recomputes every number below from them. ± = sample standard deviation (n − 1) over "
        "seeds; true return in the environment's reward units; train min = mean training "
        "minutes per run.\n\n"
        + text
        + "\n\nRM accuracy: the reward model's agreement with the clean preference on each "
        "refresh's new query pairs before training on them (last refresh). Outlier precision "
        "/ recall: R3M's flagged pairs (δ > 0) against the pairs the labeler corrupted.\n\n"
        f"![normalized return]({NAME}.png)\n"
    ))
    plot(normalized)


if __name__ == "__main__":
    run(main)
