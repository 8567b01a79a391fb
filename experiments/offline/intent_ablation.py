"""Workers with and without the IQL-TD-MPC manager's intent, and the ablation over k.

For each env and seed: generate a PointMaze dataset (D4RL/Minari recipe), train one manager
per k, train every worker alone and on [observation, goal, intent_k]; every run is evaluated
in the env (normalized score against the dataset's random and planner-controller returns).
Runs are independent jobs spread over `--jobs` processes. Each finished run appends its row
to `results.csv` at once, and a rerun with the same --out skips the rows already there, so
an interrupted sweep loses nothing. `table.md` (mean ± std over seeds) is written at the end.

The issue's claim to test (paper, antmaze): workers that fail alone (AWAC, TD3+BC, CQL
near 0) are lifted by the intent. Full budget (hours on a 2-core CPU):
    python experiments/offline/intent_ablation.py --envs maze/PointMaze_Medium-v3 \\
        --data-steps 1000000 --manager-steps 100000 --worker-steps 100000 --seeds 0 1 2
On a GPU machine, CQL and the managers gain most from the GPU; the small MLP workers are as
fast on one CPU core each:
    python experiments/offline/intent_ablation.py --device cuda --cpu-workers iql td3bc awac \\
        --jobs 16 ...
Smoke test (minutes):
    python experiments/offline/intent_ablation.py --envs maze/PointMaze_UMaze-v3 \\
        --data-steps 20000 --manager-steps 500 --worker-steps 1000 --ks 10 25 \\
        --agents iql td3bc --seeds 0 --hidden 128 128 --out /tmp/ablation
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import shutil
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

FIELDS = ["env", "agent", "intent_k", "seed", "normalized_score", "return", "success",
          "device", "seconds"]


def _name(env: str) -> str:
    return env.split("/")[-1]


def make_dataset(env: str, steps: int, seed: int, path: str) -> str:
    from robustrl.data.generate import GenerateConfig, generate_dataset

    if not Path(path).exists():
        generate_dataset(env, GenerateConfig(steps=steps, seed=seed), out=path,
                         show_progress=False)
    return path


def make_manager(data: str, steps: int, seed: int, k: int, out: str,
                 overrides: dict[str, Any]) -> str:
    import torch

    from robustrl.train.manager import train_manager

    torch.set_num_threads(1)
    if not (Path(out) / "manager.pt").exists():
        shutil.rmtree(out, ignore_errors=True)  # a manager cut off mid-training starts over
        train_manager(data, steps, out=out, seed=seed, show_progress=False,
                      overrides={"k": k, "run.tensorboard": False, **overrides})
    return out


def run_worker(data: str, agent: str, steps: int, seed: int, out: str,
               overrides: dict[str, Any]) -> dict[str, Any]:
    from robustrl.train.offline import train_offline

    start = time.perf_counter()
    resume = (Path(out) / "config.toml").exists()  # an interrupted run continues
    result = train_offline(data, agent, steps, seed=seed, out=out, overrides=overrides,
                           show_progress=False, resume=resume)
    e = result.evaluation
    return {"normalized_score": round(e["normalized_score"], 2),
            "return": round(e["eval_return"], 2), "success": e["success"],
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", "--env", nargs="+", default=["maze/PointMaze_Medium-v3"])
    p.add_argument("--data-steps", type=int, default=1_000_000)
    p.add_argument("--manager-steps", type=int, default=100_000)
    p.add_argument("--worker-steps", type=int, default=100_000)
    p.add_argument("--ks", type=int, nargs="+", default=[10, 25, 50])
    p.add_argument("--agents", nargs="+", default=["iql", "td3bc", "awac", "cql"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--hidden", type=int, nargs="+", default=None,
                   help="hidden sizes for workers and manager (default: their own)")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--device", default="cpu", help="torch device of managers and workers")
    p.add_argument("--cpu-workers", nargs="*", default=[],
                   help="workers kept on the CPU when --device is a GPU")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--out", default="experiments/offline/results/intent_ablation")
    args = p.parse_args()
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    hidden = {"hidden": args.hidden} if args.hidden else {}
    run = {"run.eval_episodes": args.eval_episodes, "run.eval_every": args.worker_steps,
           "run.tensorboard": False}
    results = out / "results.csv"
    done: set[tuple[str, str, int, int]] = set()
    if results.exists():
        with open(results, newline="") as f:
            done = {(r["env"], r["agent"], int(r["intent_k"]), int(r["seed"]))
                    for r in csv.DictReader(f)}
    else:
        results.write_text(",".join(FIELDS) + "\n")

    pool = ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn"))
    pending: dict[Future, tuple] = {}

    def submit(tag: tuple, fn: Any, *fn_args: Any) -> None:
        pending[pool.submit(fn, *fn_args)] = tag

    def worker_device(agent: str) -> str:
        return "cpu" if agent in args.cpu_workers else args.device

    def submit_worker(env: str, seed: int, data: str, agent: str, k: int,
                      manager: str) -> None:
        if (env, agent, k, seed) in done:
            return
        rdir = out / "runs" / f"{_name(env)}_{agent}_k{k}_seed{seed}"
        overrides = {**run, **hidden, "run.manager": manager,
                     "run.device": worker_device(agent)}
        submit(("worker", env, seed, agent, k), run_worker, data, agent, args.worker_steps,
               seed, str(rdir), overrides)

    started = time.perf_counter()
    for env in args.envs:
        for seed in args.seeds:
            data = str(out / f"{_name(env)}_seed{seed}.npz")
            submit(("data", env, seed), make_dataset, env, args.data_steps, seed, data)
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                tag = pending.pop(fut)
                kind, env, seed = tag[:3]
                try:
                    value = fut.result()
                except Exception as e:  # say it now: shutting down waits for running jobs
                    print(f"failed: {tag[:5]}: {e}", flush=True)
                    raise
                if kind == "data":
                    for agent in args.agents:
                        submit_worker(env, seed, value, agent, 0, "")
                    for k in args.ks:
                        mdir = out / "runs" / f"{_name(env)}_manager_k{k}_seed{seed}"
                        submit(("manager", env, seed, k, value), make_manager, value,
                               args.manager_steps, seed, k, str(mdir),
                               {**hidden, "run.device": args.device})
                elif kind == "manager":
                    k, data = tag[3], tag[4]
                    for agent in args.agents:
                        submit_worker(env, seed, data, agent, k, value)
                else:
                    agent, k = tag[3], tag[4]
                    row = {"env": env, "agent": agent, "intent_k": k, "seed": seed,
                           **value, "device": worker_device(agent)}
                    with open(results, "a", newline="") as f:  # one short line per append
                        csv.DictWriter(f, FIELDS).writerow(row)
                    print(json.dumps(row), f"[{time.perf_counter() - started:.0f}s]",
                          flush=True)
    finally:
        pool.shutdown(cancel_futures=True)
    write_table(out, args)


def write_table(out: Path, args: argparse.Namespace) -> None:
    """The table covers every row in results.csv (earlier invocations' agents and envs too)."""
    scores: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    success: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    envs, agents = dict.fromkeys(args.envs), dict.fromkeys(args.agents)
    with open(out / "results.csv", newline="") as f:
        for r in csv.DictReader(f):
            key = (r["env"], r["agent"], int(r["intent_k"]))
            scores[key].append(float(r["normalized_score"]))
            success[key].append(float(r["success"]))
            envs[r["env"]] = agents[r["agent"]] = None
    columns = [0, *args.ks]
    lines = [f"Normalized score ({args.data_steps} steps of data, {args.worker_steps} worker "
             f"updates, {args.manager_steps} manager updates, seeds {args.seeds}); "
             "mean ± sample std over seeds (success rate in brackets).", "",
             "| env | worker | alone | " + " | ".join(f"intent k={k}" for k in args.ks) + " |",
             "|---" * (len(columns) + 2) + "|"]
    for env in envs:
        for agent in agents:
            cells = []
            for k in columns:
                s = scores.get((env, agent, k))
                cells.append(f"{np.mean(s):.1f} ± {np.std(s, ddof=1) if len(s) > 1 else 0:.1f} "
                             f"({np.mean(success[env, agent, k]):.2f})" if s else "–")
            lines.append(f"| {_name(env)} | {agent} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
