"""Goal-conditioned IQL on generated PointMaze UMaze data vs a uniformly random policy.

Per seed s: generate a 20k-step UMaze dataset (D4RL/Minari recipe, data seed s, 10 reference
episodes), train IQL on it for 3000 updates (`train_offline`, hidden 128x128, agent seed s,
one torch thread), then play the greedy policy and a uniformly random policy (action-space
seed 1) on the evaluation env (`EVAL_ENV_KWARGS`: a reached goal stays) for 20 episodes,
seeds 10000-10019. These are the settings of `tests/offline/test_offline.py`'s learning test.
Normalized score = 100 * (return - ref_min) / (ref_max - ref_min) with the dataset's own
reference returns (random and planner controller, recorded in the dataset).

Every episode is one row of `results/umaze_iql.csv`, written (atomically) as soon as its
seed finishes; a rerun skips the seeds already there. The table `results/umaze_iql.md` is a
pure function of the CSV (`table`, also used by experiments/check_results.py):

    python experiments/offline/umaze_iql.py --seeds 0 1 2 3 4
    python experiments/offline/umaze_iql.py --from-csv     # rewrite the table only
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from robustrl.core.io import atomic_write_text

HERE = Path(__file__).resolve().parent
CSV = HERE / "results" / "umaze_iql.csv"
TABLE = HERE / "results" / "umaze_iql.md"
ENV = "maze/PointMaze_UMaze-v3"
DATA_STEPS, REF_EPISODES, UPDATES, HIDDEN = 20_000, 10, 3000, [128, 128]
EPISODES, EVAL_SEED, RANDOM_SEED = 20, 10_000, 1
FIELDS = ["seed", "policy", "episode_seed", "return", "success", "ref_min", "ref_max",
          "normalized_score", "data_steps", "updates", "run_wall_s", "run_cpu_s", "load_1min",
          "date", "git_commit", "torch", "gymnasium", "mujoco", "host"]
COMMAND = "python experiments/offline/umaze_iql.py --seeds 0 1 2 3 4"


def read_rows(path: Path = CSV) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_rows(rows: list[dict], path: Path = CSV) -> None:
    """The whole CSV through a temp file + rename: a kill mid-write leaves the old file."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def run_seed(seed: int) -> list[dict]:
    import torch

    from robustrl.core.provenance import provenance
    from robustrl.data.generate import (
        EVAL_ENV_KWARGS,
        GenerateConfig,
        generate_dataset,
        random_policy,
        rollout_returns,
    )
    from robustrl.envs import make
    from robustrl.train.offline import make_policy, train_offline

    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "umaze.npz"
        data = generate_dataset(ENV, GenerateConfig(steps=DATA_STEPS, seed=seed,
                                                    ref_episodes=REF_EPISODES),
                                out=path, show_progress=False)
        result = train_offline(path, "iql", steps=UPDATES, seed=seed, show_progress=False,
                               overrides={"hidden": HIDDEN, "run.eval_episodes": EPISODES,
                                          "run.eval_every": UPDATES})
    env = make(ENV, **EVAL_ENV_KWARGS)
    try:
        learned = rollout_returns(env, make_policy(result.worker, data.goals is not None),
                                  EPISODES, EVAL_SEED)
        rand = rollout_returns(env, random_policy(env, seed=RANDOM_SEED), EPISODES, EVAL_SEED)
    finally:
        env.close()
    # the per-episode replay must be the library's own evaluation of the same episodes
    assert np.isclose(np.mean(learned["returns"]), result.evaluation["eval_return"]), \
        (np.mean(learned["returns"]), result.evaluation)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    low, high = data.metadata["ref_min_score"], data.metadata["ref_max_score"]
    prov = provenance()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    rows = []
    for policy, res in (("iql", learned), ("random", rand)):
        for i, (ret, hit) in enumerate(zip(res["returns"], res["success"])):
            rows.append({"seed": seed, "policy": policy, "episode_seed": EVAL_SEED + i,
                         "return": repr(float(ret)), "success": int(bool(hit)),
                         "ref_min": repr(float(low)), "ref_max": repr(float(high)),
                         "normalized_score": repr(data.normalized_score(float(ret))),
                         "data_steps": DATA_STEPS, "updates": UPDATES,
                         "run_wall_s": f"{wall:.1f}", "run_cpu_s": f"{cpu:.1f}",
                         "load_1min": f"{load:.2f}", "date": date,
                         "git_commit": prov["git_commit"], "torch": prov["torch"],
                         "gymnasium": prov["gymnasium"], "mujoco": prov["mujoco"],
                         "host": platform.node()})
    return rows


def normalized(rows: list[dict[str, str]]) -> float:
    """A run's normalized score: of its mean return, with its dataset's references."""
    mean = float(np.mean([float(r["return"]) for r in rows]))
    low, high = float(rows[0]["ref_min"]), float(rows[0]["ref_max"])
    return 100.0 * (mean - low) / (high - low)


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def table(rows: list[dict[str, str]]) -> str:
    """The Markdown table: a pure function of the CSV rows."""
    seeds = sorted({int(r["seed"]) for r in rows})
    runs = {(s, p): [r for r in rows if int(r["seed"]) == s and r["policy"] == p]
            for s in seeds for p in ("iql", "random")}
    lines = ["| seed | IQL normalized score | IQL success | random normalized score | "
             "random success | ref random / planner return | wall s (CPU s) |",
             "|---|---|---|---|---|---|---|"]
    for s in seeds:
        iql, rand = runs[(s, "iql")], runs[(s, "random")]
        lines.append(
            f"| {s} | {normalized(iql):.1f} | {np.mean([int(r['success']) for r in iql]):.2f} | "
            f"{normalized(rand):.1f} | {np.mean([int(r['success']) for r in rand]):.2f} | "
            f"{float(iql[0]['ref_min']):.1f} / {float(iql[0]['ref_max']):.1f} | "
            f"{float(iql[0]['run_wall_s']):.0f} ({float(iql[0]['run_cpu_s']):.0f}) |")
    iql_scores = [normalized(runs[(s, "iql")]) for s in seeds]
    rand_scores = [normalized(runs[(s, "random")]) for s in seeds]
    lines.append(f"| mean ± std | {np.mean(iql_scores):.1f} ± {_std(iql_scores):.1f} | | "
                 f"{np.mean(rand_scores):.1f} ± {_std(rand_scores):.1f} | | | |")
    first = rows[0]
    dates = sorted({r["date"] for r in rows})
    loads = sorted(float(r["load_1min"]) for r in rows)
    commits = sorted({r["git_commit"] for r in rows})
    return "\n".join([
        "# Goal-conditioned IQL on generated PointMaze UMaze data",
        "",
        f"    {COMMAND}",
        "",
        f"Written by `experiments/offline/umaze_iql.py --from-csv` from `umaze_iql.csv` "
        f"({len(rows)} rows: one per evaluation episode); `experiments/check_results.py` "
        "recomputes every number below from it.",
        "",
        f"Per seed s: a {int(first['data_steps']):,}-step dataset generated with data seed s "
        f"({REF_EPISODES} reference episodes), IQL trained for {int(first['updates']):,} "
        "updates (hidden 128x128, agent seed s, default IQL settings), then "
        f"{EPISODES} greedy evaluation episodes (seeds {EVAL_SEED}-{EVAL_SEED + EPISODES - 1}) "
        "on the evaluation env (a reached goal stays, so the return counts steps at the goal); "
        f"the random policy samples uniform actions (action-space seed {RANDOM_SEED}) on the "
        "same episode seeds. Normalized score = 100 × (mean return − ref random) / (ref planner "
        "− ref random), with the references recorded in that seed's dataset (their own 10 "
        "episodes, random policy seeded by the data seed, so 'random' here is not exactly 0). "
        "Success = fraction of episodes that reached the goal.",
        "",
        *lines,
        "",
        f"± = sample std over the {len(seeds)} seeds (runs). Wall s / CPU s: one seed's data "
        "generation, training and evaluation (CPU s of the process). Date (UTC): "
        f"{dates[0]} to {dates[-1]}; machine: the shared 2-core dev box, one process, "
        "torch threads 1, "
        f"two long benchmark sweeps running meanwhile (1-min load average "
        f"{loads[0]:.2f}-{loads[-1]:.2f} at the start of a seed). CPU only. Commit "
        f"{', '.join(commits)}; torch {first['torch']}, gymnasium {first['gymnasium']}, "
        f"mujoco {first['mujoco']}.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--from-csv", action="store_true", help="only rewrite the table")
    args = parser.parse_args()
    if not args.from_csv:
        for seed in args.seeds:
            done = {int(r["seed"]) for r in read_rows()}
            if seed in done:
                print(f"seed {seed}: in {CSV.name}, skipped")
                continue
            rows = run_seed(seed)
            write_rows(read_rows() + rows)
            print(f"seed {seed}: IQL {normalized(rows[:EPISODES]):.1f}, "
                  f"random {normalized(rows[EPISODES:]):.1f}, {rows[0]['run_wall_s']} s")
    rows = read_rows()
    if rows:
        TABLE.write_text(table(rows))
        print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
