"""Learning parity: robustrl vs Stable-Baselines3 at equal env steps and seeds (issue 18).

Two comparisons, each with the same settings on both sides (`COMPARISONS` states them):
  ppo  PPO on mujoco/HalfCheetah-v5, 200k steps (bench_vs_sb3.py's ppo settings)
  sac  SAC on mujoco/Hopper-v5, 50k steps (SB3's SAC defaults, 10k random steps first)
robustrl is built through `make_agent`, SB3 through its own API; torch threads 1.

Each run trains to `--steps` env steps; at every `--every` steps (PPO: after the first rollout
at or beyond it) and at the end the deterministic policy plays `--episodes` episodes of a
fresh `gym.make(env)` on eval seeds 1000, 1001, ... (the same on both sides), with PPO's
training observation-normalization statistics frozen. One CSV row per eval episode
(results/learning_parity_<algo>.csv), appended as each evaluation finishes (whole lines, under
a lock: two processes may share the file); a rerun skips finished (side, seed) runs and drops
the rows of an unfinished one first.

    python experiments/perf/learning_parity.py sac run --side robustrl --seeds 0 1 2 3 4 &
    python experiments/perf/learning_parity.py sac run --side sb3 --seeds 0 1 2 3 4
    python experiments/perf/learning_parity.py sac --from-csv   # the .md and curves PNG
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import io
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROLLOUT = 2048
SAC_WARMUP = 10_000
EVAL_SEED0 = 1000
FIELDS = ["side", "seed", "step", "episode", "eval_seed", "return", "train_s", "wall_s",
          "load_1min", "date_utc", "target_steps"]
SIDES = ("robustrl", "sb3")


# ----------------------------------------------------------------- raw rows
CSV = RESULTS / "learning_parity_ppo.csv"  # main() sets the comparison's (or --csv)


def read_rows(path: Path | None = None) -> list[dict[str, str]]:
    path = path or CSV
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class Locked:
    def __enter__(self):
        RESULTS.mkdir(exist_ok=True)
        self.f = open(CSV.with_suffix(".lock"), "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _write_all(rows: list[dict[str, str]]) -> None:
    tmp = CSV.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, CSV)


def append(rows: list[dict[str, object]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, FIELDS)
    with Locked():
        if not CSV.exists() or CSV.stat().st_size == 0:
            w.writeheader()
        w.writerows(rows)
        with CSV.open("a", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())


def finished(rows: list[dict[str, str]], side: str, seed: int, steps: int, episodes: int) -> bool:
    last = [r for r in rows if r["side"] == side and int(r["seed"]) == seed
            and int(r["step"]) >= steps]
    return len(last) >= episodes


def drop_partial(side: str, seed: int) -> None:
    with Locked():
        rows = read_rows()
        keep = [r for r in rows if not (r["side"] == side and int(r["seed"]) == seed)]
        if len(keep) != len(rows):
            _write_all(keep)


# ----------------------------------------------------------------- training
def evaluate(env_id: str, act, episodes: int) -> list[float]:
    env = gym.make(env_id)
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED0 + i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            total += float(r)
            done = term or trunc
        out.append(total)
    env.close()
    return out


def robustrl_ppo(env_id: str, seed: int):
    from robustrl.agents import make_agent

    agent = make_agent("ppo", f"mujoco/{env_id}", seed=seed, n_envs=1, n_steps=ROLLOUT,
                       n_epochs=10, n_minibatches=ROLLOUT // 64, hidden=(64, 64),
                       activation="tanh", normalize_obs=True, normalize_reward=True,
                       lr=3e-4, gamma=0.99, gae_lambda=0.95, clip=0.2, ent_coef=0.0,
                       vf_coef=0.5, max_grad_norm=0.5, lr_schedule="constant")
    return _robustrl_driver(agent)


def robustrl_sac(env_id: str, seed: int):
    from robustrl.agents import make_agent

    agent = make_agent("sac", f"mujoco/{env_id}", seed=seed, lr=3e-4, gamma=0.99, tau=0.005,
                       batch_size=256, buffer_size=1_000_000, learning_starts=SAC_WARMUP,
                       train_freq=1, gradient_steps=1, hidden=(256, 256), alpha=None,
                       alpha_init=1.0, target_entropy=None, log_interval=10**9)
    return _robustrl_driver(agent)


def _robustrl_driver(agent):
    def train_to(target: int) -> int:
        agent.learn(target)
        return agent.num_steps

    def act(obs: np.ndarray) -> np.ndarray:  # PPO's normalizer is read, not updated
        return agent.act(obs.astype(np.float32), deterministic=True)

    return train_to, act


def sb3_ppo(env_id: str, seed: int):
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    env = VecNormalize(DummyVecEnv([lambda: gym.make(env_id)]), gamma=0.99)
    model = PPO("MlpPolicy", env, learning_rate=3e-4, n_steps=ROLLOUT, batch_size=64,
                n_epochs=10, gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0,
                vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=True, seed=seed, verbose=0,
                device="cpu", policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                                             "activation_fn": torch.nn.Tanh})
    # VecNormalize's obs_rms is read, not updated
    return _sb3_driver(model, lambda obs: env.normalize_obs(obs[None]))


def sb3_sac(env_id: str, seed: int):
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", gym.make(env_id), learning_rate=3e-4, gamma=0.99, tau=0.005,
                batch_size=256, buffer_size=1_000_000, learning_starts=SAC_WARMUP, train_freq=1,
                gradient_steps=1, ent_coef="auto", target_entropy="auto", seed=seed, verbose=0,
                device="cpu", policy_kwargs={"net_arch": [256, 256]})
    return _sb3_driver(model, lambda obs: obs[None])


def _sb3_driver(model, prepare: Callable[[np.ndarray], np.ndarray]):
    def train_to(target: int) -> int:
        if model.num_timesteps < target:
            model.learn(target - model.num_timesteps, reset_num_timesteps=False)
        return model.num_timesteps

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(prepare(obs), deterministic=True)[0][0]

    return train_to, act


@dataclass(frozen=True)
class Comparison:
    """One learner on one env, built alike on both sides; `settings` is the .md's sentence."""

    algo: str
    env: str
    steps: int
    every: int
    robustrl: Callable
    sb3: Callable
    settings: str
    units: str

    def file(self, suffix: str) -> Path:
        return RESULTS / f"learning_parity_{self.algo}{suffix}"


COMPARISONS = {c.algo: c for c in (
    Comparison(
        "ppo", "HalfCheetah-v5", 200_000, 20_000, robustrl_ppo, sb3_ppo,
        "{targets} env steps target (training stops at the first 2048-step rollout boundary at "
        "or beyond it), 1 env, 10 epochs of minibatch 64, 64x64 tanh actor and critic, lr "
        "3e-4, gamma 0.99, GAE lambda 0.95, clip 0.2, ent_coef 0, vf_coef 0.5, max_grad_norm "
        "0.5, observation + reward normalization (SB3: VecNormalize); torch 1 thread per "
        "process. Evaluation: deterministic policy, 10 episodes on eval seeds 1000-1009 (same "
        "both sides), training observation statistics frozen, after the first rollout at or "
        "beyond each 20k steps.",
        "undiscounted HalfCheetah-v5 episode return (1000 steps)"),
    Comparison(
        "sac", "Hopper-v5", 50_000, 5_000, robustrl_sac, sb3_sac,
        "{targets} env steps, 1 env, the first 10,000 uniformly random, then one gradient step "
        "per env step; 256x256 ReLU actor and two critics, batch 256, replay 1M, Adam lr 3e-4, "
        "gamma 0.99, tau 0.005, temperature auto-tuned from 1.0 toward -dim(A); torch 1 thread "
        "per process. Evaluation: deterministic (mean) action, 10 episodes on eval seeds "
        "1000-1009 (same both sides), every 5k steps.",
        "undiscounted Hopper-v5 episode return (up to 1000 steps; an episode ends when the "
        "hopper falls)"),
)}


def run(cmp: Comparison, side: str, seed: int, steps: int, every: int, episodes: int) -> None:
    import torch

    torch.set_num_threads(1)
    if finished(read_rows(), side, seed, steps, episodes):
        print(f"{side} seed {seed}: done already, skipped", flush=True)
        return
    drop_partial(side, seed)
    start = time.perf_counter()
    train_to, act = getattr(cmp, side)(cmp.env, seed)
    train_s = 0.0
    targets = list(range(every, steps, every)) + [steps]
    for target in targets:
        t0 = time.perf_counter()
        step = train_to(target)
        train_s += time.perf_counter() - t0
        returns = evaluate(cmp.env, act, episodes)
        stamp = {"train_s": f"{train_s:.2f}", "wall_s": f"{time.perf_counter() - start:.2f}",
                 "load_1min": f"{os.getloadavg()[0]:.2f}",
                 "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "target_steps": steps}
        append([{"side": side, "seed": seed, "step": step, "episode": i,
                 "eval_seed": EVAL_SEED0 + i, "return": f"{r:.3f}", **stamp}
                for i, r in enumerate(returns)])
        print(f"{side} seed {seed} step {step}: mean return {np.mean(returns):.1f} "
              f"(train {train_s:.0f} s, wall {time.perf_counter() - start:.0f} s, "
              f"load {os.getloadavg()[0]:.2f})", flush=True)


# ----------------------------------------------------------------- table
def curves(rows: list[dict[str, str]]) -> dict[str, dict[int, dict[int, float]]]:
    """side -> seed -> step -> mean eval return over that evaluation's episodes."""
    cells: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        cells[(r["side"], int(r["seed"]), int(r["step"]))].append(float(r["return"]))
    out: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for (side, seed, step), v in cells.items():
        out[side][seed][step] = float(np.mean(v))
    return out


def complete_seeds(rows: list[dict[str, str]], side: str) -> list[int]:
    seeds = sorted({int(r["seed"]) for r in rows if r["side"] == side})
    return [s for s in seeds if any(int(r["step"]) >= int(r["target_steps"]) for r in rows
                                    if r["side"] == side and int(r["seed"]) == s)]


def summary(rows: list[dict[str, str]]) -> dict:
    """Every number of the table, from the rows (check_results.py recomputes them)."""
    from robustrl.bench.stats import (
        iqm,
        probability_of_improvement,
        probability_of_improvement_ci,
        stratified_bootstrap_ci,
    )

    c = curves(rows)
    out: dict = {"sides": {}}
    for side in SIDES:
        seeds = complete_seeds(rows, side)
        finals = {s: c[side][s][max(c[side][s])] for s in seeds}
        partial = sorted(set(c[side]) - set(seeds))
        steps = sorted({st for s in seeds for st in c[side][s]})
        curve = []
        for st in steps:
            vals = [c[side][s][st] for s in seeds if st in c[side][s]]
            lo, hi = stratified_bootstrap_ci([vals])
            curve.append((st, len(vals), iqm([vals]), lo, hi))
        entry = {"seeds": seeds, "partial": partial, "finals": finals, "curve": curve,
                 "final_step": sorted({max(c[side][s]) for s in seeds})}
        if seeds:
            v = list(finals.values())
            entry["iqm"] = iqm([v])
            entry["ci"] = stratified_bootstrap_ci([v])
            entry["mean"] = float(np.mean(v))
            # each run's mean over its last three evaluations (a steadier score than the last)
            entry["last3"] = [float(np.mean([c[side][s][st] for st in sorted(c[side][s])[-3:]]))
                              for s in seeds]
            entry["last3_iqm"] = iqm([entry["last3"]])
            entry["last3_ci"] = stratified_bootstrap_ci([entry["last3"]])
            entry["train_s"] = [float(max(float(r["train_s"]) for r in rows if r["side"] == side
                                          and int(r["seed"]) == s)) for s in seeds]
        out["sides"][side] = entry
    a, b = (list(out["sides"][s]["finals"].values()) for s in SIDES)
    if a and b:
        out["poi"] = probability_of_improvement([a], [b])
        out["poi_ci"] = probability_of_improvement_ci([a], [b])
        a3, b3 = (out["sides"][s]["last3"] for s in SIDES)
        out["last3_poi"] = probability_of_improvement([a3], [b3])
        out["last3_poi_ci"] = probability_of_improvement_ci([a3], [b3])
    loads = [float(r["load_1min"]) for r in rows]
    dates = sorted(r["date_utc"] for r in rows)
    out["load"] = (min(loads), max(loads)) if loads else None
    out["dates"] = (dates[0], dates[-1]) if dates else None
    return out


def render(rows: list[dict[str, str]], cmp: Comparison) -> str:
    s = summary(rows)
    targets = " / ".join(f"{t:,}" for t in sorted({int(r["target_steps"]) for r in rows}))
    name = cmp.algo.upper()
    command = f"python experiments/perf/learning_parity.py {cmp.algo}"
    seeds = " ".join(map(str, sorted({int(r["seed"]) for r in rows})))
    lines = [
        f"# Learning parity: robustrl {name} vs Stable-Baselines3 {name}, mujoco/{cmp.env}",
        "",
        f"Produced by `{command} --from-csv` from `{cmp.file('.csv').name}` (one row per "
        "evaluation episode), written by",
        f"`{command} run --side robustrl --seeds {seeds}` and the same with `--side sb3`, the "
        "two processes started together (robustrl's runs are faster, so the sides did not stay "
        "paired seed by seed: each row's `date_utc` and `load_1min` say when and under what "
        "load it ran).",
        "",
        "Settings (equal on both sides): " + cmp.settings.format(targets=targets)
        + " A run's score = mean return of its 10 eval episodes.",
        "",
        "IQM = interquartile mean over seeds (robustrl.bench.stats.iqm; with 5 seeds the middle "
        "3). [ ] = 95% stratified percentile bootstrap CI over seeds (2,000 resamples, "
        "robustrl.bench.stats). P(robustrl > SB3) = probability that a robustrl run's final "
        "score exceeds an SB3 run's (Mann-Whitney, ties 1/2), with its bootstrap 95% CI. "
        f"Return units: {cmp.units}.",
        "",
        "## Final return",
        "",
        "| side | seeds | final step | IQM [95% CI] | mean | per-seed finals (seed: score) "
        "| train s per run (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for side in SIDES:
        e = s["sides"][side]
        if not e["seeds"]:
            lines.append(f"| {side} | none finished | - | - | - | - | - |")
            continue
        finals = ", ".join(f"{k}: {v:.1f}" for k, v in e["finals"].items())
        lines.append(
            f"| {side} | {' '.join(map(str, e['seeds']))} | "
            f"{' '.join(map(str, e['final_step']))} | {e['iqm']:.1f} "
            f"[{e['ci'][0]:.1f}, {e['ci'][1]:.1f}] | {e['mean']:.1f} | {finals} | "
            f"{np.median(e['train_s']):.0f} |")
    lines.append("")
    if "poi" in s:
        lines.append(f"P(robustrl > SB3) = {s['poi']:.2f} [{s['poi_ci'][0]:.2f}, "
                     f"{s['poi_ci'][1]:.2f}].")
    partial = {side: s["sides"][side]["partial"] for side in SIDES if s["sides"][side]["partial"]}
    if partial:
        lines.append("Unfinished runs (rows kept, not in the final-return row): " + "; ".join(
            f"{side} seeds {' '.join(map(str, p))}" for side, p in partial.items()) + ".")
    e_r, e_s = (s["sides"][side] for side in SIDES)
    if e_r["seeds"] and e_s["seeds"]:
        lo_r, hi_r = e_r["ci"]
        lo_s, hi_s = e_s["ci"]
        if hi_r < lo_s:
            verdict = "robustrl is BEHIND SB3: its final-return CI lies wholly below SB3's."
        elif hi_s < lo_r:
            verdict = "robustrl is AHEAD of SB3: its final-return CI lies wholly above SB3's."
        else:
            verdict = ("The final-return CIs overlap: no difference resolved at "
                       f"{len(e_r['seeds'])} vs {len(e_s['seeds'])} seeds (robustrl's IQM is "
                       f"{e_r['iqm'] - e_s['iqm']:+.1f} from SB3's).")
        lines.append(verdict)
    if "last3_poi" in s:
        r3, s3 = (s["sides"][side] for side in SIDES)
        lines += ["", "Post hoc (chosen after the SAC run's final evaluations, so descriptive, "
                  "not a test): each run scored by the mean of its last three evaluations, "
                  f"robustrl IQM {r3['last3_iqm']:.1f} [{r3['last3_ci'][0]:.1f}, "
                  f"{r3['last3_ci'][1]:.1f}] vs SB3 {s3['last3_iqm']:.1f} "
                  f"[{s3['last3_ci'][0]:.1f}, {s3['last3_ci'][1]:.1f}]; P(robustrl > SB3) = "
                  f"{s['last3_poi']:.2f} [{s['last3_poi_ci'][0]:.2f}, "
                  f"{s['last3_poi_ci'][1]:.2f}]."]
    lines += ["", "## Learning curves (IQM over seeds [95% CI]; n = seeds at that step)", "",
              f"![curves]({cmp.file('_curves.png').name})", "", "| step | robustrl | SB3 |",
              "|---|---|---|"]
    by_step: dict[int, dict[str, str]] = defaultdict(dict)
    for side in SIDES:
        for st, n, m, lo, hi in s["sides"][side]["curve"]:
            by_step[st][side] = f"{m:.1f} [{lo:.1f}, {hi:.1f}] (n={n})"
    for st in sorted(by_step):
        lines.append(f"| {st} | {by_step[st].get('robustrl', '-')} | "
                     f"{by_step[st].get('sb3', '-')} |")
    if s["dates"]:
        lines += ["", f"Ran {s['dates'][0]} to {s['dates'][1]} (UTC) on a 2-core machine, "
                  "one torch thread per process, the two sides (at times also a third run or "
                  "other jobs) sharing the cores; "
                  "1-minute load average "
                  f"{s['load'][0]:.2f} to {s['load'][1]:.2f} at the evaluations (above 2: "
                  "another job shared the cores, which slows that run's train seconds, not its "
                  "returns)."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, str]], cmp: Comparison) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for side, color in zip(SIDES, ("C0", "C1")):
        cur = s["sides"][side]["curve"]
        if not cur:
            continue
        x, _, m, lo, hi = map(np.array, zip(*cur))
        ax.plot(x, m, color=color, label=f"{side} (n={len(s['sides'][side]['seeds'])})")
        ax.fill_between(x, lo, hi, color=color, alpha=0.25)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return (IQM over seeds, 95% CI band)")
    ax.set_title(f"{cmp.algo.upper()} on {cmp.env}: robustrl vs SB3")
    ax.legend()
    fig.tight_layout()
    fig.savefig(cmp.file("_curves.png"), dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algo", choices=sorted(COMPARISONS))
    parser.add_argument("mode", nargs="?", choices=["run"])
    parser.add_argument("--from-csv", action="store_true", help="write the .md and PNG only")
    parser.add_argument("--side", choices=SIDES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, help="default: the comparison's")
    parser.add_argument("--every", type=int, help="default: the comparison's")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--csv", type=Path, help="raw rows (default results/"
                        "learning_parity_<algo>.csv; a trial: elsewhere)")
    args = parser.parse_args()
    cmp = COMPARISONS[args.algo]
    globals()["CSV"] = args.csv or cmp.file(".csv")
    if args.mode == "run":
        if args.side is None:
            parser.error("run needs --side robustrl or --side sb3")
        for seed in args.seeds:
            run(cmp, args.side, seed, args.steps or cmp.steps, args.every or cmp.every,
                args.episodes)
    if args.from_csv or args.mode is None:
        rows = read_rows()
        md = cmp.file(".md")
        md.write_text(render(rows, cmp))
        plot(rows, cmp)
        print(md.read_text())


if __name__ == "__main__":
    main()
