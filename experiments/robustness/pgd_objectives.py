"""Which PGD objective hurts a discrete policy's return more: `kl` or `action`?

    python experiments/robustness/pgd_objectives.py

trains PPO on CartPole-v1 (30k steps, seed 0, agents/ppo.toml settings) into a temporary
directory, evaluates it clean and under obs-pgd at ε ∈ {0.1, 0.2} (K = 10, R = 2) with each
objective, 5 episodes each (eval seeds 100-104), and writes results/pgd_objectives.csv (one
row per episode) and results/pgd_objectives.md (mean return per cell).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from robustrl.train import build_run, evaluate_run, train

HERE = Path(__file__).resolve().parent
SPECS = ["none", "obs-pgd:0.1,objective=kl", "obs-pgd:0.1,objective=action",
         "obs-pgd:0.2,objective=kl", "obs-pgd:0.2,objective=action"]
EPISODES, SEED = 5, 100


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = build_run("ppo", "gym/CartPole-v1", 30_000, 0, {"run.tensorboard": False})
        train(run, tmp, show_progress=False).close()
        results = {spec: evaluate_run(tmp, EPISODES, [] if spec == "none" else [spec],
                                      seed=SEED)["returns"] for spec in SPECS}
    rows = ["spec,episode,return"] + [f'"{spec}",{i},{r}' for spec, returns in results.items()
                                      for i, r in enumerate(returns)]
    out = HERE / "results"
    _atomic_write(out / "pgd_objectives.csv", "\n".join(rows) + "\n")
    table = ["# PGD objectives on a discrete policy (PPO, CartPole-v1, 30k steps, seed 0)", "",
             f"Mean return over {EPISODES} episodes (eval seeds {SEED}-{SEED + EPISODES - 1}); "
             "K = 10 steps, R = 2 restarts, ε in normalized observation units. Produced by "
             "`python experiments/robustness/pgd_objectives.py` (rows: `pgd_objectives.csv`).",
             "", "| perturbation | mean return | returns |", "|---|---|---|"]
    table += [f"| {spec} | {np.mean(r):.1f} | {', '.join(f'{x:.0f}' for x in r)} |"
              for spec, r in results.items()]
    _atomic_write(out / "pgd_objectives.md", "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
