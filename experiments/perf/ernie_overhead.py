"""Training-time overhead of ERNIE's regularizer: the same learner with and without it.

    python experiments/perf/ernie_overhead.py --repeats 3          # time, then write the table
    python experiments/perf/ernie_overhead.py --from-csv           # the table from the CSV only

For each learner (hyperparameters from agents/<name>.toml for the env, same seed and budget)
three variants run in one process, interleaved over `--repeats` rounds so that load on a shared
machine hits them alike: no regularizer, ERNIE with K = 1 (plain: delta* detached), and ERNIE
with K = 1 and the Stackelberg gradient (unrolled ascent, double backward). The regularized
network is the actor (`robust.target = actor`, the default).

Raw data: one row per timed `learn(steps)` run (learner, env, env steps, variant, repeat index,
wall s, seconds inside the update, torch threads, cores, load average at its start and end,
date, git commit) in `results/ernie_overhead.csv`, written atomically as each run finishes; a
rerun skips the (learner, variant, repeat) rows already there. The Markdown table is a pure
function of that CSV (`render`): per (learner, variant) the median wall time and update time
over the repeats and their ratios to the median of the same learner without the regularizer.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSV = HERE / "results" / "ernie_overhead.csv"
MD = HERE / "results" / "ernie_overhead.md"

# name, env id, env kwargs, env steps, config overrides (small budgets: a few thousand steps)
CASES = {
    "ppo": ("mujoco/HalfCheetah-v5", {}, 4096, {}),
    "mappo": ("mpe/simple_spread", {"N": 3, "max_cycles": 25}, 4000, {}),
    "sac": ("gym/Pendulum-v1", {}, 2000, {"learning_starts": 1000}),
    "maddpg": ("mpe/simple_spread", {"N": 3, "max_cycles": 25}, 4000,
               {"learning_starts": 1000}),
    "idqn": ("mpe/simple_spread", {"N": 3, "max_cycles": 25}, 3000, {"learning_starts": 1000}),
}
VARIANTS = {
    "none": {},
    "ernie K=1": {"robust.method": "ernie", "robust.steps": 1},
    "ernie K=1 stackelberg": {"robust.method": "ernie", "robust.steps": 1,
                              "robust.stackelberg": True},
}
# What the working tree held beyond the commit when rows marked +dirty were timed (checked
# with git status at the time), so that the table can say so.
DIRTY_NOTES = {
    "784658f+dirty": "only ernie_overhead.csv and ernie_overhead.md, which this script writes "
                     "(it counted its own output as a change until the next commit)",
}
FIELDS = ["learner", "env", "env_steps", "variant", "repeat", "wall_s", "update_s",
          "torch_threads", "cores", "load_start", "load_end", "date", "commit", "python",
          "torch"]


def run_once(name: str, variant: dict, seed: int = 0) -> tuple[float, float]:
    """(wall seconds of learn, seconds inside update) for one fresh agent."""
    from robustrl.agents import make_agent

    env_id, env_kwargs, steps, overrides = CASES[name]
    agent = make_agent(name, env_id, seed=seed, env_kwargs=env_kwargs, **overrides, **variant)
    inside = [0.0]
    update = agent.update

    def timed(*args):
        t = time.perf_counter()
        out = update(*args)
        inside[0] += time.perf_counter() - t
        return out

    agent.update = timed
    start = time.perf_counter()
    agent.learn(steps)
    wall = time.perf_counter() - start
    getattr(agent, "close", lambda: None)()
    return wall, inside[0]


def read_rows(path: Path = CSV) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict) -> None:
    """Rewrite the CSV with `row` added, atomically (an interrupted write loses nothing)."""
    from robustrl.core.io import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(read_rows(path))
    writer.writerow(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"],
                               cwd=HERE, capture_output=True, text=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(agents: list[str], repeats: int, path: Path = CSV) -> None:
    import torch

    torch.set_num_threads(1)
    done = {(r["learner"], r["variant"], int(r["repeat"])) for r in read_rows(path)}
    commit = _commit()
    for name in agents:
        env_id, _, steps, _ = CASES[name]
        for repeat in range(repeats):
            for label, variant in VARIANTS.items():
                if (name, label, repeat) in done:
                    continue
                load_start = os.getloadavg()[0]
                wall, update = run_once(name, variant)
                row = {"learner": name, "env": env_id, "env_steps": steps, "variant": label,
                       "repeat": repeat, "wall_s": f"{wall:.4f}", "update_s": f"{update:.4f}",
                       "torch_threads": torch.get_num_threads(), "cores": os.cpu_count(),
                       "load_start": f"{load_start:.2f}",
                       "load_end": f"{os.getloadavg()[0]:.2f}",
                       "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "commit": commit, "python": platform.python_version(),
                       "torch": torch.__version__}
                append_row(path, row)
                print(",".join(str(row[f]) for f in FIELDS), flush=True)


def summary(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, float]]:
    """Per (learner, variant): repeats, median wall and update seconds, their ratios to the
    same learner's `none` medians."""
    runs: dict[tuple[str, str], list[dict[str, str]]] = {}
    for r in rows:
        runs.setdefault((r["learner"], r["variant"]), []).append(r)
    out = {}
    for (name, label), rs in runs.items():
        wall = statistics.median(float(r["wall_s"]) for r in rs)
        update = statistics.median(float(r["update_s"]) for r in rs)
        base = runs[(name, "none")]
        out[(name, label)] = {
            "n": len(rs), "wall": wall, "update": update,
            "wall_ratio": wall / statistics.median(float(r["wall_s"]) for r in base),
            "update_ratio": update / statistics.median(float(r["update_s"]) for r in base)}
    return out


def render(rows: list[dict[str, str]]) -> str:
    """The Markdown table, a pure function of the CSV rows."""
    stats = summary(rows)
    learners = [n for n in CASES if any(r["learner"] == n for r in rows)]
    repeats = sorted({s["n"] for s in stats.values()})
    loads = [float(r[k]) for r in rows for k in ("load_start", "load_end")]
    dates = sorted(r["date"] for r in rows)
    one = rows[0]
    n_text = " or ".join(str(n) for n in repeats)
    by_commit: dict[str, set[int]] = {}
    for r in rows:
        by_commit.setdefault(r["commit"], set()).add(int(r["repeat"]))
    commits = "; ".join(
        f"{c} (repeat{'s' if len(rep) > 1 else ''} {', '.join(map(str, sorted(rep)))}"
        + (f": uncommitted changes were {DIRTY_NOTES[c]}" if c in DIRTY_NOTES else "") + ")"
        for c, rep in sorted(by_commit.items(), key=lambda kv: min(kv[1])))
    table = []
    for name in learners:
        env_id, _, steps, _ = CASES[name]
        for label in VARIANTS:
            s = stats[(name, label)]
            table.append(f"| {name} | {env_id} | {steps} | {label} | {s['wall']:.2f} | "
                         f"{s['wall_ratio']:.2f}x | {s['update']:.2f} | "
                         f"{s['update_ratio']:.2f}x |")
    agents = "" if learners == list(CASES) else f" --agents {','.join(learners)}"
    lines = [
        "# ERNIE training-time overhead",
        "",
        f"Median of {n_text} interleaved runs per (learner, variant); no ± is given, every "
        "run is a row of `ernie_overhead.csv`. Seconds of wall time of `learn(env steps)` "
        "and of the time inside the update; ratio = that median / the same learner's median "
        f"without the regularizer. Torch threads {one['torch_threads']}, {one['cores']} cores, "
        f"Python {one['python']}, torch {one['torch']}, {dates[0]} to {dates[-1]} (UTC); "
        f"code at commit {commits}. "
        f"The machine was shared with other jobs: 1-minute load average {min(loads):.2f} to "
        f"{max(loads):.2f} at the start and end of the runs, on {one['cores']} cores, so the "
        "seconds are inflated and noisy; the ratios (variants interleaved, so the load hits "
        "them alike) are the meaningful numbers. Sum of the timed `learn` calls: "
        f"{sum(float(r['wall_s']) for r in rows) / 60:.1f} min. Regularized network: the "
        "actor; eps = 0.1 (linf), hyperparameters from agents/<name>.toml, seed 0.",
        "",
        f"    python experiments/perf/ernie_overhead.py --repeats {max(repeats)}{agents}",
        "",
        "(writes one row per run to `ernie_overhead.csv` as it finishes, skipping rows "
        "already there, then this file from the CSV; `--from-csv` only rewrites this file.)",
        "",
        "| learner | env | env steps | variant | wall s | wall ratio | update s | update ratio |",
        "|---|---|---|---|---|---|---|---|",
        *table,
        "",
        "Target <= 1.5x wall time for K = 1 (plain): "
        + ", ".join(f"{n} {stats[(n, 'ernie K=1')]['wall_ratio']:.2f}x "
                    f"{'met' if stats[(n, 'ernie K=1')]['wall_ratio'] <= 1.5 else 'MISSED'}"
                    for n in learners) + ".",
        "",
        "Where the cost comes from: plain K = 1 adds, per gradient step, one forward pass and one "
        "input-gradient backward pass (the ascent step) plus one forward and backward pass at "
        "s + delta* of the regularized network (the loss's clean forward pass is reused; sac "
        "recomputes it). Stackelberg adds the double backward through the ascent step. Where "
        "env stepping dominates (ppo, mappo) the wall ratio is well below the update ratio; "
        "off-policy learners with a gradient step per env step pay close to the update ratio.",
    ]
    missing = [n for n in CASES if n not in learners]
    if missing:
        lines += ["", f"Not measured in this table: {', '.join(missing)} (same script, "
                  f"`--agents {','.join(missing)}`; not rerun in the session that wrote it)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default=",".join(CASES), help="comma-separated learners")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--csv", type=Path, default=CSV, help="raw rows, one per timed run")
    parser.add_argument("--out", type=Path, default=MD, help="the Markdown table")
    parser.add_argument("--from-csv", action="store_true",
                        help="only rebuild the table from the CSV (no timing)")
    args = parser.parse_args()
    if not args.from_csv:
        measure(args.agents.split(","), args.repeats, args.csv)
    text = render(read_rows(args.csv))
    print(text)
    from robustrl.core.io import atomic_write_text

    atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
