"""HERON on traffic-signal control: the same learner and budget on different rewards.

Every method trains `--agent` for `--steps` env steps per seed; only the reward differs:

- engineered: the env's reward (sumo-rl's diff-waiting-time);
- heron[-sSIGMA]: a BT reward model on HERON's hierarchical labels over the env's default
  ranking (queue, waiting time, delay, throughput, emergency stops, switches), σ per level;
- weighted-β: r = Σ_l β^(l−1)·sign_l·f_l / std_l over the same ranking (no model);
- rlhf: a BT reward model on oracle preferences over the summed, std-normalized factors.

Fixed-time (30 s greens) and max-pressure controllers are the non-learning references. Each
policy is evaluated greedily on held-out seeds; the metrics are sumo-rl's system mean waiting
time (s, averaged over decision steps) and throughput (vehicles that finished their trip).

Resumable: a finished run (agent.pt) is not retrained, an interrupted one resumes from its
checkpoint, and a finished evaluation (eval.json) is not redone. Example:

    python experiments/heron/traffic.py --env traffic/single-intersection --steps 30000 \\
        --seeds 0 1 2 --out runs/heron_traffic --table experiments/heron/results/heron_traffic.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.core.io import atomic_write_text
from robustrl.core.progress import progress

BETAS = (0.3, 0.5, 0.7, 1.0)


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


def train_one(agent: str, env: str, steps: int, seed: int, method: str, run_dir: str,
              extra: dict[str, Any]) -> str:
    from robustrl.train import build_run, train

    out = Path(run_dir)
    if (out / "agent.pt").exists():
        return run_dir
    overrides = {"run.tensorboard": False, "run.threads": 1, **method_overrides(method), **extra}
    resume = (out / "config.toml").exists()
    train(build_run(agent, env, steps, seed, overrides), out, resume=resume)
    return run_dir


def evaluate_one(run_dir: str, episodes: int, seed: int) -> dict[str, float]:
    """Greedy policy of a finished run on `episodes` held-out seeds (fresh process)."""
    import torch

    from robustrl.envs.traffic_baselines import evaluate_controller
    from robustrl.train import load_run_agent

    torch.set_num_threads(1)
    path = Path(run_dir) / "eval.json"
    if path.exists():
        return json.loads(path.read_text())
    agent = load_run_agent(run_dir)
    result = evaluate_controller(agent.env_id, lambda env: (lambda obs: agent.act(obs)),
                                 episodes=episodes, seed=seed, **agent.env_kwargs)
    atomic_write_text(path, json.dumps(result))
    return result


def controller_one(env: str, name: str, episodes: int, seed: int,
                   env_kwargs: dict[str, Any]) -> dict[str, float]:
    from robustrl.envs.traffic_baselines import evaluate_controller

    return evaluate_controller(env, name, episodes=episodes, seed=seed, **env_kwargs)


def run_pool(fn: Any, jobs: list[tuple], workers: int, desc: str) -> list[Any]:
    """Each job in a fresh process (libsumo: one simulation per process)."""
    ctx = get_context("spawn")
    results: list[Any] = [None] * len(jobs)
    with ProcessPoolExecutor(workers, mp_context=ctx, max_tasks_per_child=1) as pool:
        futures = {pool.submit(fn, *job): k for k, job in enumerate(jobs)}
        bar = progress(len(jobs), desc=desc)
        for f in as_completed(futures):
            results[futures[f]] = f.result()
            bar.update(1)
        bar.close()
    return results


def fmt(values: list[float], digits: int = 2) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}"


def report(args: argparse.Namespace, rows: dict[str, list[dict[str, float]]],
           baselines: dict[str, dict[str, float]], seconds: float) -> str:
    ref = np.mean([r["mean_waiting_time"] for r in rows.get("engineered", [])] or [np.nan])
    lines = [
        f"# HERON vs engineered, weighted and RLHF rewards on {args.env}",
        "",
        "Command: `python experiments/heron/traffic.py " + " ".join(sys.argv[1:]) + "`  ",
        f"{args.agent}, {args.steps} env steps per run, seeds {args.seeds}; greedy evaluation "
        f"on {args.episodes} held-out episodes (seeds {args.eval_seed}+); {seconds / 60:.0f} min "
        "wall on this machine. Mean ± std over training seeds.",
        "",
        "| method | mean waiting time (s) ↓ | vs engineered | throughput (veh) ↑ "
        "| engineered return |",
        "|---|---|---|---|---|",
    ]
    for name, rs in rows.items():
        w = [r["mean_waiting_time"] for r in rs]
        change = (np.mean(w) - ref) / ref if ref == ref and ref else np.nan
        lines.append(f"| {name} | {fmt(w)} | {change:+.0%} | "
                     f"{fmt([r['throughput'] for r in rs], 0)} | "
                     f"{fmt([r['mean_return'] for r in rs])} |")
    for name, r in baselines.items():
        lines.append(f"| {name} (controller) | {r['mean_waiting_time']:.2f} | "
                     f"{(r['mean_waiting_time'] - ref) / ref:+.0%} | {r['throughput']:.0f} | "
                     f"{r['mean_return']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(rows: dict[str, list[dict[str, float]]], baselines: dict[str, dict[str, float]],
         path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    waits = [[r["mean_waiting_time"] for r in rows[n]] for n in names]
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(names), 3.6))
    ax.bar(names, [np.mean(w) for w in waits], yerr=[np.std(w) for w in waits], capsize=3,
           color="tab:blue", alpha=0.8)
    for k, w in enumerate(waits):
        ax.scatter([k] * len(w), w, color="black", s=8, zorder=3)
    styles = iter(["--", ":"])
    for name, r in baselines.items():
        ax.axhline(r["mean_waiting_time"], ls=next(styles, "-."), color="gray", label=name)
    ax.set_ylabel("system mean waiting time (s)")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", rotation=35)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="runs/heron_traffic")
    p.add_argument("--table", help="write the Markdown table here (and a .png beside it)")
    args = p.parse_args()
    from robustrl.core.config import parse_assignments

    extra = parse_assignments(args.set)
    env_kwargs = {k[len("env."):]: v for k, v in extra.items() if k.startswith("env.")}
    for m in args.methods:
        method_overrides(m)
    started = time.time()
    out = Path(args.out)
    runs = [(m, s, str(out / f"{m}_seed{s}")) for m in args.methods for s in args.seeds]
    run_pool(train_one, [(args.agent, args.env, args.steps, s, m, d, extra) for m, s, d in runs],
             args.workers, "train")
    evals = run_pool(evaluate_one, [(d, args.episodes, args.eval_seed) for _, _, d in runs],
                     args.workers, "evaluate")
    rows: dict[str, list[dict[str, float]]] = {}
    for (m, _, _), r in zip(runs, evals):
        rows.setdefault(m, []).append(r)
    names = ("fixed-time", "max-pressure")
    baselines = dict(zip(names, run_pool(
        controller_one, [(args.env, n, args.episodes, args.eval_seed, env_kwargs) for n in names],
        args.workers, "controllers")))
    text = report(args, rows, baselines, time.time() - started)
    print(text)
    if args.table:
        table = Path(args.table)
        atomic_write_text(table, text + f"\n![waiting time]({table.stem}.png)\n")
        plot(rows, baselines, table.with_suffix(".png"),
             f"{args.env}: {args.agent}, {args.steps} steps, {len(args.seeds)} seeds")


if __name__ == "__main__":
    main()
