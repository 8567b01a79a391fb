"""Workers with and without the IQL-TD-MPC manager's intent, and the ablation over k.

For each seed: generate a PointMaze dataset (D4RL/Minari recipe), train every worker alone,
train one manager per k, and train every worker on [observation, goal, intent] from each
manager; every run is evaluated in the env (normalized score against the dataset's random
and planner-controller returns). Writes `results.csv` (one row per run) and `table.md`
(mean ± std over seeds) into --out; run directories go under --out/runs.

The issue's claim to test (paper, antmaze): workers that fail alone (AWAC, TD3+BC, CQL
near 0) are lifted by the intent. Full budget (hours on a 2-core CPU):
    python experiments/offline/intent_ablation.py --env maze/PointMaze_Medium-v3 \
        --data-steps 1000000 --manager-steps 100000 --worker-steps 100000 --seeds 0 1 2
Smoke test (minutes):
    python experiments/offline/intent_ablation.py --env maze/PointMaze_UMaze-v3 \
        --data-steps 20000 --manager-steps 500 --worker-steps 1000 --ks 10 25 \
        --agents iql td3bc --seeds 0 --hidden 128 128 --out /tmp/ablation
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from robustrl.offline.generate import GenerateConfig, generate_dataset
from robustrl.offline.tdmpc import train_manager
from robustrl.offline.train import train_offline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="maze/PointMaze_Medium-v3")
    p.add_argument("--data-steps", type=int, default=1_000_000)
    p.add_argument("--manager-steps", type=int, default=100_000)
    p.add_argument("--worker-steps", type=int, default=100_000)
    p.add_argument("--ks", type=int, nargs="+", default=[10, 25, 50])
    p.add_argument("--agents", nargs="+", default=["iql", "td3bc", "awac", "cql"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--hidden", type=int, nargs="+", default=None,
                   help="hidden sizes for workers and manager (default: their own)")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--out", default="experiments/offline/results/intent_ablation")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    hidden = {"hidden": args.hidden} if args.hidden else {}
    run = {"run.eval_episodes": args.eval_episodes, "run.eval_every": args.worker_steps,
           "run.tensorboard": False}
    rows = []
    for seed in args.seeds:
        data = out / f"{args.env.split('/')[-1]}_seed{seed}.npz"
        if not data.exists():
            generate_dataset(args.env, GenerateConfig(steps=args.data_steps, seed=seed),
                             out=data)
        managers = {None: ""}
        for k in args.ks:
            mdir = out / "runs" / f"manager_k{k}_seed{seed}"
            if not (mdir / "manager.pt").exists():
                train_manager(data, args.manager_steps, out=mdir, seed=seed,
                              overrides={"k": k, "run.tensorboard": False, **hidden})
            managers[k] = str(mdir)
        for agent in args.agents:
            for k, mdir in managers.items():
                start = time.perf_counter()
                result = train_offline(data, agent, args.worker_steps, seed=seed,
                                       out=out / "runs" / f"{agent}_k{k or 0}_seed{seed}",
                                       overrides={**run, **hidden, "run.manager": mdir})
                e = result.evaluation
                rows.append({"env": args.env, "agent": agent, "intent_k": k or 0,
                             "seed": seed, "normalized_score": e["normalized_score"],
                             "return": e["eval_return"], "success": e["success"],
                             "seconds": round(time.perf_counter() - start, 1)})
                print(json.dumps(rows[-1]), flush=True)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    scores: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in rows:
        scores[r["agent"], r["intent_k"]].append(r["normalized_score"])
    columns = [0, *args.ks]
    lines = [f"Normalized score on {args.env} ({args.data_steps} steps of data, "
             f"{args.worker_steps} worker updates, {args.manager_steps} manager updates, "
             f"seeds {args.seeds}); mean ± std over seeds.", "",
             "| agent | alone | " + " | ".join(f"intent k={k}" for k in args.ks) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for agent in args.agents:
        cells = [f"{np.mean(scores[agent, k]):.1f} ± {np.std(scores[agent, k]):.1f}"
                 for k in columns]
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
