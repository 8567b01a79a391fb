"""HERON on traffic-signal control: the same learner and budget on different rewards.

Every method trains `--agent` for `--steps` env steps per seed; only the reward differs:

- engineered: the env's reward (sumo-rl's diff-waiting-time);
- heron[-sSIGMA]: a BT reward model on HERON's hierarchical labels over the env's default
  ranking (queue, waiting time, delay, throughput, emergency stops, switches), σ per level;
- weighted-β: r = Σ_l β^(l−1)·sign_l·f_l / std_l over the same ranking (no model);
- rlhf: a BT reward model on oracle preferences over the summed, std-normalized factors.

Fixed-time (30 s greens) and max-pressure controllers are the non-learning references, run
by this script on the same env settings and evaluation seeds. Each policy is evaluated
greedily on held-out episodes (seeds `--eval-seed`, +1, ...); the metrics are sumo-rl's system
mean waiting time (s, averaged over decision steps), throughput (vehicles that finished their
trip) and the return of the env's (engineered) reward.

Raw data: one CSV row per evaluation episode (`TABLE.csv` beside `--table TABLE.md`),
written atomically as each run's evaluation finishes; a rerun skips the runs whose rows are
all there, does not retrain a run whose agent.pt exists under `--out`, and resumes an
interrupted one from its checkpoint. The table and plot are a pure function of the CSV
(`table_from_rows`; `experiments/check_results.py` recomputes them), and `--from-csv`
rebuilds them without running anything (a table file's text from its "## What it shows"
heading on is kept). Each training and each evaluation is a fresh process with one torch
thread; `--workers` runs that many at once. Example (the 2x2 grid table):

    python experiments/heron/traffic.py --env traffic/2x2grid --agent idqn --steps 3000 \\
        --seeds 0 1 2 --methods engineered heron weighted-0.3 rlhf --set env.num_seconds=1000 \\
        --set reward.first_refresh=500 --set reward.refresh_every=500 --episodes 2 \\
        --out runs/heron_traffic_2x2 --table experiments/heron/results/heron_traffic_2x2grid.md
    python experiments/heron/traffic.py --from-csv \\
        --table experiments/heron/results/heron_traffic_2x2grid.md
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.core.io import atomic_write_text

BETAS = (0.3, 0.5, 0.7, 1.0)
CONTROLLERS = ("fixed-time", "max-pressure")
FIELDS = ["env", "agent", "steps", "settings", "kind", "method", "seed", "episode",
          "episode_seed", "mean_waiting_time", "throughput", "mean_queue", "mean_return",
          "train_s", "train_cpu_s", "eval_s", "eval_cpu_s", "finished_utc", "load1", "cpus",
          "workers"]
CONFIG = ("env", "agent", "steps", "settings")  # one table's rows share these
NOTES = "## What it shows"  # text from this heading on is kept when the table is rewritten


def method_overrides(name: str) -> dict[str, Any]:
    """`--set` overrides of one method name (engineered, heron, heron-s0.5, weighted-0.3, rlhf)."""
    if name == "engineered":
        return {}
    if name == "heron":
        return {"reward.method": "heron"}
    if name.startswith("heron-s"):
        return {"reward.method": "heron", "heron.sigmas": [float(name[len("heron-s"):])]}
    if name.startswith("weighted-"):
        return {"reward.method": "weighted", "reward.beta": float(name[len("weighted-"):])}
    if name == "rlhf":
        return {"reward.method": "learned", "reward.true_reward": "factors",
                "reward.labeler": "oracle"}
    raise SystemExit(f"unknown method {name!r}")


def _cpu() -> float:
    """CPU seconds of this whole process so far (a job's process runs that job only, so this
    counts its imports and start too)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def train_one(agent: str, env: str, steps: int, seed: int, method: str, run_dir: str,
              extra: dict[str, Any]) -> tuple[float, float]:
    """Train one run (fresh process); returns (wall s of this call, CPU s of the process):
    a run finished or begun by an earlier invocation counts only this call's part."""
    from robustrl.train import build_run, train

    started = time.time()
    out = Path(run_dir)
    if not (out / "agent.pt").exists():
        overrides = {"run.tensorboard": False, "run.threads": 1, **method_overrides(method),
                     **extra}
        resume = (out / "config.toml").exists()
        train(build_run(agent, env, steps, seed, overrides), out, resume=resume,
              show_progress=False)
    return time.time() - started, _cpu()


def evaluate_one(env: str, policy: str, episodes: int, seed: int,
                 env_kwargs: dict[str, Any]) -> tuple[list[dict[str, float]], float, float]:
    """Episode by episode (seeds seed, seed+1, ...) in a fresh process: the greedy policy of
    the finished run in directory `policy`, or the controller named `policy`. Returns the
    per-episode metrics, this call's wall s and the process's CPU s."""
    import torch

    from robustrl.envs.traffic_baselines import evaluate_controller

    torch.set_num_threads(1)
    started = time.time()
    if policy in CONTROLLERS:
        controller: Any = policy
    else:
        from robustrl.train import load_run_agent

        agent = load_run_agent(policy)
        env, env_kwargs = agent.env_id, agent.env_kwargs

        def controller(_env: Any) -> Any:
            return agent.act

    rows = [evaluate_controller(env, controller, episodes=1, seed=seed + k, **env_kwargs)
            for k in range(episodes)]
    return rows, time.time() - started, _cpu()


# ---------------------------------------------------------------- raw rows (the CSV)

def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the CSV with `rows` added, atomically (an interrupted write loses nothing)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(read_rows(path))
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


def mean_std(values: list[float], digits: int = 2) -> str:
    """Mean ± sample std (ddof 1; 0 for one value)."""
    v = np.asarray(values, float)
    return f"{_fmt(v.mean(), digits)} ± {_fmt(v.std(ddof=1) if len(v) > 1 else 0.0, digits)}"


def per_seed(rows: list[dict[str, str]], method: str, field: str) -> dict[int, float]:
    """A learned method's per-seed means over its evaluation episodes, by seed."""
    cells: dict[int, list[float]] = {}
    for r in rows:
        if r["kind"] == "learned" and r["method"] == method:
            cells.setdefault(int(r["seed"]), []).append(float(r[field]))
    return {s: float(np.mean(v)) for s, v in sorted(cells.items())}


def controller_mean(rows: list[dict[str, str]], name: str, field: str) -> float:
    return float(np.mean([float(r[field]) for r in rows
                          if r["kind"] == "controller" and r["method"] == name]))


def _unique(values: Any) -> list[Any]:
    return list(dict.fromkeys(values))


def method_order(name: str) -> tuple[int, float]:
    """Table order: engineered, heron (then by σ), weighted (by β), rlhf, anything else."""
    for k, prefix in enumerate(("engineered", "heron", "heron-s", "weighted-", "rlhf")):
        if name == prefix or (prefix.endswith(("-", "-s")) and name.startswith(prefix)):
            rest = name[len(prefix):]
            return (k, float(rest) if rest else 0.0)
    return (9, 0.0)


def table_from_rows(rows: list[dict[str, str]], table: str) -> str:
    """The Markdown table (without the notes) of one CSV's rows; `table` is the .md path
    as given on the command line (for the command it quotes)."""
    config = _unique(tuple(r[k] for k in CONFIG) for r in rows)
    if len(config) != 1:
        raise SystemExit(f"the CSV holds {len(config)} settings {config}; one table needs one")
    env, agent, steps, settings = config[0]
    learned = [r for r in rows if r["kind"] == "learned"]
    methods = sorted(_unique(r["method"] for r in learned), key=method_order)
    seeds = sorted({int(r["seed"]) for r in learned})
    episodes = sorted({int(r["episode"]) for r in rows})
    eval_seed = min(int(r["episode_seed"]) - int(r["episode"]) for r in rows)
    runs = _unique((r["kind"], r["method"], r["seed"]) for r in rows)
    first = {run: next(r for r in rows if (r["kind"], r["method"], r["seed"]) == run)
             for run in runs}  # a run's times are on each of its episode rows
    cpu = sum(float(r["train_cpu_s"] or 0) + float(r["eval_cpu_s"]) for r in first.values())
    wall = sum(float(r["train_s"] or 0) + float(r["eval_s"]) for r in first.values())
    days = sorted({r["finished_utc"][:10] for r in rows})
    loads = [float(r["load1"]) for r in rows]
    cpus = sorted({r["cpus"] for r in rows})
    workers = max(int(r["workers"]) for r in rows)
    command = (f"python experiments/heron/traffic.py --env {env} --agent {agent} --steps {steps}"
               f" --seeds {' '.join(map(str, seeds))} --methods {' '.join(methods)}"
               + "".join(f" --set {s}" for s in settings.split()) +
               f" --episodes {len(episodes)} --eval-seed {eval_seed} --workers {workers}"
               f" --out runs/{Path(table).stem} --table {table}")
    ref = per_seed(rows, "engineered", "mean_waiting_time")
    ref_mean = float(np.mean(list(ref.values()))) if ref else float("nan")

    def change(x: float) -> str:
        return "–" if ref_mean != ref_mean else f"{(x - ref_mean) / ref_mean:+.0%}"

    lines = [
        f"# HERON vs engineered, weighted and RLHF rewards on {env}",
        "",
        f"Command: `{command}`  ",
        f"Rebuild this table and plot from the raw rows: `python experiments/heron/traffic.py "
        f"--from-csv --table {table}`; raw rows (one per evaluation episode): "
        f"`{Path(table).with_suffix('.csv').name}`.  ",
        f"{agent}, {steps} env steps per run, training seeds {', '.join(map(str, seeds))}; "
        f"greedy evaluation on {len(episodes)} held-out episodes (seeds {eval_seed}–"
        f"{eval_seed + len(episodes) - 1}), the same episodes for the controllers. "
        f"Run {' to '.join(_unique([days[0], days[-1]]))} (UTC), "
        + ("one run at a time" if workers == 1 else f"up to {workers} runs at once") +
        ", each training and evaluation a fresh process with 1 torch thread, on a "
        f"{'/'.join(cpus)}-core machine whose 1-min "
        f"load average was {min(loads):.1f}–{max(loads):.1f} during the runs (other jobs "
        f"shared it); summed run time {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU-min.",
        "",
        "Learned rows: mean ± sample std (ddof 1) over the training seeds of each seed's mean "
        "over the evaluation episodes; per seed: the waiting time of each seed in seed order. "
        "Controller rows: mean over the evaluation episodes (no training seed). Vs engineered: "
        "relative change of the mean waiting time against the engineered row's mean.",
        "",
        "| method | seeds | mean waiting time (s) ↓ | per seed (s) | vs engineered "
        "| throughput (veh) ↑ | engineered return |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        w = list(per_seed(rows, m, "mean_waiting_time").values())
        lines.append(
            f"| {m} | {len(w)} | {mean_std(w)} | {' / '.join(_fmt(x, 2) for x in w)} | "
            f"{change(float(np.mean(w)))} | "
            f"{mean_std(list(per_seed(rows, m, 'throughput').values()), 0)} | "
            f"{mean_std(list(per_seed(rows, m, 'mean_return').values()))} |")
    for name in _unique(r["method"] for r in rows if r["kind"] == "controller"):
        w = controller_mean(rows, name, "mean_waiting_time")
        lines.append(f"| {name} (controller) | – | {_fmt(w, 2)} | – | {change(w)} | "
                     f"{_fmt(controller_mean(rows, name, 'throughput'), 0)} | "
                     f"{_fmt(controller_mean(rows, name, 'mean_return'), 2)} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustrl.core.io import atomic_save_figure

    env, agent, steps, _ = next(tuple(r[k] for k in CONFIG) for r in rows)
    names = sorted(_unique(r["method"] for r in rows if r["kind"] == "learned"), key=method_order)
    waits = [list(per_seed(rows, n, "mean_waiting_time").values()) for n in names]
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * len(names), 3.6))
    ax.bar(names, [np.mean(w) for w in waits],
           yerr=[np.std(w, ddof=1) if len(w) > 1 else 0.0 for w in waits], capsize=3,
           color="tab:blue", alpha=0.8)
    for k, w in enumerate(waits):
        ax.scatter([k] * len(w), w, color="black", s=8, zorder=3)
    styles = iter(["--", ":"])
    for name in _unique(r["method"] for r in rows if r["kind"] == "controller"):
        w = controller_mean(rows, name, "mean_waiting_time")
        ax.axhline(w, ls=next(styles, "-."), color="gray", label=f"{name} ({w:.2f} s)")
    seeds = len({r["seed"] for r in rows if r["kind"] == "learned"})
    ax.set_ylabel("system mean waiting time (s)")
    ax.set_title(f"{env}: {agent}, {steps} steps; bars: mean ± sample std over {seeds} seeds",
                 fontsize=8)
    ax.set_yscale("log")
    ax.tick_params(axis="x", rotation=35)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)


def write_table(table: Path, table_arg: str, csv_path: Path) -> str:
    """Rewrite TABLE.md (keeping its notes from the NOTES heading on) and TABLE.png."""
    rows = read_rows(csv_path)
    if not rows:
        raise SystemExit(f"{csv_path} holds no rows")
    text = table_from_rows(rows, table_arg) + f"\n![waiting time]({table.stem}.png)\n"
    old = table.read_text() if table.exists() else ""
    if NOTES in old:
        text += "\n" + old[old.index(NOTES):]
    atomic_write_text(table, text)
    plot(rows, table.with_suffix(".png"))
    return text


# ---------------------------------------------------------------- running

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="traffic/single-intersection")
    p.add_argument("--agent", default="ppo")
    p.add_argument("--steps", type=int, default=30_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=[
        "engineered", "heron", *(f"weighted-{b}" for b in BETAS), "rlhf"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra overrides for every run (as robustrl train --set)")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--eval-seed", type=int, default=1000)
    p.add_argument("--workers", type=int, default=1, help="runs at once (one process each)")
    p.add_argument("--out", default="runs/heron_traffic", help="run directories")
    p.add_argument("--table", required=True,
                   help="the Markdown table; the raw rows go to the .csv beside it, the plot "
                        "to the .png")
    p.add_argument("--from-csv", action="store_true",
                   help="only rebuild the table and plot from the CSV beside --table")
    args = p.parse_args()
    table = Path(args.table)
    csv_path = table.with_suffix(".csv")
    if args.from_csv:
        print(write_table(table, args.table, csv_path))
        return
    from robustrl.core.config import parse_assignments

    extra = parse_assignments(args.set)
    env_kwargs = {k[len("env."):]: v for k, v in extra.items() if k.startswith("env.")}
    for m in args.methods:
        method_overrides(m)
    config = {"env": args.env, "agent": args.agent, "steps": str(args.steps),
              "settings": " ".join(args.set)}
    rows = read_rows(csv_path)
    if any(tuple(r[k] for k in CONFIG) != tuple(config.values()) for r in rows):
        raise SystemExit(f"{csv_path} holds rows of other settings; use another --table")
    have: dict[tuple[str, str, str], int] = {}
    for r in rows:
        key = (r["kind"], r["method"], r["seed"])
        have[key] = have.get(key, 0) + 1
    out = Path(args.out)
    todo = [("controller", n, "") for n in CONTROLLERS] + [
        ("learned", m, str(s)) for m in args.methods for s in args.seeds]
    todo = [t for t in todo if have.get(t, 0) < args.episodes]
    for t in todo:
        if have.get(t):
            raise SystemExit(f"{csv_path} has {have[t]} of {args.episodes} episodes of {t}; "
                             "remove that run's rows first")
    print(f"{len(todo)} runs to do ({csv_path})", flush=True)

    def evaluate(kind: str, m: str, s: str) -> tuple:
        policy = m if kind == "controller" else str(out / f"{m}_seed{s}")
        return (evaluate_one, args.env, policy, args.episodes, args.eval_seed, env_kwargs)

    ctx = get_context("spawn")  # libsumo: one simulation per process, so a fresh one each
    with ProcessPoolExecutor(args.workers, mp_context=ctx, max_tasks_per_child=1) as pool:
        queue = list(todo)
        ready: list[tuple[tuple, tuple[float, float]]] = [
            (t, (0.0, 0.0)) for t in queue if t[0] == "controller"]
        queue = [t for t in queue if t[0] == "learned"]
        flying: dict[Future, tuple[str, tuple, tuple[float, float]]] = {}
        while queue or ready or flying:
            while len(flying) < args.workers and (ready or queue):
                if ready:  # evaluations first: rows reach the CSV as each run finishes
                    t, trained = ready.pop(0)
                    fn, *job = evaluate(*t)
                    flying[pool.submit(fn, *job)] = ("eval", t, trained)
                else:
                    t = queue.pop(0)
                    job = (args.agent, args.env, args.steps, int(t[2]), t[1],
                           str(out / f"{t[1]}_seed{t[2]}"), extra)
                    flying[pool.submit(train_one, *job)] = ("train", t, (0.0, 0.0))
            done, _ = wait(list(flying), return_when=FIRST_COMPLETED)
            for f in done:
                what, t, trained = flying.pop(f)
                if what == "train":
                    ready.append((t, f.result()))
                    continue
                results, eval_s, eval_cpu = f.result()
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                new = [{**config, "kind": t[0], "method": t[1], "seed": t[2], "episode": k,
                        "episode_seed": args.eval_seed + k,
                        **{x: f"{r[x]:.6g}" for x in
                           ("mean_waiting_time", "throughput", "mean_queue", "mean_return")},
                        "train_s": f"{trained[0]:.1f}" if t[0] == "learned" else "",
                        "train_cpu_s": f"{trained[1]:.1f}" if t[0] == "learned" else "",
                        "eval_s": f"{eval_s:.1f}", "eval_cpu_s": f"{eval_cpu:.1f}",
                        "finished_utc": now, "load1": f"{os.getloadavg()[0]:.2f}",
                        "cpus": os.cpu_count(), "workers": args.workers}
                       for k, r in enumerate(results)]
                append_rows(csv_path, new)
                waits = ", ".join(f"{r['mean_waiting_time']:.3f}" for r in results)
                print(f"{t[1]} seed {t[2] or '-'}: waiting {waits} s; train "
                      f"{trained[0]:.0f} s wall / {trained[1]:.0f} s CPU, eval {eval_s:.0f} s",
                      flush=True)
    print(write_table(table, args.table, csv_path))


if __name__ == "__main__":
    main()
