"""The README's first command: train, evaluate clean and perturbed, print a table, plot.

Every evaluation episode becomes one row of `RUN/episodes.csv` (policy, perturbation, strength,
training seed, episode, its reset seed, return); the printed table (`RUN/results.md`) is
`results_table` of those rows, so `table_from_csv(RUN/episodes.csv)` regenerates it.
"""

from __future__ import annotations

import csv
import io
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
SEED = 0  # training seed
EPISODE_FIELDS = ["policy", "perturbation", "strength", "seed", "episode", "eval_seed", "return"]
HEADERS = ["policy", "perturbation", "return (mean ± std)", "normalized"]


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

    cfg = build_run(AGENT, ENV, steps, seed=SEED)
    for note in check_budget(cfg):  # whole rollouts: the steps actually trained
        print(note)
    print(f"[1/3] training {AGENT.upper()} on {ENV} for {cfg.run.steps} steps -> {out}")
    train(cfg, out)

    print(f"[2/3] evaluating {episodes} episodes, clean and under perturbations")
    rand = random_baseline(ENV, episodes, seed=10_000)
    rows = episode_rows("random", "none", "", rand, 10_000)
    results = []
    for spec in [None, *PERTURBATIONS]:  # the CSV grows as each evaluation finishes
        results.append(evaluate_run(str(out), episodes, [spec] if spec else [], seed=10_000))
        kind, _, strength = (spec or "none").partition(":")
        rows += episode_rows(AGENT, kind, SEED, results[-1]["returns"], 10_000, strength)
        atomic_write_text(out / "episodes.csv", rows_to_csv(rows))
    text = results_table(rows)
    print(text)
    atomic_write_text(out / "results.md", text + "\n")
    atomic_write_text(out / "results.json", json.dumps(
        {"random": rand, AGENT: results}, indent=2))

    print("[3/3] plotting")
    plot = write_plot(out, results, rand)
    print(f"results: {out / 'results.md'}\nplot:    {plot}")
    return {"results": results, "random": rand}


def episode_rows(policy: str, kind: str, seed: int | str, returns: list[float], eval_seed: int,
                 strength: str = "") -> list[dict[str, str]]:
    """One CSV row (all strings, floats round-trip exactly) per evaluation episode."""
    return [{"policy": policy, "perturbation": kind, "strength": strength, "seed": str(seed),
             "episode": str(ep), "eval_seed": str(eval_seed + ep), "return": repr(float(ret))}
            for ep, ret in enumerate(returns)]


def rows_to_csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, EPISODE_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def results_table(rows: list[dict[str, str]]) -> str:
    """The quickstart table from its episode rows: per (policy, perturbation) in first-seen
    order, mean ± population std (ddof 0) of the episode returns, and normalized = that mean
    / the PPO policy's clean mean."""
    cells: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        label = f"{r['perturbation']}:{r['strength']}" if r["strength"] else r["perturbation"]
        cells.setdefault((r["policy"], label), []).append(float(r["return"]))
    clean = float(np.mean(cells[(AGENT, "none")])) if (AGENT, "none") in cells else 0.0
    lines = []
    for (policy, label), returns in cells.items():
        mean = float(np.mean(returns))
        lines.append(["random policy" if policy == "random" else policy, label,
                      f"{mean:.1f} ± {np.std(returns):.1f}",
                      f"{mean / clean:.2f}" if clean and policy != "random" else "-"])
    return table(HEADERS, lines)


def table_from_csv(path: str | Path) -> str:
    """Regenerate the quickstart table from a run's (or the committed) episodes.csv."""
    with Path(path).open(newline="") as f:
        return results_table(list(csv.DictReader(f)))


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
