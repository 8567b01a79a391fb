"""The README's first command: train, evaluate clean and perturbed, print a table, plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robustrl.cli.table import table
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_save_figure, atomic_write_text
from robustrl.core.logging import read_metrics

AGENT = "ppo"
ENV = "mujoco/InvertedPendulum-v5"
# Strengths in normalized-observation units; chosen so the table shows where this policy
# breaks (it shrugs off mass changes and small noise).
PERTURBATIONS = ["obs-gaussian:1.0", "obs-pgd:0.5", "obs-pgd:1.0", "act-replace:0.05",
                 "dyn-mass:3.0"]


def random_baseline(env_id: str, episodes: int, seed: int) -> list[float]:
    from robustrl.envs import make

    env = make(env_id)
    env.action_space.seed(seed)
    returns = []
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            _, r, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(r)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def quickstart(out: str | Path = "runs/quickstart", steps: int = 80_000,
               episodes: int = 10) -> dict:
    from robustrl.train import build_run, evaluate_run, train

    out = Path(out)
    if episodes < 1:
        raise RobustRLError(f"--episodes must be >= 1, got {episodes}")
    if (out / "config.toml").exists():
        raise RobustRLError(f"{out} already exists; remove it or pass --out elsewhere")
    from robustrl.cli.budget import check_budget

    cfg = build_run(AGENT, ENV, steps, seed=0)
    for note in check_budget(cfg):  # whole rollouts: the steps actually trained
        print(note)
    print(f"[1/3] training {AGENT.upper()} on {ENV} for {cfg.run.steps} steps -> {out}")
    train(cfg, out)

    print(f"[2/3] evaluating {episodes} episodes, clean and under perturbations")
    results = [evaluate_run(str(out), episodes, [], seed=10_000)]
    results += [evaluate_run(str(out), episodes, [p], seed=10_000) for p in PERTURBATIONS]
    clean = results[0]["return_mean"]
    rand = random_baseline(ENV, episodes, seed=10_000)
    rows = [["random policy", "none", f"{np.mean(rand):.1f} ± {np.std(rand):.1f}", "-"]]
    for r in results:
        rows.append([AGENT, " ".join(r["perturbations"]) or "none",
                     f"{r['return_mean']:.1f} ± {r['return_std']:.1f}",
                     f"{r['return_mean'] / clean:.2f}" if clean else "-"])
    text = table(["policy", "perturbation", "return (mean ± std)", "normalized"], rows)
    print(text)
    atomic_write_text(out / "results.md", text + "\n")
    atomic_write_text(out / "results.json", json.dumps(
        {"random": rand, AGENT: results}, indent=2))

    print("[3/3] plotting")
    plot = write_plot(out, results, rand)
    print(f"results: {out / 'results.md'}\nplot:    {plot}")
    return {"results": results, "random": rand}


def write_plot(out: Path, results: list[dict], random_returns: list[float]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(out / "metrics.csv") if "episode_return" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot([r["step"] for r in rows], [r["episode_return"] for r in rows], label=AGENT.upper())
    left.axhline(np.mean(random_returns), color="gray", ls="--", label="random policy")
    left.set(xlabel="environment steps", ylabel="episode return (last 20)",
             title=f"Training on {ENV}")
    left.legend()
    labels = [" ".join(r["perturbations"]) or "clean" for r in results]
    means = [r["return_mean"] for r in results]
    stds = [r["return_std"] for r in results]
    right.bar(range(len(results)), means, yerr=stds, capsize=4, color="tab:blue")
    right.set_xticks(range(len(results)), labels, rotation=20, ha="right")
    right.set(ylabel="evaluation return", title="Clean vs perturbed evaluation")
    fig.tight_layout()
    return atomic_save_figure(fig, out / "quickstart.png", dpi=110)
